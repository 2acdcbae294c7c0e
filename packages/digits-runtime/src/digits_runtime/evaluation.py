"""`digits evaluate` on curated data: a curated split, or the MNIST test set's digits.

The curated format and the MNIST files are read by digits-data, which the ``evaluate`` extra
installs (pip install 'digits-runtime[evaluate]'); predicting never needs it.
"""

import sys
from dataclasses import asdict

from digits_core.contract import META_FINGERPRINT
from digits_core.errors import DigitsError
from digits_data import dataset
from digits_runtime.metrics import refusal_summary, report
from digits_runtime.predictor import Predictor


def evaluate_split(
    predictor: Predictor,
    model: str,
    curated_dir: str,
    split: str,
    *,
    data_dir: str | None = None,
    with_predictions: bool = False,
) -> dict:
    """The report on ``split`` (a curated split, ``test`` or ``other``) as `digits evaluate --json` writes it.

    ``model`` is how the model was named; ``with_predictions`` adds it, the curation fingerprint
    and every prediction.
    """
    if split in ("test", "other"):
        data = dataset.load_test_split(curated_dir, data_dir=data_dir, other=split == "other")
    else:
        data = dataset.load_split(curated_dir, split)
    classes = dataset.load_manifest(curated_dir, verify=False)["classes"]
    if sorted(classes) != sorted(predictor.labels):
        raise DigitsError(
            f"{model} has labels {list(predictor.labels)} but {curated_dir} holds the digits {classes}: "
            "the model and the data disagree; evaluate the model on the curated data it was trained on"
        )
    fingerprint = dataset.fingerprint(curated_dir)
    if predictor.metadata.get(META_FINGERPRINT) != fingerprint:
        print(
            f"digits: warning: {model} was trained on other curated data than {curated_dir} "
            "(fingerprints differ); the numbers may not mean what you think",
            file=sys.stderr,
        )
    classified = predictor.classify(data.images)
    rule = None if predictor.refusal is None else asdict(predictor.refusal)
    refusal = refusal_summary(data.labels, classified.accepted, rule, predictor.score_kind)
    if split == "other":  # not 0, 5 or 8: only refusing them is right
        result = {"split": split, "n": len(data), "refusal": refusal}
    else:
        result = {"split": split, **report(data.labels, classified.predicted, predictor.labels)}
        result["refusal"] = refusal
    if with_predictions:
        result |= {
            "model": str(model),
            "fingerprint": fingerprint,
            "predictions": [
                {
                    "index": int(i),
                    "label": int(t),
                    "prediction": int(p),
                    "probs": [round(float(x), 6) for x in row],
                    "score": float(s),  # unrounded: the trade-off curve is drawn from these
                    "accepted": bool(a),
                }
                for i, t, p, row, s, a in zip(
                    data.indices,
                    data.labels,
                    classified.predicted,
                    classified.probabilities,
                    classified.scores,
                    classified.accepted,
                    strict=True,
                )
            ],
        }
    return result
