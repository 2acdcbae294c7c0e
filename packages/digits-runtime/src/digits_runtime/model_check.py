"""Whether an ONNX model is a digits model: its input, outputs and labels follow the contract, it
answers known images with numbers, and its refusal rule (if any) can be read."""

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from digits_core import contract
from digits_core.errors import DigitsError, first_line
from digits_core.refusal import RefusalRule


def check_model(session: Any, metadata: Mapping[str, str], name: str) -> tuple[int, ...]:
    """The labels of the model in ``session``; a :class:`DigitsError` naming ``name`` unless it follows
    the model contract (one float input of N images, logits and probabilities of one column per
    label, labels in its metadata) and answers known images with numbers."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    size = contract.IMAGE_SIZE
    if len(inputs) != 1 or inputs[0].name != contract.INPUT_NAME or inputs[0].type != "tensor(float)":
        found = ", ".join(f"{i.name} {i.type}" for i in inputs)
        raise DigitsError(f"{name} does not take one float input '{contract.INPUT_NAME}' (it takes {found})")
    if list(inputs[0].shape[1:]) != [1, size, size] or len(inputs[0].shape) != 4:
        raise DigitsError(
            f"{name} expects input shape {inputs[0].shape}, not (N, 1, {size}, {size}): not a digits model"
        )
    names = {o.name for o in outputs}
    if {contract.LOGITS_NAME, contract.PROBABILITIES_NAME} - names:
        raise DigitsError(
            f"{name} lacks the outputs '{contract.LOGITS_NAME}' and '{contract.PROBABILITIES_NAME}'"
        )
    text = metadata.get(contract.META_LABELS)
    if text is None:
        raise DigitsError(f"{name} has no '{contract.META_LABELS}' metadata: not a digits model")
    try:
        found = json.loads(text)
    except ValueError:
        raise DigitsError(
            f"{name} has '{contract.META_LABELS}' metadata that is not JSON ({text[:40]!r}): "
            "not a digits model"
        ) from None
    try:
        labels = contract.check_labels(found)
    except ValueError as exc:
        raise DigitsError(
            f"{name} has labels {json.dumps(found)} ({exc}): a digits model's labels are "
            f"{contract.LABELS_RULE}; export it again with `digits-train export`"
        ) from None
    batch = inputs[0].shape[0]
    if isinstance(batch, int):
        raise DigitsError(
            f"{name} takes a fixed batch of {batch} image(s): export it with a dynamic batch dimension"
        )
    # The output width is often symbolic in the graph: run known images to see it, and to see
    # that the model answers them with numbers (not NaN or infinity).
    probes = _probe_images()
    try:
        results = session.run([o.name for o in outputs], {contract.INPUT_NAME: probes})
    except Exception as exc:  # onnxruntime raises its own types
        raise DigitsError(f"{name} fails on a batch of {len(probes)} images: {first_line(exc)}") from None
    named = {
        o.name: r
        for o, r in zip(outputs, results, strict=True)
        if o.name in (contract.LOGITS_NAME, contract.PROBABILITIES_NAME)
    }
    for output, result in named.items():
        if result.shape != (len(probes), len(labels)):
            raise DigitsError(
                f"{name} gives '{output}' of shape {list(result.shape[1:])} per image "
                f"but has {len(labels)} labels {list(labels)}: its outputs do not match its labels"
            )
    for output, result in named.items():
        if not np.isfinite(result).all():
            raise DigitsError(
                f"{name} gives NaN or infinity as '{output}' for a blank image or a drawn digit: "
                "the model is broken (weights that are NaN or overflow); train and export it again"
            )
    return labels


def read_refusal(metadata: Mapping[str, str], name: str) -> RefusalRule | None:
    """The refusal rule in the model's metadata; None for a model without one."""
    text = metadata.get(contract.META_REFUSAL)
    if text is None:
        return None
    try:
        return RefusalRule.from_json(text)
    except ValueError as exc:
        raise DigitsError(
            f"{name} has malformed '{contract.META_REFUSAL}' metadata ({exc}): "
            "export the model again with `digits-train export`"
        ) from None


def _probe_images() -> np.ndarray:
    """Known input (2, 1, 28, 28) that a working model answers with numbers: a blank image and a drawn 0.

    Blank alone would not do: zero pixels times weights scaled to overflow are still zero; ink
    times them is not.
    """
    size = contract.IMAGE_SIZE
    ys, xs = np.mgrid[0:size, 0:size] - (size - 1) / 2
    oval = np.hypot(ys / 9.0, xs / 6.5)  # 1 on an upright oval 18 pixels tall, 13 wide
    zero = np.clip(1.0 - 5.0 * np.abs(oval - 1.0), 0.0, 1.0)  # a stroke some 3 pixels wide
    return np.stack([np.zeros_like(zero), zero]).astype(np.float32)[:, None]
