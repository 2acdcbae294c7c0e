"""Classification metrics with numpy: per-class precision/recall/F1, accuracy, confusion matrix."""

from collections.abc import Sequence

import numpy as np

from digits_core.refusal import RefusalRule


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """Counts (len(labels), len(labels)): rows are true digits, columns predicted digits."""
    index = {d: i for i, d in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(matrix, ([index[int(t)] for t in truth], [index[int(p)] for p in predicted]), 1)
    return matrix


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


def report(truth: np.ndarray, predicted: np.ndarray, labels: Sequence[int]) -> dict:
    """Return accuracy, macro F1 and per-class precision, recall, F1 and support, with the matrix."""
    matrix = confusion_matrix(truth, predicted, labels)
    per_class = {}
    for i, digit in enumerate(labels):
        tp = matrix[i, i]
        precision = _ratio(tp, matrix[:, i].sum())
        recall = _ratio(tp, matrix[i].sum())
        f1 = _ratio(2 * precision * recall, precision + recall)
        per_class[str(digit)] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": int(matrix[i].sum()),
        }
    n = int(matrix.sum())
    return {
        "n": n,
        "accuracy": _ratio(np.trace(matrix), n),
        "macro_f1": float(np.mean([c["f1"] for c in per_class.values()])),
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "labels": list(labels),
    }


def format_report(result: dict) -> str:
    """Render a report like scikit-learn's classification_report, then the labelled confusion matrix."""
    labels = result["labels"]
    rows = [f"{'':>14}{'precision':>10}{'recall':>10}{'f1-score':>10}{'support':>10}", ""]
    for digit in labels:
        c = result["per_class"][str(digit)]
        rows.append(
            f"{'digit ' + str(digit):>14}{c['precision']:>10.4f}{c['recall']:>10.4f}{c['f1']:>10.4f}"
            f"{c['support']:>10}"
        )
    n = result["n"]
    stats = list(result["per_class"].values())
    weights = np.array([c["support"] for c in stats], dtype=np.float64)

    def mean(key: str, w: np.ndarray | None = None) -> float:
        return float(np.average([c[key] for c in stats], weights=w))

    rows += [
        "",
        f"{'accuracy':>14}{'':>10}{'':>10}{result['accuracy']:>10.4f}{n:>10}",
        f"{'macro avg':>14}{mean('precision'):>10.4f}{mean('recall'):>10.4f}{mean('f1'):>10.4f}{n:>10}",
        f"{'weighted avg':>14}{mean('precision', weights):>10.4f}{mean('recall', weights):>10.4f}"
        f"{mean('f1', weights):>10.4f}{n:>10}",
        "",
        "confusion matrix (rows: true digit, columns: predicted digit)",
        f"{'':>14}" + "".join(f"{'pred ' + str(d):>10}" for d in labels),
    ]
    for digit, row in zip(labels, result["confusion_matrix"], strict=True):
        rows.append(f"{'true ' + str(digit):>14}" + "".join(f"{v:>10}" for v in row))
    return "\n".join(rows)


def refusal_summary(truth: np.ndarray, accepted: np.ndarray, rule: dict | None, score: str) -> dict:
    """Count the refused images, overall and per true digit.

    ``rule`` is the model's refusal rule as a dict (None: it has none and accepts everything),
    ``score`` the name of the score the images were given.
    """
    refused = ~np.asarray(accepted, dtype=bool)
    per_digit = {}
    for digit in np.unique(truth):
        mine = truth == digit
        per_digit[str(int(digit))] = _refused(int(mine.sum()), int(refused[mine].sum()))
    return {
        "rule": rule,
        "score": score,
        **_refused(len(refused), int(refused.sum())),
        "per_digit": per_digit,
    }


def _refused(n: int, refused: int) -> dict:
    return {"n": n, "refused": refused, "share_refused": _ratio(refused, n)}


def format_refusal(summary: dict) -> str:
    """Render how many images the refusal rule turned away, overall and per true digit."""
    rule = summary["rule"]
    if rule is None:
        head = "refusal: the model has no refusal rule, so it accepts every image"
    else:
        head = (
            f"refusal: accepted when {RefusalRule(**rule).condition()} "
            f"(chosen to accept {rule['known_accept_rate']:.2%} of {rule['chosen_on']} digits)"
        )
    rows = [head, f"{'digit':<8}{'refused':>10}{'images':>10}{'share':>10}"]
    for digit, c in [("all", summary), *summary["per_digit"].items()]:
        rows.append(f"{digit:<8}{c['refused']:>10}{c['n']:>10}{c['share_refused']:>10.2%}")
    return "\n".join(rows)
