"""Export a checkpoint to one self-describing ONNX file, verified before it is put in place.

The file follows the contract in :mod:`digits_core.contract`: input ``pixels`` float32
(N, 1, 28, 28) in [0, 1] with a dynamic batch, outputs ``logits`` and ``probabilities``, and
``metadata_props`` carrying labels, the curation fingerprint, validation metrics, the training
config, producer versions, the parity check that passed and the refusal rule (score and
threshold, chosen on validation data). The graph, its input and its outputs carry descriptions
(``doc_string``: range, polarity, centring), and ``producer_version`` and ``model_version`` say
which digits-train wrote it. The train-split normalization is inside the graph and deliberately
not in the metadata, where a consumer could take it for a step of its own.
"""

import json
import logging
import math
import os
import re
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
import torch
from torch import nn

from digits_core import atomic, contract, refusal
from digits_core.contract import OUTLIER_SPLITS
from digits_core.errors import DigitsError, first_line
from digits_core.images import pixels_from_uint8
from digits_core.refusal import RefusalRule
from digits_data import dataset, parallel, suite
from digits_train.config import NO_CHECKPOINT
from digits_train.fit import configure_torch
from digits_train.model import DigitsClassifier
from digits_train.quiet import LEAFSPEC_DEPRECATION, quiet

if TYPE_CHECKING:
    import onnxruntime as ort

OPSET = 18
DEGRADED_PER_FAMILY = 150  # validation digits degraded by each family when choosing the refusal score
DEGRADED_SEED = 31  # and their draw: fixed, so that export is deterministic
KNOWN_ACCEPT_RATE = 0.995
"""Share of validation digits the refusal threshold keeps. Above the 99% the product promises:
one validation image is 1/600 of the split, so a threshold at exactly 99% on val would accept
fewer than 99% of new digits about half the time."""
MIN_PROBABILITIES = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9)
"""The floors on the top digit's probability that the refusal rule may take (0: none)."""
PARITY_BATCH_SIZES = (1, 2, 7, 1000)
PARITY_ATOL = 1e-5
PRODUCERS = ("digits-data", "digits-train", "torch", "lightning", "onnx", "onnxscript", "onnxruntime")


class WithProbabilities(nn.Module):
    """The classifier with its softmax, so the graph returns logits and probabilities."""

    def __init__(self, classifier: DigitsClassifier) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.classifier(pixels)
        return logits, torch.softmax(logits, dim=1)


def load_checkpoint(path: str | os.PathLike) -> tuple[DigitsClassifier, dict]:
    """Load one of our checkpoints in eval mode; return the model and the raw checkpoint dict.

    Raises :class:`DigitsError` naming the file when it is missing, truncated, or not a
    digits-train checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise DigitsError(NO_CHECKPOINT.format(path=path))
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for a damaged file
        raise DigitsError(
            f"{path} is not a readable checkpoint (truncated or corrupt?): {first_line(exc)}"
        ) from None
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    needed = {"labels", "mean", "std", "class_weights", "fingerprint", "config", "curated_dir"}
    if not isinstance(hparams, dict) or not needed <= set(hparams) or "digits_val_metrics" not in checkpoint:
        raise DigitsError(f"{path} is not a digits-train checkpoint: it lacks the labels and normalization")
    model = DigitsClassifier(**{key: hparams[key] for key in needed})
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except (RuntimeError, KeyError) as exc:
        raise DigitsError(
            f"{path} does not match this version's network: {str(exc).splitlines()[0]}"
        ) from None
    return model.eval(), checkpoint


def to_onnx(model: DigitsClassifier) -> onnx.ModelProto:
    """Trace ``model`` with the dynamo exporter into an ONNX graph with a dynamic batch dimension."""
    example = torch.zeros(2, 1, contract.IMAGE_SIZE, contract.IMAGE_SIZE)
    batch = torch.export.Dim("batch", min=1, max=1_000_000)
    # The exporter logs that it skips torchvision's ops (torchvision is not installed), and
    # tracing meets Lightning's use of a deprecated pytree class: neither is ours to act on.
    # Training keeps the weights channels-last; the graph should not carry that layout's transposes.
    model = model.to(memory_format=torch.contiguous_format)
    with quiet({"torch.onnx": logging.ERROR}, [LEAFSPEC_DEPRECATION]), torch.no_grad():
        program = torch.onnx.export(
            WithProbabilities(model).eval(),
            (example,),
            dynamo=True,
            opset_version=OPSET,
            input_names=[contract.INPUT_NAME],
            output_names=[contract.LOGITS_NAME, contract.PROBABILITIES_NAME],
            dynamic_shapes=({0: batch},),
            external_data=False,
            verbose=False,
        )
    return program.model_proto


def parity(model: DigitsClassifier, session: "ort.InferenceSession", pixels: np.ndarray) -> dict:
    """Compare onnxruntime (``session`` on the exported graph) with torch at every batch size in
    PARITY_BATCH_SIZES.

    Raises :class:`DigitsError` if any argmax differs or any probability differs by more than
    PARITY_ATOL; returns what was checked, for the model's metadata.
    """
    # torch once for every image: what is checked is the graph at each batch size; torch's own
    # answer does not depend on how the images are batched (beyond 1e-7), and 1,644 small eager
    # calls took most of the check's time.
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(pixels)), dim=1).numpy()
    worst = 0.0
    for size in PARITY_BATCH_SIZES:
        got = np.concatenate(
            [
                session.run(
                    [contract.PROBABILITIES_NAME], {contract.INPUT_NAME: pixels[start : start + size]}
                )[0]
                for start in range(0, len(pixels), size)
            ]
        )
        if not np.array_equal(got.argmax(1), expected.argmax(1)):
            raise DigitsError(f"ONNX and torch disagree on a prediction at batch size {size}")
        worst = max(worst, float(np.abs(got - expected).max()))
        if worst > PARITY_ATOL:
            raise DigitsError(f"ONNX and torch probabilities differ by {worst:.2e} at batch size {size}")
    return {
        "images": len(pixels),
        "batch_sizes": list(PARITY_BATCH_SIZES),
        "max_abs_diff": worst,
        "tolerance": PARITY_ATOL,
        "argmax_identical": True,
    }


def refusal_inputs(curated: Path) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The validation data the refusal rule is chosen on, from the curated folder, as model inputs
    (N, 1, 28, 28): the known digits (the val split as arrays, then as the preprocessing reads
    them from a scan), the held-out outliers (other_val), and val digits degraded by every family
    of the suite with the digits they show."""

    def pixels(split: str) -> np.ndarray:
        return pixels_from_uint8(dataset.load_split(curated, split).images)[:, None]

    val = dataset.load_split(curated, "val")
    degraded = suite.degraded_split(val, DEGRADED_PER_FAMILY, DEGRADED_SEED, parallel.cores())
    # The known digits as arrays and as the preprocessing reads them from a scan: the rule must
    # keep both, and scans come out of the preprocessing less sure than MNIST's own pixels.
    scanned = suite.degraded_split(val, len(val), DEGRADED_SEED, parallel.cores(), families=("clean",))[0]
    known = np.concatenate([pixels("val"), scanned[:, None]])
    return known, pixels(OUTLIER_SPLITS[1]), (degraded[0][:, None], degraded[1])


def choose_refusal(
    session: "ort.InferenceSession",
    known: np.ndarray,
    other: np.ndarray,
    degraded: tuple[np.ndarray, np.ndarray] | None = None,
    labels: list[int] | None = None,
    known_accept_rate: float = KNOWN_ACCEPT_RATE,
) -> tuple[RefusalRule, dict, dict]:
    """Choose the refusal rule on validation data with onnxruntime's logits.

    ``known`` are validation digits, ``other`` the held-out outliers (other_val), ``degraded``
    validation digits degraded by every family of the suite, as (pixels, digits), ``labels`` the
    model's digits in output order. For every score and every floor on the top digit's
    probability in MIN_PROBABILITIES, the threshold keeps ``known_accept_rate`` of ``known`` (a
    floor that alone refuses more is skipped); the pair that then does the least harm wins: the
    share of ``other`` it accepts plus the share of ``degraded`` it accepts with a wrong digit.
    Returns the rule and, per score at its best floor, the share of ``other`` refused and of
    ``degraded`` accepted and wrong.
    """
    inputs = {"known": known, "other": other} | ({"degraded": degraded[0]} if degraded else {})
    logits = {
        name: session.run([contract.LOGITS_NAME], {contract.INPUT_NAME: pixels})[0]
        for name, pixels in inputs.items()
    }
    wrong = np.asarray(labels)[logits["degraded"].argmax(1)] != degraded[1] if degraded else None
    measured = {}  # (score, floor) -> (rule, share of other refused, share of degraded harmed)
    for kind in refusal.SCORES:
        for floor in MIN_PROBABILITIES:
            rule = _keeping(logits["known"], kind, floor, known_accept_rate)
            if rule is not None:
                harmed = float(np.mean(rule.accepts(logits["degraded"]) & wrong)) if degraded else 0.0
                measured[kind, floor] = (rule, float(np.mean(~rule.accepts(logits["other"]))), harmed)

    def harm(key: tuple[str, float]) -> float:
        return 1 - measured[key][1] + measured[key][2]

    best = {kind: min((key for key in measured if key[0] == kind), key=harm) for kind in refusal.SCORES}
    chosen = min(best.values(), key=harm)  # the first listed wins a tie: the lower floor
    refused = {kind: measured[key][1] for kind, key in best.items()}
    harmed = {kind: measured[key][2] for kind, key in best.items()} if degraded else {}
    return measured[chosen][0], refused, harmed


def _keeping(logits: np.ndarray, kind: str, floor: float, rate: float) -> RefusalRule | None:
    """The rule on ``kind`` with ``floor`` that accepts ``rate`` of the known digits' ``logits``,
    or None when the floor alone refuses more of them than that."""
    passing = refusal.scores(logits, "max_probability") >= floor
    needed = math.ceil(rate * len(logits) - 1e-9)
    if passing.sum() < needed:
        return None
    threshold = refusal.choose_threshold(refusal.scores(logits[passing], kind), needed / passing.sum())
    return RefusalRule(kind, threshold, rate, "val", floor)


def producer_versions() -> dict[str, str]:
    """Versions of the packages that produced the model."""
    return {name: metadata.version(name) for name in PRODUCERS}


def model_version(version: str) -> int:
    """ONNX's integer ``model_version`` for a digits-train version: 1.2.3 -> 1_002_003.

    Ordered as the versions are; pre-release and local parts are left out.
    """
    release = re.match(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", version)
    if release is None:
        raise DigitsError(f"digits-train's version {version!r} does not start with a number")
    major, minor, patch = (int(part or 0) for part in release.groups())
    return major * 1_000_000 + minor * 1_000 + patch


def describe(proto: onnx.ModelProto, labels: list[int], reject: bool) -> None:
    """Write what a consumer must know into ``proto`` itself: who produced it and at which
    version, and what the input and outputs hold (range, polarity, centring, order).

    ``reject``: the network has a "none of them" class, which its logits are relative to.
    """
    version = metadata.version("digits-train")
    proto.producer_name, proto.producer_version = "digits-train", version
    proto.model_version = model_version(version)
    digits = ", ".join(map(str, labels))
    either = f"{', '.join(map(str, labels[:-1]))} or {labels[-1]}"
    proto.doc_string = proto.graph.doc_string = (
        f"Classifies one handwritten digit as {either}, or refuses it as none of them (metadata "
        f"'{contract.META_REFUSAL}'). Input: '{contract.INPUT_NAME}' in MNIST form. Outputs: "
        f"'{contract.LOGITS_NAME}' and '{contract.PROBABILITIES_NAME}', one column per digit in "
        f"the order of metadata '{contract.META_LABELS}'."
    )
    docs = {
        contract.INPUT_NAME: (
            f"float32 (N, 1, {contract.IMAGE_SIZE}, {contract.IMAGE_SIZE}) in [0, 1]: white ink (1.0) "
            "on black (0.0), the digit fitted into 20x20 pixels and centred by its centre of mass, as "
            "in MNIST. The graph normalizes by itself: give the pixels in [0, 1] as they are, without "
            "subtracting a mean or dividing by a standard deviation."
        ),
        contract.LOGITS_NAME: (
            f"float32 (N, {len(labels)}): one column per digit ({digits}), "
            + (
                "the network's score for that digit minus its score for 'none of them'"
                if reject
                else "the network's score for that digit"
            )
            + "; the refusal rule is computed from these."
        ),
        contract.PROBABILITIES_NAME: (
            f"float32 (N, {len(labels)}): softmax of the logits, the probability of each digit "
            f"({digits}) given that the image is one of them."
        ),
    }
    for value in [*proto.graph.input, *proto.graph.output]:
        value.doc_string = docs[value.name]


def export(
    checkpoint_path: str | os.PathLike, output: str | os.PathLike, curated_dir: str | None = None
) -> dict:
    """Export ``checkpoint_path`` to ``output`` after checking it; return a summary.

    The parity check runs on the eval split of the curated folder the checkpoint was trained
    on (``curated_dir``, by default the folder recorded in the checkpoint), which must still
    have the fingerprint recorded in the checkpoint.
    """
    configure_torch()
    model, checkpoint = load_checkpoint(checkpoint_path)
    hparams = checkpoint["hyper_parameters"]
    curated = Path(curated_dir) if curated_dir else Path(hparams["curated_dir"])
    manifest_fingerprint = dataset.fingerprint(curated) if dataset.manifest_path(curated).is_file() else None
    if manifest_fingerprint != hparams["fingerprint"]:
        raise DigitsError(
            f"{checkpoint_path} was trained on curated data with fingerprint {hparams['fingerprint'][:12]}…, "
            f"but {curated} has {manifest_fingerprint and manifest_fingerprint[:12] + '…'}: "
            "pass the right --curated-dir"
        )

    proto = to_onnx(model)
    import onnxruntime as ort  # only export needs it, to check and measure the graph it wrote

    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    checked = parity(model, session, pixels_from_uint8(dataset.load_split(curated, "eval").images)[:, None])
    rule, other_refused, degraded_wrong = choose_refusal(session, *refusal_inputs(curated), hparams["labels"])
    val_metrics = (
        checkpoint["digits_val_metrics"]
        | {f"other_val_refused_{kind}": round(share, 6) for kind, share in other_refused.items()}
        | {f"degraded_val_accepted_wrong_{kind}": round(share, 6) for kind, share in degraded_wrong.items()}
    )
    meta = {
        contract.META_LABELS: json.dumps(hparams["labels"]),
        contract.META_FINGERPRINT: hparams["fingerprint"],
        contract.META_VAL_METRICS: json.dumps(val_metrics, sort_keys=True),
        contract.META_REFUSAL: rule.to_json(),
        contract.META_TRAINING_CONFIG: json.dumps(hparams["config"], sort_keys=True),
        contract.META_VERSIONS: json.dumps(producer_versions(), sort_keys=True),
        contract.META_PARITY: json.dumps(checked, sort_keys=True),
    }
    if "digits_trained_on" in checkpoint:  # checkpoints of older versions do not say
        meta[contract.META_TRAINED_ON] = json.dumps(checkpoint["digits_trained_on"], sort_keys=True)
    # Stack traces name absolute source paths: without them the bytes do not depend on the checkout.
    for node in proto.graph.node:
        kept = [p for p in node.metadata_props if p.key != "pkg.torch.onnx.stack_trace"]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
    onnx.helper.set_model_props(proto, meta)
    describe(proto, hparams["labels"], model.reject)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise DigitsError(f"the exported graph fails the ONNX checker: {str(exc).splitlines()[0]}") from None
    data = proto.SerializeToString(deterministic=True)
    with atomic.exclusive(output):  # one export at a time; removes what killed exports left
        atomic.write_bytes(output, data)
    params = sum(p.numel() for p in model.parameters())
    return {
        "output": str(output),
        "bytes": len(data),
        "parameters": params,
        "parity": checked,
        "refusal": asdict(rule),
        "other_val_refused": other_refused,
        "degraded_val_accepted_wrong": degraded_wrong,
    }
