"""Fixtures shared by every package's tests: real MNIST (cached) and a small real curation."""

from pathlib import Path

import pytest

from digits_data import curate, mnist

REPO = Path(__file__).resolve().parents[1]
MNIST_CACHE = REPO / "artifacts" / "mnist"
SMALL_COUNTS = {0: 120, 5: 60, 8: 180}


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real, verified MNIST in artifacts/mnist (fetched once via the offline-capable sources)."""
    mnist.download(MNIST_CACHE, log=lambda message: None)
    return MNIST_CACHE


@pytest.fixture(scope="session")
def small_curated(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real curation of MNIST with small counts: train 245, val 43, eval 72 images;
    other_train 140 and other_val 70 (20 and 10 of each other digit)."""
    out = tmp_path_factory.mktemp("curated")
    curate.curate(mnist_dir, out, class_counts=SMALL_COUNTS, other_train_per_digit=20, other_val_per_digit=10)
    return out
