"""`digits robustness`: the degradation suite through the product's path, scored per source and family."""

import json

import numpy as np
import pytest

from digits_data import handwriting, suite
from digits_runtime import Predictor, cli

from helpers import cli_runner

run = cli_runner(cli.COMMANDS, "digits")


@pytest.fixture(scope="module")
def suite_dir(small_curated, mnist_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("robustness")
    handwriting.write(folder / "handwriting", per_style=1, seed=5)
    arrays = suite.build(
        small_curated, folder / "handwriting", mnist_dir, per_family=9, seed=2, per_typeface=1
    )
    suite.write(folder / "suite", arrays, seed=2, per_family=9)
    return folder / "suite"


@pytest.mark.slow
def test_every_family_is_scored_as_the_images_answer(refusing_model, suite_dir, tmp_path, capsys):
    model, _ = refusing_model
    out = tmp_path / "degraded.json"
    code, printed, err = run(capsys, "robustness", "--model", model, "--suite-dir", suite_dir, "--json", out)
    assert (code, err) == (0, "")
    result = json.loads(out.read_text())
    manifest, arrays = suite.load(suite_dir)
    assert result["suite_sha256"] == manifest["sha256"][suite.SUITE_FILE]
    assert list(result["sources"]) == list(suite.SOURCES)
    # The same numbers, worked out here from the images themselves.
    predictor = Predictor(model)
    pixels, readable = suite.preprocess(arrays["images"])
    classified = predictor.classify(pixels)
    correct = (classified.predicted == arrays["labels"]) & readable
    accepted = classified.accepted & readable
    for s, source in enumerate(suite.SOURCES):
        rows = result["sources"][source]["families"]
        assert list(rows) == list(suite.FAMILIES)
        for f, family in enumerate(suite.FAMILIES):
            which = (arrays["source"] == s) & (arrays["family"] == f)
            assert rows[family]["n"] == int(which.sum())
            assert rows[family]["accuracy"] == round(float(correct[which].mean()), 4)
            assert rows[family]["accepted_wrong"] == round(float((accepted & ~correct)[which].mean()), 4)
        summary = result["sources"][source]["summary"]
        degraded = [rows[f]["accuracy"] for f in suite.FAMILIES[1:]]
        assert summary["mean_accuracy"] == round(float(np.mean(degraded)), 4)
        assert summary["min_accuracy"] == min(degraded) == rows[summary["worst_family"]]["accuracy"]
    assert len(result["examples"]["outline"]) == 9  # the MNIST test images of the family
    assert f"on the degradation suite in {suite_dir} ({len(arrays['labels'])} images)" in printed
    assert "mnist-test: family" in printed


@pytest.mark.slow
def test_a_missing_or_changed_suite_is_one_line(model_path, suite_dir, tmp_path, capsys):
    code, out, err = run(capsys, "robustness", "--model", model_path, "--suite-dir", tmp_path)
    assert (code, out) == (1, "")
    assert err == (
        f"digits: error: {tmp_path / 'manifest.json'} is missing or not a degradation suite's: "
        "run `make suite` (or `digits-data degrade`) to create it\n"
    )
    code, out, err = run(
        capsys, "robustness", "--model", model_path, "--suite-dir", suite_dir, "--workers", 0
    )
    assert (code, out) == (2, "")
    assert err.startswith("digits: error: --workers must be")
