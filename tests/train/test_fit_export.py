"""Training with the real Lightning Trainer and export with the real ONNX exporter, on small data."""

import csv
import json
import math
import platform
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from digits_core import contract, ownership, refusal
from digits_core.errors import DigitsError
from digits_core.images import pixels_from_uint8
from digits_core.refusal import RefusalRule
from digits_data import dataset, suite
from digits_train.config import OUTLIER_TARGETS, FitConfig
from digits_train.data import OUTLIER, class_weights, loaders
from digits_train.export import (
    DEGRADED_PER_FAMILY,
    DEGRADED_SEED,
    KNOWN_ACCEPT_RATE,
    MIN_PROBABILITIES,
    PARITY_BATCH_SIZES,
    choose_refusal,
    export,
    load_checkpoint,
    refusal_inputs,
)
from digits_train.fit import fit
from digits_train.model import DigitsClassifier, cpu_vendor

pytestmark = pytest.mark.slow  # torch and Lightning take seconds to import


def test_fit_writes_checkpoint_logs_config_and_summary(trained, small_curated):
    out, summary = trained["dir"], trained["summary"]
    assert sorted(p.name for p in out.iterdir()) == [
        ".model.onnx.lock",  # the fixture exported model.onnx here too
        ownership.MARK,
        "best.ckpt",
        "config.json",
        "lightning_logs",
        "model.onnx",
        "summary.json",
    ]
    assert ownership.written_by(out) == {
        "step": "digits-train fit",
        "files": ["best.ckpt", "config.json", "lightning_logs", "summary.json"],
    }
    assert summary["epochs_run"] == 2
    assert summary["best_epoch"] == 1  # the final weights are kept
    assert summary["stopped_early"] is False
    assert json.loads((out / "summary.json").read_text()) == summary
    assert json.loads((out / "config.json").read_text()) == trained["config"].to_dict()
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
    # One cycle: up from peak/25 to the peak within the first 30% of steps, then down towards 0.
    peak = FitConfig().learning_rate
    assert peak / 25 < float(val[0]["lr"]) < peak
    assert float(val[1]["lr"]) < float(val[0]["lr"]) / 5
    best = val[summary["best_epoch"]]
    assert float(best["val_macro_f1"]) == pytest.approx(summary["best_val_metrics"]["val_macro_f1"], abs=1e-6)
    # Two short epochs already learn: always answering 8 would score 22/43 = 0.51.
    assert summary["best_val_metrics"]["val_accuracy"] > 0.7


def test_checkpoint_carries_what_the_runtime_needs(trained, small_curated):
    model, checkpoint = load_checkpoint(trained["dir"] / "best.ckpt")
    hparams = checkpoint["hyper_parameters"]
    manifest = dataset.load_manifest(small_curated)
    assert hparams["labels"] == [0, 5, 8]
    assert hparams["mean"] == manifest["normalization"]["mean"]
    assert hparams["fingerprint"] == dataset.fingerprint(small_curated)
    assert hparams["config"] == trained["config"].to_dict()
    assert checkpoint["digits_val_metrics"] == trained["summary"]["best_val_metrics"]
    assert not model.training


def test_class_weights_are_inverse_frequency_with_mean_one():
    targets = torch.tensor([0] * 80 + [1] * 20 + [2] * 100)
    weights = class_weights(targets, 3)
    assert np.mean(weights) == pytest.approx(1.0)
    assert weights[0] / weights[2] == pytest.approx(100 / 80)
    assert weights[1] / weights[2] == pytest.approx(100 / 20)
    root = class_weights(targets, 3, power=0.5)
    assert np.mean(root) == pytest.approx(1.0)
    assert root[1] / root[2] == pytest.approx(5**0.5)


def test_outliers_join_training_with_their_own_target(small_curated):
    train, _, targets = loaders(small_curated, [0, 5, 8], 64, 0, seed=1, outliers=True)
    known = dataset.load_split(small_curated, "train")
    other = dataset.load_split(small_curated, "other_train")
    pixels, all_targets = train.dataset.tensors
    assert len(pixels) == len(known) + len(other)
    assert int((all_targets == OUTLIER).sum()) == len(other)
    assert torch.equal(targets, all_targets[: len(known)])
    assert sorted(set(targets.tolist())) == [0, 1, 2]


def test_outlier_loss_pushes_outliers_towards_a_uniform_output():
    config = FitConfig(augment=False, members=1, outlier_target="uniform")
    model = DigitsClassifier([0, 5, 8], 0.1, 0.3, [1.0, 1.0, 1.0], "f", config.to_dict(), "c")
    model.log = lambda *args, **kwargs: None  # no Trainer attached
    pixels, targets = torch.zeros(4, 1, 28, 28), torch.tensor([0, OUTLIER, OUTLIER, 2])
    with torch.no_grad():
        model.network[-1].weight.zero_()  # every image gets the logits in the bias
        model.network[-1].bias.zero_()
        uniform = float(model.training_step((pixels, targets), 0))
        model.network[-1].bias.copy_(torch.tensor([3.0, 0.0, 0.0]))
        peaked = float(model.training_step((pixels, targets), 0))
    log_z = math.log(math.exp(3) + 2)
    assert uniform == pytest.approx(math.log(3), abs=1e-6)  # the digits' loss only: outliers cost 0
    known = ((log_z - 3) + log_z) / 2  # targets 0 and 2
    outliers = log_z - 1 - math.log(3)  # mean of -log p over the 3 classes, minus its minimum
    assert peaked == pytest.approx(known + config.outlier_weight * outliers, abs=1e-5)


def test_digit_scores_are_the_largest_logit_in_eval_mode_and_keep_training_mode(trained, small_curated):
    """What the sampler ranks outliers by: the model as it is, without dropout, in any batch size."""
    model, _ = load_checkpoint(trained["dir"] / "best.ckpt")
    images = dataset.load_split(small_curated, "other_val").images
    pixels = torch.from_numpy(pixels_from_uint8(images)[:, None])
    with torch.no_grad():
        expected = model(pixels).amax(1)
    model.train()
    scores = model.digit_scores(pixels, batch_size=7)
    assert model.training
    assert not scores.requires_grad
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=0)


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
    assert json.loads(meta[contract.META_LABELS]) == [0, 5, 8]
    assert meta[contract.META_FINGERPRINT] == dataset.fingerprint(small_curated)
    shares = trained["export"]["other_val_refused"]
    refused = {f"other_val_refused_{kind}": round(share, 6) for kind, share in shares.items()}
    wrong = trained["export"]["degraded_val_accepted_wrong"]
    refused |= {f"degraded_val_accepted_wrong_{kind}": round(share, 6) for kind, share in wrong.items()}
    assert json.loads(meta[contract.META_VAL_METRICS]) == trained["summary"]["best_val_metrics"] | refused
    assert json.loads(meta[contract.META_TRAINING_CONFIG]) == trained["config"].to_dict()
    assert set(json.loads(meta[contract.META_VERSIONS])) >= {"torch", "lightning", "onnx", "digits-train"}
    assert json.loads(meta[contract.META_PARITY])["argmax_identical"] is True
    assert json.loads(meta[contract.META_TRAINED_ON]) == {
        "cpu_kernels": torch.backends.cpu.get_cpu_capability(),
        "cpu_vendor": cpu_vendor(),
        "torch_threads": trained["threads"],
    }
    assert cpu_vendor() in ("GenuineIntel", "AuthenticAMD") or platform.machine() == cpu_vendor()
    assert RefusalRule.from_json(meta[contract.META_REFUSAL]) == RefusalRule(**trained["export"]["refusal"])


def test_refusal_rule_is_chosen_on_validation_data(trained, small_curated):
    """The rule keeps KNOWN_ACCEPT_RATE of val digits, as arrays and as scans; the score and the
    floor on the top probability do the least harm: the fewest of other_val accepted plus
    degraded val digits accepted with a wrong answer."""
    rule = RefusalRule(**trained["export"]["refusal"])
    refused = trained["export"]["other_val_refused"]
    wrong = trained["export"]["degraded_val_accepted_wrong"]
    assert (rule.chosen_on, rule.known_accept_rate) == ("val", KNOWN_ACCEPT_RATE)
    assert rule.min_probability in MIN_PROBABILITIES
    assert set(refused) == set(wrong) == set(refusal.SCORES)
    harm = {kind: 1 - refused[kind] + wrong[kind] for kind in refusal.SCORES}
    assert harm[rule.score] == min(harm.values())
    # Measured again here, on the same draws of validation digits.
    val = dataset.load_split(small_curated, "val")
    pixels, digits, _ = suite.degraded_split(val, DEGRADED_PER_FAMILY, DEGRADED_SEED)
    scanned = suite.degraded_split(val, len(val), DEGRADED_SEED, families=("clean",))[0]
    session = ort.InferenceSession(str(trained["dir"] / "model.onnx"), providers=["CPUExecutionProvider"])

    def logits_of(pixels: np.ndarray) -> np.ndarray:
        return session.run([contract.LOGITS_NAME], {contract.INPUT_NAME: pixels[:, None]})[0]

    logits = logits_of(pixels)
    answers = np.array([0, 5, 8])[logits.argmax(1)]
    assert np.mean(rule.accepts(logits) & (answers != digits)) == pytest.approx(wrong[rule.score])
    known = rule.accepts(np.concatenate([logits_of(pixels_from_uint8(val.images)), logits_of(scanned)]))
    # The highest such threshold keeps exactly as many as the rate needs, and no more.
    assert int(known.sum()) == math.ceil(KNOWN_ACCEPT_RATE * len(known))
    other = rule.accepts(logits_of(pixels_from_uint8(dataset.load_split(small_curated, "other_val").images)))
    assert 1 - other.mean() == pytest.approx(refused[rule.score])


def test_the_rule_chosen_again_at_another_rate_keeps_that_share(trained, small_curated):
    """Chosen again on the same validation inputs, the rule is export's own. Asked to keep fewer
    known digits, it keeps exactly as many as that rate needs, and does no more harm: each
    threshold can only rise."""
    session = ort.InferenceSession(str(trained["dir"] / "model.onnx"), providers=["CPUExecutionProvider"])
    known, other, degraded = refusal_inputs(small_curated)
    assert known.shape == (2 * len(dataset.load_split(small_curated, "val")), 1, 28, 28)
    assert len(degraded[0]) == len(degraded[1]) > 0
    again, refused, wrong = choose_refusal(session, known, other, degraded, [0, 5, 8])
    assert again == RefusalRule(**trained["export"]["refusal"])
    assert (refused, wrong) == (
        trained["export"]["other_val_refused"],
        trained["export"]["degraded_val_accepted_wrong"],
    )
    fewer, refused_fewer, wrong_fewer = choose_refusal(session, known, other, degraded, [0, 5, 8], 0.9)
    assert fewer.known_accept_rate == 0.9
    logits = session.run([contract.LOGITS_NAME], {contract.INPUT_NAME: known})[0]
    assert int(fewer.accepts(logits).sum()) == math.ceil(0.9 * len(known))
    harm = 1 - refused[again.score] + wrong[again.score]
    assert 1 - refused_fewer[fewer.score] + wrong_fewer[fewer.score] <= harm


def test_the_runtime_refuses_an_exported_model_broken_by_hand(trained, tmp_path):
    """A bias of the last layer set to NaN, or every layer's weights scaled so that the logits overflow."""
    from onnx import numpy_helper

    # The training package alone (its tox env) has no runtime; the whole suite runs this.
    predictor_class = pytest.importorskip("digits_runtime").Predictor
    proto = onnx.load(trained["dir"] / "model.onnx")
    initializers = {t.name for t in proto.graph.initializer}
    layers = [n for n in proto.graph.node if n.op_type in ("Conv", "Gemm") and n.input[1] in initializers]

    def broken(changes: dict) -> Path:
        model = onnx.load(trained["dir"] / "model.onnx")
        for tensor in model.graph.initializer:
            if tensor.name in changes:
                array = changes[tensor.name](numpy_helper.to_array(tensor).copy())
                tensor.CopyFrom(numpy_helper.from_array(array.astype(np.float32), tensor.name))
        path = tmp_path / f"{len(list(tmp_path.iterdir()))}.onnx"
        onnx.save(model, path)
        return path

    nan_bias = broken({layers[-1].input[2]: lambda b: np.where(np.arange(b.size) == 0, np.nan, b)})
    # The network is linear in each layer's scale (ReLU, max-pooling): 1e12 per layer is 1e48 at the end.
    overflow = broken({n.input[1]: lambda w: w * np.float32(1e12) for n in layers})
    for path in (nan_bias, overflow):
        with pytest.raises(DigitsError) as refused:
            predictor_class(path)
        assert str(refused.value).startswith(f"{path} gives NaN or infinity as ")
        assert str(refused.value).endswith(
            "for a blank image or a drawn digit: the model is broken (weights that are NaN or overflow); "
            "train and export it again"
        )


def test_same_seed_same_weights_and_same_onnx_bytes(trained, small_curated, tmp_path):
    again = fit(small_curated, tmp_path, trained["config"], threads=trained["threads"])
    assert again["best_val_metrics"] == trained["summary"]["best_val_metrics"]
    first = torch.load(trained["dir"] / "best.ckpt", weights_only=True)["state_dict"]
    second = torch.load(tmp_path / "best.ckpt", weights_only=True)["state_dict"]
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    export(tmp_path / "best.ckpt", tmp_path / "model.onnx")
    assert (tmp_path / "model.onnx").read_bytes() == (trained["dir"] / "model.onnx").read_bytes()


def test_failed_parity_check_leaves_no_model_file(trained, tmp_path, monkeypatch):
    from digits_core.errors import DigitsError
    from digits_train import export as export_module

    monkeypatch.setattr(export_module, "PARITY_ATOL", -1.0)  # no difference can pass
    out = tmp_path / "model.onnx"
    with pytest.raises(DigitsError, match="ONNX and torch probabilities differ by .* at batch size 1"):
        export(trained["dir"] / "best.ckpt", out)
    assert list(tmp_path.iterdir()) == []


def test_export_removes_what_a_killed_export_left(trained, tmp_path):
    orphan = tmp_path / ".model.onnx.k1ll3d.tmp"  # the scratch name atomic.write_bytes uses
    orphan.write_bytes(b"half a model")
    unrelated = tmp_path / ".other.onnx.k1ll3d.tmp"
    unrelated.write_bytes(b"not ours")
    export(trained["dir"] / "best.ckpt", tmp_path / "model.onnx")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".model.onnx.lock", ".other.onnx.k1ll3d.tmp", "model.onnx"]


def test_the_older_recipe_is_still_available_by_flags(small_curated, tmp_path):
    """Plateau schedule, early stopping and the best epoch on validation, without averaging."""
    config = FitConfig(
        epochs=3,
        schedule="plateau",
        selection="best",
        early_stopping=True,
        ema_decay=0.0,
        outlier_weight=0.0,
        limit_train_batches=0.5,
        printed=60,  # the schedule and the selection are under test, not the amount of data
    )
    summary = fit(small_curated, tmp_path, config, threads=1)
    rows = list(csv.DictReader((tmp_path / "lightning_logs" / "metrics.csv").read_text().splitlines()))
    val = [r for r in rows if r["val_macro_f1"]]
    assert [float(r["lr"]) for r in val] == pytest.approx([config.learning_rate] * 3)  # no plateau yet
    scores = [float(r["val_selection"]) for r in val]
    assert summary["best_epoch"] == scores.index(max(scores))
    checkpoint = torch.load(tmp_path / "best.ckpt", weights_only=True)
    assert "averaging_state" not in checkpoint
    assert checkpoint["epoch"] == summary["best_epoch"]


@pytest.mark.parametrize("target", OUTLIER_TARGETS)
def test_a_batch_of_outliers_only_has_a_finite_loss(target):
    config = FitConfig(augment=False, members=1, outlier_target=target)
    model = DigitsClassifier([0, 5, 8], 0.1, 0.3, [1.0, 1.0, 1.0], "f", config.to_dict(), "c")
    model.log = lambda *args, **kwargs: None  # no Trainer attached
    loss = model.training_step((torch.rand(1, 1, 28, 28), torch.tensor([OUTLIER])), 0)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
