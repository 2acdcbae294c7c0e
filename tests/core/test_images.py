"""Image preprocessing on images made here: polarity, position, size, alpha, EXIF, modes, bad files."""

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digits_core.images import ImageError, from_array, load_image, pixels_from_uint8, to_mnist
from digits_core.ink import components


def draw_eight(
    size: int = 200, ink: int = 0, paper: int = 255, box=(0.3, 0.1, 0.7, 0.9), width: int = 0
) -> Image.Image:
    """A dark-on-light '8' (two stacked rings) in a square image; ``box`` in fractions of the side."""
    image = Image.new("L", (size, size), paper)
    draw = ImageDraw.Draw(image)
    x0, y0, x1, y1 = (round(v * size) for v in box)
    middle = (y0 + y1) // 2
    stroke = width or max(2, size // 25)
    draw.ellipse((x0, y0, x1, middle), outline=ink, width=stroke)
    draw.ellipse((x0 - stroke // 2, middle - stroke // 2, x1 + stroke // 2, y1), outline=ink, width=stroke)
    return image


def center_of_mass(pixels: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(pixels.shape)
    return float((ys * pixels).sum() / pixels.sum()), float((xs * pixels).sum() / pixels.sum())


def assert_mnist_form(pixels: np.ndarray) -> None:
    assert pixels.shape == (28, 28)
    assert pixels.dtype == np.float32
    assert pixels.min() == 0.0
    assert pixels.max() == pytest.approx(1.0)
    cy, cx = center_of_mass(pixels)
    assert abs(cy - 14) <= 1.0
    assert abs(cx - 14) <= 1.0
    ys, xs = np.nonzero(pixels > 0)
    assert max(np.ptp(ys), np.ptp(xs)) + 1 in (20, 21, 22)  # long side fills the 20x20 box (+ filter ringing)
    border = np.concatenate(
        [pixels[:2].ravel(), pixels[-2:].ravel(), pixels[:, :2].ravel(), pixels[:, -2:].ravel()]
    )
    assert border.max() == 0.0


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return to_mnist(draw_eight())


def test_dark_on_light_becomes_white_on_black(reference):
    assert_mnist_form(reference)
    assert reference[14, 14] > 0.5 or reference[13:16, 12:17].max() > 0.5  # the waist of the 8 has ink


@pytest.mark.parametrize(
    "variant",
    [
        pytest.param(lambda: draw_eight(ink=255, paper=0), id="light-on-dark"),
        pytest.param(lambda: draw_eight(box=(0.05, 0.02, 0.35, 0.6)), id="off-center"),
        pytest.param(lambda: draw_eight(size=75), id="small"),
        pytest.param(lambda: draw_eight(size=600), id="large"),
        pytest.param(lambda: draw_eight(ink=60, paper=200), id="low-contrast"),
        pytest.param(
            lambda: draw_eight().rotate(8, fillcolor=255, resample=Image.Resampling.BILINEAR), id="rotated"
        ),
    ],
)
def test_variants_give_nearly_the_same_input(reference, variant):
    pixels = to_mnist(variant())
    assert_mnist_form(pixels)
    assert np.abs(pixels - reference).mean() < 0.06


def test_noise_is_ignored(reference):
    rng = np.random.default_rng(0)
    noisy = np.asarray(draw_eight(), dtype=np.float64) + rng.normal(0, 25, (200, 200))
    salt = rng.random((200, 200)) < 0.01
    noisy[salt] = 0
    pixels = to_mnist(Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)))
    assert_mnist_form(pixels)
    assert np.abs(pixels - reference).mean() < 0.06


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB", "CMYK", "I;16", "I", "F"])
def test_modes(reference, mode):
    image = draw_eight()
    if mode == "I;16":
        image = Image.fromarray((np.asarray(image, dtype=np.uint16) * 257).astype(np.uint16))
        assert image.mode == "I;16"
    else:
        image = image.convert(mode)
    pixels = to_mnist(image)
    assert_mnist_form(pixels)
    assert np.abs(pixels - reference).mean() < 0.04


@pytest.mark.parametrize("ink", [0, 255])
def test_transparent_background(reference, ink):
    """Strokes on a fully transparent canvas, whose hidden colour is the same as the ink."""
    alpha = 255 - np.asarray(draw_eight())  # opaque where the 8 is drawn
    rgba = np.zeros((200, 200, 4), dtype=np.uint8)
    rgba[..., :3] = ink
    rgba[..., 3] = alpha
    pixels = to_mnist(Image.fromarray(rgba, "RGBA"))
    assert_mnist_form(pixels)
    assert np.abs(pixels - reference).mean() < 0.04
    la = to_mnist(Image.fromarray(rgba, "RGBA").convert("LA"))
    assert np.abs(la - reference).mean() < 0.04


def test_palette_with_transparency(reference):
    image = draw_eight().convert("P")
    image.info["transparency"] = image.getpixel((0, 0))  # the paper's palette entry is transparent
    assert np.abs(to_mnist(image) - reference).mean() < 0.04


def test_exif_orientation_is_honoured(tmp_path, reference):
    # An 8 lying on its side, with an EXIF tag saying "rotate 90° to display".
    sideways = draw_eight().transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to view
    path = tmp_path / "photo.jpg"
    sideways.convert("RGB").save(path, exif=exif, quality=95)
    pixels = load_image(path)
    assert_mnist_form(pixels)
    assert np.abs(pixels - reference).mean() < 0.05
    assert np.abs(to_mnist(sideways) - reference).mean() > 0.08  # without the tag it would differ


def test_animated_gif_uses_the_first_frame(tmp_path, reference):
    path = tmp_path / "anim.gif"
    frames = [draw_eight(), Image.new("L", (200, 200), 255)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert np.abs(load_image(path) - reference).mean() < 0.04


@pytest.mark.slow
def test_mnist_images_pass_through_unchanged(request, tmp_path):
    dataset = pytest.importorskip("digits_data.dataset", reason="the curated images come from digits-data")
    split = dataset.load_split(request.getfixturevalue("small_curated"), "eval")
    unchanged = 0
    for i, image in enumerate(split.images):
        path = tmp_path / f"{i}.png"
        Image.fromarray(image).save(path)
        unchanged += np.array_equal(load_image(path), pixels_from_uint8(image))
    assert unchanged >= 0.95 * len(split)


def test_pil_image_input_and_pixels_from_uint8():
    array = np.array([[0, 255], [51, 102]], dtype=np.uint8)
    np.testing.assert_allclose(pixels_from_uint8(array), [[0, 1], [0.2, 0.4]], rtol=1e-6)
    assert pixels_from_uint8(array).dtype == np.float32
    assert load_image(draw_eight()).shape == (28, 28)


def test_blank_and_tiny_images_are_errors(tmp_path):
    with pytest.raises(ImageError, match="^no digit found in image: the image is blank or uniform$"):
        to_mnist(Image.new("L", (100, 100), 255))
    path = tmp_path / "one.png"
    Image.new("L", (1, 1), 0).save(path)
    with pytest.raises(ImageError, match=f"^{path} is 1x1 pixels, too small to hold a digit$"):
        load_image(path)


def test_bad_files_are_named(tmp_path):
    with pytest.raises(ImageError, match=f"^{tmp_path / 'none.png'}: no such file$"):
        load_image(tmp_path / "none.png")
    with pytest.raises(ImageError, match="is a folder, not an image file"):
        load_image(tmp_path)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match=f"^{empty} is empty \\(0 bytes\\)$"):
        load_image(empty)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ImageError, match=f"^{text} is not an image file that can be read"):
        load_image(text)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_files_are_refused(tmp_path, fmt):
    buffer = io.BytesIO()
    draw_eight().save(buffer, format=fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(ImageError, match=f"^{path} could not be decoded, it may be truncated or corrupt"):
        load_image(path)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    draw_eight(size=300).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    with pytest.raises(ImageError, match=f"^{path} is too large to decode safely \\(over 10,000 pixels\\)"):
        load_image(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40_000)  # 90,000 > 2x: PIL's error, not its warning
    with pytest.raises(ImageError, match="too large to decode safely"):
        load_image(path)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two images: 1 for the same strokes in the same place."""
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def test_arrays_are_read_like_the_same_image_in_a_file(tmp_path):
    page = np.asarray(draw_eight(120).convert("RGB"))  # (H, W, 3) uint8, dark ink on light paper
    path = tmp_path / "eight.png"
    Image.fromarray(page).save(path)
    from_file = load_image(path)
    np.testing.assert_array_equal(from_array(page), from_file)
    np.testing.assert_array_equal(from_array(page[..., 0].astype(np.int64)), load_image(draw_eight(120)))
    rgba = np.dstack([page, np.full(page.shape[:2], 255, np.uint8)])
    np.testing.assert_array_equal(from_array(rgba), from_file)
    np.testing.assert_allclose(from_array(page[..., 0] / 255.0), from_file, atol=1e-6)
    assert from_array(from_file) is not from_file
    np.testing.assert_array_equal(from_array(from_file), from_file)  # MNIST form passes untouched


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((28, 28), np.uint8), "no digit found in array: the image is blank or uniform"),
        (np.full((28, 28), 1.0), "no digit found in array: the image is blank or uniform"),
        (
            np.full((28, 28), 2.0),
            "array: float pixels must lie in [0, 1]; give whole numbers 0-255 as integers",
        ),
        (np.full((28, 28), 300), "array: whole-number pixels must lie in 0-255, got 300 to 300"),
        (
            np.zeros((28, 28, 2), np.uint8),
            "array: an image array must be (H, W), (H, W, 3) or (H, W, 4), got (28, 28, 2)",
        ),
        (np.full((28, 28), True), "array: pixels must be numbers, got an array of bool"),
        (np.zeros((4, 4), np.uint8), "array is 4x4 pixels, too small to hold a digit"),
    ],
)
def test_arrays_a_file_would_be_refused_for_are_refused(array, message):
    with pytest.raises(ImageError) as raised:
        from_array(array)
    assert str(raised.value) == message


def test_inverted_margins_of_a_scan_are_read_as_the_page_around_them():
    clean = load_image(draw_eight(112, ink=0, paper=255))
    page = np.asarray(draw_eight(112, ink=0, paper=255)).copy()
    page[:, :14] = 255 - page[:, :14]  # dark margins at the left and right edges
    page[:, -12:] = 255 - page[:, -12:]
    read = from_array(page)
    assert_mnist_form(read)
    assert similarity(read, clean) > 0.9
    assert similarity(from_array(255 - page), clean) > 0.9  # and with the shades the other way round


def test_a_heavy_digit_keeps_its_polarity_and_thin_lines_survive():
    heavy = draw_eight(112, ink=255, paper=0, box=(0.12, 0.05, 0.88, 0.95), width=22)
    pixels = load_image(heavy)
    assert similarity(pixels, load_image(Image.eval(heavy, lambda v: 255 - v))) > 0.95
    assert pixels[14, 14] > 0.5  # the ink, not the holes of the 8, is what is read
    thin = load_image(draw_eight(112, width=1))  # one-pixel strokes: no median filter to erase them
    assert_mnist_form(thin)
    assert components(thin > 0).max() == 1  # one unbroken stroke, as drawn


@pytest.mark.parametrize("light_paper", [False, True])
def test_strokes_too_heavy_for_the_background_window_are_not_hollowed_out(light_paper):
    # Loops closed to small holes: around the waist nearly every pixel is ink, and a background
    # taken as a percentile of the neighbourhood would be ink too, and erase the waist: a 0.
    heavy = draw_eight(112, ink=255, paper=0, box=(0.25, 0.1, 0.75, 0.9), width=26)
    pixels = load_image(Image.eval(heavy, lambda v: 255 - v) if light_paper else heavy)
    assert_mnist_form(pixels)
    assert pixels[13:15, 12:16].min() > 0.7  # the waist, where the two loops meet


def test_speckles_apart_from_the_digit_do_not_move_it():
    rng = np.random.default_rng(0)
    page = np.asarray(draw_eight(112)).astype(np.float32)
    noisy = np.clip(page + rng.normal(0, 40, page.shape), 0, 255).astype(np.uint8)
    assert similarity(from_array(noisy), load_image(draw_eight(112))) > 0.85
    specks = np.asarray(draw_eight(112)).copy()
    specks[rng.integers(0, 112, 30), rng.integers(0, 112, 30)] = 0  # 30 lone dark pixels
    assert similarity(from_array(specks), load_image(draw_eight(112))) > 0.97
