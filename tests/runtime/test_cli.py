"""The `digits` command line: output contracts, exit codes and one-line errors, in and out of process."""

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from digits_data import dataset
from digits_runtime import cli

from helpers import cli_runner, tampered_copy

EXE = [sys.executable, "-m", "digits_runtime"]


run = cli_runner(cli.COMMANDS, "digits")


@pytest.fixture(scope="module")
def images(small_curated, tmp_path_factory):
    """Five eval images as PNG files in a folder, in MNIST form."""
    folder = tmp_path_factory.mktemp("images")
    split = dataset.load_split(small_curated, "eval")
    for i in range(5):
        Image.fromarray(split.images[i]).save(folder / f"img{i}.png")
    (folder / "notes.txt").write_text("ignored: not an image suffix")
    return folder


def test_predict_one_image_prints_exactly_the_contract(capsys, model_path, images):
    code, out, err = run(capsys, "predict", "--model", model_path, images / "img0.png")
    assert (code, err) == (0, "")
    assert out.count("\n") == 1
    result = json.loads(out)
    assert list(result) == ["probs", "prediction", "accepted", "score"]
    assert result["accepted"] is True  # a model without a refusal rule accepts every image
    assert result["score"] == pytest.approx(max(result["probs"].values()), abs=1e-6)  # its max probability
    assert list(result["probs"]) == ["0", "5", "8"]
    assert sum(result["probs"].values()) == pytest.approx(1.0, abs=1e-5)
    assert result["prediction"] == int(max(result["probs"], key=result["probs"].get))


def test_predict_folder_gives_one_line_per_image_in_sorted_order(capsys, model_path, images):
    code, out, _ = run(capsys, "predict", "--model", model_path, images)
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["path"] for line in lines] == [str(images / f"img{i}.png") for i in range(5)]
    assert all(set(line) == {"path", "probs", "prediction", "accepted", "score"} for line in lines)
    single = json.loads(run(capsys, "predict", "--model", model_path, images / "img3.png")[1])
    assert {k: lines[3][k] for k in single} == single


def test_bad_files_get_error_lines_and_the_rest_still_run(capsys, model_path, images, tmp_path):
    empty, fake, blank, tiny = (tmp_path / n for n in ("empty.png", "fake.png", "blank.png", "tiny.png"))
    empty.write_bytes(b"")
    fake.write_text("hello")
    Image.new("L", (64, 64), 255).save(blank)
    Image.new("L", (1, 1), 0).save(tiny)
    gif = tmp_path / "anim.gif"
    first = Image.open(images / "img1.png").convert("L")
    first.save(gif, save_all=True, append_images=[Image.new("L", (28, 28), 0)], duration=50)
    truncated = tmp_path / "cut.jpg"
    buffer = io.BytesIO()
    first.resize((200, 200)).save(buffer, format="JPEG")
    truncated.write_bytes(buffer.getvalue()[:400])
    argv = [
        images / "img0.png",
        tmp_path / "missing.png",
        empty,
        fake,
        blank,
        tiny,
        gif,
        truncated,
        images / "img1.png",
    ]
    code, out, err = run(capsys, "predict", "--model", model_path, *argv)
    assert code == 1
    assert err.strip() == 'digits: error: 6 of 9 images could not be classified (see their "error" lines)'
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["path"] for line in lines] == [str(p) for p in argv]
    errors = {line["path"]: line["error"] for line in lines if "error" in line}
    assert errors == {
        str(tmp_path / "missing.png"): f"{tmp_path / 'missing.png'}: no such file",
        str(empty): f"{empty} is empty (0 bytes)",
        str(fake): f"{fake} is not an image file that can be read (PNG, JPEG, GIF, BMP, TIFF, WebP)",
        str(blank): f"no digit found in {blank}: the image is blank or uniform",
        str(tiny): f"{tiny} is 1x1 pixels, too small to hold a digit",
        str(truncated): errors[str(truncated)],
    }
    assert errors[str(truncated)].startswith(
        f"{truncated} could not be decoded, it may be truncated or corrupt"
    )
    # The animated GIF is classified from its first frame (its second frame is blank).
    from digits_runtime import Predictor

    with Image.open(gif) as frames:
        assert frames.n_frames == 2
        assert lines[6] == {"path": str(gif), **Predictor(model_path).predict(frames).to_json()}


def test_single_bad_image_is_one_line_on_stderr(capsys, model_path, tmp_path, monkeypatch):
    big = tmp_path / "big.png"
    Image.new("L", (300, 300), 0).save(big)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    code, out, err = run(capsys, "predict", "--model", model_path, big)
    assert (code, out) == (1, "")
    assert (
        err
        == f"digits: error: {big} is too large to decode safely (over 10,000 pixels): scale it down first\n"
    )


def test_folder_without_images_and_no_arguments(capsys, model_path, tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    code, _, err = run(capsys, "predict", "--model", model_path, tmp_path)
    assert code == 1
    assert err.startswith(f"digits: error: folder {tmp_path} holds no image files (.bmp, .gif, ")
    code, _, err = run(capsys, "predict", "--model", model_path)
    assert code == 2
    assert err.startswith("digits: error: give at least one image file or folder")


def test_bad_models_are_refused(capsys, images, tmp_path, make_model):
    import onnx

    text = tmp_path / "model.onnx"
    text.write_text("not onnx")
    code, _, err = run(capsys, "predict", "--model", text, images / "img0.png")
    assert code == 1
    assert err.startswith(f"digits: error: {text} is not a usable ONNX model: ")
    assert err.count("\n") == 1
    wide = tmp_path / "wide.onnx"
    onnx.save(make_model(np.zeros((3, 32, 32), np.float32), [0, 5, 8], "x", side=32), wide)
    code, _, err = run(capsys, "predict", "--model", wide, images / "img0.png")
    assert code == 1
    assert "expects input shape ['batch', 1, 32, 32], not (N, 1, 28, 28): not a digits model" in err


def test_evaluate_prints_the_report_and_writes_the_json_contract(capsys, model_path, small_curated, tmp_path):
    out_json = tmp_path / "eval.json"
    code, out, err = run(
        capsys, "evaluate", "--model", model_path, "--curated-dir", small_curated, "--json", out_json
    )
    assert (code, err) == (0, "")
    result = json.loads(out_json.read_text())
    assert set(result) == {
        "split",
        "n",
        "accuracy",
        "macro_f1",
        "per_class",
        "confusion_matrix",
        "labels",
        "model",
        "fingerprint",
        "predictions",
        "refusal",
    }
    split = dataset.load_split(small_curated, "eval")
    assert (result["split"], result["n"], result["labels"]) == ("eval", len(split), [0, 5, 8])
    matrix = np.array(result["confusion_matrix"])
    assert matrix.sum() == len(split)
    assert [result["per_class"][d]["support"] for d in ("0", "5", "8")] == matrix.sum(1).tolist()
    predicted = np.array([p["prediction"] for p in result["predictions"]])
    assert result["accuracy"] == pytest.approx(np.mean(predicted == split.labels))
    assert [p["index"] for p in result["predictions"]] == split.indices.tolist()
    recall5 = matrix[1, 1] / matrix[1].sum()
    assert result["per_class"]["5"]["recall"] == pytest.approx(recall5)
    f1s = [result["per_class"][d]["f1"] for d in ("0", "5", "8")]
    assert result["macro_f1"] == pytest.approx(np.mean(f1s))
    rows = {
        line.split()[0] + line.split()[1]: line.split()[2:]
        for line in out.splitlines()
        if line.startswith(" " * 6)
    }
    assert rows["digit5"][:2] == [f"{result['per_class']['5']['precision']:.4f}", f"{recall5:.4f}"]
    assert rows["true8"] == [str(v) for v in matrix[2]]
    assert f"accuracy                        {result['accuracy']:.4f}" in out


def test_evaluate_test_split_is_the_mnist_test_digits(capsys, model_path, small_curated, tmp_path):
    code, out, _ = run(
        capsys, "evaluate", "--model", model_path, "--curated-dir", small_curated, "--split", "test"
    )
    assert code == 0
    assert f"on the test split of {small_curated} (2846 images)" in out


def test_evaluate_refuses_bad_input(capsys, model_path, small_curated, tmp_path):
    code, _, err = run(
        capsys, "evaluate", "--model", model_path, "--curated-dir", small_curated, "--split", "holdout"
    )
    assert (code, err) == (
        2,
        "digits: error: --split must be one of train, val, eval, test, other, handwriting, got 'holdout'\n",
    )
    tampered = tampered_copy(small_curated, tmp_path / "curated", "eval.npz")
    code, _, err = run(
        capsys, "evaluate", "--model", model_path, "--curated-dir", tampered, "--json", tmp_path / "x.json"
    )
    assert code == 1
    assert err == (
        f"digits: error: {tampered / 'eval.npz'} does not match the sha256 in its manifest: "
        "run `make curate` (or `digits-data curate`) to create it\n"
    )
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_evaluate_warns_when_the_model_was_trained_on_other_data(capsys, model_path, mnist_dir, tmp_path):
    from digits_data import curate

    other = tmp_path / "other"
    curate.curate(mnist_dir, other, class_counts={0: 30, 5: 30, 8: 30}, seed=5)
    code, _, err = run(capsys, "evaluate", "--model", model_path, "--curated-dir", other)
    assert code == 0
    assert err.startswith(f"digits: warning: {model_path} was trained on other curated data than {other}")


@pytest.mark.slow
def test_as_processes(model_path, images, small_curated, tmp_path):
    done = subprocess.run(
        [*EXE, "predict", "--model", str(model_path), str(images / "img2.png")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) == {"probs", "prediction", "accepted", "score"}
    done = subprocess.run(
        [*EXE, "evaluate", "--model", str(model_path), "--curated-dir", str(small_curated)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0
    assert "confusion matrix (rows: true digit, columns: predicted digit)" in done.stdout
    done = subprocess.run(
        [*EXE, "predict", "--model", str(tmp_path / "none.onnx"), str(images)], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert (
        done.stderr
        == f"digits: error: model {tmp_path / 'none.onnx'} does not exist: run `make train` to create it\n"
    )
    done = subprocess.run([*EXE, "predict", "--bogus", "1"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    done = subprocess.run(
        [*EXE, "predict", "--help"], capture_output=True, text=True, env={"PAGER": "cat", "PATH": ""}
    )
    assert done.returncode == 0
    assert "Classify image files" in done.stdout + done.stderr
    assert "--model=MODEL" in done.stdout + done.stderr
