"""The runtime's own fixtures: real `digits serve` processes."""

import contextlib
import re
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest


@contextlib.contextmanager
def run_server(
    model: Path, command: Sequence[str] = (sys.executable, "-m", "digits_runtime")
) -> Iterator[str]:
    """Run `digits serve` on ``model`` on 127.0.0.1 on a free port; yield its URL; stop it with Ctrl-C.

    ``command`` runs the `digits` command line (a test may start it with smaller limits).
    """
    process = subprocess.Popen(
        [*command, "serve", "--model", str(model), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()  # printed once the model is loaded and the port is listening
    found = re.search(r" at (http://127\.0\.0\.1:\d+) ", line)
    if not found:
        process.kill()
        pytest.fail(f"digits serve did not start: {line}{process.communicate()[1]}")
    try:
        yield found.group(1)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
        assert (process.returncode, err) == (130, "digits: interrupted\n")
    finally:  # a failed test, or a server that did not stop, still leaves no process behind
        if process.poll() is None:
            process.kill()
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
