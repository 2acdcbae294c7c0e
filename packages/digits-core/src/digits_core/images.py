"""Turn images into model input: MNIST-style 28x28 float32 pixels in [0, 1], white ink on black.

MNIST digits are white ink on black, scaled to fit a 20x20 box (aspect ratio kept) and placed in
a 28x28 field so that their center of mass is at the center. Photos and scans are usually dark
ink on light paper, of any size and mode, maybe with transparency or an EXIF rotation. This
module brings both to the same form, so the model sees what it was trained on.
"""

import os
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from digits_core.contract import IMAGE_SIZE
from digits_core.errors import DigitsError
from digits_core.frames import remove_frame
from digits_core.ink import find_ink, keep_digit, margins_of, noisy
from digits_core.lines import digit_box, remove_lines

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
"""File extensions treated as images when a folder is scanned."""

BOX = 20  # MNIST fits each digit into a 20x20 box inside the 28x28 field
MIN_SIDE = 8  # smaller images cannot hold a legible digit
WORK_SIDE = 1024  # larger images are scaled down to this longer side before any float arithmetic
MAX_PIXELS = 50_000_000  # larger non-JPEG images are refused before decoding (RGBA: 200 MB decoded)
PAPER_BANDS = (0.0, 0.1, 0.2)  # the paper's shade: most of the medians of rings this share of the
# side wide (0: the outermost pixels). The outermost pixels say it best for a digit cropped tight;
# the lines of a box drawn along the edges (a form's cell) cover them, or a thin ring, not all three.
INK_THRESHOLD = 0.2  # after background removal, weaker signal than this (of the peak) is noise
_CENTER = IMAGE_SIZE / 2  # MNIST's mean center of mass is (14.0, 14.0) in pixel-index coordinates


class ImageError(DigitsError):
    """An image file that cannot be read, or holds no digit."""


def pixels_from_uint8(images: np.ndarray) -> np.ndarray:
    """Scale uint8 MNIST-style pixels (0-255) to float32 in [0, 1], the model's input range."""
    return np.asarray(images, dtype=np.float32) / np.float32(255.0)


def load_image(source: str | os.PathLike | Image.Image | BinaryIO) -> np.ndarray:
    """Read an image file (or a binary file object, or take a PIL image) as MNIST-style pixels (28, 28).

    A file object (e.g. ``io.BytesIO`` of uploaded bytes) is named in messages by its ``name``
    attribute when it has one. Raises :class:`ImageError` naming the file when it is missing,
    empty, not an image, truncated, larger than PIL's decompression-bomb limit, or holds no digit.
    """
    if isinstance(source, Image.Image):
        return to_mnist(source)
    if hasattr(source, "read"):
        opened, name = source, str(getattr(source, "name", "image"))
        size = source.seek(0, os.SEEK_END)
        source.seek(0)
        if size == 0:
            raise ImageError(f"{name} is empty (0 bytes)")
    else:
        opened = Path(source)
        name = str(opened)
        try:
            info = opened.stat()
        except FileNotFoundError:
            raise ImageError(f"{name}: no such file") from None
        except OSError as exc:  # a name too long, a folder that may not be entered, ...
            raise ImageError(f"{name} cannot be read: {exc.strerror}") from None
        if opened.is_dir():
            raise ImageError(f"{name} is a folder, not an image file")
        if info.st_size == 0:
            raise ImageError(f"{name} is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Over MAX_IMAGE_PIXELS PIL only warns; treat it like the error it raises at twice that.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(opened) as image:
                _decode_bounded(image, name)
                return to_mnist(image, name)
    except PermissionError as exc:
        raise ImageError(f"{name} cannot be read: {exc.strerror}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(
            f"{name} is too large to decode safely (over {Image.MAX_IMAGE_PIXELS:,} pixels): "
            "scale it down first"
        ) from None
    except UnidentifiedImageError:
        raise ImageError(
            f"{name} is not an image file that can be read (PNG, JPEG, GIF, BMP, TIFF, WebP)"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{name} could not be decoded, it may be truncated or corrupt ({exc})") from None


def from_array(array: np.ndarray, name: str = "array") -> np.ndarray:
    """Bring an image given as an array to MNIST form, as :func:`load_image` does for a file.

    Takes (H, W) grayscale or (H, W, 3) RGB or (H, W, 4) RGBA, as OpenCV, imageio and PIL give
    them: whole numbers 0-255 (any integer type) or floats in [0, 1]. A 28x28 float array that
    is already in MNIST form passes through unchanged; anything else (dark ink on light paper,
    another size, an off-centre digit) is read like the same image in a file, and an array a file
    would be refused for (blank, too small) raises the same :class:`ImageError`.
    """
    pixels = np.asarray(array)
    if pixels.dtype.kind not in "uif" or pixels.dtype == np.float16:
        raise ImageError(f"{name}: pixels must be numbers, got an array of {pixels.dtype}")
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (3, 4))):
        raise ImageError(f"{name}: an image array must be (H, W), (H, W, 3) or (H, W, 4), got {pixels.shape}")
    if pixels.dtype.kind == "f":
        if not np.isfinite(pixels).all():
            raise ImageError(f"{name}: pixels must be numbers, not NaN or infinity")
        if pixels.size and (pixels.min() < 0.0 or pixels.max() > 1.0):
            raise ImageError(f"{name}: float pixels must lie in [0, 1]; give whole numbers 0-255 as integers")
        if pixels.shape == (IMAGE_SIZE, IMAGE_SIZE) and _is_mnist_form(pixels.astype(np.float32)):
            return pixels.astype(np.float32)
        pixels = np.rint(pixels * 255.0)
    elif pixels.size and (pixels.min() < 0 or pixels.max() > 255):
        raise ImageError(
            f"{name}: whole-number pixels must lie in 0-255, got {pixels.min()} to {pixels.max()}"
        )
    # Pillow reads (H, W), (H, W, 3) and (H, W, 4) uint8 as L, RGB and RGBA.
    return to_mnist(Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)), name)


def decoded_pixels(source: BinaryIO) -> int:
    """How many pixels :func:`load_image` would decode for ``source``, read from its header only.

    A measure of the work an image costs before any of it is done (JPEG counts at the reduced
    scale it decodes at); 0 for what is refused without decoding: not an image, or too large.
    The file position is left at the start.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                image.draft(image.mode, (WORK_SIDE, WORK_SIDE))
                pixels = image.width * image.height
    except Exception:  # whatever Pillow raises here, load_image reports it in its own words
        pixels = 0
    finally:
        source.seek(0)
    return pixels if pixels <= min(MAX_PIXELS, Image.MAX_IMAGE_PIXELS) else 0


def _decode_bounded(image: Image.Image, name: str) -> None:
    """Decode ``image`` in place with bounded memory, or refuse it by its pixel count.

    JPEG decodes at 1/2, 1/4 or 1/8 scale for free (``draft``), so a phone photo of any size
    costs little; other formats must decode in full, so above MAX_PIXELS they are refused
    before decoding (a 9400x9400 PNG of a few hundred KB would otherwise cost gigabytes).
    Truncation is detected here, since decoding happens now.
    """
    image.draft(image.mode, (WORK_SIDE, WORK_SIDE))  # only JPEG takes the hint
    if image.width * image.height > MAX_PIXELS:
        megapixels = image.width * image.height / 1e6
        raise ImageError(
            f"{name} is {image.width}x{image.height} pixels ({megapixels:.0f} megapixels), more than "
            f"the {MAX_PIXELS / 1e6:.0f} megapixels read here: scale it down first"
        )
    image.load()


def to_mnist(image: Image.Image, name: str = "image") -> np.ndarray:
    """Bring an opened image to MNIST form; ``name`` is used in error messages.

    Steps: EXIF orientation; any mode to grayscale, transparency composited onto the background
    the image implies; polarity detected from a ring along the border and inverted to white on
    black; background level removed; the lines of a box around the digit (digits_core.frames)
    and lines across the whole image erased; specks dropped; cropped to the ink, less the ends of
    marks across the whole image (digits_core.lines); scaled to fit 20x20 keeping the aspect
    ratio; centered by center of mass in 28x28; ink peak scaled to 1. An image already in that
    form (28x28 grayscale, black border, centered) passes through unchanged.
    """
    if min(image.size) < MIN_SIDE:
        raise ImageError(f"{name} is {image.width}x{image.height} pixels, too small to hold a digit")
    try:
        image = ImageOps.exif_transpose(image)
        if max(image.size) > WORK_SIDE:  # the digit ends up 20x20: more pixels only cost memory
            image = image.copy()
            image.thumbnail((WORK_SIDE, WORK_SIDE), Image.Resampling.BOX)
        return _to_mnist(image, name)
    except ValueError as exc:  # e.g. a mode that has no conversion to grayscale
        raise ImageError(
            f"{name} cannot be read as a digit image ({exc}): convert it to RGB or grayscale"
        ) from None


def _to_mnist(image: Image.Image, name: str) -> np.ndarray:
    if image.mode == "L" and image.size == (IMAGE_SIZE, IMAGE_SIZE):
        pixels = pixels_from_uint8(np.asarray(image))
        if _is_mnist_form(pixels):
            return pixels
    gray = _grayscale(image, name)
    if min(gray.shape) >= 3 * MIN_SIDE and noisy(gray):
        # A 3x3 median removes salt-and-pepper and sensor noise. Only where there is noise: it
        # would also erase thin lines (outlined type, an edge map), and small images have no
        # pixels to spare.
        gray = np.asarray(Image.fromarray(gray.astype(np.float32)).filter(ImageFilter.MedianFilter(3)))
    low, high = float(gray.min()), float(gray.max())
    if high - low < 1e-3:
        raise ImageError(f"no digit found in {name}: the image is blank or uniform")
    gray = (gray - low) / (high - low)
    margins, light = margins_of(gray)
    if light if light is not None else _light_paper(gray):  # dark ink on light paper
        gray = 1.0 - gray
    ink = find_ink(gray, margins)
    ink[ink < INK_THRESHOLD * ink.max()] = 0.0
    ink = remove_lines(remove_frame(ink))
    if ink.max() < 1e-3:
        raise ImageError(f"no digit found in {name}: the image is blank or uniform")
    ink = keep_digit(ink)
    return _center(_fit_box(ink[digit_box(ink)]))


def _is_mnist_form(pixels: np.ndarray) -> bool:
    """True for a dark-background 28x28 digit that already fits 20x20 and is centered."""
    if _border(pixels).max() > 0.1 or pixels.max() < 0.5:
        return False
    ys, xs = np.nonzero(pixels > 0)
    if np.ptp(ys) + 1 > BOX or np.ptp(xs) + 1 > BOX:
        return False
    cy, cx = _center_of_mass(pixels)
    return abs(cy - _CENTER) <= 1.0 and abs(cx - _CENTER) <= 1.0


def _grayscale(image: Image.Image, name: str) -> np.ndarray:
    """Return the image as float32 luminance in [0, 1], transparency composited away."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        gray = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        alpha = rgba[..., 3]
        if alpha.min() < 1.0:
            # Transparent pixels carry no colour of their own: the background is whatever
            # contrasts with the visible strokes (light paper behind dark ink, and vice versa).
            opaque = alpha > 0.5
            strokes = float(np.average(gray, weights=alpha)) if opaque.any() else 0.0
            backdrop = 1.0 if strokes < 0.5 else 0.0
            gray = alpha * gray + (1.0 - alpha) * backdrop
        return gray.astype(np.float32)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        gray = np.asarray(image, dtype=np.float32)  # scaled by its own range later
        if not np.isfinite(gray).all():
            raise ImageError(f"{name} has pixels that are not numbers (NaN or infinity)")
        return gray
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def _light_paper(gray: np.ndarray) -> bool:
    """Whether the paper is light: the shade most of the rings along the border (PAPER_BANDS) have."""
    votes = [np.median(_border(gray, share)) > 0.5 for share in PAPER_BANDS]
    return sum(votes) > len(votes) / 2


def _border(pixels: np.ndarray, share: float = 0.0) -> np.ndarray:
    """The outer ring of pixels, ``share`` of the shorter side wide (at least one pixel): in a
    photo or scan of a digit, that is the paper."""
    k = max(1, round(share * min(pixels.shape)))
    return np.concatenate(
        [pixels[:k].ravel(), pixels[-k:].ravel(), pixels[k:-k, :k].ravel(), pixels[k:-k, -k:].ravel()]
    )


def _fit_box(crop: np.ndarray) -> np.ndarray:
    """Scale the ink's bounding box to fit BOX x BOX, keeping the aspect ratio."""
    h, w = crop.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resized = Image.fromarray(crop.astype(np.float32)).resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized), 0.0, None)


def _center_of_mass(pixels: np.ndarray) -> tuple[float, float]:
    total = float(pixels.sum())
    ys, xs = np.indices(pixels.shape)
    return float((ys * pixels).sum()) / total, float((xs * pixels).sum()) / total


def _center(patch: np.ndarray) -> np.ndarray:
    """Place ``patch`` in a 28x28 field with its center of mass at the center; peak scaled to 1."""
    field = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    cy, cx = _center_of_mass(patch)
    h, w = patch.shape
    top = int(np.clip(round(_CENTER - cy), 0, IMAGE_SIZE - h))
    left = int(np.clip(round(_CENTER - cx), 0, IMAGE_SIZE - w))
    field[top : top + h, left : left + w] = patch
    return field / field.max()
