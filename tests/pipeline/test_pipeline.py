"""The whole pipeline through its command lines, as `make all` runs it, on a small curation."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from digits_core import contract
from digits_data import dataset
from digits_runtime import Predictor

BIN = Path(sys.executable).parent


def run(*argv: str) -> subprocess.CompletedProcess:
    done = subprocess.run([str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True)
    assert done.returncode == 0, f"{argv[0]} {argv[1]} failed:\n{done.stderr}"
    assert "Traceback" not in done.stderr
    return done


@pytest.mark.slow
def test_curate_fit_export_evaluate_predict(mnist_dir, tmp_path):
    curated, train, model = tmp_path / "curated", tmp_path / "train", tmp_path / "model.onnx"
    run(
        "digits-data",
        "curate",
        "--data-dir",
        str(mnist_dir),
        "--output-dir",
        str(curated),
        "--class-counts",
        "{0: 120, 5: 60, 8: 180}",
        "--other-train-per-digit",
        "20",
        "--other-val-per-digit",
        "10",
    )
    # The default recipe for two epochs, with a tenth of its generated images, on one thread (as the
    # training tests' fit: the other test process has the other core).
    quick = ["--epochs", "2", "--typeset", "200", "--printed", "60", "--outliers-per-epoch", "300"]
    quick += ["--threads", "1"]
    run("digits-train", "fit", "--curated-dir", str(curated), "--output-dir", str(train), *quick)
    summary = json.loads((train / "summary.json").read_text())
    assert summary["epochs_run"] == 2
    assert (train / "best.ckpt").is_file()
    run("digits-train", "export", "--checkpoint-path", str(train / "best.ckpt"), "--output", str(model))

    def evaluate(split: str) -> tuple[dict, str]:
        out = tmp_path / f"{split}.json"
        args = ["--model", str(model), "--curated-dir", str(curated), "--data-dir", str(mnist_dir)]
        args += ["--split", split, "--json", str(out)]
        printed = run("digits", "evaluate", *args).stdout
        return json.loads(out.read_text()), printed

    result, printed = evaluate("eval")
    assert result["split"] == "eval"
    assert result["n"] == len(dataset.load_split(curated, "eval")) == 72
    assert result["labels"] == [0, 5, 8]
    assert sum(map(sum, result["confusion_matrix"])) == 72
    assert f"{result['accuracy']:.4f}" in printed
    # With two epochs on 245 images the model is already far better than chance.
    assert result["accuracy"] > 0.8

    other, printed = evaluate("other")
    assert (other["split"], other["n"]) == ("other", 7154)
    refused = sum(not p["accepted"] for p in other["predictions"])
    assert other["refusal"]["refused"] == refused
    assert f"all     {refused:>10}      7154" in printed

    # Evaluating the validation split reproduces exactly the metrics recorded in the model at export.
    val, _ = evaluate("val")
    recorded = json.loads(Predictor(model).metadata[contract.META_VAL_METRICS])
    assert recorded["val_macro_f1"] == round(val["macro_f1"], 6)
    assert recorded["val_accuracy"] == round(val["accuracy"], 6)
    assert recorded.items() >= summary["best_val_metrics"].items()

    sample = tmp_path / "sample.png"
    run(
        "digits-data",
        "sample",
        "--curated-dir",
        str(curated),
        "--split",
        "eval",
        "--index",
        "0",
        "--output",
        str(sample),
    )
    predicted = json.loads(run("digits", "predict", "--model", str(model), str(sample)).stdout)
    assert set(predicted) == {"probs", "prediction", "accepted", "score"}
    assert set(predicted["probs"]) == {"0", "5", "8"}
    assert sum(predicted["probs"].values()) == pytest.approx(1.0, abs=1e-5)
    expected = result["predictions"][0]
    assert predicted["prediction"] == expected["prediction"]
    assert predicted["accepted"] == expected["accepted"]
