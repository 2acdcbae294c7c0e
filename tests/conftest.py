"""Fixtures shared by every package's tests: real MNIST (cached) and a small real curation."""

import subprocess
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


@pytest.fixture
def small_disk(tmp_path: Path):
    """Mount real file systems that fill up or refuse writes: ``small_disk(kib, read_only=False)``.

    tmpfs of the given size; needs the right to mount (root), so tests using it are skipped
    with the reason where it is missing. Unmounted at the end of the test.
    """
    mounted: list[Path] = []

    def mount(kib: int, read_only: bool = False) -> Path:
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        options = f"size={kib}k" + (",ro" if read_only else "")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small file system here: {done.stderr.strip() or 'mount failed'}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=True)
