"""Models that answer with NaN or infinity, or whose labels are not the data's: refused when loaded,
never served, and no answer ever carries NaN."""

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from digits_core import contract
from digits_core.errors import DigitsError
from digits_core.images import pixels_from_uint8
from digits_data import dataset
from digits_runtime import Prediction, Predictor, cli

from helpers import cli_runner, save_eval_image

run = cli_runner(cli.COMMANDS, "digits")
BROKEN = "the model is broken (weights that are NaN or overflow); train and export it again"


def with_initializer(model: onnx.ModelProto, name: str, change) -> onnx.ModelProto:
    """``model`` with its initializer ``name`` replaced by ``change(array)``."""
    for i, tensor in enumerate(model.graph.initializer):
        if tensor.name == name:
            array = change(numpy_helper.to_array(tensor).copy())
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(array.astype(np.float32), name))
            return model
    raise KeyError(name)


def nan_bias(array: np.ndarray) -> np.ndarray:
    array[1] = np.nan
    return array


@pytest.fixture(scope="module")
def broken(make_model, class_means, small_curated, tmp_path_factory):
    """The class-mean model twice broken: a bias set to NaN, and weights scaled to overflow.

    With the weights scaled, a blank image is still answered with numbers (zero pixels times huge
    weights are zero): only ink shows the overflow.
    """
    folder = tmp_path_factory.mktemp("broken")
    labels, fingerprint = list(contract.CLASSES), dataset.fingerprint(small_curated)
    paths = {}
    for name, change in (("nan-bias", ("b", nan_bias)), ("overflow", ("W", lambda w: w * np.float32(1e38)))):
        model = with_initializer(make_model(class_means, labels, fingerprint), *change)
        paths[name] = folder / f"{name}.onnx"
        onnx.save(model, paths[name])
    return paths


@pytest.mark.parametrize(("name", "output"), [("nan-bias", "logits"), ("overflow", "logits")])
def test_a_model_answering_known_images_with_nan_is_refused_when_loaded(broken, name, output):
    path = broken[name]
    with pytest.raises(DigitsError) as refused:
        Predictor(path)
    assert str(refused.value) == (
        f"{path} gives NaN or infinity as '{output}' for a blank image or a drawn digit: {BROKEN}"
    )


def test_weights_scaled_to_overflow_are_finite_on_blank_images(broken):
    """Why the load-time check needs ink: the blank images alone would let this model through."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(broken["overflow"]), providers=["CPUExecutionProvider"])
    blank = np.zeros((2, 1, 28, 28), np.float32)
    logits, probabilities = session.run(None, {contract.INPUT_NAME: blank})
    assert np.isfinite(logits).all()
    assert np.isfinite(probabilities).all()


def test_predict_and_evaluate_exit_1_before_any_work(capsys, broken, small_curated, tmp_path):
    image = save_eval_image(small_curated, tmp_path)
    for path in broken.values():
        message = (
            f"digits: error: {path} gives NaN or infinity as 'logits' for a blank image or a drawn digit"
        )
        code, out, err = run(capsys, "predict", "--model", path, image)
        assert (code, out) == (1, "")
        assert err == f"{message}: {BROKEN}\n"
        report = tmp_path / "eval.json"
        code, out, err = run(
            capsys, "evaluate", "--model", path, "--curated-dir", small_curated, "--json", report
        )
        assert (code, out, err) == (1, "", f"{message}: {BROKEN}\n")
        assert not report.exists()


@pytest.fixture(scope="module")
def ink_model(make_model, class_means, small_curated, tmp_path_factory):
    """A model that passes the load-time check but overflows on images with much ink.

    Every weight is 1.5e36, so a logit is about 1.5e36 times the image's ink: the drawn 0 of the
    check (74 pixels' worth) and a digit (MNIST's have some 100) stay finite, a filled square
    (387) does not.
    """
    model = make_model(class_means, list(contract.CLASSES), dataset.fingerprint(small_curated))
    path = tmp_path_factory.mktemp("ink") / "model.onnx"
    onnx.save(with_initializer(model, "W", lambda w: np.full_like(w, 1.5e36)), path)
    return path


@pytest.fixture(scope="module")
def square(tmp_path_factory):
    """A black square on white paper: the preprocessing makes it a 20x20 block of ink."""
    from PIL import Image

    path = tmp_path_factory.mktemp("square") / "square.png"
    image = Image.new("L", (64, 64), 255)
    image.paste(0, (10, 10, 50, 50))
    image.save(path)
    return path


def test_an_image_answered_with_nan_gets_an_error_in_its_place(ink_model, small_curated, square):
    predictor = Predictor(ink_model)  # a blank image and a drawn digit are answered with numbers
    good = dataset.load_split(small_curated, "eval").images[0]
    assert good.sum() / 255 < 200  # so that it stays finite
    results = predictor.predict_each([good, square, good])
    assert isinstance(results[0], Prediction)
    assert results[0] == results[2]
    assert isinstance(results[1], DigitsError)
    assert str(results[1]) == (
        f"{ink_model} gives NaN or infinity for this image: the model is broken on such input; "
        "train and export it again"
    )
    block = np.zeros((28, 28), np.float32)
    block[4:24, 4:24] = 1.0
    with pytest.raises(DigitsError, match=r"gives NaN or infinity for 1 of 2 images: the model is broken"):
        predictor.classify(np.stack([pixels_from_uint8(good), block]))
    with pytest.raises(DigitsError, match=r"gives NaN or infinity for 1 of 1 images: the model is broken"):
        predictor.probabilities(block)


def test_predict_prints_an_error_line_not_nan(capsys, ink_model, small_curated, square, tmp_path):
    good = save_eval_image(small_curated, tmp_path)
    code, out, err = run(capsys, "predict", "--model", ink_model, good, square)
    lines = out.splitlines()
    for line in lines:  # strict JSON: NaN and Infinity are not JSON
        json.loads(line, parse_constant=lambda token: pytest.fail(f"{token} in the output"))
    assert code == 1
    assert err == 'digits: error: 1 of 2 images could not be classified (see their "error" lines)\n'
    assert json.loads(lines[0])["path"] == str(good)
    assert json.loads(lines[1]) == {
        "path": str(square),
        "error": f"{ink_model} gives NaN or infinity for this image: the model is broken on such "
        "input; train and export it again",
    }
    code, out, err = run(capsys, "predict", "--model", ink_model, square)
    assert (code, out) == (1, "")
    assert err == (
        f"digits: error: {ink_model} gives NaN or infinity for this image: the model is broken on such "
        "input; train and export it again\n"
    )
