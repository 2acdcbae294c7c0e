"""What flushing atomic writes to the disk costs: the same writes with ``fsync`` and without, in one run.

digits_core.atomic flushes every file it writes (``fsync``) before renaming it over its target,
and the folder after the rename, so that a power loss leaves the old output or the new one; a
folder written whole is flushed with one ``syncfs`` of its file system (Linux), not a ``fsync``
per file.
Measured here, on the file system of ``--dir`` (by default a temporary folder beside this
checkout's artifacts/, where `make all` writes), each case timed with the real ``os.fsync`` and
``syncfs`` and with both made no-ops (the code path is otherwise the same), interleaved round by round,
``os.sync()`` before each round so that neither inherits the other's dirty pages:

- one small file (a 300-byte JSON, as the step timings and config files are), many times;
- one 8 MB file (as the split files, the checkpoint and the model are);
- a folder of 1,226 files of 6 KB (the shape of the handwriting set);
- the writes of one `make all` from a fresh clone, replayed with their sizes: 31 atomic file
  writes (the 4 MNIST files, 6 curation files, the contact sheet, the training config and
  summary, the model, 5 evaluation results, the sample image, the report's page and numbers,
  9 step timings) and 5 atomic folders (curation, the 1,226 files of the handwriting set, the
  degradation suite, training, the report's 14 figures). Sizes follow the default recipe (split
  files exactly, the others as measured on a full run, to within a factor of two): what matters
  is the count of files and of bytes, which the cost of ``fsync`` follows.

Reported: median seconds per case with and without ``fsync``, their ratio, and the seconds
flushing adds to `make all`.

    .venv/bin/python benchmarks/bench_durable.py [--dir DIR] [--rounds 5]
"""

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from digits_core import atomic

KB, MB = 1024, 1024 * 1024
MNIST = [47_040_016, 60_008, 7_840_016, 10_008]
SPLITS = [3400 * 800, 600 * 800, 1000 * 800, 7000 * 800, 700 * 800]  # N images x (784 pixels + 16)
# The atomic file writes of `make all`, outside the folders below: (what, sizes in bytes).
FILES = [
    ("MNIST files", MNIST),
    ("contact sheet", [60 * KB]),
    ("model.onnx", [1 * MB]),
    ("evaluation results", [200 * KB, 500 * KB, 1 * MB, 400 * KB, 100 * KB]),
    ("sample image", [400]),
    ("step timings", [300] * 9),
]
# The atomic folders: (what, sizes of its files, sizes of the atomic file writes made inside it).
FOLDERS = [
    ("curation", [], [*SPLITS, 80 * KB]),
    ("handwriting set", [6 * KB] * 1224 + [400 * KB, 300 * KB], []),
    ("degradation suite", [4 * MB, 300 * KB, 2 * KB], []),
    ("training", [2 * MB, 10 * KB], [1 * KB, 2 * KB]),
    ("report", [50 * KB] * 14, [50 * KB, 60 * KB]),
]
WRITES = sum(len(sizes) for _, sizes in FILES) + sum(len(inside) for _, _, inside in FOLDERS)


_RANDOM = os.urandom(48 * MB)  # drawn once: drawing it per file would be timed too


def payload(size: int) -> bytes:
    """``size`` random bytes, which no file system compresses away."""
    return _RANDOM[:size]


def write_files(root: Path, sizes: list[int]) -> None:
    for n, size in enumerate(sizes):
        atomic.write_bytes(root / f"file-{n}", payload(size))


def write_folder(target: Path, sizes: list[int]) -> None:
    with atomic.atomic_dir(target, "bench") as scratch:
        for n, size in enumerate(sizes):
            (scratch / f"plain-{n}").write_bytes(payload(size))


def make_all(root: Path) -> None:
    """Replay the atomic writes of one `make all`: files, then folders with what is written inside."""
    for what, sizes in FILES:
        folder = root / what.replace(" ", "-")
        folder.mkdir(exist_ok=True)
        write_files(folder, sizes)
    for what, plain, inside in FOLDERS:
        with atomic.atomic_dir(root / what.replace(" ", "-"), "bench") as scratch:
            for n, size in enumerate(plain):
                (scratch / f"plain-{n}").write_bytes(payload(size))
            for n, size in enumerate(inside):
                atomic.write_bytes(scratch / f"atomic-{n}", payload(size))


def timed(case: Callable[[Path], None], root: Path, durable: bool) -> float:
    """Seconds ``case`` takes in a fresh folder under ``root``, with ``fsync`` real or a no-op."""
    folder = Path(tempfile.mkdtemp(dir=root))
    os.sync()  # start clean: no dirty pages of an earlier round to flush
    real_fsync, real_syncfs = os.fsync, atomic._syncfs
    if not durable:
        os.fsync, atomic._syncfs = (lambda fd: None), (lambda folder: True)
    try:
        start = time.perf_counter()
        case(folder)
        return time.perf_counter() - start
    finally:
        os.fsync, atomic._syncfs = real_fsync, real_syncfs
        shutil.rmtree(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("artifacts"), help="where to write (its disk)")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=".bench-durable-", dir=args.dir))
    cases = {
        "small file (300 B) x 100": lambda d: write_files(d, [300] * 100),
        "8 MB file x 4": lambda d: write_files(d, [8 * MB] * 4),
        "folder of 1,226 files of 6 KB": lambda d: write_folder(d / "set", [6 * KB] * 1226),
        f"make all's writes ({WRITES} files, 5 folders)": make_all,
    }
    try:
        results = {name: {True: [], False: []} for name in cases}
        for _ in range(args.rounds):
            for name, case in cases.items():
                for durable in (True, False):
                    results[name][durable].append(timed(case, root, durable))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"file system of {args.dir.resolve()}; median of {args.rounds} rounds, each case in one run\n")
    print(f"{'case':42} {'fsync':>9} {'no fsync':>9} {'ratio':>7} {'added':>9}")
    for name, times in results.items():
        on, off = statistics.median(times[True]), statistics.median(times[False])
        print(f"{name:42} {on:8.3f}s {off:8.3f}s {on / off:6.1f}x {on - off:8.3f}s")


if __name__ == "__main__":
    main()
