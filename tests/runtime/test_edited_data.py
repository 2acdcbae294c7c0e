"""`digits evaluate` on curated data edited by hand (checksums re-recorded), or on data that is not
the model's: one line, exit 1, never a traceback."""

import json
import shutil

import onnx
import pytest

from digits_data import dataset, handwriting
from digits_runtime import cli

from helpers import cli_runner, edited_handwriting

run = cli_runner(cli.COMMANDS, "digits")


def edited_split(curated, destination, split, change):
    """Copy ``curated`` with split ``split`` rewritten by ``change(split) -> Split`` and its sha256
    re-recorded in the manifest, as someone covering their tracks would."""
    shutil.copytree(curated, destination)
    data = dataset.read_split_file(destination / f"{split}.npz", split)
    sha = dataset.write_split(destination / f"{split}.npz", change(data))
    manifest = json.loads((destination / "manifest.json").read_text())
    manifest["splits"][split]["sha256"] = sha
    (destination / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return destination


def relabel(label):
    def change(split):
        labels = split.labels.copy()
        labels[3] = label
        return dataset.Split(split.name, split.images, labels, split.indices)

    return change


def floated(split):
    """Labels 0.5, 5.5 and 8.5: cast to whole numbers they would pass for 0, 5 and 8, and score 1.0."""
    return dataset.Split(split.name, split.images, split.labels + 0.5, split.indices)


def emptied(split):
    return dataset.Split(split.name, split.images[:0], split.labels[:0], split.indices[:0])


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            relabel(7),
            "holds the label 7, which is not a digit of its split (classes [0, 5, 8] in {manifest})",
        ),
        (
            relabel(-1),
            "holds the label -1, which is not a digit of its split (classes [0, 5, 8] in {manifest})",
        ),
        (emptied, "holds no images"),
        (floated, "holds labels of type float64 and shape (72,), not a list of whole numbers"),
    ],
    ids=["label 7", "label -1", "no images", "labels 0.5, 5.5, 8.5"],
)
def test_evaluate_on_an_edited_split_is_one_line(
    capsys, model_path, small_curated, tmp_path, change, problem
):
    curated = edited_split(small_curated, tmp_path / "curated", "eval", change)
    code, out, err = run(capsys, "evaluate", "--model", model_path, "--curated-dir", curated)
    manifest = curated / "manifest.json"
    assert (code, out) == (1, "")
    assert err == (
        f"digits: error: {curated / 'eval.npz'} {problem.format(manifest=manifest)}: it was edited after "
        f"curation; delete {curated} and run `make curate` (or `digits-data curate`)\n"
    )


def test_a_model_whose_labels_are_not_the_datas_is_one_line(
    capsys, make_model, class_means, small_curated, tmp_path
):
    path = tmp_path / "model.onnx"
    onnx.save(make_model(class_means, [1, 2, 3], dataset.fingerprint(small_curated)), path)
    for split in ("eval", "other"):
        code, out, err = run(
            capsys, "evaluate", "--model", path, "--curated-dir", small_curated, "--split", split
        )
        assert (code, out) == (1, "")
        assert err == (
            f"digits: error: {path} has labels [1, 2, 3] but {small_curated} holds the digits [0, 5, 8]: "
            "the model and the data disagree; evaluate the model on the curated data it was trained on\n"
        )


@pytest.mark.slow
def test_evaluate_on_a_handwriting_set_listing_a_sample_twice_is_one_line(capsys, model_path, tmp_path):
    generated = handwriting.write(tmp_path / "set", per_style=1, seed=3)
    first = generated["samples"][0]
    copy = edited_handwriting(tmp_path / "set", tmp_path / "twice", lambda m: m["samples"].insert(1, first))
    argv = ["--model", model_path, "--split", "handwriting", "--handwriting-dir", copy]
    code, out, err = run(capsys, "evaluate", *argv)
    assert (code, out) == (1, "")
    assert err == (
        f"digits: error: {copy / 'manifest.json'} has sample 1 ({first['file']!r}) that is listed twice "
        f"(each file is one sample): it was edited; delete {copy} and run `make handwriting` "
        "(or `digits-data handwriting`)\n"
    )
