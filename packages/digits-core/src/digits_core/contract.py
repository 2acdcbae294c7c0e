"""Facts that training and inference must agree on, defined once.

The ONNX model written by digits-train and read by digits-runtime follows this contract:
input ``INPUT_NAME`` is float32 (N, 1, 28, 28) in [0, 1], white ink on black; outputs are
``LOGITS_NAME`` and ``PROBABILITIES_NAME``, both (N, len(labels)); ``metadata_props`` carry the
keys below as strings (JSON where structured). The graph, the input and the outputs say the same
in their ``doc_string``; ``producer_version`` is digits-train's version, and ``model_version`` the
same as one integer (major * 1,000,000 + minor * 1,000 + patch).
"""

import json

CLASSES: tuple[int, ...] = (0, 5, 8)
"""The digits the product classifies, in model output order."""

LOOK_LIKE_CLASSES = "OoSsB"
"""Letters people write like a 0, 5 or 8. The model is meant to read them as those digits, not to
refuse them: training leaves them out of its outliers, and the handwriting evaluation reports
them apart from the other letters."""

SPLITS: tuple[str, ...] = ("train", "val", "eval")
"""The curated splits, each stored as ``<split>.npz`` beside ``manifest.json``."""

OUTLIER_SPLITS: tuple[str, ...] = ("other_train", "other_val")
"""Splits of the MNIST training set's other digits (not in the curated classes), for learning to
refuse them (``other_train``) and choosing the refusal threshold (``other_val``)."""
MANIFEST_NAME = "manifest.json"

IMAGE_SIZE = 28
"""Model input side length in pixels (MNIST)."""

INPUT_NAME = "pixels"
LOGITS_NAME = "logits"
PROBABILITIES_NAME = "probabilities"

# metadata_props keys of the ONNX model.
META_LABELS = "labels"  # JSON list of digits in output order, e.g. "[0, 5, 8]"
META_FINGERPRINT = "curation_fingerprint"  # sha256 hex of manifest.json
META_VAL_METRICS = "validation_metrics"  # JSON object of the exported checkpoint's val metrics
META_VERSIONS = "producer_versions"  # JSON object: package name -> version
META_TRAINING_CONFIG = "training_config"  # JSON object: the resolved training config
META_PARITY = "export_parity"  # JSON object: the onnxruntime-vs-torch check that passed
META_TRAINED_ON = "trained_on"  # JSON object: CPU kernels, CPU maker and threads that computed the weights
META_REFUSAL = "refusal"  # JSON object: the refusal rule (see digits_core.refusal); absent: accept all
# No normalization keys: the graph normalizes its input itself, and statistics beside it would
# invite a consumer to normalize a second time (the curated manifest records them).


LABELS_RULE = "at least two distinct whole digits 0-9"
"""What a model's labels and a curation's classes must be."""


def check_labels(labels: object) -> tuple[int, ...]:
    """Return ``labels`` as a tuple if they are :data:`LABELS_RULE`; else raise ``ValueError`` saying why.

    The rule for a model's labels and a curation's classes alike: JSON lets ``true``, ``5.2``,
    ``-1`` or ``1e400`` (infinity) through, and none of them names a digit. The message says
    only what is wrong (``"true is not a whole digit 0-9"``); callers name the file.
    """
    if not isinstance(labels, list | tuple):
        raise ValueError("they are not a list of digits")
    for label in labels:
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label <= 9:
            raise ValueError(f"{json.dumps(label)} is not a whole digit 0-9")
    if len(labels) < 2:
        raise ValueError("fewer than two digits")
    repeated = sorted({d for d in labels if labels.count(d) > 1})
    if repeated:
        raise ValueError(f"{repeated[0]} is given more than once")
    return tuple(labels)
