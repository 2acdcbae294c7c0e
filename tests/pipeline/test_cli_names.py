"""The four command lines as installed console scripts: names taken literally (never read as
numbers, booleans or lists), - for standard input, names after --, blank names refused, --help
on stdout without a pager and --version on every command."""

import json
import os
import pty
import re
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from digits_runtime import Predictor

from helpers import save_eval_image

BIN = Path(sys.executable).parent
SCRIPTS = {  # console script: (its distribution, one of its commands or None)
    "digits": ("digits-runtime", "predict"),
    "digits-data": ("digits-data", "inspect"),
    "digits-train": ("digits-train", "export"),
    "digits-report": ("digits-report", None),
}
pytestmark = pytest.mark.slow  # every test starts installed console scripts, some several times

ODD_NAMES = ["2024", "1e3", "0x10", "True", "[a]"]  # Fire alone reads them as 2024, 1000.0, 16, True, ['a']


def script(name: str, *argv, **kwargs) -> subprocess.CompletedProcess:
    """Run an installed console script; text output, captured."""
    kwargs.setdefault("capture_output", True)
    return subprocess.run([str(BIN / name), *map(str, argv)], text=True, timeout=120, **kwargs)


@pytest.fixture(scope="module")
def digit(small_curated, tmp_path_factory):
    return save_eval_image(small_curated, tmp_path_factory.mktemp("names"))


@pytest.fixture(scope="module")
def answer(model_path, digit):
    """What `digits predict` prints for the digit: the Predictor's answer."""
    return Predictor(model_path).predict(digit).to_json()


def test_image_names_that_look_like_literals_are_names(model_path, digit, answer, tmp_path):
    for name in ODD_NAMES:
        shutil.copy(digit, tmp_path / name)
    done = script("digits", "predict", "--model", model_path, *ODD_NAMES, cwd=tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    assert [json.loads(line) for line in done.stdout.splitlines()] == [
        {"path": name, **answer} for name in ODD_NAMES
    ]
    for name in ODD_NAMES:  # alone, and as the value of --model
        done = script("digits", "predict", "--model", model_path, name, cwd=tmp_path)
        assert (done.returncode, json.loads(done.stdout), done.stderr) == (0, answer, "")
    shutil.copy(model_path, tmp_path / "1e3.onnx")
    shutil.copy(model_path, tmp_path / "0x10")
    for model in ("0x10", "--model=0x10"):
        argv = ["--model", model] if "=" not in model else [model]
        done = script("digits", "predict", *argv, "True", cwd=tmp_path)
        assert (done.returncode, json.loads(done.stdout), done.stderr) == (0, answer, "")


def test_folder_names_that_look_like_literals_are_names_in_the_other_commands(small_curated, tmp_path):
    (tmp_path / "2024").symlink_to(small_curated, target_is_directory=True)
    done = script(
        "digits-data", "sample", "--curated-dir", "2024", "--index", "3", "--output", "1e3", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("1e3: eval image 3, MNIST index ")
    assert (tmp_path / "1e3").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    done = script("digits-data", "inspect", "--curated-dir", "2024", cwd=tmp_path)
    assert (done.returncode, done.stdout.splitlines()[0], done.stderr) == (0, "curated data in 2024", "")
    done = script("digits-report", "--curated-dir", "[a]", "--output-dir", "out", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        "digits-report: error: curated folder [a] does not exist: "
        "run `make curate` (or `digits-data curate`) to create it\n"
    )


def test_train_takes_names_literally(tmp_path):
    done = script("digits-train", "export", "--checkpoint-path", "0x10", "--output", "True", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith("digits-train: error: checkpoint 0x10 ")
    assert done.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_batch_input_and_output_named_like_numbers(model_path, digit, tmp_path):
    (tmp_path / "2024").mkdir()
    shutil.copy(digit, tmp_path / "2024" / "a.png")
    for output in ("1e3", "True"):
        done = script(
            "digits", "batch", "2024", output, "--model", model_path, "--workers", "1", cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["inputs"] == json.loads(done.stdout)["scored"] == 1
        parts = [p.name for p in (tmp_path / output).iterdir()]
        assert len(parts) == 1
        assert re.fullmatch(r"part-000000-[0-9a-f]{16}\.parquet", parts[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1e3", "2024", "True"]


def test_dash_reads_one_image_from_standard_input(model_path, digit, answer):
    with open(digit, "rb") as stdin:  # redirected from a file
        done = script("digits", "predict", "--model", model_path, "-", stdin=stdin)
    assert (done.returncode, json.loads(done.stdout), done.stderr) == (0, answer, "")
    data = digit.read_bytes()
    for name in ("-", "/dev/stdin"):  # from a pipe
        done = subprocess.run(
            [BIN / "digits", "predict", "--model", model_path, name],
            input=data,
            capture_output=True,
            timeout=60,
        )
        assert (done.returncode, json.loads(done.stdout), done.stderr) == (0, answer, b"")
    done = subprocess.run(
        [BIN / "digits", "predict", "--model", model_path, digit, "-"],
        input=data,
        capture_output=True,
        timeout=60,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert (done.returncode, lines) == (0, [{"path": str(digit), **answer}, {"path": "-", **answer}])


def test_dash_refusals(model_path, digit):
    done = script("digits", "predict", "--model", model_path, "-", input="")
    assert (done.returncode, done.stdout, done.stderr) == (
        1,
        "",
        "digits: error: standard input is empty (0 bytes)\n",
    )
    done = script("digits", "predict", "--model", model_path, "-", "-", input="x")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "digits: error: - (standard input) can be given once: it holds one image file\n"
    done = script("digits", "predict", "--model", model_path, "-", stdin=subprocess.DEVNULL)
    assert (done.returncode, done.stderr) == (1, "digits: error: standard input is empty (0 bytes)\n")


def test_dash_on_a_terminal_is_refused_not_waited_on(model_path):
    """On a terminal, - would wait for typing that never comes: one line instead."""
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run(
            [BIN / "digits", "predict", "--model", model_path, "-"],
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "digits: error: - reads an image from standard input, which is a terminal: "
        "pipe or redirect an image file, e.g. digits predict - < scan.png\n"
    )


def test_names_that_start_with_a_dash_go_after_double_dash(model_path, digit, answer, tmp_path):
    for name in ("-rf.png", "--help", "-", "--version"):
        shutil.copy(digit, tmp_path / name)
    done = script("digits", "predict", "--model", model_path, "--", "-rf.png", cwd=tmp_path)
    assert (done.returncode, json.loads(done.stdout), done.stderr) == (0, answer, "")
    # As in any Unix tool, - stays standard input after --; the file named - is ./-
    done = script(
        "digits",
        "predict",
        "--model",
        model_path,
        "--",
        "-rf.png",
        "--help",
        "./-",
        "--version",
        "-",
        cwd=tmp_path,
        input="",
    )
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["path"] for line in lines] == ["-rf.png", "--help", "-", "--version", "-"]
    assert [line.get("error") for line in lines] == [None] * 4 + ["standard input is empty (0 bytes)"]
    assert (done.returncode, done.stderr.count("\n")) == (1, 1)
    done = script("digits", "predict", "--model", model_path, "-rf.png", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "digits: error: digits predict has no option -rf.png; to name the file -rf.png, "
        "put it after --: digits predict -- -rf.png\n"
    )


def test_blank_names_are_refused_with_one_line(model_path, small_curated, tmp_path):
    done = script(
        "digits",
        "evaluate",
        "--model",
        model_path,
        "--curated-dir",
        small_curated,
        "--json",
        "  ",
        cwd=tmp_path,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "digits: error: --json must name a JSON file to write, got '  '\n"
    done = script("digits", "batch", "in", " ", "--model", model_path, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert (
        done.stderr
        == "digits: error: give OUTPUT as a folder, glob or URI, got ' ': digits batch INPUT OUTPUT\n"
    )
    done = script("digits", "batch", "\t", "out", "--model", model_path, cwd=tmp_path)
    assert (
        done.stderr
        == "digits: error: give INPUT as a folder, glob or URI, got '\\t': digits batch INPUT OUTPUT\n"
    )
    done = script("digits-data", "sample", "--curated-dir", small_curated, "--output", " ", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (
        2,
        "digits-data: error: --output must name a path to write, got ' '\n",
    )
    assert list(tmp_path.iterdir()) == []


def test_blank_image_names_are_refused_not_read_as_the_current_folder(model_path, digit, tmp_path):
    shutil.copy(digit, tmp_path / "a.png")  # what "" would find, read as the current folder
    for blank in ("", "  "):
        done = script("digits", "predict", "--model", model_path, "a.png", blank, cwd=tmp_path)
        assert (done.returncode, done.stdout) == (2, "")
        assert (
            done.stderr == f"digits: error: an image name is blank ({blank!r}): give image files or folders\n"
        )


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_goes_to_stdout_and_exits_0(name):
    command = SCRIPTS[name][1]
    for argv in ([], [command]) if command else ([],):
        for flag in ("--help", "-h"):
            done = script(name, *argv, flag, env={**os.environ, "PAGER": "false"})
            assert (done.returncode, done.stderr) == (0, "")
            title = f"{name} {command} - " if argv else f"{name}"
            assert done.stdout.startswith(f"NAME\n    {title}")
            assert "INFO:" not in done.stdout
            assert "--version" in done.stdout


def test_help_on_a_terminal_opens_no_pager(tmp_path):
    """On a terminal Fire pages its help through $PAGER; the page is printed instead."""
    marker = tmp_path / "paged"
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [BIN / "digits", "predict", "--help"],
            stdout=terminal,
            stderr=subprocess.PIPE,
            env={**os.environ, "PAGER": f"touch {marker}; cat"},
        )
        os.close(terminal)
        out = b""
        while chunk := _read(controller):
            out += chunk
        _, err = process.communicate(timeout=60)
    finally:
        os.close(controller)
    assert (process.returncode, err) == (0, b"")
    assert b"digits predict - Classify image files" in out
    assert not marker.exists()


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # the terminal closed: everything was read
        return b""


@pytest.mark.parametrize("name", SCRIPTS)
def test_version_on_every_command(name):
    dist, command = SCRIPTS[name]
    expected = f"{name} {version(dist)}\n"
    for argv in (
        (["--version"], [command, "--version"], [command, "x", "--version"]) if command else (["--version"],)
    ):
        done = script(name, *argv)
        assert (done.returncode, done.stdout, done.stderr) == (0, expected, "")


def test_a_missing_or_extra_name_is_one_line(model_path, tmp_path):
    done = script("digits", "batch", "in", "--model", model_path, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "digits: error: digits batch needs OUTPUT: see `digits batch --help`\n"
    done = script(
        "digits",
        "batch",
        "in",
        "out",
        "m.onnx",
        "dask",
        "2",
        "tcp://x:1",
        "256",
        "False",
        "5",
        "more",
        cwd=tmp_path,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "digits: error: digits batch does not take 'more': see `digits batch --help`\n"
    assert list(tmp_path.iterdir()) == []
