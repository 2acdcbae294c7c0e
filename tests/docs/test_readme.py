"""Every code block of the README runs, so that an example can never rot.

Shell blocks run with bash (``set -euo pipefail``) and Python blocks in a subprocess of this
environment, each in a temporary folder laid out as a checkout after `make all`: ``artifacts/``
with a small model, the sample image and a curated folder, plus the ``photo.jpg`` and ``scans/``
the examples name. A block that cannot run in a test (an install, `make all`, a server that runs
until stopped) is preceded by ``<!-- not-tested: reason -->``; there are few of them, and each
says why. The HTTP examples run against a real `digits serve` that the test starts on a free port.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digits_data import dataset

from helpers import wait_listening

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
BIN = Path(sys.executable).parent
RUNNABLE = {"sh": "bash", "python": "python"}
NOT_CODE = {"text"}  # diagrams and sample output
MAX_NOT_TESTED = 5
FENCE = re.compile(
    r"(?:<!-- not-tested: (?P<reason>[^>]*?) -->\n)?^```(?P<lang>\S*)\n(?P<code>.*?)^```$", re.M | re.S
)
SERVE_PORT = "127.0.0.1:8000"


@dataclass
class Block:
    line: int
    lang: str
    code: str
    reason: str | None

    def __str__(self) -> str:
        return f"README.md:{self.line} ({self.lang})"


def blocks(text: str) -> list[Block]:
    """The fenced code blocks of a markdown text, with their language and not-tested reason."""
    return [
        Block(text.count("\n", 0, m.start("code")), m["lang"], m["code"], m["reason"])
        for m in FENCE.finditer(text)
    ]


README_BLOCKS = blocks(README.read_text())
TESTED = [b for b in README_BLOCKS if b.reason is None and b.lang in RUNNABLE]


def test_every_block_runs_or_says_why_not():
    assert len(README_BLOCKS) >= 8
    for block in README_BLOCKS:
        assert block.lang in RUNNABLE.keys() | NOT_CODE, f"{block}: tag it sh, python or text"
        if block.reason is not None:
            assert block.lang in RUNNABLE, f"{block}: only runnable blocks need a reason not to run"
            assert len(block.reason.split()) >= 3, f"{block}: say why it cannot run in a test"
    skipped = [b for b in README_BLOCKS if b.reason is not None]
    assert 0 < len(skipped) <= MAX_NOT_TESTED, [str(b) for b in skipped]
    assert len(TESTED) >= 5


def test_the_block_parser_finds_reasons_and_languages():
    text = "x\n<!-- not-tested: it runs for ever -->\n```sh\nsleep inf\n```\n\n```python\nprint(1)\n```\n"
    found = blocks(text)
    assert [(b.line, b.lang, b.code, b.reason) for b in found] == [
        (3, "sh", "sleep inf\n", "it runs for ever"),
        (7, "python", "print(1)\n", None),
    ]


@pytest.fixture(scope="module")
def checkout(model_path: Path, small_curated: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder laid out as a checkout after `make all`, with a small model; and the files the
    examples name."""
    root = tmp_path_factory.mktemp("readme")
    artifacts = root / "artifacts"
    shutil.copytree(small_curated, artifacts / "curated")
    shutil.copy(model_path, artifacts / "model.onnx")
    images = dataset.load_split(small_curated, "eval").images
    Image.fromarray(images[0]).save(artifacts / "sample.png")
    (root / "scans").mkdir()
    for index in range(3):
        Image.fromarray(images[index]).save(root / "scans" / f"{index}.png")
    # A photo of a digit: dark ink on light paper, larger than MNIST, as JPEG.
    photo = Image.fromarray((255 - images[1]).astype(np.uint8)).resize((112, 112), Image.Resampling.BICUBIC)
    photo.save(root / "photo.jpg", quality=90)
    # curl reads $CURL_HOME/.curlrc: an HTTP error (a 422, a 500) fails the example as it would a script.
    (root / ".curlrc").write_text("fail-with-body\n")
    return root


def environment() -> dict[str, str]:
    """This environment's programs first on PATH, as after activating .venv."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def server(checkout: Path):
    """`digits serve` on the example's model, on a free port of 127.0.0.1; stopped by its pid."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = checkout / "serve.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [str(BIN / "digits"), "serve", "--model", "artifacts/model.onnx", "--port", str(port)],
            cwd=checkout,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=environment(),
        )
    try:
        wait_listening(process, port, log)
        yield f"127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("block", TESTED, ids=str)
def test_block_runs(block: Block, checkout: Path, request: pytest.FixtureRequest):
    code = block.code
    if SERVE_PORT in code:
        if shutil.which("curl") is None:
            pytest.skip("curl is not installed: apt-get install -y curl")
        code = code.replace(SERVE_PORT, request.getfixturevalue("server"))
    work = checkout / f"block{block.line}"
    shutil.copytree(checkout, work, ignore=shutil.ignore_patterns("block*", "serve.log"))
    if block.lang == "sh":
        command = ["bash", "-c", "set -euo pipefail\n" + code]
    else:
        command = [sys.executable, "-c", code]
    env = {**environment(), "CURL_HOME": str(work)}
    done = subprocess.run(command, cwd=work, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, f"{block} failed:\n{code}\n{done.stdout}\n{done.stderr}"
    assert done.stdout.strip(), f"{block} printed nothing"
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_an_http_error_fails_a_curl_example(checkout: Path, server: str):
    """The check above can fail: with the examples' curl configuration, an error status fails curl."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed: apt-get install -y curl")
    env = {**environment(), "CURL_HOME": str(checkout)}
    done = subprocess.run(
        ["curl", "-s", "-X", "POST", f"http://{server}/predict"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 22, (done.returncode, done.stdout)
    assert '"code":"empty_body"' in done.stdout
