"""Inputs a careless or hostile user gives the predictor: odd names and folders, unreadable files,
models off contract, NaN and oddly shaped arrays, odd PIL modes, huge images. Each is refused
with a DigitsError (one line on the command line) and never answered wrongly."""

import contextlib
import json
import os
import shutil
import tempfile

import numpy as np
import onnx
import pytest
from PIL import Image, ImageDraw

from digits_core import contract, images
from digits_core.errors import DigitsError
from digits_runtime import Predictor, cli, sources

from helpers import cli_runner, save_eval_image

run = cli_runner(cli.COMMANDS, "digits")


@pytest.fixture(scope="module")
def digit(small_curated, tmp_path_factory):
    return save_eval_image(small_curated, tmp_path_factory.mktemp("hostile"))


def test_odd_names_and_folders_among_inputs_get_their_own_error_lines(capsys, model_path, digit, tmp_path):
    long_name = tmp_path / ("x" * 300 + ".png")
    named_like_image = tmp_path / "x.png"
    named_like_image.mkdir()
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = [digit, long_name, named_like_image, empty, digit]
    code, out, err = run(capsys, "predict", "--model", model_path, *argv)
    assert code == 1
    assert err == 'digits: error: 3 of 5 images could not be classified (see their "error" lines)\n'
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["path"] for line in lines] == [str(p) for p in argv]
    assert [line.get("error") for line in lines[1:4]] == [
        f"{long_name} cannot be read: File name too long",
        f"folder {named_like_image} holds no image files (.bmp, .gif, .jpeg, .jpg, .png, .tif, .tiff, .webp)",
        f"folder {empty} holds no image files (.bmp, .gif, .jpeg, .jpg, .png, .tif, .tiff, .webp)",
    ]
    assert lines[0] == lines[4]
    # The good file gets the answer it gets alone, failures around it notwithstanding.
    alone = Predictor(model_path).predict(digit).to_json()
    assert {key: lines[0][key] for key in alone} == alone


@contextlib.contextmanager
def as_another_user():
    """Act as user nobody (permissions bind root only in name): file modes then mean what they say."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


def test_unreadable_files_get_their_own_error_lines(capsys, model_path, digit):
    """A file without read permission, and a file in a folder that may not be entered."""
    with tempfile.TemporaryDirectory() as top:
        os.chmod(top, 0o755)
        model = shutil.copy(model_path, top)
        readable = shutil.copy(digit, os.path.join(top, "ok.png"))
        secret = shutil.copy(digit, os.path.join(top, "secret.png"))
        os.chmod(secret, 0o000)
        closed = os.path.join(top, "closed")
        os.mkdir(closed)
        inside = shutil.copy(digit, os.path.join(closed, "inside.png"))
        os.chmod(closed, 0o000)
        with as_another_user():
            code, out, err = run(capsys, "predict", "--model", model, secret, inside, readable)
        os.chmod(closed, 0o755)
    assert (code, err) == (
        1,
        'digits: error: 2 of 3 images could not be classified (see their "error" lines)\n',
    )
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line.get("error") for line in lines] == [
        f"{secret} cannot be read: Permission denied",
        f"{inside} cannot be read: Permission denied",
        None,
    ]


def test_a_subfolder_that_cannot_be_read_gets_its_own_error_line(capsys, model_path, digit):
    """Not skipped without a word: the folder's other images are answered, and the exit code is 1."""
    with tempfile.TemporaryDirectory() as top:
        os.chmod(top, 0o755)
        model = shutil.copy(model_path, top)
        scans = os.path.join(top, "scans")
        for folder in ("a", "b-closed", "c"):
            os.makedirs(os.path.join(scans, folder))
            shutil.copy(digit, os.path.join(scans, folder, "digit.png"))
        closed = os.path.join(scans, "b-closed")
        os.chmod(closed, 0o000)
        try:
            with as_another_user():
                code, out, err = run(capsys, "predict", "--model", model, scans)
                whole, _, whole_err = run(capsys, "predict", "--model", model, closed)
        finally:
            os.chmod(closed, 0o755)
    assert (code, err) == (
        1,
        'digits: error: 1 of 3 images could not be classified (see their "error" lines)\n',
    )
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["path"] for line in lines] == [
        os.path.join(scans, "a", "digit.png"),
        closed,
        os.path.join(scans, "c", "digit.png"),
    ]
    assert lines[1] == {"path": closed, "error": f"folder {closed} cannot be read: Permission denied"}
    assert lines[0]["prediction"] == lines[2]["prediction"]
    assert (whole, whole_err) == (1, f"digits: error: folder {closed} cannot be read: Permission denied\n")


def save_variant(make_model, tmp_path, labels, width=3, batch=None):
    """A contract model with ``width`` outputs per image, labelled ``labels`` in its metadata."""
    model = make_model(
        np.random.default_rng(0).random((width, 28, 28), dtype=np.float32), list(range(width)), "x"
    )
    onnx.helper.set_model_props(
        model, {p.key: p.value for p in model.metadata_props} | {contract.META_LABELS: json.dumps(labels)}
    )
    if batch is not None:
        dim = model.graph.input[0].type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_value = batch
    path = tmp_path / f"model-{width}-{len(labels)}-{batch}.onnx"
    onnx.save(model, path)
    return path


@pytest.mark.parametrize(
    ("labels", "width", "batch", "problem"),
    [
        ([0, 5, 8], 10, None, "gives 'logits' of shape [10] per image but has 3 labels [0, 5, 8]: "),
        ([0, 5, 8, 9], 3, None, "gives 'logits' of shape [3] per image but has 4 labels [0, 5, 8, 9]: "),
        ([], 3, None, "has labels [] (fewer than two digits): a digits model's labels are at least two "),
        ([0, 0, 0], 3, None, "has labels [0, 0, 0] (0 is given more than once): a digits model's labels "),
        ([0, 5, 8], 3, 1, "takes a fixed batch of 1 image(s): export it with a dynamic batch dimension"),
    ],
)
def test_models_whose_outputs_do_not_match_their_labels_are_refused(
    make_model, tmp_path, labels, width, batch, problem
):
    path = save_variant(make_model, tmp_path, labels, width, batch)
    with pytest.raises(DigitsError) as raised:
        Predictor(path)
    assert str(raised.value).startswith(f"{path} {problem}")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[0, 5, 1e400]", "has labels [0, 5, Infinity] (Infinity is not a whole digit 0-9)"),
        ("[true, false, 8]", "has labels [true, false, 8] (true is not a whole digit 0-9)"),
        ("[0.5, 5.2, 8.9]", "has labels [0.5, 5.2, 8.9] (0.5 is not a whole digit 0-9)"),
        ("[-1, 5, 80]", "has labels [-1, 5, 80] (-1 is not a whole digit 0-9)"),
        ("[0, 5, 8.0]", "has labels [0, 5, 8.0] (8.0 is not a whole digit 0-9)"),
        ('"058"', 'has labels "058" (they are not a list of digits)'),
    ],
)
def test_labels_that_are_not_distinct_whole_digits_are_refused(make_model, tmp_path, text, problem):
    model = make_model(np.zeros((3, 28, 28), np.float32), [0, 5, 8], "x")
    onnx.helper.set_model_props(
        model, {p.key: p.value for p in model.metadata_props} | {contract.META_LABELS: text}
    )
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    with pytest.raises(DigitsError) as raised:
        Predictor(path)
    assert str(raised.value) == (
        f"{path} {problem}: a digits model's labels are at least two distinct whole digits 0-9; "
        "export it again with `digits-train export`"
    )


@pytest.mark.parametrize(
    ("pixels", "message"),
    [
        (np.full((2, 28, 28), np.nan, dtype=np.float32), "pixels must be numbers, not NaN or infinity"),
        (
            np.zeros((2, 3, 28, 28), dtype=np.float32),
            "pixels must be (28, 28), (N, 28, 28) or (N, 1, 28, 28), got (2, 3, 28, 28)",
        ),
        (np.full((28, 28), "a"), "pixels must be numbers, got an array of <U1"),
    ],
)
def test_arrays_that_are_not_images_are_refused(model_path, pixels, message):
    predictor = Predictor(model_path)
    with pytest.raises(DigitsError) as raised:
        predictor.probabilities(pixels)
    assert str(raised.value) == message
    nan_image = np.zeros((28, 28), dtype=np.float32)
    nan_image[10, 10] = np.nan
    (answer,) = predictor.predict_each([nan_image])
    assert str(answer) == "array: pixels must be numbers, not NaN or infinity"


def test_pil_images_in_odd_modes_are_refused_with_digits_errors(model_path):
    predictor = Predictor(model_path)
    floats = np.zeros((64, 64), dtype=np.float32)
    floats[20:40, 30:34] = np.nan
    with pytest.raises(DigitsError, match=r"^image has pixels that are not numbers \(NaN or infinity\)$"):
        predictor.predict(Image.fromarray(floats, mode="F"))
    lab = Image.new("RGB", (64, 64), "white").convert("LAB")
    with pytest.raises(
        DigitsError, match=r"^image cannot be read as a digit image \(conversion from LAB to "
    ):
        predictor.predict(lab)


def test_images_too_large_to_decode_are_refused_before_decoding(model_path, tmp_path, monkeypatch):
    big = tmp_path / "big.png"
    Image.new("RGBA", (300, 200), "white").save(big)
    monkeypatch.setattr(images, "MAX_PIXELS", 50_000)
    with pytest.raises(DigitsError) as raised:
        images.load_image(big)
    assert str(raised.value) == (
        f"{big} is 300x200 pixels (0 megapixels), more than the 0 megapixels read here: scale it down first"
    )


def test_a_twelve_megapixel_phone_photo_is_decoded_small_and_still_read(tmp_path):
    photo = Image.new("RGB", (4000, 3000), (235, 230, 220))  # paper
    ImageDraw.Draw(photo).ellipse((1500, 700, 2500, 2300), outline=(20, 20, 30), width=120)  # a 0
    path = tmp_path / "photo.jpg"
    photo.save(path, quality=90)
    with Image.open(path) as image:
        images._decode_bounded(image, str(path))
        assert image.size == (2000, 1500)  # decoded at half scale: a quarter of the memory
    pixels = images.load_image(path)
    assert pixels.shape == (28, 28)
    assert pixels.max() == pytest.approx(1.0)
    assert pixels[14, 14] < 0.1 < 0.5 < pixels[14].max()  # a ring: ink beside the center, none in it


def test_odd_memoryviews_nul_in_a_name_and_ragged_lists_are_digits_errors(model_path, digit, tmp_path):
    """Each gets its DigitsError in its place; the sources around it are still answered."""
    predictor = Predictor(model_path)
    data = digit.read_bytes()
    expected = predictor.predict(digit)
    released = memoryview(data)
    released.release()
    spaced = memoryview(bytes(b for byte in data for b in (byte, 0)))[::2]  # the file, every other byte
    assert not spaced.c_contiguous
    pixels = np.asarray(Image.open(digit))
    sources = [
        data,
        released,
        spaced,
        str(tmp_path / "a\0b.png"),
        tmp_path / "a\0b.png",
        memoryview(pixels),  # an image array, as a buffer
        memoryview(np.zeros(10, dtype=np.int32)),
        [[1, 2], [3]],
        _BytesPath(os.fsencode(digit)),
        _BytesPath(5),
        data,
    ]
    results = predictor.predict_each(sources)
    assert [str(r) if isinstance(r, DigitsError) else r for r in results] == [
        expected,
        "cannot read an image from this memoryview: operation forbidden on released memoryview object",
        expected,
        f"{str(tmp_path / 'a')!r}"[:-1] + "\\x00b.png' holds a NUL character: no file has such a name",
        f"{str(tmp_path / 'a')!r}"[:-1] + "\\x00b.png' holds a NUL character: no file has such a name",
        predictor.predict(pixels),
        "a memoryview of 10 items of 4 bytes is neither an image file's bytes (one dimension of bytes) "
        "nor an image array (two or three dimensions)",
        "cannot read an image from [[1, 2], [3]] (of type list): give a file path, image bytes, "
        "a binary file object, a PIL image or an image array",
        expected,
        "cannot read an image from <a path of 5>: "
        "expected _BytesPath.__fspath__() to return str or bytes, not int",
        expected,
    ]
    for method in (predictor.classify, predictor.probabilities):
        with pytest.raises(
            DigitsError, match=r"^pixels must be an array of numbers: setting an array element"
        ):
            method([[0.0] * 28] * 27 + [[0.0]])


def test_pipes_and_devices_are_read_to_their_end(model_path, digit, tmp_path, monkeypatch):
    """A named pipe's or a device's size is 0 whatever it holds: it is read, not taken as empty."""
    predictor = Predictor(model_path)
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    with pytest.raises(DigitsError, match=f"^{fifo} is empty \\(0 bytes\\)$"):
        predictor.predict(fifo)  # nobody writes to it: empty at once, never a wait
    read, write = os.pipe()
    os.write(write, digit.read_bytes())  # a PNG of a few hundred bytes fits in the pipe's buffer
    os.close(write)
    try:
        assert predictor.predict(f"/dev/fd/{read}") == predictor.predict(digit)
    finally:
        os.close(read)
    monkeypatch.setattr(sources, "MAX_STREAM_BYTES", 1 << 20)  # a device that never ends: read so far
    with pytest.raises(DigitsError, match=r"^/dev/zero gives more than 1,048,576 bytes: not an image file"):
        predictor.predict("/dev/zero")


class _BytesPath:
    """An os.PathLike whose path is whatever it was given (bytes, as some file systems give)."""

    def __init__(self, path):
        self.path = path

    def __fspath__(self):
        return self.path

    def __repr__(self) -> str:
        return f"<a path of {self.path!r}>"
