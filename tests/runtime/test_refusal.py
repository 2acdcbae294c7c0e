"""Refusal in the runtime: the rule read from the model, Prediction.accepted, evaluate's shares."""

import json

import numpy as np
import onnx
import pytest
from PIL import Image

from digits_core import contract
from digits_core.cli_support import run_fire
from digits_core.errors import DigitsError
from digits_core.refusal import RefusalRule, scores
from digits_data import dataset
from digits_runtime import Prediction, Predictor, cli


def run(capsys, *argv):
    code = run_fire(cli.COMMANDS, "digits", [str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_hot_model(make_model, rule: RefusalRule | None):
    """Class means with one lit pixel each: the logits of an image are (x[0, c] - 0.5) / 10."""
    means = np.zeros((3, 28, 28), np.float32)
    for c in range(3):
        means[c, 0, c] = 1.0
    metadata = {} if rule is None else {contract.META_REFUSAL: rule.to_json()}
    return make_model(means, [0, 5, 8], "x", metadata=metadata)


@pytest.fixture(scope="module")
def refusing(refusing_model):
    path, rule = refusing_model
    return Predictor(path, threads=1), rule


@pytest.fixture(scope="module")
def reference(reference_logits, class_means):
    """Scores and acceptance computed with numpy alone, away from the threshold by a margin."""

    def compute(images, rule):
        values = scores(reference_logits(class_means, images), rule.score)
        assert np.min(np.abs(values - rule.threshold)) > 1e-5  # none within float32 rounding of the edge
        return values, values >= rule.threshold

    return compute


def test_exact_decisions_on_a_hand_built_model(make_model, tmp_path):
    path = tmp_path / "onehot.onnx"
    onnx.save(one_hot_model(make_model, RefusalRule("max_logit", 0.0, 0.99, "val")), path)
    predictor = Predictor(path)
    lit, dark = np.zeros((2, 28, 28), np.float32)
    lit[0, 1] = 1.0  # looks like a 5: logits (-0.05, 0.05, -0.05)
    classified = predictor.classify(np.stack([lit, dark]))
    np.testing.assert_allclose(classified.scores, [0.05, -0.05], rtol=1e-6)
    assert classified.accepted.tolist() == [True, False]
    assert classified.predicted.tolist() == [5, 0]
    refused = predictor.to_predictions(classified)[1]
    assert refused == Prediction(
        {0: pytest.approx(1 / 3), 5: pytest.approx(1 / 3), 8: pytest.approx(1 / 3)},
        0,
        False,
        pytest.approx(-0.05, rel=1e-6),
    )
    assert refused.to_json() == {
        "probs": {"0": 0.333333, "5": 0.333333, "8": 0.333333},
        "prediction": 0,
        "accepted": False,
        "score": float(classified.scores[1]),
    }
    with pytest.raises(DigitsError, match="^no digit found in array: the image is blank or uniform$"):
        predictor.predict(dark)  # an array is read as an image file is: a blank one holds no digit


@pytest.mark.parametrize("kind", ["max_probability", "max_logit", "energy"])
def test_each_score_is_computed_as_defined(
    make_model, reference_logits, class_means, small_curated, tmp_path, kind
):
    eval_split = dataset.load_split(small_curated, "eval")
    expected = scores(reference_logits(class_means, eval_split.images), kind)
    threshold = float(np.median(expected))
    path = tmp_path / f"{kind}.onnx"
    rule = RefusalRule(kind, threshold, 0.5, "val")
    onnx.save(make_model(class_means, [0, 5, 8], "x", metadata={contract.META_REFUSAL: rule.to_json()}), path)
    predictor = Predictor(path)
    assert predictor.refusal == rule
    assert predictor.score_kind == kind
    classified = predictor.classify(eval_split.images)
    np.testing.assert_allclose(classified.scores, expected, rtol=1e-5, atol=1e-6)
    assert classified.accepted.tolist() == (expected >= threshold).tolist()
    assert classified.accepted.sum() == len(eval_split) // 2  # 72 images, none tied at the median


def test_without_a_rule_everything_is_accepted_and_scored_by_confidence(model_path, small_curated):
    predictor = Predictor(model_path)
    assert predictor.refusal is None
    assert predictor.score_kind == "max_probability"
    images = dataset.load_split(small_curated, "eval").images
    classified = predictor.classify(images)
    assert classified.accepted.all()
    np.testing.assert_allclose(classified.scores, classified.probabilities.max(1), rtol=1e-5)
    assert classified.predicted.tolist() == [p.prediction for p in predictor.predict_many(list(images))]


def test_the_rule_travels_with_the_model(refusing, reference, small_curated):
    predictor, rule = refusing
    assert predictor.refusal == rule
    val = dataset.load_split(small_curated, "val")
    # The threshold was chosen to keep 90% of the 43 val digits: 39 of them (38.7 rounded up).
    assert predictor.classify(val.images).accepted.sum() == 39
    eval_split = dataset.load_split(small_curated, "eval")
    values, accepted = reference(eval_split.images, rule)
    classified = predictor.classify(eval_split.images)
    np.testing.assert_allclose(classified.scores, values, rtol=1e-5)
    assert classified.accepted.tolist() == accepted.tolist()
    predictions = predictor.predict_many(list(eval_split.images))
    assert [p.accepted for p in predictions] == accepted.tolist()
    assert {p.accepted for p in predictions} == {True, False}  # both decisions occur


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ("energy", "not JSON (Expecting value: line 1 column 1 (char 0))"),
        ('{"score": "energy"}', "missing threshold, known_accept_rate, chosen_on"),
        (
            '{"score": "energy", "threshold": null, "known_accept_rate": 0.99, "chosen_on": "val"}',
            "threshold must be a finite number, got None",
        ),
    ],
)
def test_malformed_rule_is_refused_at_load_naming_the_file(make_model, tmp_path, value, detail):
    path = tmp_path / "bad.onnx"
    onnx.save(
        make_model(np.zeros((3, 28, 28), np.float32), [0, 5, 8], "x", metadata={"refusal": value}), path
    )
    with pytest.raises(DigitsError) as caught:
        Predictor(path)
    assert str(caught.value) == (
        f"{path} has malformed 'refusal' metadata ({detail}): "
        "export the model again with `digits-train export`"
    )


def test_a_blank_image_stays_an_error(refusing, tmp_path):
    predictor, _ = refusing
    blank = tmp_path / "blank.png"
    Image.new("L", (40, 40), 255).save(blank)
    [result] = predictor.predict_each([blank])
    assert isinstance(result, DigitsError)
    assert str(result) == f"no digit found in {blank}: the image is blank or uniform"


def test_predict_prints_accepted_per_the_rule(capsys, refusing_model, reference, small_curated, tmp_path):
    path, rule = refusing_model
    split = dataset.load_split(small_curated, "eval")
    _, accepted = reference(split.images, rule)
    chosen = [int(np.flatnonzero(accepted)[0]), int(np.flatnonzero(~accepted)[0])]
    for i in chosen:
        Image.fromarray(split.images[i]).save(tmp_path / f"img{i}.png")
    code, out, err = run(capsys, "predict", "--model", path, tmp_path)
    assert (code, err) == (0, "")
    lines = {json.loads(line)["path"]: json.loads(line) for line in out.splitlines()}
    # An MNIST image read from a file is re-centred like a photo, so ask the predictor the same.
    for i in chosen:
        file = str(tmp_path / f"img{i}.png")
        expected = Predictor(path).predict(file)
        assert lines[file] == {"path": file, **expected.to_json()}
    code, out, _ = run(capsys, "predict", "--model", path, tmp_path / f"img{chosen[1]}.png")
    refused = json.loads(out)
    assert list(refused) == ["probs", "prediction", "accepted", "score"]
    assert (refused["accepted"], refused["score"] < rule.threshold) == (False, True)
    assert lines[str(tmp_path / f"img{chosen[0]}.png")]["score"] >= rule.threshold


@pytest.mark.slow
def test_evaluate_other_reports_the_share_refused(capsys, refusing_model, reference, small_curated, tmp_path):
    path, rule = refusing_model
    other = dataset.load_test_split(small_curated, other=True)
    _, accepted = reference(other.images, rule)
    out_json = tmp_path / "other.json"
    code, out, err = run(
        capsys,
        "evaluate",
        "--model",
        path,
        "--curated-dir",
        small_curated,
        "--split",
        "other",
        "--json",
        out_json,
    )
    assert (code, err) == (0, "")
    result = json.loads(out_json.read_text())
    assert set(result) == {"split", "n", "refusal", "model", "fingerprint", "predictions"}
    assert (result["split"], result["n"]) == ("other", 7154)
    refused = int((~accepted).sum())
    summary = result["refusal"]
    assert summary["rule"] == {
        "score": "energy",
        "threshold": rule.threshold,
        "known_accept_rate": 0.9,
        "chosen_on": "val",
        "min_probability": 0.0,
    }
    assert (summary["score"], summary["n"], summary["refused"]) == ("energy", 7154, refused)
    assert summary["share_refused"] == pytest.approx(refused / 7154)
    assert list(summary["per_digit"]) == ["1", "2", "3", "4", "6", "7", "9"]
    for digit, c in summary["per_digit"].items():
        mine = other.labels == int(digit)
        assert (c["n"], c["refused"]) == (int(mine.sum()), int((~accepted[mine]).sum()))
    assert [p["accepted"] for p in result["predictions"]] == accepted.tolist()
    assert [p["index"] for p in result["predictions"]] == other.indices.tolist()
    assert "confusion matrix" not in out
    assert (
        f"refusal: accepted when energy >= {rule.threshold:.6g} (chosen to accept 90.00% of val digits)"
        in out
    )
    assert f"all     {refused:>10}      7154{refused / 7154:>10.2%}" in out
    ones = summary["per_digit"]["1"]
    assert f"1       {ones['refused']:>10}      1135{ones['share_refused']:>10.2%}" in out


def test_evaluate_reports_known_digits_refused(
    capsys, refusing_model, model_path, reference, small_curated, tmp_path
):
    path, rule = refusing_model
    split = dataset.load_split(small_curated, "eval")
    values, accepted = reference(split.images, rule)
    out_json = tmp_path / "eval.json"
    code, out, _ = run(
        capsys, "evaluate", "--model", path, "--curated-dir", small_curated, "--json", out_json
    )
    assert code == 0
    result = json.loads(out_json.read_text())
    refused = int((~accepted).sum())
    assert (result["refusal"]["n"], result["refusal"]["refused"]) == (72, refused)
    assert {d: c["n"] for d, c in result["refusal"]["per_digit"].items()} == {"0": 24, "5": 12, "8": 36}
    np.testing.assert_allclose([p["score"] for p in result["predictions"]], values, rtol=1e-5)
    assert "confusion matrix (rows: true digit, columns: predicted digit)" in out
    assert f"all     {refused:>10}        72{refused / 72:>10.2%}" in out
    # A model without a rule: nothing refused, and it says so.
    code, out, _ = run(
        capsys, "evaluate", "--model", model_path, "--curated-dir", small_curated, "--json", out_json
    )
    result = json.loads(out_json.read_text())
    assert (result["refusal"]["rule"], result["refusal"]["refused"]) == (None, 0)
    assert all(p["accepted"] for p in result["predictions"])
    assert "refusal: the model has no refusal rule, so it accepts every image" in out
    assert f"all     {0:>10}        72{0:>10.2%}" in out
