"""`digits evaluate --split handwriting`: the model on handwriting that is not MNIST, the set
`digits-data handwriting` generates.

Every image goes through the product's own path (`load_image`, then `Predictor`). Reported:
accuracy on the 0/5/8 images, overall, as a confusion matrix and per style (glyph, cursive,
slant, pen, size, polarity); the share of other digits and letters given a top probability of
at least 0.9 (a confident wrong answer); and, when the model carries a refusal rule, the share of
0/5/8 accepted and of other digits and letters refused, per style and per character, and apart
for the letters written like 0, 5 or 8 (``contract.LOOK_LIKE_CLASSES``), which the model is meant
to read as those digits.

The set is read by digits-data, which the ``evaluate`` extra installs.
"""

from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np

from digits_core import contract
from digits_core.images import ImageError, load_image
from digits_data import handwriting
from digits_data.dataset import sha256_file
from digits_runtime.predictor import Predictor

CONFIDENT = 0.9  # a top probability at least this high is a confident answer
AXES = ("glyph", "cursive", *handwriting.AXES)  # the style tags results are broken down by


def _share(values: list[bool]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


def evaluate(predictor: Predictor, directory: str | Path) -> dict:
    """Predict every image of the generated set in ``directory``; return the results as a dict."""
    directory = Path(directory)
    manifest = handwriting.load_manifest(directory)
    entries, pixels, unreadable = [], [], []
    for entry in manifest["samples"]:
        try:
            pixels.append(load_image(directory / entry["file"]))
            entries.append(entry)
        except ImageError as exc:
            unreadable.append({"file": entry["file"], "error": str(exc)})
    predictions = predictor.predict_many(pixels)
    labels = list(predictor.labels)

    rows = []
    for entry, prediction in zip(entries, predictions, strict=True):
        rows.append(
            {
                "entry": entry,
                "correct": entry["kind"] == "known" and prediction.prediction == int(entry["label"]),
                "prediction": prediction.prediction,
                "top": max(prediction.probs.values()),
                "accepted": prediction.accepted,
            }
        )
    known = [r for r in rows if r["entry"]["kind"] == "known"]
    others = {kind: [r for r in rows if r["entry"]["kind"] == kind] for kind in ("other_digit", "letter")}

    confusion = np.zeros((len(labels), len(labels)), dtype=int)
    for r in known:
        confusion[labels.index(int(r["entry"]["label"])), labels.index(r["prediction"])] += 1

    def breakdown(group: list[dict], measure) -> dict:
        table: dict = {}
        for axis in AXES:
            levels = defaultdict(list)
            for r in group:
                level = r["entry"]["styles"][axis]
                if axis == "glyph":
                    level = f"{r['entry']['label']} {level}"
                levels[level].append(measure(r))
            table[axis] = {level: {"n": len(v), "share": _share(v)} for level, v in sorted(levels.items())}
        return table

    result = {
        "model": str(predictor.path),
        "handwriting_dir": str(directory),
        "manifest_sha256": sha256_file(directory / contract.MANIFEST_NAME),
        "seed": manifest["seed"],
        "per_style": manifest["per_style"],
        "n": {"known": len(known), **{kind: len(group) for kind, group in others.items()}},
        "unreadable": unreadable,
        "known": {
            "accuracy": _share([r["correct"] for r in known]),
            "labels": labels,
            "confusion_matrix": confusion.tolist(),
            "accuracy_by_style": breakdown(known, lambda r: r["correct"]),
            "misread": [
                {"file": r["entry"]["file"], "label": int(r["entry"]["label"]), "prediction": r["prediction"]}
                for r in known
                if not r["correct"]
            ],
        },
        "confident": {kind: _share([r["top"] >= CONFIDENT for r in group]) for kind, group in others.items()},
        "refusal_rule": None if predictor.refusal is None else asdict(predictor.refusal),
        "refusal": None,
    }
    if predictor.refusal is not None:  # without a rule every image is accepted
        everything_else = others["other_digit"] + others["letter"]
        look_alike = [r for r in everything_else if r["entry"]["label"] in contract.LOOK_LIKE_CLASSES]
        unlike = [r for r in everything_else if r["entry"]["label"] not in contract.LOOK_LIKE_CLASSES]
        result["refusal"] = {
            "known_accepted": _share([r["accepted"] for r in known]),
            "known_accuracy_when_accepted": _share([r["correct"] for r in known if r["accepted"]]),
            "other_digit_refused": _share([not r["accepted"] for r in others["other_digit"]]),
            "letter_refused": _share([not r["accepted"] for r in others["letter"]]),
            "others_refused": _share([not r["accepted"] for r in everything_else]),
            # Letters written like a 0, 5 or 8 are counted in "others" but meant to be read as
            # digits: the share refused of everything else says how well the rule refuses.
            "look_alikes_refused": _share([not r["accepted"] for r in look_alike]),
            "unlike_digits_refused": _share([not r["accepted"] for r in unlike]),
            "known_accepted_by_style": breakdown(known, lambda r: r["accepted"]),
            "others_refused_by_style": breakdown(everything_else, lambda r: not r["accepted"]),
            "refused_by_character": {
                label: _share([not r["accepted"] for r in everything_else if r["entry"]["label"] == label])
                for label in sorted(
                    {r["entry"]["label"] for r in everything_else}, key=lambda s: (s.isalpha(), s)
                )
            },
        }
    return result


def format_table(result: dict) -> str:
    """The results as the plain-text table `digits evaluate --split handwriting` prints."""
    n, known, refusal = result["n"], result["known"], result["refusal"]
    lines = [
        f"handwriting set {result['handwriting_dir']}: {n['known']} images of 0/5/8, "
        f"{n['other_digit']} other digits, {n['letter']} letters; model {result['model']}",
        f"0/5/8 accuracy {known['accuracy']:.4f} ({n['known'] - len(known['misread'])}/{n['known']})",
        "confusion (rows: true digit, columns: predicted)",
        "       " + "".join(f"{d:>6}" for d in known["labels"]),
    ]
    for d, row in zip(known["labels"], known["confusion_matrix"], strict=True):
        lines.append(f"  {d:>5}" + "".join(f"{v:>6}" for v in row))
    header = f"  {'style':<26}{'n':>5}{'accuracy':>10}"
    if refusal:
        header += f"{'accepted':>10}{'others refused':>16}"
    lines += [
        "0/5/8 by style" + ("; refusal of other digits and letters by the same style" if refusal else ""),
        header,
    ]
    for axis in AXES:
        for level, cell in known["accuracy_by_style"][axis].items():
            line = f"  {axis + ' ' + level:<26}{cell['n']:>5}{cell['share']:>10.4f}"
            if refusal:
                accepted = refusal["known_accepted_by_style"][axis][level]["share"]
                other = refusal["others_refused_by_style"][axis].get(level, {}).get("share")
                line += f"{accepted:>10.4f}" + (f"{other:>16.4f}" if other is not None else f"{'-':>16}")
            lines.append(line)
    confident = result["confident"]
    lines.append(
        f"top probability >= {CONFIDENT}: other digits {confident['other_digit']:.4f}, "
        f"letters {confident['letter']:.4f}"
    )
    if refusal:
        lines.append(
            f"accepted: 0/5/8 {refusal['known_accepted']:.4f}; refused: other digits "
            f"{refusal['other_digit_refused']:.4f}, letters {refusal['letter_refused']:.4f}, "
            f"both {refusal['others_refused']:.4f}"
        )
        if refusal["look_alikes_refused"] is not None:
            look_alikes = ", ".join(contract.LOOK_LIKE_CLASSES)
            lines.append(
                f"of those, letters written like 0, 5 or 8 ({look_alikes}) refused "
                f"{refusal['look_alikes_refused']:.4f}; all the others {refusal['unlike_digits_refused']:.4f}"
            )
        lines.append(
            "refused by character: "
            + ", ".join(f"{label} {share:.2f}" for label, share in refusal["refused_by_character"].items())
        )
    else:
        lines.append("the model carries no refusal rule: every image is answered as 0, 5 or 8")
    if result["unreadable"]:
        lines.append(
            f"{len(result['unreadable'])} images could not be read: {result['unreadable'][0]['error']}"
        )
    return "\n".join(lines)
