"""The model on degraded digits: every image of the degradation suite through the product's own path.

Each suite image is read as a file would be (``load_image`` on the decoded pixels: polarity,
background, crop and centring), then classified with the model's refusal rule. For each source
(the MNIST test set, the generated handwriting) and each family this reports the accuracy, the
share accepted, and the share accepted and wrong: a wrong digit the refusal rule let through, the
one answer that does harm. An image the preprocessing finds no digit in counts as refused.
"""

import numpy as np

from digits_runtime.predictor import Predictor

EXAMPLES = 10  # MNIST test images of each family whose answers are kept, for the report's figure


def _shares(correct: np.ndarray, accepted: np.ndarray, readable: np.ndarray) -> dict:
    return {
        "n": len(correct),
        "accuracy": round(float(correct.mean()), 4),
        "accepted": round(float(accepted.mean()), 4),
        "accepted_wrong": round(float((accepted & ~correct).mean()), 4),
        "unreadable": int((~readable).sum()),
    }


def evaluate(
    predictor: Predictor,
    manifest: dict,
    arrays: dict[str, np.ndarray],
    pixels: np.ndarray,
    readable: np.ndarray,
) -> dict:
    """Per source and family: accuracy, accepted, accepted and wrong, unreadable; then a summary
    over the degraded families (``clean`` left out) of each source."""
    classified = predictor.classify(pixels)
    accepted = classified.accepted & readable
    correct = (classified.predicted == arrays["labels"]) & readable
    result: dict = {
        "families": manifest["families"],
        "groups": manifest["groups"],
        "sources": {},
        "examples": {},
    }
    for s, source in enumerate(manifest["sources"]):
        rows = {}
        for f, family in enumerate(manifest["families"]):
            which = (arrays["source"] == s) & (arrays["family"] == f)
            if which.any():
                rows[family] = _shares(correct[which], accepted[which], readable[which])
        if s == 0:  # the first MNIST test images of each family, with the answers they got
            for f, family in enumerate(manifest["families"]):
                shown = np.flatnonzero((arrays["source"] == s) & (arrays["family"] == f))[:EXAMPLES]
                result["examples"][family] = [
                    {
                        "row": int(i),
                        "label": int(arrays["labels"][i]),
                        "prediction": int(classified.predicted[i]),
                        "accepted": bool(accepted[i]),
                    }
                    for i in shown
                ]
        degraded = [row for family, row in rows.items() if family != "clean"]
        worst = min((family for family in rows if family != "clean"), key=lambda f: rows[f]["accuracy"])
        result["sources"][source] = {
            "families": rows,
            "summary": {
                "mean_accuracy": round(float(np.mean([r["accuracy"] for r in degraded])), 4),
                "min_accuracy": rows[worst]["accuracy"],
                "worst_family": worst,
                "mean_accepted_wrong": round(float(np.mean([r["accepted_wrong"] for r in degraded])), 4),
                "max_accepted_wrong": max(r["accepted_wrong"] for r in degraded),
                "clean_accepted": rows["clean"]["accepted"],
            },
        }
    return result


def table(result: dict) -> str:
    """The per-family results as a text table, one block per source."""
    lines = []
    for source, block in result["sources"].items():
        lines.append(f"{source}: {'family':<16} {'accuracy':>9} {'accepted':>9} {'acc. wrong':>11}")
        for family, row in block["families"].items():
            lines.append(
                f"{'':{len(source) + 2}}{family:<16} {row['accuracy']:>9.4f} {row['accepted']:>9.4f} "
                f"{row['accepted_wrong']:>11.4f}"
            )
        s = block["summary"]
        lines.append(
            f"{'':{len(source) + 2}}mean accuracy {s['mean_accuracy']:.4f}, worst {s['worst_family']} "
            f"{s['min_accuracy']:.4f}, accepted and wrong at most {s['max_accepted_wrong']:.4f}\n"
        )
    return "\n".join(lines)
