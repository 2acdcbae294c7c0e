"""The Predictor on a real ONNX model with real onnxruntime, and its refusal of models off contract."""

import ast
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from digits_core import contract
from digits_core.errors import DigitsError
from digits_core.images import pixels_from_uint8
from digits_data import dataset
from digits_runtime import Prediction, Predictor
from digits_runtime.predictor import BATCH_SIZE, MAX_THREADS

from helpers import save_eval_image


@pytest.fixture(scope="module")
def predictor(model_path):
    return Predictor(model_path, threads=2)


def test_loads_labels_and_metadata(predictor, small_curated):
    assert predictor.labels == (0, 5, 8)
    assert predictor.metadata[contract.META_FINGERPRINT] == dataset.fingerprint(small_curated)


def test_array_inputs_of_every_shape_and_dtype_agree(predictor, small_curated):
    images = dataset.load_split(small_curated, "eval").images
    reference = predictor.probabilities(images)
    assert reference.shape == (len(images), 3)
    np.testing.assert_allclose(reference.sum(1), 1.0, atol=1e-5)
    pixels = pixels_from_uint8(images)
    np.testing.assert_allclose(predictor.probabilities(pixels), reference, atol=1e-6)
    np.testing.assert_allclose(predictor.probabilities(pixels[:, None]), reference, atol=1e-6)
    np.testing.assert_allclose(predictor.probabilities(pixels[0]), reference[:1], atol=1e-6)
    many = np.concatenate([pixels] * 5)  # more than one onnxruntime batch
    np.testing.assert_allclose(predictor.probabilities(many), np.concatenate([reference] * 5), atol=1e-6)


def test_the_class_mean_model_really_classifies(predictor, small_curated):
    split = dataset.load_split(small_curated, "eval")
    predictions = predictor.predict_many(list(pixels_from_uint8(split.images)))
    accuracy = np.mean([p.prediction == t for p, t in zip(predictions, split.labels, strict=True)])
    assert accuracy > 0.8


def test_predict_from_path_pil_and_array_agree(predictor, small_curated, tmp_path):
    image = dataset.load_split(small_curated, "eval").images[0]
    path = tmp_path / "digit.png"
    Image.fromarray(image).save(path)
    from_path = predictor.predict(path)
    assert isinstance(from_path, Prediction)
    assert from_path == predictor.predict(Image.open(path))
    assert from_path == predictor.predict(pixels_from_uint8(image))
    assert set(from_path.probs) == {0, 5, 8}
    assert from_path.prediction == max(from_path.probs, key=from_path.probs.get)
    assert list(from_path.to_json()) == ["probs", "prediction", "accepted", "score"]
    assert from_path.accepted is True
    assert list(from_path.to_json()["probs"]) == ["0", "5", "8"]


def test_bad_pixels_are_refused(predictor):
    with pytest.raises(
        DigitsError, match=r"pixels must be \(28, 28\), \(N, 28, 28\) or \(N, 1, 28, 28\), got \(3, 32, 32\)"
    ):
        predictor.probabilities(np.zeros((3, 32, 32), np.float32))
    with pytest.raises(DigitsError, match=r"float pixels must lie in \[0, 1\]"):
        predictor.probabilities(np.full((28, 28), 255.0, np.float32))


def test_missing_and_non_onnx_models_are_refused(tmp_path):
    with pytest.raises(
        DigitsError, match=f"^model {tmp_path / 'none.onnx'} does not exist: run `make train`"
    ):
        Predictor(tmp_path / "none.onnx")
    with pytest.raises(DigitsError, match=f"^model {tmp_path} is a folder: give the .onnx file, e.g. "):
        Predictor(tmp_path)
    text = tmp_path / "model.onnx"
    text.write_text("not a model")
    with pytest.raises(DigitsError, match=f"^{text} is not a usable ONNX model: "):
        Predictor(text)


def test_models_off_contract_are_refused(tmp_path, make_model):
    labels = [0, 5, 8]
    wrong_shape = tmp_path / "wide.onnx"
    onnx.save(make_model(np.zeros((3, 32, 32), np.float32), labels, "x", side=32), wrong_shape)
    with pytest.raises(
        DigitsError, match=r"expects input shape \['batch', 1, 32, 32\], not \(N, 1, 28, 28\)"
    ):
        Predictor(wrong_shape)
    unlabelled = make_model(np.zeros((3, 28, 28), np.float32), labels, "x")
    del unlabelled.metadata_props[:]
    path = tmp_path / "unlabelled.onnx"
    onnx.save(unlabelled, path)
    with pytest.raises(DigitsError, match="has no 'labels' metadata: not a digits model"):
        Predictor(path)


@pytest.mark.parametrize("threads", [0, -1, MAX_THREADS + 1, 1.5, True])
def test_threads_must_be_a_bounded_whole_number(model_path, threads):
    with pytest.raises(DigitsError, match=f"threads must be a whole number from 1 to {MAX_THREADS}, got "):
        Predictor(model_path, threads=threads)


@pytest.mark.slow
def test_runtime_never_imports_torch(model_path, small_curated, tmp_path):
    image = tmp_path / "d.png"
    Image.fromarray(dataset.load_split(small_curated, "eval").images[0]).save(image)
    code = (
        "import sys, json; from digits_runtime import Predictor; "
        f"p = Predictor({str(model_path)!r}); print(json.dumps(p.predict({str(image)!r}).to_json())); "
        "assert not any(m == 'torch' or m.startswith(('torch.', 'lightning')) for m in sys.modules), "
        "'torch was imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) == {"probs", "prediction", "accepted", "score"}


def test_predict_each_answers_every_source_in_order(predictor, small_curated, tmp_path):
    pixels = pixels_from_uint8(dataset.load_split(small_curated, "eval").images)
    good = tmp_path / "digit.png"
    Image.fromarray(np.round(pixels[0] * 255).astype(np.uint8)).save(good)
    missing, text = tmp_path / "missing.png", tmp_path / "notes.png"
    text.write_text("not an image")
    many = [*pixels] * 4  # more sources than one onnxruntime batch, failures in both batches
    sources = [good, missing, *many, text, np.zeros((3, 3), np.float32), pixels[1] * 2]
    results = predictor.predict_each(sources)
    assert len(results) == len(sources) > BATCH_SIZE
    failures = {i: str(r) for i, r in enumerate(results) if isinstance(r, DigitsError)}
    n = len(sources)
    assert failures == {
        1: f"{missing}: no such file",
        n - 3: f"{text} is not an image file that can be read (PNG, JPEG, GIF, BMP, TIFF, WebP)",
        n - 2: "array is 3x3 pixels, too small to hold a digit",
        n - 1: "array: float pixels must lie in [0, 1]; give whole numbers 0-255 as integers",
    }
    expected = predictor.predict_many([pixels[0], *many])
    predicted = [r for r in results if isinstance(r, Prediction)]
    assert predicted == expected
    assert predictor.predict_each([]) == []


def test_predict_many_raises_the_first_failure(predictor, tmp_path):
    with pytest.raises(DigitsError, match=f"^{tmp_path / 'gone.png'}: no such file$"):
        predictor.predict_many([tmp_path / "gone.png", np.zeros((28, 28), np.uint8)])
    with pytest.raises(DigitsError, match="^no digit found in array: the image is blank or uniform$"):
        predictor.predict_many([np.zeros((28, 28), np.uint8), tmp_path / "gone.png"])


@pytest.mark.slow
def test_core_modules_load_no_command_line_plotting_or_torch():
    code = (
        "import sys, digits_runtime, digits_data.curate; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'fire', 'matplotlib', 'torch', 'lightning'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (done.returncode, done.stdout, done.stderr) == (0, "[]\n", "")


def test_image_bytes_and_binary_file_objects_are_sources(predictor, small_curated, tmp_path):
    path = save_eval_image(small_curated, tmp_path)
    data = path.read_bytes()
    expected = predictor.predict(path)
    read, write = os.pipe()
    os.write(write, data)  # a PNG of a few hundred bytes fits in the pipe's buffer
    os.close(write)
    with open(path, "rb") as opened, os.fdopen(read, "rb") as pipe:
        assert not pipe.seekable()
        sources = [data, bytearray(data), memoryview(data), io.BytesIO(data), opened, pipe]
        assert predictor.predict_each(sources) == [expected] * len(sources)
    assert predictor.predict(data) == expected


def test_sources_of_no_known_type_get_a_digits_error_in_their_place(predictor, small_curated, tmp_path):
    path = save_eval_image(small_curated, tmp_path)
    closed = open(path, "rb")  # noqa: SIM115 - closed at once, to be passed closed
    closed.close()
    with open(path, encoding="latin-1") as text:
        sources = [None, path, 5, b"", io.StringIO("0"), text, closed, [0, 5]]
        results = predictor.predict_each(sources)
    binary = "open image files in binary mode, open(path, 'rb')"
    expected_type = "give a file path, image bytes, a binary file object, a PIL image or an image array"
    assert [str(r) if isinstance(r, DigitsError) else r for r in results] == [
        f"cannot read an image from None (of type NoneType): {expected_type}",
        predictor.predict(path),
        f"cannot read an image from 5 (of type int): {expected_type}",
        "image is empty (0 bytes)",
        f"cannot read an image from a text stream: {binary}",
        f"cannot read an image from a text stream ({path}): {binary}",
        f"{path} cannot be read: read of closed file",
        f"cannot read an image from [0, 5] (of type list): {expected_type}",
    ]
    for source in (None, 5):
        with pytest.raises(DigitsError, match=r"^cannot read an image from .* \(of type "):
            predictor.predict(source)


def test_the_package_exports_its_error_and_its_version():
    from importlib.metadata import version

    from digits_runtime import DigitsError as exported
    from digits_runtime import __version__

    assert exported is DigitsError
    declared = (Path(__file__).parents[2] / "VERSION").read_text().strip()
    assert __version__ == version("digits-runtime") == declared  # one source: the VERSION file


def test_image_arrays_as_opencv_and_imageio_give_them(predictor, small_curated, tmp_path):
    """(H, W), (H, W, 3) and (H, W, 4) arrays of uint8 or any whole numbers 0-255 are read as the
    same picture in a file is: dark ink on light paper, of any size."""
    digit = dataset.load_split(small_curated, "eval").images[5]
    page = np.full((90, 70), 230, dtype=np.uint8)  # a scan: light paper, dark ink, off centre
    page[20:76, 8:64] = 230 - np.asarray(Image.fromarray(digit).resize((56, 56))) * 0.8
    Image.fromarray(page).save(tmp_path / "page.png")
    expected = predictor.predict(tmp_path / "page.png")
    rgb = np.repeat(page[..., None], 3, axis=2)
    rgba = np.dstack([rgb, np.full_like(page, 255)])
    arrays = [page, rgb, rgba, page.astype(np.int64), rgb.astype(np.int32), page.astype(np.uint16)]
    for answer in predictor.predict_each(arrays):
        assert answer.prediction == expected.prediction
        assert answer.accepted == expected.accepted
        assert answer.probs == pytest.approx(expected.probs, abs=1e-4)
        assert answer.score == pytest.approx(expected.score, abs=1e-4)


def test_every_prediction_carries_its_refusal_score(refusing_model, small_curated):
    path, rule = refusing_model
    predictor = Predictor(path)
    pixels = pixels_from_uint8(dataset.load_split(small_curated, "eval").images)
    classified = predictor.classify(pixels)
    predictions = predictor.predict_many(list(pixels))
    assert [p.score for p in predictions] == classified.scores.tolist()
    assert [p.accepted for p in predictions] == [s >= rule.threshold for s in classified.scores]
    assert len(set(classified.accepted.tolist())) == 2  # both kinds of answer were checked
    assert all(isinstance(p.score, float) for p in predictions)


def test_a_predictor_made_from_bytes(model_path, small_curated, tmp_path):
    path = save_eval_image(small_curated, tmp_path)
    from_path, from_bytes = Predictor(model_path), Predictor(model_path.read_bytes())
    assert from_bytes.path is None
    assert (from_bytes.labels, from_bytes.metadata) == (from_path.labels, from_path.metadata)
    assert from_bytes.predict(path) == from_path.predict(path)
    assert Predictor(bytearray(model_path.read_bytes())).predict(path) == from_path.predict(path)
    with pytest.raises(DigitsError, match=r"^the model given as 9 bytes is not a usable ONNX model: "):
        Predictor(b"not onnx!")
    for wrong in (None, 5, [model_path]):
        with pytest.raises(DigitsError, match=r"^model must be the path of an ONNX file or its bytes, got "):
            Predictor(wrong)


def test_a_predictor_pickles_as_its_path_or_its_bytes(model_path, small_curated, tmp_path, monkeypatch):
    import pickle

    image = save_eval_image(small_curated, tmp_path)
    expected = Predictor(model_path).predict(image)
    copy = tmp_path / "model.onnx"
    copy.write_bytes(model_path.read_bytes())
    monkeypatch.chdir(tmp_path)
    by_path = pickle.dumps(Predictor("model.onnx", threads=1))  # relative: pickled as absolute
    by_bytes = pickle.dumps(Predictor(copy.read_bytes()))
    assert len(by_path) < 1000 < len(by_bytes)
    monkeypatch.chdir(small_curated)
    again = pickle.loads(by_path)
    assert (again.path, again.predict(image)) == (copy, expected)
    assert again.session.get_session_options().intra_op_num_threads == 1
    copy.unlink()
    assert pickle.loads(by_bytes).predict(image) == expected  # needs no file
    with pytest.raises(DigitsError, match=f"^model {copy} does not exist"):
        pickle.loads(by_path)


@pytest.mark.slow  # starts worker processes
def test_a_predictor_goes_to_worker_processes(model_path, small_curated, tmp_path):
    import concurrent.futures as cf
    import multiprocessing

    images = [save_eval_image(small_curated, tmp_path, i) for i in range(4)]
    predictor = Predictor(model_path.read_bytes(), threads=1)
    expected = [predictor.predict(image) for image in images]
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing inherited
    with cf.ProcessPoolExecutor(2, mp_context=context) as pool:
        assert list(pool.map(predictor.predict, images)) == expected
    with context.Pool(1) as pool:
        assert pool.map(Predictor(model_path).predict, images) == expected


@pytest.mark.slow
def test_one_predictor_answers_many_threads_at_once(predictor, small_curated, tmp_path):
    import concurrent.futures as cf

    split = dataset.load_split(small_curated, "eval")
    sources = _pngs(split.images[:40])
    expected = predictor.predict_each(sources)
    with cf.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(predictor.predict_each, [sources] * 16))
    assert answers == [expected] * 16


def _pngs(images: np.ndarray) -> list[bytes]:
    out = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


DASK_EXAMPLE = """\
import dask.bag as db

from digits_runtime.batch import score

if __name__ == "__main__":  # dask.bag's worker processes import this script again
    paths = db.from_sequence(["scans/a.png", "scans/b.png", "scans/c.jpg"], partition_size=1024)
    rows = paths.map_partitions(score, model="artifacts/model.onnx").compute()
    print(rows)
"""


@pytest.mark.slow  # dask.bag starts worker processes
def test_the_dask_bag_example_runs_as_a_script(model_path, small_curated, tmp_path):
    (tmp_path / "scans").mkdir()
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "model.onnx").write_bytes(model_path.read_bytes())
    for name, index in (("a.png", 0), ("b.png", 1)):
        save_eval_image(small_curated, tmp_path / "scans", index).rename(tmp_path / "scans" / name)
    photo = Image.open(tmp_path / "scans" / "a.png").convert("RGB").resize((280, 280))
    photo.save(tmp_path / "scans" / "c.jpg", quality=95)
    (tmp_path / "example.py").write_text(DASK_EXAMPLE)
    done = subprocess.run(
        [sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stderr) == (0, "")
    rows = ast.literal_eval(done.stdout)  # the printed list of dicts
    predictor = Predictor(model_path)
    for row in rows:
        expected = predictor.predict(tmp_path / row["path"])
        assert (row["prediction"], row["accepted"], row["score"], row["error"]) == (
            expected.prediction,
            expected.accepted,
            expected.score,
            None,
        )
    assert [row["path"] for row in rows] == ["scans/a.png", "scans/b.png", "scans/c.jpg"]


@pytest.mark.slow  # dask.bag starts worker processes
def test_the_dask_bag_example_without_its_guard_says_why_in_one_line(model_path, small_curated, tmp_path):
    (tmp_path / "scans").mkdir()
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "model.onnx").write_bytes(model_path.read_bytes())
    for name in ("a.png", "b.png", "c.jpg"):
        save_eval_image(small_curated, tmp_path / "scans").rename(tmp_path / "scans" / name)
    unguarded = DASK_EXAMPLE.replace('if __name__ == "__main__":', "if True:")
    (tmp_path / "example.py").write_text(unguarded)
    done = subprocess.run(
        [sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    line = (
        f"error: {tmp_path / 'example.py'} starts worker processes when it is imported, and each worker "
        'imports it: put the code that runs the work under `if __name__ == "__main__":`'
    )
    assert done.stderr.startswith(line + "\n")
    assert "bootstrapping phase" not in done.stderr  # multiprocessing's page per worker is gone
    # What follows is the parent's own BrokenProcessPool, raised by dask in the script itself.
    assert done.stderr.splitlines()[-1].startswith("concurrent.futures.process.BrokenProcessPool: ")
