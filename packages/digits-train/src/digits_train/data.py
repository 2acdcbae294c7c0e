"""Curated splits as tensors and loaders; class weights from the train split only."""

import os
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

from digits_core.contract import OUTLIER_SPLITS
from digits_core.errors import DigitsError
from digits_core.images import pixels_from_uint8
from digits_data import parallel
from digits_data.dataset import Split, load_split
from digits_train.typeset import render


def tensors(split: Split, labels: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Return pixels (N, 1, 28, 28) float32 in [0, 1] and targets (N,) as positions in ``labels``."""
    unknown = sorted(set(np.unique(split.labels).tolist()) - set(labels))
    if unknown:
        raise DigitsError(
            f"the {split.name} split holds digits {unknown} that are not in the manifest's classes"
        )
    lookup = np.zeros(10, dtype=np.int64)
    lookup[labels] = np.arange(len(labels))
    pixels = torch.from_numpy(pixels_from_uint8(split.images)).unsqueeze(1)
    return pixels, torch.from_numpy(lookup[split.labels])


OUTLIER = -1
"""Training target of an outlier: an image that is none of the classes."""


def outlier_tensors(split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    """Return pixels (N, 1, 28, 28) of an outlier split and targets (N,) all equal to OUTLIER."""
    pixels = torch.from_numpy(pixels_from_uint8(split.images)).unsqueeze(1)
    return pixels, torch.full((len(split),), OUTLIER, dtype=torch.int64)


def class_weights(targets: torch.Tensor, n_classes: int, power: float = 1.0) -> list[float]:
    """Inverse class frequency raised to ``power`` (1: inverse, 0.5: its square root), mean 1."""
    counts = torch.bincount(targets, minlength=n_classes).double()
    weights = counts**-power
    return (weights / weights.mean()).tolist()


class OutlierSubsetSampler(Sampler[int]):
    """Every known image and a fresh draw of ``per_epoch`` outliers each epoch, shuffled.

    The dataset holds ``known`` images first, then ``outliers``. Every outlier is still seen over
    the epochs, but an epoch costs as many outliers as the known digits need, not all of them.
    The draw is random; once a ``scorer`` is set (dataset positions -> how much the model takes
    each image for a digit), from the second epoch on ``hard`` of it is instead the outliers the
    model takes most for a digit among twice ``per_epoch`` drawn at random, the rest drawn from
    the others: the letters it still accepts come up again until it refuses them.
    """

    def __init__(
        self, known: int, outliers: int, per_epoch: int, generator: torch.Generator, hard: float = 0.0
    ) -> None:
        self.known, self.outliers, self.generator = known, outliers, generator
        self.per_epoch = min(per_epoch, outliers)
        self.hard = hard
        self.scorer: Callable[[torch.Tensor], torch.Tensor] | None = None
        self.epochs = 0

    def __len__(self) -> int:
        return self.known + self.per_epoch

    def __iter__(self) -> Iterator[int]:
        order = torch.randperm(self.outliers, generator=self.generator)
        hardest = int(self.hard * self.per_epoch) if self.scorer is not None and self.epochs else 0
        self.epochs += 1
        if hardest:
            candidates = order[: 2 * self.per_epoch]
            top = torch.argsort(self.scorer(self.known + candidates), descending=True, stable=True)[:hardest]
            rest = torch.ones(len(candidates), dtype=torch.bool)
            rest[top] = False
            order = torch.cat([candidates[top], candidates[rest]])
        drawn = self.known + order[: self.per_epoch]
        chosen = torch.cat([torch.arange(self.known), drawn])
        return iter(chosen[torch.randperm(len(chosen), generator=self.generator)].tolist())


def loaders(
    curated_dir: str | os.PathLike,
    labels: list[int],
    batch_size: int,
    num_workers: int,
    seed: int,
    outliers: bool = False,
    typeset_count: int = 0,
    outliers_per_epoch: int = 0,
    printed_count: int = 0,
    hard_outliers: float = 0.0,
) -> tuple[DataLoader, DataLoader, torch.Tensor]:
    """Build the train (shuffled by a seeded generator) and val loaders; also return train targets.

    With ``outliers``, the ``other_train`` split (digits that are none of ``labels``) and
    ``typeset_count`` typeset characters (digits_train.typeset) join the training data with
    target OUTLIER; the returned targets stay those of the curated digits. ``printed_count`` digits
    set in type (digits_train.typeset.printed_digits) join the known digits. ``outliers_per_epoch``
    > 0 draws that many of them afresh each epoch (OutlierSubsetSampler) instead of all,
    ``hard_outliers`` of them the hardest once the sampler has a scorer.
    """
    known = tensors(load_split(curated_dir, "train", verify=False), labels)
    weighted = known[1]  # class weights come from the curated digits alone
    characters, (printed, targets) = render(
        typeset_count if outliers else 0, printed_count, labels, seed, parallel.cores()
    )
    if printed_count:
        known = (
            torch.cat([known[0], torch.from_numpy(printed).unsqueeze(1)]),
            torch.cat([known[1], torch.from_numpy(targets)]),
        )
    train = TensorDataset(*known)
    if outliers:
        pixels, targets = outlier_tensors(load_split(curated_dir, OUTLIER_SPLITS[0], verify=False))
        train = TensorDataset(
            torch.cat([known[0], pixels, torch.from_numpy(characters).unsqueeze(1)]),
            torch.cat([known[1], targets, torch.full((typeset_count,), OUTLIER, dtype=torch.int64)]),
        )
    val = TensorDataset(*tensors(load_split(curated_dir, "val", verify=False), labels))
    generator = torch.Generator().manual_seed(seed)
    common = {"batch_size": batch_size, "num_workers": num_workers, "persistent_workers": num_workers > 0}
    outlier_count = len(train) - len(known[1])
    if outliers_per_epoch and outliers_per_epoch < outlier_count:
        sampler = OutlierSubsetSampler(
            len(known[1]), outlier_count, outliers_per_epoch, generator, hard_outliers
        )
        train_loader = DataLoader(train, sampler=sampler, **common)
    else:
        train_loader = DataLoader(train, shuffle=True, generator=generator, **common)
    val_loader = DataLoader(val, shuffle=False, **{**common, "batch_size": 1024})
    return train_loader, val_loader, weighted
