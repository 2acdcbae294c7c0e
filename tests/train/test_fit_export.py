"""Training with the real Lightning Trainer and export with the real ONNX exporter, on small data."""

import csv
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from digits_data import contract, dataset
from digits_data.images import pixels_from_uint8
from digits_train.config import FitConfig
from digits_train.data import class_weights
from digits_train.export import PARITY_BATCH_SIZES, export, load_checkpoint
from digits_train.fit import fit


def test_fit_writes_checkpoint_logs_config_and_summary(trained, small_curated):
    out, summary = trained["dir"], trained["summary"]
    assert sorted(p.name for p in out.iterdir()) == [
        "best.ckpt",
        "config.json",
        "lightning_logs",
        "model.onnx",
        "summary.json",
    ]
    assert summary["epochs_run"] == 2
    assert summary["best_epoch"] in (0, 1)
    assert summary["stopped_early"] is False
    assert json.loads((out / "summary.json").read_text()) == summary
    assert json.loads((out / "config.json").read_text()) == FitConfig(epochs=2).to_dict()
    rows = list(csv.DictReader((out / "lightning_logs" / "metrics.csv").read_text().splitlines()))
    val = [r for r in rows if r["val_macro_f1"]]
    assert [int(r["epoch"]) for r in val] == [0, 1]
    assert {
        "train_loss",
        "val_loss",
        "val_accuracy",
        "val_recall_0",
        "val_recall_5",
        "val_recall_8",
        "lr",
    } <= set(rows[0])
    assert float(val[0]["lr"]) == pytest.approx(1e-3)
    best = val[summary["best_epoch"]]
    assert float(best["val_macro_f1"]) == pytest.approx(summary["best_val_metrics"]["val_macro_f1"], abs=1e-6)
    assert summary["best_val_metrics"]["val_accuracy"] > 0.8  # two epochs already learn a lot


def test_checkpoint_carries_what_the_runtime_needs(trained, small_curated):
    model, checkpoint = load_checkpoint(trained["dir"] / "best.ckpt")
    hparams = checkpoint["hyper_parameters"]
    manifest = dataset.load_manifest(small_curated)
    assert hparams["labels"] == [0, 5, 8]
    assert hparams["mean"] == manifest["normalization"]["mean"]
    assert hparams["fingerprint"] == dataset.fingerprint(small_curated)
    assert hparams["config"] == FitConfig(epochs=2).to_dict()
    assert checkpoint["digits_val_metrics"] == trained["summary"]["best_val_metrics"]
    assert not model.training


def test_class_weights_are_inverse_frequency_with_mean_one():
    weights = class_weights(torch.tensor([0] * 80 + [1] * 20 + [2] * 100), 3)
    assert np.mean(weights) == pytest.approx(1.0)
    assert weights[0] / weights[2] == pytest.approx(100 / 80)
    assert weights[1] / weights[2] == pytest.approx(100 / 20)


def test_onnx_matches_torch_and_has_the_contract(trained, small_curated):
    path = trained["dir"] / "model.onnx"
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    assert not list(trained["dir"].glob("*.data"))
    assert [i.name for i in proto.graph.input] == [contract.INPUT_NAME]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param
    assert [d.dim_value for d in dims[1:]] == [1, 28, 28]
    assert [o.name for o in proto.graph.output] == [contract.LOGITS_NAME, contract.PROBABILITIES_NAME]

    model, _ = load_checkpoint(trained["dir"] / "best.ckpt")
    pixels = pixels_from_uint8(dataset.load_split(small_curated, "eval").images)[:, None]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits, probs = session.run(None, {contract.INPUT_NAME: pixels})
    with torch.no_grad():
        expected = model(torch.from_numpy(pixels)).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    np.testing.assert_allclose(probs, torch.softmax(torch.from_numpy(expected), 1).numpy(), atol=1e-5)
    assert trained["export"]["parity"]["batch_sizes"] == list(PARITY_BATCH_SIZES)
    assert trained["export"]["parity"]["max_abs_diff"] <= 1e-5
    assert trained["export"]["bytes"] == path.stat().st_size
    assert trained["export"]["parameters"] == sum(p.numel() for p in model.parameters())


def test_metadata_round_trip(trained, small_curated):
    meta = {p.key: p.value for p in onnx.load(trained["dir"] / "model.onnx").metadata_props}
    manifest = dataset.load_manifest(small_curated)
    assert json.loads(meta[contract.META_LABELS]) == [0, 5, 8]
    assert json.loads(meta[contract.META_MEAN]) == manifest["normalization"]["mean"]
    assert json.loads(meta[contract.META_STD]) == manifest["normalization"]["std"]
    assert meta[contract.META_FINGERPRINT] == dataset.fingerprint(small_curated)
    assert json.loads(meta[contract.META_VAL_METRICS]) == trained["summary"]["best_val_metrics"]
    assert json.loads(meta[contract.META_TRAINING_CONFIG]) == FitConfig(epochs=2).to_dict()
    assert set(json.loads(meta[contract.META_VERSIONS])) >= {"torch", "lightning", "onnx", "digits-train"}
    assert json.loads(meta[contract.META_PARITY])["argmax_identical"] is True


def test_same_seed_same_weights_and_same_onnx_bytes(trained, small_curated, tmp_path):
    again = fit(small_curated, tmp_path, FitConfig(epochs=2))
    assert again["best_val_metrics"] == trained["summary"]["best_val_metrics"]
    first = torch.load(trained["dir"] / "best.ckpt", weights_only=True)["state_dict"]
    second = torch.load(tmp_path / "best.ckpt", weights_only=True)["state_dict"]
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    export(tmp_path / "best.ckpt", tmp_path / "model.onnx")
    assert (tmp_path / "model.onnx").read_bytes() == (trained["dir"] / "model.onnx").read_bytes()


def test_failed_parity_check_leaves_no_model_file(trained, tmp_path, monkeypatch):
    from digits_data.errors import DigitsError
    from digits_train import export as export_module

    monkeypatch.setattr(export_module, "PARITY_ATOL", -1.0)  # no difference can pass
    out = tmp_path / "model.onnx"
    with pytest.raises(DigitsError, match="ONNX and torch probabilities differ by .* at batch size 1"):
        export(trained["dir"] / "best.ckpt", out)
    assert list(tmp_path.iterdir()) == []
