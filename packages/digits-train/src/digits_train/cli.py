"""`digits-train`: fit the classifier, export it to ONNX."""

from pathlib import Path

from digits_core import layout
from digits_core.checks import check_int, check_path
from digits_core.cli_support import main_for
from digits_core.errors import DigitsError
from digits_core.refusal import RefusalRule
from digits_data import dataset
from digits_train.config import NO_CHECKPOINT, FitConfig


def fit(
    curated_dir: str = layout.CURATED_DIR,
    output_dir: str = layout.TRAIN_DIR,
    seed: int | None = None,
    epochs: int | None = None,
    learning_rate: float | None = None,
    batch_size: int | None = None,
    num_workers: int | None = None,
    augment: bool | None = None,
    elastic: float | None = None,
    degrees: float | None = None,
    degrade: float | None = None,
    junk: float | None = None,
    printed: int | None = None,
    network: str | None = None,
    members: int | None = None,
    class_weighting: str | None = None,
    schedule: str | None = None,
    ema_decay: float | None = None,
    selection: str | None = None,
    early_stopping: bool | None = None,
    outlier_weight: float | None = None,
    outlier_target: str | None = None,
    typeset: int | None = None,
    outliers_per_epoch: int | None = None,
    hard_outliers: float | None = None,
    threads: int | None = None,
) -> None:
    """Train the CNN on the curated splits and keep the selected checkpoint.

    Writes OUTPUT_DIR/best.ckpt, lightning_logs/metrics.csv, config.json and summary.json.
    Options left out take the defaults of digits_train.config.FitConfig (shown in config.json).

    Args:
        curated_dir: Folder written by `digits-data curate`.
        output_dir: Folder for the checkpoint, logs and summary.
        seed: Seed of initialization, shuffling and augmentation.
        epochs: Number of epochs (at most 20).
        learning_rate: AdamW's peak (one-cycle) or initial (plateau) learning rate.
        batch_size: Training batch size.
        num_workers: DataLoader worker processes (0 is fastest for in-memory 28x28 data).
        augment: Random rotation, shift, scale, slant and stroke width of training images.
        elastic: Peak displacement of the augmentation's smooth random warp (0 turns it off).
        degrees: Largest rotation of the augmentation, either way.
        degrade: Share of training images given one degradation (noise, blur, outline, marks...).
        junk: Share of outliers replaced by junk (scribbles, noise, two digits side by side, part of one).
        printed: Digits set in matplotlib's DejaVu and STIX typefaces, added to the known digits.
        network: deep (four conv blocks, the default), compact (three) or reference (two).
        members: Networks trained side by side and averaged in one model (1: a single network).
        class_weighting: sqrt (square root of inverse class frequency) or inverse.
        schedule: onecycle, or plateau (ReduceLROnPlateau on validation macro-F1).
        ema_decay: Decay of the exponential moving average of the weights (0 turns it off).
        selection: final (the last epoch's weights) or best (best validation macro-F1).
        early_stopping: Stop when validation macro-F1 stops improving (after 15 epochs).
        outlier_weight: Weight of the loss on other digits and letters (0: no outliers).
        outlier_target: reject (outliers trained to a class of their own) or uniform (to equal
            probabilities of the digits).
        typeset: Letters and other digits, typeset in fonts or drawn along pen strokes, added to the outliers.
        outliers_per_epoch: Outliers drawn afresh for each epoch (0: all of them every epoch).
        hard_outliers: Share of each epoch's outliers (after the first) that are those the model
            then takes most for a digit (0: all drawn at random).
        threads: torch's CPU threads (default one per core). The weights depend on it, as they
            do on the CPU: the same seed with other threads gives another model.
    """
    options = {key: value for key, value in locals().items() if value is not None}
    given = {key: options.pop(key, None) for key in ("curated_dir", "output_dir", "threads")}
    check_path("output_dir", output_dir)
    if threads is not None:
        check_int("threads", threads, 1, 1024)
    config = FitConfig(**options)
    # A missing, incomplete or changed curated folder is said at once, not after seconds of
    # loading torch (checking the splits' sha256 twice costs a few tens of milliseconds).
    dataset.load_manifest(given["curated_dir"])
    from digits_train.fit import fit as run_fit  # torch and Lightning load only when needed

    summary = run_fit(given["curated_dir"], given["output_dir"], config, threads=threads)
    metrics = summary["best_val_metrics"]
    print(
        f"trained {summary['epochs_run']} epochs in {summary['wall_time_seconds']:.1f} s; "
        f"kept epoch {summary['best_epoch']}: val macro-F1 {metrics['val_macro_f1']:.4f}, "
        f"accuracy {metrics['val_accuracy']:.4f}, loss {metrics['val_loss']:.4f}"
    )
    print(f"checkpoint: {output_dir}/best.ckpt")


def export(
    checkpoint_path: str = layout.CHECKPOINT,
    output: str = layout.MODEL,
    curated_dir: str | None = None,
) -> None:
    """Export a checkpoint to a single ONNX file, checked against torch before it is written.

    Args:
        checkpoint_path: A best.ckpt written by `digits-train fit`.
        output: Path of the ONNX model to write.
        curated_dir: Curated folder for the parity check (default: the one the checkpoint was trained on).
    """
    check_path("output", output)
    if not Path(checkpoint_path).is_file():  # said at once, not after seconds of loading torch
        raise DigitsError(NO_CHECKPOINT.format(path=checkpoint_path))
    from digits_train.export import export as run_export

    result = run_export(checkpoint_path, output, curated_dir)
    parity = result["parity"]
    print(
        f"exported {output}: {result['bytes'] / 1024:.1f} KiB, {result['parameters']:,} parameters; "
        f"parity with torch on {parity['images']} eval images at batch sizes "
        f"{', '.join(map(str, parity['batch_sizes']))}: argmax identical, "
        f"max |Δp| {parity['max_abs_diff']:.1e}"
    )
    rule = result["refusal"]
    print(
        f"refusal: {RefusalRule(**rule).condition(4)} accepts {rule['known_accept_rate']:.1%} "
        f"of validation digits and refuses {result['other_val_refused'][rule['score']]:.1%} of other_val"
    )


COMMANDS = {"fit": fit, "export": export}
main = main_for(COMMANDS, "digits-train")
