"""Helpers that tests of several packages share (importable as ``helpers``: see pytest's pythonpath)."""

import contextlib
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
from PIL import ImageDraw

from digits_core.cli_support import run_fire

SLOW_IMAGES = 1024  # the batch tests' slow archive: 120x120 PNGs, about 2 ms each to bring to MNIST form


EXE = [sys.executable, "-m", "digits_runtime"]
"""The `digits` command of the interpreter running the tests."""


def digits(*argv, **kwargs) -> subprocess.CompletedProcess:
    """Run `digits` with ``argv`` (str() of each) and capture its output as text."""
    return subprocess.run([*EXE, *map(str, argv)], capture_output=True, text=True, timeout=300, **kwargs)


def wait_listening(process: subprocess.Popen, port: int, log: Path, seconds: float = 60) -> None:
    """Wait until ``process`` listens on 127.0.0.1:``port``; fail with its ``log`` if it ends first."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"the server did not listen within {seconds:g} s"
            time.sleep(0.2)


def cli_runner(commands: Mapping[str, Callable], name: str) -> Callable[..., tuple[int, str, str]]:
    """Return ``run(capsys, *argv) -> (exit code, stdout, stderr)`` for one command line, in process."""

    def run(capsys, *argv) -> tuple[int, str, str]:
        code = run_fire(commands, name, [str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def flip_byte(path: Path, offset: int = -100) -> Path:
    """Invert every bit of one byte of ``path`` (counted from the end when negative), in place."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def tampered_copy(folder: Path, destination: Path, name: str, offset: int = -100) -> Path:
    """Copy ``folder`` to ``destination`` and flip one byte of its file ``name``; return the copy."""
    shutil.copytree(folder, destination)
    flip_byte(destination / name, offset)
    return destination


def curate_args(data_dir: Path, output_dir: Path, class_counts: str) -> list[str]:
    """The `digits-data curate` arguments for a small curation of ``data_dir`` into ``output_dir``."""
    return [
        "curate",
        "--data-dir",
        str(data_dir),
        "--output-dir",
        str(output_dir),
        "--class-counts",
        class_counts,
    ]


def save_eval_image(curated: Path, folder: Path, index: int = 0) -> Path:
    """Write image ``index`` of the curated eval split as a PNG file in ``folder``; return its path."""
    from PIL import Image

    from digits_data import dataset

    path = folder / f"eval{index}.png"
    Image.fromarray(dataset.load_split(curated, "eval").images[index]).save(path)
    return path


def assert_disk_full_line(err: str, program: str, target: Path) -> None:
    """``err`` is the one line ``program`` prints when the disk fills while it writes ``target``."""
    assert err.startswith(f"{program}: error: cannot write {target}")
    assert err.endswith(": No space left on device; free some space and run again\n")
    assert err.count("\n") == 1


def edited_handwriting(folder: Path, destination: Path, edit: Callable[[dict], object]) -> Path:
    """Copy a generated handwriting set to ``destination`` with ``edit`` applied to its manifest.

    ``edit`` changes the manifest in place (or returns a whole new one) and the result is written
    back as JSON, as a hand edit would leave it; the image files stay as they were.
    """
    import json

    shutil.copytree(folder, destination)
    path = destination / "manifest.json"
    manifest = json.loads(path.read_text())
    changed = edit(manifest)
    path.write_text(json.dumps(manifest if changed is None else changed))
    return destination


HANDWRITING_EDITS = {
    "label x": lambda m: m["samples"][0].update(label="x"),
    "fives relabelled 7": lambda m: [s.update(label="7") for s in m["samples"] if s["label"] == "5"] and None,
    "samples empty": lambda m: m.update(samples=[]),
    "samples missing": lambda m: m.pop("samples") and None,
    "samples a dict": lambda m: m.update(samples={s["file"]: s for s in m["samples"]}),
    "styles missing": lambda m: m["samples"][3].pop("styles") and None,
    "unknown kind": lambda m: m["samples"][-1].update(kind="scribble"),
}
"""Hand edits of a handwriting manifest that every reader must refuse, by name."""


@contextlib.contextmanager
def dask_cluster(folder: Path, workers: int = 2) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """A real Dask cluster on loopback: `dask scheduler` and ``workers`` `dask worker` processes.

    Every process listens on 127.0.0.1 only (the scheduler on a port the system picks); each
    worker has one thread and no nanny, so the process started here is the one that does the
    work and can be killed by its own pid. Yields the scheduler's address and the worker
    processes once all have joined; at the end stops exactly the processes it started.
    """
    dask = str(Path(sys.executable).with_name("dask"))
    folder.mkdir(parents=True, exist_ok=True)
    started: list[subprocess.Popen] = []

    def start(name: str, *argv: str) -> Path:
        log = folder / f"{name}.log"
        with log.open("wb") as out:
            started.append(subprocess.Popen([dask, *argv], stdout=out, stderr=subprocess.STDOUT, cwd=folder))
        return log

    def wait_for(log: Path, pattern: str) -> re.Match:
        for _ in range(600):
            found = re.search(pattern, log.read_text())
            if found:
                return found
            if any(p.poll() is not None for p in started):
                raise RuntimeError(f"a dask process ended early:\n{log.read_text()}")
            time.sleep(0.1)
        raise RuntimeError(f"dask did not start in 60 s:\n{log.read_text()}")

    try:
        log = start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard")
        address = wait_for(log, r"Scheduler at:\s+(tcp://127\.0\.0\.1:\d+)")[1]
        logs = [
            start(
                f"worker{i}",
                "worker",
                address,
                "--host",
                "127.0.0.1",
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
                "--local-directory",
                str(folder / f"worker{i}"),
            )
            for i in range(workers)
        ]
        for worker_log in logs:
            wait_for(worker_log, r"Registered to:")
        yield address, started[1:]
    finally:
        # The workers first, then the scheduler once they have ended: a worker stopped while its
        # scheduler closes can hang in its own shutdown (on a busy machine, one in a few) until
        # it is killed 20 s later.
        for group in (started[1:], started[:1]):
            for process in group:
                process.terminate()
            for process in group:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def assert_each_input_once(output: Path, slow_archive, model: Path) -> None:
    """Every input of ``slow_archive`` is in exactly one row of the Parquet folder ``output``, with
    the Predictor's probabilities, bit for bit."""
    import numpy as np
    import pyarrow.parquet as pq

    from digits_runtime.predictor import Predictor

    folder, source = slow_archive
    found = pq.read_table(output).to_pylist()
    assert sorted(r["path"] for r in found) == sorted(source)  # every input, none twice
    classified, _ = Predictor(model).classify_each(sorted(folder.glob("00[01]?.png"))[:16])
    for row in found:
        assert row["error"] is None
        expected = classified.probabilities[source[row["path"]]]
        assert np.array_equal(np.array([row["prob_0"], row["prob_5"], row["prob_8"]], np.float32), expected)


def evaluate(model, curated, folder, splits=("eval", "test", "other")):
    """Run `digits evaluate --json` for each split into ``folder``, as `make evaluate` does."""
    from digits_runtime import cli

    for split in splits:
        argv = ["evaluate", "--model", str(model), "--curated-dir", str(curated), "--split", split]
        assert run_fire(cli.COMMANDS, "digits", [*argv, "--json", str(folder / f"{split}.json")]) == 0


def eight(draw: ImageDraw.ImageDraw, box=(34, 12, 78, 100), width: int = 6) -> None:
    """Draw an 8 of two ellipses, white, into ``box`` (x0, y0, x1, y1) of ``draw``'s image."""
    x0, y0, x1, y1 = box
    middle = (y0 + y1) // 2
    draw.ellipse((x0, y0, x1, middle), outline=255, width=width)
    draw.ellipse((x0 - 3, middle - 3, x1 + 3, y1), outline=255, width=width)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """The cosine of two images' pixels: 1.0 for the same picture at any brightness."""
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))
