"""The report's figures, drawn with matplotlib's object-oriented API (no pyplot global state)."""

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from digits_core import contract

COLORS = {"train": "#4C72B0", "val": "#DD8452", "eval": "#55A868", "test": "#8172B3"}


def save(fig: Figure, path: Path) -> str:
    """Write ``fig`` as PNG to ``path`` and return the file name the page links to."""
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path.name


def plot_counts(manifest: dict, out: Path) -> str:
    """Grouped bars: images per digit in each split."""
    classes = [str(d) for d in manifest["classes"]]
    fig = Figure(figsize=(6, 3.2))
    ax = fig.subplots()
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
    return save(fig, out / "counts.png")


def plot_training(epochs: list[dict], summary: dict, labels: list[int], out: Path) -> str:
    """Loss, validation macro-F1, per-digit recall and learning rate per epoch, best epoch marked."""
    x = [e["epoch"] for e in epochs]
    fig = Figure(figsize=(10, 6.5))
    axes = fig.subplots(2, 2, sharex=True)
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
        ax.axvline(summary["best_epoch"], color="#2ca02c", linestyle="--", linewidth=1, label="kept epoch")
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
    return save(fig, out / "training.png")


def plot_confusion(result: dict, out: Path, title: str) -> str:
    """The confusion matrix as a labelled heat map with counts."""
    matrix = np.asarray(result["confusion_matrix"])
    labels = [str(d) for d in result["labels"]]
    fig = Figure(figsize=(3.8, 3.4))
    ax = fig.subplots()
    shown = np.log1p(matrix)
    ax.imshow(shown, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        color = "white" if shown[i, j] > shown.max() * 0.6 else "black"
        ax.text(j, i, str(value), ha="center", va="center", color=color, fontsize=11)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title(title, fontsize=10)
    return save(fig, out / f"confusion_{result['split']}.png")


def plot_gallery(images: np.ndarray, captions: list[str], out: Path, name: str, title: str) -> str | None:
    """A grid of uint8 digits with captions; None when there is nothing to show."""
    if len(images) == 0:
        return None
    cols = min(8, len(images))
    tiles = [(image, caption, "black") for image, caption in zip(images, captions, strict=True)]
    fig = draw_tiles([tiles[i : i + cols] for i in range(0, len(tiles), cols)], title, cell_inches=1.35)
    return save(fig, out / name)


Tile = tuple[np.ndarray, str, str]
"""An image (H, W) of shades 0-255, its caption and the caption's colour."""


def draw_tiles(
    rows: list[list[Tile]], title: str, cell_inches: float, labels: list[str] | None = None
) -> Figure:
    """A figure titled ``title``: one list of tiles per row, each image captioned above it in its
    colour and ``cell_inches`` wide, the rows named at the left by ``labels`` if given. The
    images are all of one size; a row may be shorter than others, or empty.

    The grid is one image on one axes: matplotlib lays out hundreds of small axes in seconds.
    """
    tiles = [tile for row in rows for tile in row]
    height, width = np.shape(tiles[0][0])
    lines = max(caption.count("\n") + 1 for _, caption, _ in tiles)
    cols = max(len(row) for row in rows)
    band, gap = round(height * 0.3 * lines), round(width * 0.15)  # room for the captions; between tiles
    cell_h, cell_w = height + band, width + gap
    mosaic = np.full((len(rows) * cell_h, cols * cell_w - gap), np.nan)
    inches = cell_inches / cell_w  # per pixel of the mosaic
    margin = 1.2 if labels else 0.2  # the row names, at the left
    fig = Figure(figsize=(mosaic.shape[1] * inches + margin, mosaic.shape[0] * inches + 0.5))
    ax = fig.subplots()
    for r, row in enumerate(rows):
        top = r * cell_h + band
        for c, (image, caption, colour) in enumerate(row):
            mosaic[top : top + height, c * cell_w : c * cell_w + width] = image
            centre = c * cell_w + width / 2
            ax.text(centre, top - 1, caption, ha="center", va="bottom", fontsize=7, color=colour)
        if labels:
            ax.text(-gap, top + height / 2, labels[r], ha="right", va="center", fontsize=7)
    paper = colormaps["gray"].with_extremes(bad="0.88")  # the space between tiles: light grey
    ax.imshow(mosaic, cmap=paper, vmin=0, vmax=255, interpolation="nearest")
    ax.axis("off")
    ax.set_title(title, fontsize=10, pad=4)
    fig.tight_layout(pad=0.3)
    return fig


def plot_handwriting_styles(result: dict, out: Path) -> str:
    """Bars per style of the generated handwriting: 0/5/8 read right, and, with a refusal rule,
    0/5/8 accepted and other digits and letters refused."""
    known = result["known"]["accuracy_by_style"]
    refusal = result["refusal"]
    rows = [(axis, level) for axis in known for level in known[axis]]
    series = {"0/5/8 read right": [known[a][lv]["share"] for a, lv in rows]}
    if refusal:
        series["0/5/8 accepted"] = [refusal["known_accepted_by_style"][a][lv]["share"] for a, lv in rows]
        others = refusal["others_refused_by_style"]
        series["others refused"] = [others[a].get(lv, {}).get("share") for a, lv in rows]
    fig = Figure(figsize=(8, 0.26 * len(rows) * len(series) + 1.2))
    ax = fig.subplots()
    height = 0.8 / len(series)
    y = np.arange(len(rows))
    for k, (name, values) in enumerate(series.items()):
        shown = [np.nan if v is None else v for v in values]
        ax.barh(y + k * height, shown, height, label=name)
    ax.set_yticks(
        y + height * (len(series) - 1) / 2, [f"{axis}: {level}" for axis, level in rows], fontsize=8
    )
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of images")
    ax.set_title("Generated handwriting, by style", fontsize=10)
    ax.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=len(series))
    ax.spines[["top", "right"]].set_visible(False)
    return save(fig, out / "handwriting_styles.png")
