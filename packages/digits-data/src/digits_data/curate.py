"""Curate the imbalanced subset of MNIST and split it, reproducibly.

From the 60,000-image MNIST training file, draw ``class_counts[d]`` images of each digit ``d``
with a seeded generator, then split every class in two stages: ``eval_ratio`` of it for
evaluation, then ``val_ratio`` of the rest for validation, the remainder for training. Each
split is stored sorted by MNIST index, so the same inputs and seed give the same bytes.
"""

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from digits_data import atomic, mnist
from digits_data.cli_support import check_float, check_int
from digits_data.contract import (
    DEFAULT_CLASS_COUNTS,
    DEFAULT_EVAL_RATIO,
    DEFAULT_SEED,
    DEFAULT_VAL_RATIO,
    MANIFEST_NAME,
    SPLITS,
)
from digits_data.dataset import Split, write_split
from digits_data.errors import UsageError

FORMAT_VERSION = 1


@dataclass(frozen=True)
class CurationConfig:
    """What to draw from MNIST and how to split it; validated on creation."""

    class_counts: Mapping[int, int] = field(default_factory=lambda: dict(DEFAULT_CLASS_COUNTS))
    seed: int = DEFAULT_SEED
    eval_ratio: float = DEFAULT_EVAL_RATIO
    val_ratio: float = DEFAULT_VAL_RATIO

    def __post_init__(self) -> None:
        counts = self.class_counts
        if not isinstance(counts, Mapping) or len(counts) < 2:
            raise UsageError("--class-counts needs at least two digits, e.g. '{8: 3500, 0: 1200, 5: 300}'")
        for digit, count in counts.items():
            if isinstance(digit, bool) or not isinstance(digit, int) or not 0 <= digit <= 9:
                raise UsageError(f"--class-counts keys must be digits 0-9, got {digit!r}")
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise UsageError(
                    f"--class-counts for digit {digit} must be a positive whole number, got {count!r}"
                )
        check_int("seed", self.seed, 0, 2**32 - 1)
        check_float("eval_ratio", self.eval_ratio, 0.0, 1.0)
        check_float("val_ratio", self.val_ratio, 0.0, 1.0)
        if self.eval_ratio + self.val_ratio >= 1:
            raise UsageError(
                f"--eval-ratio + --val-ratio must be below 1 to leave training data, "
                f"got {self.eval_ratio} + {self.val_ratio}"
            )
        # Normalize to a sorted plain dict so equal configs serialize identically.
        object.__setattr__(self, "class_counts", {int(d): int(c) for d, c in sorted(counts.items())})

    @property
    def classes(self) -> tuple[int, ...]:
        """The curated digits in ascending order (the model's output order)."""
        return tuple(sorted(self.class_counts))


def split_sizes(count: int, eval_ratio: float, val_ratio: float) -> dict[str, int]:
    """Return how many of ``count`` images of one class go to each split.

    Two stages, rounded half to even: eval takes ``eval_ratio`` of all, val takes ``val_ratio``
    of what remains, train the rest. With the defaults: 1200 -> eval 240, val 144, train 816.
    """
    n_eval = round(count * eval_ratio)
    n_val = round((count - n_eval) * val_ratio)
    return {"train": count - n_eval - n_val, "val": n_val, "eval": n_eval}


def select(labels: np.ndarray, config: CurationConfig) -> dict[str, np.ndarray]:
    """Pick and split MNIST indices per class; return sorted index arrays per split.

    Raises :class:`UsageError` when a class has fewer images than asked for, or when a split
    would get no image of some class.
    """
    rng = np.random.default_rng(config.seed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for digit in config.classes:
        count = config.class_counts[digit]
        available = np.flatnonzero(labels == digit)
        if count > len(available):
            raise UsageError(
                f"digit {digit}: asked for {count} images but MNIST training holds {len(available)}"
            )
        sizes = split_sizes(count, config.eval_ratio, config.val_ratio)
        empty = [name for name, size in sizes.items() if size == 0]
        if empty:
            raise UsageError(
                f"digit {digit}: {count} images leave the {', '.join(empty)} split empty; ask for more images"
            )
        chosen = rng.permutation(available)[:count]
        start = 0
        for name in ("eval", "val", "train"):
            parts[name].append(chosen[start : start + sizes[name]])
            start += sizes[name]
    return {name: np.sort(np.concatenate(arrays)) for name, arrays in parts.items()}


def curate(
    data_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    config: CurationConfig | None = None,
    **overrides: object,
) -> dict:
    """Curate and split MNIST from ``data_dir`` into ``output_dir``; return the manifest.

    ``overrides`` are :class:`CurationConfig` fields (``seed``, ``class_counts``, ...). The split
    files are written first and ``manifest.json`` last, each atomically, so a folder with a
    manifest is complete.
    """
    config = config or CurationConfig(**overrides)  # type: ignore[arg-type]
    data_dir, output_dir = Path(data_dir), Path(output_dir)
    sources = mnist.verify(data_dir)
    folder = mnist.raw_dir(data_dir)
    images = mnist.read_images(folder / mnist.TRAIN_IMAGES)
    labels = mnist.read_labels(folder / mnist.TRAIN_LABELS)
    chosen = select(labels, config)
    atomic.ensure_dir(output_dir)

    splits = {}
    for name in SPLITS:
        index = chosen[name]
        split = Split(name, images[index], labels[index], index.astype(np.int64))
        sha = write_split(output_dir / f"{name}.npz", split)
        splits[name] = {
            "file": f"{name}.npz",
            "sha256": sha,
            "n": len(index),
            "counts": {str(d): int(np.sum(split.labels == d)) for d in config.classes},
            "mnist_indices": index.tolist(),
        }
    train = images[chosen["train"]].astype(np.float64) / 255.0
    manifest = {
        "format": FORMAT_VERSION,
        "classes": list(config.classes),
        "seed": config.seed,
        "eval_ratio": config.eval_ratio,
        "val_ratio": config.val_ratio,
        "class_counts": {str(d): c for d, c in config.class_counts.items()},
        "normalization": {"mean": round(float(train.mean()), 8), "std": round(float(train.std()), 8)},
        "source": {
            "raw_dir": os.path.relpath(folder.resolve(), output_dir.resolve()),
            "files": {name: {"md5": mnist.MD5[name], "sha256": sources[name]} for name in mnist.FILES},
        },
        "splits": splits,
    }
    atomic.write_text(output_dir / MANIFEST_NAME, json.dumps(manifest, indent=1) + "\n")
    return manifest


def check_overlap(manifest: dict) -> list[str]:
    """Return a message per pair of splits that share an MNIST index (empty when disjoint)."""
    problems = []
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1 :]:
            shared = set(manifest["splits"][a]["mnist_indices"]) & set(manifest["splits"][b]["mnist_indices"])
            if shared:
                problems.append(f"{a} and {b} share {len(shared)} images")
    return problems
