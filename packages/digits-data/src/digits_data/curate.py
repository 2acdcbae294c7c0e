"""Curate the imbalanced subset of MNIST and split it, reproducibly.

From the 60,000-image MNIST training file, draw ``class_counts[d]`` images of each digit ``d``
with a seeded generator, then split every class in two stages: ``eval_ratio`` of it for
evaluation, then ``val_ratio`` of the rest for validation, the remainder for training. Each
split is stored sorted by MNIST index, so the same inputs and seed give the same bytes.

The other digits of the MNIST training set (1, 2, 3, 4, 6, 7 and 9 by default) give the outlier
splits ``other_train`` and ``other_val``: a fixed number of images per digit each, drawn from a
stream of their own so that adding them changes no byte of the curated splits.
"""

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from digits_core import atomic, ownership
from digits_core.checks import check_float, check_int
from digits_core.contract import LABELS_RULE, MANIFEST_NAME, OUTLIER_SPLITS, SPLITS, check_labels
from digits_core.errors import ConfigError, DigitsError, UsageError
from digits_data import dataset, mnist
from digits_data.contact_sheet import contact_sheet_png
from digits_data.dataset import Split, write_split
from digits_data.recipe import (
    DEFAULT_CLASS_COUNTS,
    DEFAULT_EVAL_RATIO,
    DEFAULT_OTHER_TRAIN_PER_DIGIT,
    DEFAULT_OTHER_VAL_PER_DIGIT,
    DEFAULT_SEED,
    DEFAULT_VAL_RATIO,
)

FORMAT_VERSION = 1
STEP = "digits-data curate"
CONTACT_SHEET = "samples.png"  # `digits-data inspect --samples` (`make inspect`) adds it to the folder


@dataclass(frozen=True)
class CurationConfig:
    """What to draw from MNIST and how to split it; validated on creation."""

    class_counts: Mapping[int, int] = field(default_factory=lambda: dict(DEFAULT_CLASS_COUNTS))
    seed: int = DEFAULT_SEED
    eval_ratio: float = DEFAULT_EVAL_RATIO
    val_ratio: float = DEFAULT_VAL_RATIO
    other_train_per_digit: int = DEFAULT_OTHER_TRAIN_PER_DIGIT
    other_val_per_digit: int = DEFAULT_OTHER_VAL_PER_DIGIT

    def __post_init__(self) -> None:
        counts = self.class_counts
        try:
            check_labels(list(counts) if isinstance(counts, Mapping) else counts)
        except ValueError as exc:
            raise ConfigError(
                f"class_counts needs {LABELS_RULE} as keys ({exc}), e.g. '{{8: 3500, 0: 1200, 5: 300}}'",
                "class_counts",
            ) from None
        for digit, count in counts.items():
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ConfigError(
                    f"class_counts for digit {digit} must be a positive whole number, got {count!r}",
                    "class_counts",
                )
        check_int("seed", self.seed, 0, 2**32 - 1)
        check_float("eval_ratio", self.eval_ratio, 0.0, 1.0)
        check_float("val_ratio", self.val_ratio, 0.0, 1.0)
        check_int("other_train_per_digit", self.other_train_per_digit, 1)
        check_int("other_val_per_digit", self.other_val_per_digit, 1)
        if self.eval_ratio + self.val_ratio >= 1:
            raise ConfigError(
                "eval_ratio + val_ratio must be below 1 to leave training data, "
                f"got {self.eval_ratio} + {self.val_ratio}",
                "eval_ratio",
                "val_ratio",
            )
        # Normalize to a sorted plain dict so equal configs serialize identically.
        object.__setattr__(self, "class_counts", {int(d): int(c) for d, c in sorted(counts.items())})

    @property
    def classes(self) -> tuple[int, ...]:
        """The curated digits in ascending order (the model's output order)."""
        return tuple(sorted(self.class_counts))

    @property
    def outlier_digits(self) -> tuple[int, ...]:
        """The digits that are not curated classes: the source of the outlier splits."""
        return tuple(d for d in range(10) if d not in self.class_counts)

    @property
    def outliers_per_digit(self) -> dict[str, int]:
        """Images of each outlier digit per outlier split."""
        return {"other_train": self.other_train_per_digit, "other_val": self.other_val_per_digit}


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


def select_outliers(labels: np.ndarray, config: CurationConfig) -> dict[str, np.ndarray]:
    """Pick MNIST indices of the other digits per outlier split; return sorted index arrays.

    Raises :class:`UsageError` when a digit has fewer images than the two splits ask for.
    """
    # A stream of its own: the curated splits stay byte-identical to a curation without outliers.
    rng = np.random.default_rng(np.random.SeedSequence(config.seed).spawn(1)[0])
    sizes = config.outliers_per_digit
    parts: dict[str, list[np.ndarray]] = {name: [] for name in OUTLIER_SPLITS}
    for digit in config.outlier_digits:
        available = np.flatnonzero(labels == digit)
        count = sum(sizes.values())
        if count > len(available):
            raise UsageError(
                f"other digit {digit}: asked for {count} images but MNIST training holds {len(available)}"
            )
        chosen = rng.permutation(available)
        start = 0
        for name in ("other_val", "other_train"):
            parts[name].append(chosen[start : start + sizes[name]])
            start += sizes[name]
    return {name: np.sort(np.concatenate(arrays)) for name, arrays in parts.items()}


def _write(
    output_dir: Path,
    name: str,
    images: np.ndarray,
    labels: np.ndarray,
    index: np.ndarray,
    digits: tuple[int, ...],
) -> dict:
    """Write the images at ``index`` as split ``name``; return its manifest entry."""
    split = Split(name, images[index], labels[index], index.astype(np.int64))
    return {
        "file": f"{name}.npz",
        "sha256": write_split(output_dir / f"{name}.npz", split),
        "n": len(index),
        "counts": {str(d): int(np.sum(split.labels == d)) for d in digits},
        "mnist_indices": index.tolist(),
    }


def curate(
    data_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    config: CurationConfig | None = None,
    **overrides: object,
) -> dict:
    """Curate and split MNIST from ``data_dir`` into ``output_dir``; return the manifest.

    ``overrides`` are :class:`CurationConfig` fields (``seed``, ``class_counts``, ...). Everything
    is written into a scratch folder that then replaces ``output_dir`` whole, so an interrupted
    run leaves the previous curation as it was. The manifest holds content facts only (no
    paths), so the fingerprint is the same wherever the folder is.
    """
    config = config or CurationConfig(**overrides)  # type: ignore[arg-type]
    data_dir, output_dir = Path(data_dir), Path(output_dir)
    sources = mnist.verify(data_dir)
    folder = mnist.raw_dir(data_dir)
    images = mnist.read_images(folder / mnist.TRAIN_IMAGES)
    labels = mnist.read_labels(folder / mnist.TRAIN_LABELS)
    chosen = select(labels, config)
    others = select_outliers(labels, config)
    with atomic.atomic_dir(output_dir, STEP, added_later=[CONTACT_SHEET], legacy=_vouched) as scratch:
        splits = {
            name: _write(scratch, name, images, labels, chosen[name], config.classes) for name in SPLITS
        }
        outlier_splits = {
            name: _write(scratch, name, images, labels, others[name], config.outlier_digits)
            for name in OUTLIER_SPLITS
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
                "files": {name: {"md5": mnist.MD5[name], "sha256": sources[name]} for name in mnist.FILES},
            },
            "splits": splits,
            "outliers": {
                "digits": list(config.outlier_digits),
                "per_digit": config.outliers_per_digit,
                "splits": outlier_splits,
            },
        }
        atomic.write_text(scratch / MANIFEST_NAME, json.dumps(manifest, indent=1) + "\n")
    return manifest


def _vouched(folder: Path) -> dict[str, str]:
    """The sha256 of the files a curated folder's own manifest proves to be curation's (for a folder
    without a record, or for the contact sheet `inspect` adds): every split file, checked against the
    manifest; the manifest; and a contact sheet that drawing it again from those splits gives byte
    for byte. Empty when the manifest is not a curation manifest or the split files do not match it.
    """
    manifest_sha256 = ownership.file_sha256(folder / MANIFEST_NAME)  # never a link or a pipe
    if manifest_sha256 is None:
        return {}
    try:
        manifest = dataset.load_manifest(folder)  # checks every split file against its sha256
        names = (*SPLITS, *OUTLIER_SPLITS)
        proof = {f"{name}.npz": dataset.split_entry(manifest, name)["sha256"] for name in names}
        if ownership.file_sha256(folder / CONTACT_SHEET) is not None:
            proof[CONTACT_SHEET] = hashlib.sha256(contact_sheet_png(folder)).hexdigest()
    except (DigitsError, TypeError, KeyError):
        return {}
    return proof | {MANIFEST_NAME: manifest_sha256}


def _split_entries(manifest: dict) -> dict[str, dict]:
    """The manifest's entries of every split, the curated ones and then the outlier ones."""
    return {**manifest["splits"], **manifest.get("outliers", {}).get("splits", {})}


def check_overlap(manifest: dict) -> list[str]:
    """Return a message per pair of splits (outlier splits too) that share an MNIST index."""
    entries = _split_entries(manifest)
    names = list(entries)
    problems = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = set(entries[a]["mnist_indices"]) & set(entries[b]["mnist_indices"])
            if shared:
                problems.append(f"{a} and {b} share {len(shared)} images")
    return problems
