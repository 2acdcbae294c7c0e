"""Train the classifier with the Lightning Trainer and keep the selected checkpoint (by default the
final, weight-averaged one; or the best by validation macro-F1)."""

import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, WeightAveraging
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.profilers import Profiler

from digits_core import atomic
from digits_data import dataset
from digits_train import data
from digits_train.config import CLASS_WEIGHT_POWER, FitConfig
from digits_train.model import DigitsClassifier
from digits_train.quiet import LEAFSPEC_DEPRECATION, quiet

CHECKPOINT_NAME = "best.ckpt"  # the selected checkpoint: the final one, or the best on validation
LOG_DIR = "lightning_logs"
STEP = "digits-train fit"


def configure_torch(threads: int | None = None) -> None:
    """Set torch's CPU threads once (one per core by default) and make its kernels deterministic."""
    torch.set_num_threads(threads or os.cpu_count() or 1)
    torch.use_deterministic_algorithms(True)
    # Deterministic mode also fills every new tensor with NaN, to expose reads of uninitialized
    # memory; our kernels do not read any, and the fills cost a few percent of every step.
    torch.utils.deterministic.fill_uninitialized_memory = False


def quiet_lightning() -> contextlib.AbstractContextManager[None]:
    """Silence Lightning's info logging and its advice that does not apply on CPU, within a block."""
    return quiet(
        dict.fromkeys(("lightning.pytorch", "lightning.fabric", "lightning"), logging.WARNING),
        [
            (r".*does not have many workers.*", Warning),
            (r".*GPU available but not used.*", Warning),
            LEAFSPEC_DEPRECATION,
        ],
    )


def ema_with_warmup(decay: float) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """An exponential moving average whose decay grows to ``decay`` as (1 + n) / (10 + n).

    A fixed decay of 0.995 would keep most of the random initial weights in the average of a
    short run (0.995**100 = 0.6); the warm-up lets early averages follow the weights. The default
    run (13 epochs of 116 steps) ends at 0.994, still under the default decay of 0.995: there the
    warm-up alone sets the average, and any decay above 0.994 gives the same weights.
    """

    def average(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        weight = torch.clamp((1 + num_averaged) / (10 + num_averaged), max=decay)
        return averaged + (current - averaged) * (1 - weight)

    return average


def callbacks(config: FitConfig, checkpoint_dir: str) -> list[L.Callback]:
    """The checkpoint that selection keeps, and the optional weight averaging and early stopping.

    With weight averaging, validation and checkpoints see the averaged weights.
    """
    monitor = {"monitor": "val_selection", "mode": "max"} if config.selection == "best" else {}
    chosen: list[L.Callback] = [
        ModelCheckpoint(dirpath=checkpoint_dir, filename="best", save_top_k=1, **monitor)
    ]
    if config.ema_decay > 0:
        chosen.append(WeightAveraging(avg_fn=ema_with_warmup(config.ema_decay)))
    if config.early_stopping:
        patience = config.early_stopping_patience
        chosen.append(EarlyStopping(monitor="val_selection", mode="max", patience=patience))
    return chosen


def fit(
    curated_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    config: FitConfig | None = None,
    threads: int | None = None,
    profiler: Profiler | None = None,
) -> dict:
    """Train on ``curated_dir`` and write the results to ``output_dir``; return the summary.

    ``threads`` is torch's CPU threads (default one per core); the weights depend on it, as on the CPU.
    ``profiler``, a Lightning profiler, times the Trainer's hooks (benchmarks/profile_train.py).

    Writes ``config.json``, ``lightning_logs/metrics.csv`` (one row per epoch), ``summary.json``
    and ``best.ckpt``: the selected checkpoint (by default the final, weight-averaged one; with
    ``selection="best"`` the one with the highest validation macro-F1, ties broken by lower
    validation loss). All of it is written into a scratch folder that replaces ``output_dir``
    whole when training has finished, so a killed or failed run leaves the previous run's
    folder as it was, and two runs into the same folder take turns.
    """
    with atomic.atomic_dir(output_dir, STEP) as scratch, quiet_lightning():
        return _fit(curated_dir, scratch, config, threads, profiler)


def _fit(
    curated_dir: str | os.PathLike,
    output_dir: Path,
    config: FitConfig | None,
    threads: int | None,
    profiler: Profiler | None,
) -> dict:
    config = config or FitConfig()
    manifest = dataset.load_manifest(curated_dir)  # checks every split against its sha256
    configure_torch(threads)
    L.seed_everything(config.seed, workers=True, verbose=False)

    labels = list(manifest["classes"])
    train_loader, val_loader, targets = data.loaders(
        curated_dir,
        labels,
        config.batch_size,
        config.num_workers,
        config.seed,
        config.outlier_weight > 0,
        config.typeset,
        config.outliers_per_epoch,
        config.printed,
        config.hard_outliers,
    )
    model = DigitsClassifier(
        labels=labels,
        mean=manifest["normalization"]["mean"],
        std=manifest["normalization"]["std"],
        class_weights=data.class_weights(targets, len(labels), CLASS_WEIGHT_POWER[config.class_weighting]),
        fingerprint=dataset.fingerprint(curated_dir),
        config=config.to_dict(),
        curated_dir=str(Path(curated_dir).resolve()),
    )
    atomic.write_text(output_dir / "config.json", json.dumps(config.to_dict(), indent=2) + "\n")
    if isinstance(train_loader.sampler, data.OutlierSubsetSampler):
        pixels = train_loader.dataset.tensors[0]
        train_loader.sampler.scorer = lambda positions: model.digit_scores(pixels[positions])

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".fit-", dir=output_dir) as scratch:
        trainer = L.Trainer(
            accelerator="cpu",
            devices=1,
            max_epochs=config.epochs,
            min_epochs=config.min_epochs if config.early_stopping else None,
            deterministic=True,
            logger=CSVLogger(save_dir=output_dir, name=LOG_DIR, version=""),
            callbacks=callbacks(config, scratch),
            num_sanity_val_steps=0,
            limit_train_batches=config.limit_train_batches,
            log_every_n_steps=1,
            enable_progress_bar=sys.stderr.isatty(),
            enable_model_summary=False,
            profiler=profiler,
        )
        trainer.fit(model, train_loader, val_loader)
        wall = time.perf_counter() - start
        selected = trainer.checkpoint_callback.best_model_path
        best = torch.load(selected, map_location="cpu", weights_only=True)
        # EarlyStopping may ask to stop before min_epochs; training ends when both allow it.
        epochs_run = trainer.current_epoch
        stopped_early = epochs_run < config.epochs
        summary = {
            "epochs_run": epochs_run,
            "best_epoch": best["epoch"],
            "stopped_early": stopped_early,
            "stopped_epoch": epochs_run - 1 if stopped_early else None,
            "best_val_metrics": best["digits_val_metrics"],
            "wall_time_seconds": round(wall, 2),
            "config": config.to_dict(),
        }
        atomic.write_text(output_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        os.replace(selected, output_dir / CHECKPOINT_NAME)
    return summary
