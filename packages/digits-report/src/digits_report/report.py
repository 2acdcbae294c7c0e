"""One HTML page on the data, the training and the model's errors, built from what the pipeline wrote.

Reads the curated manifest and splits, the training logs and summary, the ONNX model's
metadata, the evaluation JSON files and the step timings; recomputes nothing that exists.
Writes ``index.html``, its PNG figures and ``report.json`` into a temporary folder that then
replaces the output folder, so a crash never leaves a half-written report.
"""

import json
import os
import shutil
from pathlib import Path

import jinja2
import numpy as np

from digits_core import atomic, contract, layout
from digits_data import dataset
from digits_data.contact_sheet import write_contact_sheet
from digits_report import degradation, figures, handwriting
from digits_report.inputs import read_epochs, read_json, read_model_metadata, read_timings
from digits_report.refusal import refusal_section

LEAST_CONFIDENT = 24  # correct eval predictions shown, least confident first

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("digits_report"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,  # a missing number is a bug, not an empty cell
    trim_blocks=True,
    lstrip_blocks=True,
)


STEP = "digits-report"


def write_report(
    curated_dir: str | os.PathLike,
    train_dir: str | os.PathLike,
    model: str | os.PathLike,
    eval_dir: str | os.PathLike,
    timings_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    handwriting_dir: str | os.PathLike = layout.HANDWRITING_DIR,
    suite_dir: str | os.PathLike = layout.SUITE_DIR,
) -> Path:
    """Build the report in ``output_dir``; return the path of its ``index.html``.

    Raises:
        DigitsError: An input is missing or unreadable; the message names it and the make target.
    """
    curated_dir, train_dir, model = Path(curated_dir), Path(train_dir), Path(model)
    eval_dir, output_dir = Path(eval_dir), Path(output_dir)
    manifest = dataset.load_manifest(curated_dir)
    summary = read_json(train_dir / "summary.json", "train")
    epochs = read_epochs(train_dir / "lightning_logs" / "metrics.csv")
    meta = read_model_metadata(model)
    results = {name: read_json(eval_dir / f"{name}.json", "evaluate") for name in ("eval", "test")}
    other = read_json(eval_dir / "other.json", "evaluate")
    timings = read_timings(Path(timings_dir))
    labels = list(manifest["classes"])

    # Written in a scratch folder that replaces output_dir whole; two runs at once take turns. A folder
    # without a record of its content is never replaced: a report's own files (a page, its numbers,
    # PNGs) prove nothing, as any site holds such files.
    with atomic.atomic_dir(output_dir, STEP) as scratch:
        drawn = {
            "counts": figures.plot_counts(manifest, scratch),
            "samples": contact_sheet(curated_dir, scratch),
            "training": figures.plot_training(epochs, summary, labels, scratch),
            "confusion_eval": figures.plot_confusion(results["eval"], scratch, "eval split"),
            "confusion_test": figures.plot_confusion(results["test"], scratch, "MNIST test digits"),
        }
        refusal, drawn["refusal_tradeoff"] = refusal_section(results | {"other": other}, eval_dir, scratch)
        handwritten, hand_drawn = handwriting.draw_section(eval_dir, Path(handwriting_dir), scratch)
        drawn |= hand_drawn
        degraded, degraded_drawn = degradation.draw_section(eval_dir, Path(suite_dir), scratch)
        drawn |= degraded_drawn
        eval_split = dataset.load_split(curated_dir, "eval", verify=False)
        predictions = results["eval"]["predictions"]
        wrong = [p for p in predictions if p["label"] != p["prediction"]]
        right = [p for p in predictions if p["label"] == p["prediction"]]
        unsure = sorted(right, key=lambda p: p["probs"][labels.index(p["label"])])[:LEAST_CONFIDENT]
        drawn["errors"] = figures.plot_gallery(
            *_gallery_items(labels, eval_split, wrong),
            scratch,
            "errors.png",
            f"Every misclassified eval image ({len(wrong)})",
        )
        drawn["least_confident"] = figures.plot_gallery(
            *_gallery_items(labels, eval_split, unsure),
            scratch,
            "least_confident.png",
            f"The {len(unsure)} least confident correct eval predictions",
        )
        numbers = {
            "fingerprint": dataset.fingerprint(curated_dir),
            "counts": {s: manifest["splits"][s]["counts"] for s in contract.SPLITS},
            "training": {
                k: summary[k] for k in ("epochs_run", "best_epoch", "stopped_early", "stopped_epoch")
            }
            | {
                "best_val_metrics": summary["best_val_metrics"],
                "wall_time_seconds": summary["wall_time_seconds"],
                # Runs before the final-weights default kept the best epoch, without averaging.
                "selection": summary["config"].get("selection", "best"),
                "ema_decay": summary["config"].get("ema_decay", 0.0),
                "members": summary["config"].get("members", 1),
            },
            "evaluation": {
                name: {
                    k: r[k] for k in ("split", "n", "accuracy", "macro_f1", "per_class", "confusion_matrix")
                }
                for name, r in results.items()
            },
            "misclassified_eval": [
                {k: p[k] for k in ("index", "label", "prediction", "probs")} for p in wrong
            ],
            "parity": json.loads(meta.get(contract.META_PARITY, "{}")),
            "versions": json.loads(meta.get(contract.META_VERSIONS, "{}")),
            "trained_on": json.loads(meta.get(contract.META_TRAINED_ON, "null")),
            "hyperparameters": json.loads(meta.get(contract.META_TRAINING_CONFIG, "{}")),
            "timings_seconds": timings,
            "refusal": refusal,
            "handwriting": handwritten,
            "degraded": degraded and {k: degraded[k] for k in ("families", "groups", "sources")},
            "figures": {k: v for k, v in drawn.items() if v},
        }
        atomic.write_text(scratch / "report.json", json.dumps(numbers, indent=2) + "\n")
        atomic.write_text(scratch / "index.html", render(numbers, drawn, model, labels))
    return output_dir / "index.html"


def contact_sheet(curated_dir: Path, out: Path) -> str:
    """The contact sheet `make inspect` drew, copied; drawn here if it is missing or older than the data."""
    existing = curated_dir / "samples.png"
    if existing.is_file() and existing.stat().st_mtime >= dataset.manifest_path(curated_dir).stat().st_mtime:
        shutil.copyfile(existing, out / "samples.png")
        return "samples.png"
    return write_contact_sheet(curated_dir, out / "samples.png").name


def _gallery_items(
    labels: list[int], split: dataset.Split, picks: list[dict]
) -> tuple[np.ndarray, list[str]]:
    """The images of ``picks`` (evaluation predictions) from ``split``, with their captions."""
    position = {int(i): k for k, i in enumerate(split.indices)}
    size = contract.IMAGE_SIZE
    images = (
        np.stack([split.images[position[p["index"]]] for p in picks]) if picks else np.zeros((0, size, size))
    )
    captions = [
        f"true {p['label']} → {p['prediction']}\np={max(p['probs']):.3f} (#{p['index']})"
        if p["label"] != p["prediction"]
        else f"{p['label']}, p={p['probs'][labels.index(p['label'])]:.3f}\n(#{p['index']})"
        for p in picks
    ]
    return images, captions


def render(numbers: dict, drawn: dict[str, str | None], model: Path, labels: list[int]) -> str:
    """The page itself, from ``templates/index.html``: sections with captions, tables from ``numbers``."""
    digits = ", ".join(map(str, labels))
    parity = numbers["parity"]
    card = {
        "intended use": f"classify a single handwritten digit image as one of {digits}",
        "not for": f"{_not_for(numbers['refusal'], digits)}; multi-digit images; "
        "tasks where a wrong answer is costly without human review",
        "model file": str(model),
        "data fingerprint": numbers["fingerprint"],
        "ONNX parity": f"onnxruntime vs torch on {parity.get('images')} eval images, batch sizes "
        f"{parity.get('batch_sizes')}: argmax identical, max |Δp| {parity.get('max_abs_diff', 0.0):.1e}",
    }
    recorded = numbers["timings_seconds"].items()
    timings = {step: "not recorded" if s is None else f"{s:.1f} s" for step, s in recorded}
    hyperparameters = {k: v for k, v in numbers["hyperparameters"].items() if k != "limit_train_batches"}
    return _TEMPLATES.get_template("index.html").render(
        digits=digits,
        figures=drawn,
        training=numbers["training"],
        ev=numbers["evaluation"]["eval"],
        te=numbers["evaluation"]["test"],
        card=card,
        hyperparameters=hyperparameters,
        versions=numbers["versions"],
        trained_on=numbers["trained_on"],
        timings=timings,
        refusal=numbers["refusal"],
        hw=numbers["handwriting"],
        look_alikes=", ".join(contract.LOOK_LIKE_CLASSES),
        degraded=numbers["degraded"],
    )


def _not_for(refusal: dict, digits: str) -> str:
    """The model card's word on images that are none of the classes."""
    if refusal["rule"] is None:
        return f"other digits or symbols: any image still gets one of {digits}"
    share = refusal["refused"]["other"]["share_refused"]
    return f"other digits or symbols: it refuses {share:.1%} of the other MNIST test digits, not all"
