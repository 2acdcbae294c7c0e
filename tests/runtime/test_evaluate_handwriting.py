"""`digits evaluate --split handwriting`: the pipeline step that scores a model on generated handwriting."""

import json
import subprocess
import sys

import numpy as np
import pytest

from digits_core import contract
from digits_core.images import load_image
from digits_data import handwriting
from digits_runtime import Predictor

from helpers import HANDWRITING_EDITS, edited_handwriting


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("hw") / "handwriting"
    handwriting.write(out, per_style=1, seed=11)
    return out


def run(*argv):
    command = [sys.executable, "-m", "digits_runtime", "evaluate", "--split", "handwriting", *map(str, argv)]
    return subprocess.run(command, capture_output=True, text=True)


@pytest.mark.slow
def test_scores_every_image_as_the_predictor_does(model_path, small_set, tmp_path):
    out = tmp_path / "eval" / "handwriting.json"
    done = run("--model", model_path, "--handwriting-dir", small_set, "--json", out)
    assert (done.returncode, done.stderr) == (0, "")
    result = json.loads(out.read_text())
    assert result["n"] == {"known": 8, "other_digit": 15, "letter": 28}
    assert result["unreadable"] == []
    assert result["refusal"] is None  # the test model carries no refusal rule

    # The same numbers, computed here from the predictor directly.
    samples = handwriting.load_manifest(small_set)["samples"]
    predictor = Predictor(model_path)
    predictions = predictor.predict_many([load_image(small_set / s["file"]) for s in samples])
    truth = [(s, p) for s, p in zip(samples, predictions, strict=True) if s["kind"] == "known"]
    correct = [p.prediction == int(s["label"]) for s, p in truth]
    assert result["known"]["accuracy"] == round(float(np.mean(correct)), 4)
    assert np.asarray(result["known"]["confusion_matrix"]).sum() == 8
    assert np.trace(result["known"]["confusion_matrix"]) == sum(correct)
    assert [m["file"] for m in result["known"]["misread"]] == [
        s["file"] for (s, _), c in zip(truth, correct, strict=True) if not c
    ]
    letters = [
        max(p.probs.values()) >= 0.9
        for s, p in zip(samples, predictions, strict=True)
        if s["kind"] == "letter"
    ]
    assert result["confident"]["letter"] == round(float(np.mean(letters)), 4)
    by_pen = result["known"]["accuracy_by_style"]["pen"]
    assert sum(cell["n"] for cell in by_pen.values()) == 8
    assert set(result["known"]["accuracy_by_style"]) == {
        "glyph",
        "cursive",
        "slant",
        "pen",
        "size",
        "polarity",
    }
    assert set(result["known"]["accuracy_by_style"]["glyph"]) == {
        "0 oval",
        "0 open",
        "0 looped",
        "5 separate-bar",
        "5 joined-bar",
        "8 two-loops",
        "8 figure-eight",
        "8 s-and-back",
    }

    lines = done.stdout.splitlines()
    assert lines[1] == f"0/5/8 accuracy {result['known']['accuracy']:.4f} ({sum(correct)}/8)"
    assert "the model carries no refusal rule: every image is answered as 0, 5 or 8" in lines
    assert lines[-1] == f"written to {out}"


@pytest.mark.slow
def test_a_missing_set_or_model_is_one_line(model_path, tmp_path):
    done = run("--model", model_path, "--handwriting-dir", tmp_path, "--json", tmp_path / "x.json")
    assert done.returncode == 1
    assert done.stderr == (
        f"digits: error: {tmp_path / 'manifest.json'} does not exist: "
        "run `make handwriting` (or `digits-data handwriting`) to create it\n"
    )
    done = run("--model", tmp_path / "none.onnx", "--handwriting-dir", tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith(f"digits: error: model {tmp_path / 'none.onnx'} does not exist")
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_with_a_refusal_rule_reports_shares_accepted_and_refused(refusing_model, small_set, tmp_path):
    path, rule = refusing_model
    out = tmp_path / "handwriting.json"
    done = run("--model", path, "--handwriting-dir", small_set, "--json", out)
    assert (done.returncode, done.stderr) == (0, "")
    result = json.loads(out.read_text())
    assert result["refusal_rule"] == json.loads(rule.to_json())

    samples = handwriting.load_manifest(small_set)["samples"]
    predictions = Predictor(path).predict_many([load_image(small_set / s["file"]) for s in samples])
    accepted = {
        kind: [p.accepted for s, p in zip(samples, predictions, strict=True) if s["kind"] == kind]
        for kind in handwriting.KINDS
    }
    refusal = result["refusal"]
    assert refusal["known_accepted"] == round(float(np.mean(accepted["known"])), 4)
    assert refusal["other_digit_refused"] == round(1 - float(np.mean(accepted["other_digit"])), 4)
    assert refusal["letter_refused"] == round(1 - float(np.mean(accepted["letter"])), 4)
    others = accepted["other_digit"] + accepted["letter"]
    assert refusal["others_refused"] == round(1 - float(np.mean(others)), 4)
    look_alike = {True: [], False: []}  # O, S and B, which the model is meant to read as 0, 5 and 8
    for s, p in zip(samples, predictions, strict=True):
        if s["kind"] != "known":
            look_alike[s["label"] in contract.LOOK_LIKE_CLASSES].append(p.accepted)
    assert len(look_alike[True]) == 3
    assert refusal["look_alikes_refused"] == round(1 - float(np.mean(look_alike[True])), 4)
    assert refusal["unlike_digits_refused"] == round(1 - float(np.mean(look_alike[False])), 4)
    assert (
        "of those, letters written like 0, 5 or 8 (O, o, S, s, B) refused "
        f"{refusal['look_alikes_refused']:.4f}; all the others {refusal['unlike_digits_refused']:.4f}"
    ) in done.stdout.splitlines()
    assert set(refusal["refused_by_character"]) == set("1234679") | {
        s["label"] for s in samples if s["kind"] == "letter"
    }
    assert sum(c["n"] for c in refusal["others_refused_by_style"]["polarity"].values()) == 15 + 28
    assert (
        f"accepted: 0/5/8 {refusal['known_accepted']:.4f}; refused: other digits "
        f"{refusal['other_digit_refused']:.4f}, letters {refusal['letter_refused']:.4f}, "
        f"both {refusal['others_refused']:.4f}"
    ) in done.stdout.splitlines()


@pytest.mark.slow
@pytest.mark.parametrize("edit", list(HANDWRITING_EDITS))
def test_an_edited_manifest_is_one_line_and_writes_nothing(model_path, small_set, tmp_path, edit):
    copy = edited_handwriting(small_set, tmp_path / "set", HANDWRITING_EDITS[edit])
    out = tmp_path / "handwriting.json"
    done = run("--model", model_path, "--handwriting-dir", copy, "--json", out)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(f"digits: error: {copy / 'manifest.json'} ")
    assert done.stderr.endswith(
        f": it was edited; delete {copy} and run `make handwriting` (or `digits-data handwriting`)\n"
    )
    assert done.stderr.count("\n") == 1
    assert not out.exists()
