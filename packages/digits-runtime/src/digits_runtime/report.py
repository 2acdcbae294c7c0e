"""One HTML page on the data, the training and the model's errors, built from what the pipeline wrote.

Reads the curated manifest and splits, the training logs and summary, the ONNX model's
metadata, the evaluation JSON files and the step timings; recomputes nothing that exists.
Writes ``index.html``, its PNG figures and ``report.json`` into a temporary folder that then
replaces the output folder, so a crash never leaves a half-written report.
"""

import csv
import html
import json
import os
import shutil
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from digits_data import atomic, contract, dataset
from digits_data.contact_sheet import write_contact_sheet
from digits_data.errors import DigitsError

STEPS = ("download", "curate", "train", "export", "evaluate")
LEAST_CONFIDENT = 24
COLORS = {"train": "#4C72B0", "val": "#DD8452", "eval": "#55A868", "test": "#8172B3"}


def _read_json(path: Path, target: str) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DigitsError(f"{path} is missing: run `make {target}` first") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DigitsError(f"{path} is not readable JSON ({exc}): run `make {target}` again") from None


def read_epochs(metrics_csv: Path) -> list[dict[str, float]]:
    """Merge Lightning's CSV rows (train and val metrics land on separate rows) into one per epoch."""
    try:
        rows = list(csv.DictReader(metrics_csv.read_text(encoding="utf-8").splitlines()))
    except FileNotFoundError:
        raise DigitsError(f"{metrics_csv} is missing: run `make train` first") from None
    epochs: dict[int, dict[str, float]] = {}
    for row in rows:
        if not row.get("epoch"):
            continue
        merged = epochs.setdefault(int(row["epoch"]), {"epoch": int(row["epoch"])})
        merged |= {k: float(v) for k, v in row.items() if v and k not in ("epoch", "step")}
    return [epochs[e] for e in sorted(epochs)]


def read_model_metadata(model: Path) -> dict[str, str]:
    """The model's metadata_props, read with onnxruntime."""
    from digits_runtime.predictor import Predictor

    return Predictor(model).metadata


def _save(fig: plt.Figure, path: Path) -> str:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path.name


def plot_counts(manifest: dict, out: Path) -> str:
    """Grouped bars: images per digit in each split."""
    classes = [str(d) for d in manifest["classes"]]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    width = 0.8 / len(contract.SPLITS)
    for i, split in enumerate(contract.SPLITS):
        counts = [manifest["splits"][split]["counts"][d] for d in classes]
        bars = ax.bar(np.arange(len(classes)) + i * width, counts, width, label=split, color=COLORS[split])
        ax.bar_label(bars, fontsize=8)
    ax.set_xticks(np.arange(len(classes)) + width, [f"digit {d}" for d in classes])
    ax.set_ylabel("images")
    ax.set_title("Curated images per digit and split")
    ax.legend(frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _save(fig, out / "counts.png")


def contact_sheet(curated_dir: Path, out: Path) -> str:
    """The contact sheet `make inspect` drew, copied; drawn here if it is missing or older than the data."""
    existing = curated_dir / "samples.png"
    if existing.is_file() and existing.stat().st_mtime >= dataset.manifest_path(curated_dir).stat().st_mtime:
        shutil.copyfile(existing, out / "samples.png")
        return "samples.png"
    return write_contact_sheet(curated_dir, out / "samples.png").name


def plot_training(epochs: list[dict], summary: dict, labels: list[int], out: Path) -> str:
    """Loss, validation macro-F1, per-digit recall and learning rate per epoch, best epoch marked."""
    x = [e["epoch"] for e in epochs]
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharex=True)
    series = {
        (0, 0): ("loss (class-weighted cross-entropy)", {"train": "train_loss", "validation": "val_loss"}),
        (0, 1): ("validation macro-F1", {"macro-F1": "val_macro_f1"}),
        (1, 0): ("validation recall per digit", {f"digit {d}": f"val_recall_{d}" for d in labels}),
        (1, 1): ("learning rate", {"lr": "lr"}),
    }
    for (r, c), (title, keys) in series.items():
        ax = axes[r][c]
        for name, key in keys.items():
            ax.plot(x, [e.get(key, np.nan) for e in epochs], marker="o", markersize=3, label=name)
        ax.axvline(summary["best_epoch"], color="#2ca02c", linestyle="--", linewidth=1, label="best epoch")
        if summary.get("stopped_epoch") is not None:
            ax.axvline(
                summary["stopped_epoch"], color="#d62728", linestyle=":", linewidth=1, label="early stop"
            )
        ax.set_title(title, fontsize=10)
        ax.spines[["top", "right"]].set_visible(False)
        if r == 1:
            ax.set_xlabel("epoch")
        ax.legend(fontsize=7, frameon=False)
    axes[0][0].set_yscale("log")
    axes[1][1].set_yscale("log")
    fig.tight_layout()
    return _save(fig, out / "training.png")


def plot_confusion(result: dict, out: Path, title: str) -> str:
    """The confusion matrix as a labelled heat map with counts."""
    matrix = np.asarray(result["confusion_matrix"])
    labels = result["labels"]
    fig, ax = plt.subplots(figsize=(3.8, 3.4))
    shown = np.log1p(matrix)
    ax.imshow(shown, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        color = "white" if shown[i, j] > shown.max() * 0.6 else "black"
        ax.text(j, i, str(value), ha="center", va="center", color=color, fontsize=11)
    ax.set_xticks(range(len(labels)), [str(d) for d in labels])
    ax.set_yticks(range(len(labels)), [str(d) for d in labels])
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title(title, fontsize=10)
    return _save(fig, out / f"confusion_{result['split']}.png")


def plot_gallery(images: np.ndarray, captions: list[str], out: Path, name: str, title: str) -> str | None:
    """A grid of digits with captions; None when there is nothing to show."""
    if len(images) == 0:
        return None
    cols = min(8, len(images))
    rows = -(-len(images) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.35 * cols, 1.6 * rows + 0.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, caption in zip(axes.ravel(), images, captions, strict=False):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        ax.set_title(caption, fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, out / name)


def _gallery_items(result: dict, split: dataset.Split, picks: list[dict]) -> tuple[np.ndarray, list[str]]:
    position = {int(i): k for k, i in enumerate(split.indices)}
    labels = result["labels"]
    images = np.stack([split.images[position[p["index"]]] for p in picks]) if picks else np.zeros((0, 28, 28))
    captions = [
        f"true {p['label']} → {p['prediction']}\np={max(p['probs']):.3f} (#{p['index']})"
        if p["label"] != p["prediction"]
        else f"{p['label']}, p={p['probs'][labels.index(p['label'])]:.3f}\n(#{p['index']})"
        for p in picks
    ]
    return images, captions


def _metrics_table(result: dict) -> str:
    rows = "".join(
        f"<tr><td>digit {d}</td><td>{c['precision']:.4f}</td><td>{c['recall']:.4f}</td>"
        f"<td>{c['f1']:.4f}</td><td>{c['support']}</td></tr>"
        for d, c in result["per_class"].items()
    )
    return (
        "<table><tr><th></th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>"
        f"{rows}<tr class='total'><td>accuracy</td><td></td><td></td><td>{result['accuracy']:.4f}</td>"
        f"<td>{result['n']}</td></tr><tr class='total'><td>macro F1</td><td></td><td></td>"
        f"<td>{result['macro_f1']:.4f}</td><td></td></tr></table>"
    )


def _kv_table(items: dict) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in items.items()
    )
    return f"<table class='kv'>{rows}</table>"


def _figure(name: str | None, caption: str) -> str:
    if name is None:
        return f"<p class='note'>{html.escape(caption)}: none.</p>"
    return (
        f"<figure><img src='{name}' alt='{html.escape(caption)}'><figcaption>{caption}</figcaption></figure>"
    )


STYLE = """
body{font-family:system-ui,Segoe UI,Helvetica,Arial,sans-serif;max-width:1080px;margin:2em auto;
  padding:0 1.2em;color:#222;line-height:1.45}
h1{margin-bottom:.1em} h2{border-bottom:2px solid #eee;padding-bottom:.2em;margin-top:2em}
.sub{color:#666;margin-top:0} figure{margin:1em 0} img{max-width:100%}
figcaption{color:#555;font-size:.9em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
td,th{padding:.25em .8em;border-bottom:1px solid #eee;text-align:right} th{background:#fafafa}
table.kv th{text-align:left;font-weight:600}
table.kv td{text-align:left;font-family:ui-monospace,monospace;font-size:.9em;word-break:break-all}
tr.total td{font-weight:600} .cols{display:flex;gap:2.5em;flex-wrap:wrap} .note{color:#555}
.card{background:#f7f9fc;border:1px solid #e3e8f0;padding:.8em 1.2em;border-radius:6px}
"""


def write_report(
    curated_dir: str | os.PathLike,
    train_dir: str | os.PathLike,
    model: str | os.PathLike,
    eval_dir: str | os.PathLike,
    timings_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
) -> Path:
    """Build the report in ``output_dir``; return the path of its ``index.html``."""
    plt.switch_backend("Agg")  # files only, never a window
    curated_dir, train_dir, model = Path(curated_dir), Path(train_dir), Path(model)
    eval_dir, timings_dir, output_dir = Path(eval_dir), Path(timings_dir), Path(output_dir)
    manifest = dataset.load_manifest(curated_dir)
    summary = _read_json(train_dir / "summary.json", "train")
    epochs = read_epochs(train_dir / "lightning_logs" / "metrics.csv")
    if not model.is_file():
        raise DigitsError(f"{model} is missing: run `make train` first")
    meta = read_model_metadata(model)
    results = {name: _read_json(eval_dir / f"{name}.json", "evaluate") for name in ("eval", "test")}
    timings = {}
    for step in STEPS:
        path = timings_dir / f"{step}.json"
        timings[step] = json.loads(path.read_text())["seconds"] if path.is_file() else None
    labels = list(manifest["classes"])

    atomic.ensure_dir(output_dir.parent)
    scratch = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}-", dir=output_dir.parent))
    scratch.chmod(0o755)
    try:
        figures = {
            "counts": plot_counts(manifest, scratch),
            "samples": contact_sheet(curated_dir, scratch),
            "training": plot_training(epochs, summary, labels, scratch),
            "confusion_eval": plot_confusion(results["eval"], scratch, "eval split"),
            "confusion_test": plot_confusion(results["test"], scratch, "MNIST test digits"),
        }
        eval_split = dataset.load_split(curated_dir, "eval", verify=False)
        predictions = results["eval"]["predictions"]
        wrong = [p for p in predictions if p["label"] != p["prediction"]]
        right = [p for p in predictions if p["label"] == p["prediction"]]
        unsure = sorted(right, key=lambda p: p["probs"][labels.index(p["label"])])[:LEAST_CONFIDENT]
        figures["errors"] = plot_gallery(
            *_gallery_items(results["eval"], eval_split, wrong),
            scratch,
            "errors.png",
            f"Every misclassified eval image ({len(wrong)})",
        )
        figures["least_confident"] = plot_gallery(
            *_gallery_items(results["eval"], eval_split, unsure),
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
            "hyperparameters": json.loads(meta.get(contract.META_TRAINING_CONFIG, "{}")),
            "timings_seconds": timings,
            "figures": {k: v for k, v in figures.items() if v},
        }
        atomic.write_text(scratch / "report.json", json.dumps(numbers, indent=2) + "\n")
        atomic.write_text(scratch / "index.html", render(numbers, figures, model, labels))
        if output_dir.exists():
            old = output_dir.with_name(f".{output_dir.name}-old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(output_dir, old)
            shutil.rmtree(old)
        os.replace(scratch, output_dir)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return output_dir / "index.html"


def render(numbers: dict, figures: dict, model: Path, labels: list[int]) -> str:
    """The page itself: sections with captions, tables filled from ``numbers``."""
    training, parity = numbers["training"], numbers["parity"]
    ev, te = numbers["evaluation"]["eval"], numbers["evaluation"]["test"]
    digits = ", ".join(map(str, labels))
    stop = (
        f"early stopping ended training after epoch {training['stopped_epoch']}"
        if training["stopped_early"]
        else "training ran to its epoch limit"
    )
    timing_rows = {
        step: ("not recorded" if s is None else f"{s:.1f} s")
        for step, s in numbers["timings_seconds"].items()
    }
    card = {
        "intended use": f"classify a single handwritten digit image as one of {digits}",
        "not for": f"other digits or symbols: any image still gets one of {digits}; multi-digit images; "
        "tasks where a wrong answer is costly without human review",
        "model file": str(model),
        "data fingerprint": numbers["fingerprint"],
        "ONNX parity": f"onnxruntime vs torch on {parity.get('images')} eval images, batch sizes "
        f"{parity.get('batch_sizes')}: argmax identical, max |Δp| {parity.get('max_abs_diff', 0.0):.1e}",
    }
    hyper = {k: v for k, v in numbers["hyperparameters"].items() if k != "limit_train_batches"}
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>digits report</title><style>{STYLE}</style></head>
<body>
<h1>digits: handwritten {digits}</h1>
<p class="sub">Eval macro-F1 <b>{ev["macro_f1"]:.4f}</b>, accuracy <b>{ev["accuracy"]:.4f}</b> on {
        ev["n"]
    } curated
images; accuracy <b>{te["accuracy"]:.4f}</b> on the {te["n"]} MNIST test images of these digits.</p>

<h2>The data</h2>
<p>Curated from the MNIST training set with a fixed seed; the classes are deliberately imbalanced.
Split per digit: eval first, then validation from the rest, training the remainder.</p>
{_figure(figures["counts"], "Images per digit in each split")}
{_figure(figures["samples"], "The first 12 images of each digit in each split")}

<h2>Training</h2>
<p>{training["epochs_run"]} epochs in {training["wall_time_seconds"]:.1f} s; the checkpoint of epoch
{training["best_epoch"]} has the best validation macro-F1 ({training["best_val_metrics"]["val_macro_f1"]:.4f},
ties broken by lower loss); {stop}.</p>
{
        _figure(
            figures["training"],
            "Per epoch: loss, validation macro-F1, recall per digit and learning rate. "
            "Green dashes: the selected epoch; red dots: where early stopping ended training.",
        )
    }

<h2>Evaluation</h2>
<div class="cols">
<div><h3>Eval split ({ev["n"]} images)</h3>{_metrics_table(ev)}
{_figure(figures["confusion_eval"], "Rows: true digit; columns: predicted digit")}</div>
<div><h3>MNIST test digits ({te["n"]} images)</h3>{_metrics_table(te)}
{_figure(figures["confusion_test"], "Never used for training or model selection")}</div>
</div>

<h2>Errors and doubts</h2>
{_figure(figures["errors"], "Misclassified eval images: true digit → predicted, with its probability")}
{_figure(figures["least_confident"], "Correct but least confident: the probability given to the true digit")}

<h2>Model card</h2>
<div class="card">{_kv_table(card)}</div>
<h3>Hyperparameters</h3>{_kv_table(hyper)}
<h3>Versions</h3>{_kv_table(numbers["versions"])}
<h3>Pipeline step wall times</h3>{_kv_table(timing_rows)}
</body></html>
"""
