"""The runtime's own fixture: a real `digits serve` process."""

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def server(model_path: Path):
    """`digits serve` on the contract model, a real process on 127.0.0.1 on a free port; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "digits_runtime", "serve", "--model", str(model_path), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()  # printed once the model is loaded and the port is listening
    found = re.search(r" at (http://127\.0\.0\.1:\d+) ", line)
    if not found:
        process.kill()
        pytest.fail(f"digits serve did not start: {line}{process.communicate()[1]}")
    yield found.group(1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=20)
    assert (process.returncode, err) == (130, "digits: interrupted\n")
