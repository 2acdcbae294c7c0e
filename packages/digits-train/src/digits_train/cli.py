"""`digits-train`: fit the classifier, export it to ONNX."""

from digits_data.cli_support import main_for
from digits_data.contract import DEFAULT_SEED
from digits_data.errors import UsageError
from digits_train.config import MAX_EPOCHS, FitConfig


def fit(
    curated_dir: str = "artifacts/curated",
    output_dir: str = "artifacts/train",
    seed: int = DEFAULT_SEED,
    epochs: int = MAX_EPOCHS,
    learning_rate: float = 1e-3,
    batch_size: int = 32,
    num_workers: int = 0,
    augment: bool = True,
    network: str = "compact",
) -> None:
    """Train the CNN on the curated splits; keep the checkpoint with the best validation macro-F1.

    Writes OUTPUT_DIR/best.ckpt, lightning_logs/metrics.csv, config.json and summary.json.

    Args:
        curated_dir: Folder written by `digits-data curate`.
        output_dir: Folder for the checkpoint, logs and summary.
        seed: Seed of initialization, shuffling and augmentation.
        epochs: Maximum number of epochs (at most 20); early stopping may end sooner.
        learning_rate: Adam's initial learning rate.
        batch_size: Training batch size.
        num_workers: DataLoader worker processes (0 is fastest for in-memory 28x28 data).
        augment: Random small rotations, shifts and scalings of training batches.
        network: compact (three conv blocks, the default) or reference (two conv blocks).
    """
    if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs > MAX_EPOCHS:
        raise UsageError(
            f"--epochs must be at most {MAX_EPOCHS} (training is meant to take seconds), got {epochs}"
        )
    config = FitConfig(
        seed=seed,
        epochs=epochs,
        learning_rate=learning_rate,
        batch_size=batch_size,
        num_workers=num_workers,
        augment=augment,
        network=network,
    )
    from digits_train.fit import fit as run_fit  # torch and Lightning load only when needed

    summary = run_fit(curated_dir, output_dir, config)
    metrics = summary["best_val_metrics"]
    print(
        f"trained {summary['epochs_run']} epochs in {summary['wall_time_seconds']:.1f} s; "
        f"best epoch {summary['best_epoch']}: val macro-F1 {metrics['val_macro_f1']:.4f}, "
        f"accuracy {metrics['val_accuracy']:.4f}, loss {metrics['val_loss']:.4f}"
    )
    print(f"checkpoint: {output_dir}/best.ckpt")


def export(
    checkpoint_path: str = "artifacts/train/best.ckpt",
    output: str = "artifacts/model.onnx",
    curated_dir: str | None = None,
) -> None:
    """Export a checkpoint to a single ONNX file, checked against torch before it is written.

    Args:
        checkpoint_path: A best.ckpt written by `digits-train fit`.
        output: Path of the ONNX model to write.
        curated_dir: Curated folder for the parity check (default: the one the checkpoint was trained on).
    """
    from digits_train.export import export as run_export

    result = run_export(checkpoint_path, output, curated_dir)
    parity = result["parity"]
    print(
        f"exported {output}: {result['bytes'] / 1024:.1f} KiB, {result['parameters']:,} parameters; "
        f"parity with torch on {parity['images']} eval images at batch sizes "
        f"{', '.join(map(str, parity['batch_sizes']))}: argmax identical, "
        f"max |Δp| {parity['max_abs_diff']:.1e}"
    )


COMMANDS = {"fit": fit, "export": export}
main = main_for(COMMANDS, "digits-train")
