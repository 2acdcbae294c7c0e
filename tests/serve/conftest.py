"""The server's fixtures: real `digits serve` processes, and the images the tests send them."""

import contextlib
import io
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from PIL import Image

from digits_data import dataset
from digits_runtime import Predictor

from http_helpers import ACCESS_LOGS, png, read_lines


@contextlib.contextmanager
def run_server(
    model: Path, command: Sequence[str] = (sys.executable, "-m", "digits_runtime"), flags: Sequence[str] = ()
) -> Iterator[str]:
    """Run `digits serve` on ``model`` on 127.0.0.1 on a free port; yield its URL; stop it with Ctrl-C.

    ``command`` runs the `digits` command line (a test may start it with smaller limits), with
    ``flags`` added to `digits serve`'s. The
    lines of its access log are kept in ``ACCESS_LOGS[url]`` as they come.
    """
    process = subprocess.Popen(
        [*command, "serve", "--model", str(model), "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # A group of its own: a server that does not stop is killed with its workers, which
        # would otherwise hold its stderr open.
        start_new_session=True,
        text=True,
    )
    line = process.stdout.readline()  # printed once the model is loaded and the port is listening
    found = re.search(r" at (http://127\.0\.0\.1:\d+) ", line)
    if not found:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"digits serve did not start: {line}{process.communicate()[1]}")
    url = found.group(1)
    ACCESS_LOGS[url] = read_lines(process.stdout)
    try:
        yield url
        process.send_signal(signal.SIGINT)
        process.stdout = None  # the reader thread has it: communicate() reads stderr only
        _, err = process.communicate(timeout=20)
        assert (process.returncode, err) == (130, "digits: interrupted\n")
    finally:  # a failed test, or a server that did not stop, still leaves no process behind
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # the group is the server's: its id is the server's
            process.communicate()


@pytest.fixture(scope="session")
def serving():
    """Start `digits serve` on a model of the test's making: ``with serving(path) as url: ...``."""
    return run_server


@pytest.fixture(scope="session")
def server(model_path: Path) -> Iterator[str]:
    """`digits serve` on the contract model, a real process; yields its URL."""
    with run_server(model_path) as url:
        yield url


@pytest.fixture(scope="session")
def eval_pngs(small_curated) -> list[bytes]:
    """Ten eval images as PNG files in MNIST form."""
    split = dataset.load_split(small_curated, "eval")
    return [png(split.images[i]) for i in range(10)]


@pytest.fixture(scope="session")
def photo(small_curated) -> bytes:
    """A 640x480 JPEG "photo": an eval digit as dark ink on grey paper, 12x larger, off center."""
    digit = dataset.load_split(small_curated, "eval").images[3]
    ink = Image.fromarray(255 - digit).resize((336, 336), Image.Resampling.BILINEAR)
    paper = Image.new("L", (640, 480), 200)
    paper.paste(ink.point(lambda v: min(v, 200)), (200, 80))
    return png(paper.convert("RGB"), "JPEG")


@pytest.fixture(scope="session")
def expected(model_path):
    """What the Predictor itself answers for image bytes, as the server's result for a file of that
    name (None: the raw body), with the refusal score: the server must give exactly this."""
    predictor = Predictor(model_path, threads=1)

    def result(data: bytes, file: str | None = None) -> dict:
        classified, _ = predictor.classify_each([io.BytesIO(data)])
        prediction = predictor.predict(io.BytesIO(data)).to_json()
        return {"file": file, **prediction, "score": round(float(classified.scores[0]), 6)}

    return result
