"""Atomic writes and the step timer under faults: a killed writer's scratch is removed by the next write
(but not a live one's), devices are never replaced, links are followed, and a step whose time
cannot be recorded still succeeds."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from digits_core import atomic
from digits_core.errors import DigitsError


def test_an_unwritable_timings_folder_does_not_fail_a_step_that_succeeded(small_disk):
    timings = small_disk(64, read_only=True)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "digits_core.timing",
            str(timings),
            "curate",
            "--",
            sys.executable,
            "-c",
            "print(42)",
        ],
        capture_output=True,
        text=True,
    )
    assert (done.returncode, done.stdout) == (0, "42\n")
    assert done.stderr == (
        f"timing: warning: the curate time was not recorded: output folder {timings} is not writable: "
        "choose another or fix its permissions\n"
    )


def test_the_next_write_of_a_file_removes_what_a_killed_writer_left_but_not_a_live_ones_scratch(tmp_path):
    target = tmp_path / "eval.json"
    writer = textwrap.dedent(
        f"""
        import os, signal, sys
        from digits_core import atomic

        with atomic.atomic_path({str(target)!r}) as tmp:
            tmp.write_bytes(b'{{"half": ')
            print(tmp, flush=True)
            if sys.argv[1] == "die":
                os.kill(os.getpid(), signal.SIGKILL)
            sys.stdin.readline()  # a writer still at work, until told to finish
            tmp.write_bytes(b'{{"done": true}}')
        """
    )
    killed = subprocess.run([sys.executable, "-c", writer, "die"], capture_output=True, text=True)
    assert killed.returncode == -9
    left = Path(killed.stdout.strip())
    assert left.parent == tmp_path
    assert atomic.scratch_pattern(target) == ".eval.json.*.tmp"
    assert left.match(".eval.json.*.tmp")
    assert left.exists()
    with subprocess.Popen(
        [sys.executable, "-c", writer, "wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as alive:
        try:
            busy = Path(alive.stdout.readline().strip())
            atomic.write_text(target, "{}")
            assert not left.exists()  # its writer was killed
            assert busy.exists()  # its writer is still running
            assert target.read_text() == "{}"
            alive.stdin.write("finish\n")
            alive.stdin.close()
            assert alive.wait(timeout=60) == 0
        finally:
            if alive.poll() is None:
                alive.kill()
    assert target.read_text() == '{"done": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.json"]


def test_outputs_never_replace_devices_and_follow_links(tmp_path):
    for device in ("/dev/null", "/dev/full"):
        with pytest.raises(DigitsError) as raised:
            atomic.write_text(device, "x")
        assert str(raised.value) == (
            f"{device} is not a regular file (a device, pipe or folder): give a file path to write"
        )
        assert not Path(device).is_file()
    real = tmp_path / "real.json"
    real.write_text("old")
    (tmp_path / "link.json").symlink_to(real)
    atomic.write_text(tmp_path / "link.json", "new")
    assert (tmp_path / "link.json").is_symlink()
    assert real.read_text() == "new"
