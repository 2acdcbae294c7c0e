"""Atomic writes and the step timer under faults: a killed writer's scratch is removed by the next write
(but not a live one's), devices are never replaced, links are followed, and a step whose time
cannot be recorded still succeeds."""

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from digits_core import atomic, ownership
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


def tree(folder):
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in files}


def write_folder(target, files, step="a step"):
    with atomic.atomic_dir(target, step) as scratch:
        for name, data in files.items():
            (scratch / name).parent.mkdir(parents=True, exist_ok=True)
            (scratch / name).write_bytes(data)


def test_a_record_lists_the_sha256_of_every_file_and_a_changed_file_is_never_replaced(tmp_path):
    out = tmp_path / "out"
    write_folder(out, {"a.json": b"{}", "logs/metrics.csv": b"epoch\n0\n"})
    record = json.loads((out / ownership.MARK).read_text())
    assert record == {
        "format": 2,
        "step": "a step",
        "files": ["a.json", "logs"],
        "sha256": {
            "a.json": hashlib.sha256(b"{}").hexdigest(),
            "logs/metrics.csv": hashlib.sha256(b"epoch\n0\n").hexdigest(),
        },
    }
    assert ownership.written_by(out) == {"step": "a step", "files": ["a.json", "logs"]}
    write_folder(out, {"a.json": b"[]", "logs/metrics.csv": b"epoch\n1\n"})  # its own: replaced
    assert tree(out)["logs/metrics.csv"] == b"epoch\n1\n"
    (out / "logs" / "metrics.csv").write_bytes(b"epoch\n1\nmy notes\n")  # edited since
    before = tree(out)
    with pytest.raises(DigitsError) as refused:
        write_folder(out, {"a.json": b"{}"})
    assert str(refused.value) == (
        f"{out} holds files changed since `a step` wrote them (logs), so it will not replace it: move them "
        "out (or delete them if they are not needed) or choose another output folder"
    )
    (out / "logs" / "metrics.csv").write_bytes(b"epoch\n1\n")
    (out / "logs" / "mine.txt").write_bytes(b"a user's")  # a file the record does not list
    with pytest.raises(DigitsError, match=r"holds files `a step` did not write \(logs\)"):
        write_folder(out, {"a.json": b"{}"})
    assert tree(out) == before | {"logs/metrics.csv": b"epoch\n1\n", "logs/mine.txt": b"a user's"}


@pytest.mark.parametrize("version", ["current", "previous"])
def test_a_forged_record_naming_a_users_file_deletes_nothing(tmp_path, version):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_bytes(b"years of work")
    forged = {"step": "a step", "files": ["thesis.tex"]}  # what the previous version wrote: names only
    if version == "current":
        forged |= {"format": 2, "sha256": {"thesis.tex": hashlib.sha256(b"a draft").hexdigest()}}
    (mine / ownership.MARK).write_text(json.dumps(forged))
    before = tree(mine)
    with pytest.raises(DigitsError) as refused:
        write_folder(mine, {"a.json": b"{}"})
    expected = {
        "current": (
            f"{mine} holds files changed since `a step` wrote them (thesis.tex), so it will not replace "
            "it: move them out (or delete them if they are not needed) or choose another output folder"
        ),
        "previous": (
            f"{mine} has a record of an older version, which lists names but not contents, so `a step` "
            f"cannot tell its files from a user's and will not replace it: delete {mine} yourself if "
            "nothing in it is needed, or choose another output folder"
        ),
    }
    assert str(refused.value) == expected[version]
    assert tree(mine) == before


def test_a_record_that_is_a_link_or_a_pipe_is_never_followed_nor_opened(tmp_path):
    real = tmp_path / "real"
    write_folder(real, {"notes.txt": b"same bytes"})
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_bytes(b"same bytes")  # even the content the real record vouches for
    (mine / ownership.MARK).symlink_to(real / ownership.MARK)
    assert ownership.written_by(mine) is None
    with pytest.raises(DigitsError) as refused:
        write_folder(mine, {"a.json": b"{}"})
    assert str(refused.value) == (
        f"{mine / ownership.MARK} is a link, pipe or other non-regular file, which proves nothing, so "
        f"`a step` will not replace {mine}: remove it if {mine} is yours to lose, or choose another output "
        "folder"
    )
    assert (mine / "notes.txt").read_bytes() == b"same bytes"
    (mine / ownership.MARK).unlink()
    os.mkfifo(mine / ownership.MARK)  # opening it to read would wait for a writer forever
    script = textwrap.dedent(
        f"""
        from digits_core import atomic, ownership
        assert ownership.written_by({str(mine)!r}) is None
        with atomic.atomic_dir({str(mine)!r}, "a step"):
            pass
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.endswith(f"DigitsError: {refused.value!s}\n")
    assert (mine / "notes.txt").read_bytes() == b"same bytes"


def test_a_link_or_pipe_among_a_folders_files_is_never_vouched_for(tmp_path):
    out = tmp_path / "out"
    write_folder(out, {"a.json": b"{}"})
    os.mkfifo(out / "queue")
    (out / "photos").symlink_to(tmp_path)
    with pytest.raises(DigitsError, match=r"did not write \(photos, queue\)"):
        write_folder(out, {"a.json": b"{}"})
    assert (out / "photos").is_symlink()


def synced_paths(monkeypatch):
    """Record the path of every file or folder given to fsync (as /proc names it at the time)."""
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def test_an_atomic_write_flushes_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    synced = synced_paths(monkeypatch)
    atomic.write_text(tmp_path / "a.json", "{}")
    assert len(synced) == 2
    assert re.fullmatch(rf"{tmp_path}/\.a\.json\.\w+\.tmp", synced[0])  # the data, under its scratch name
    assert synced[1] == str(tmp_path)  # then the folder, holding the new name


@pytest.mark.parametrize("syncfs", [True, False], ids=["syncfs", "an fsync per file"])
def test_an_atomic_folder_flushes_every_file_and_folder_and_then_its_parent(tmp_path, monkeypatch, syncfs):
    synced = synced_paths(monkeypatch)
    real_syncfs = atomic._syncfs

    def spy(folder):
        if not syncfs:
            return False  # as on a system without syncfs
        synced.append(f"syncfs {folder}")
        return real_syncfs(folder)

    monkeypatch.setattr(atomic, "_syncfs", spy)
    write_folder(tmp_path / "out", {"a.json": b"{}", "logs/metrics.csv": b"epoch\n"})
    scratch = re.escape(str(tmp_path)) + r"/\.out\.\w+\.tmp"
    kinds = [re.sub(scratch, "SCRATCH", path) for path in synced]
    if syncfs:  # the file system of the scratch folder, all of it at once
        assert kinds == ["syncfs SCRATCH", str(tmp_path)]
    else:
        before_rename = ["SCRATCH/a.json", f"SCRATCH/{ownership.MARK}", "SCRATCH", "SCRATCH/logs/metrics.csv"]
        assert sorted(kinds[:-1]) == sorted([*before_rename, "SCRATCH/logs"])
        assert kinds[-1] == str(tmp_path)


def test_a_pipe_named_like_a_killed_writers_scratch_does_not_stop_the_write(tmp_path):
    os.mkfifo(tmp_path / ".a.json.k2j4.tmp")  # opening it to read, to check its lock, would wait forever
    script = f"from digits_core import atomic; atomic.write_text({str(tmp_path / 'a.json')!r}, '{{}}')"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    assert (tmp_path / "a.json").read_text() == "{}"


def test_a_folder_is_swapped_for_the_previous_one_in_one_step(tmp_path, monkeypatch):
    """Never a moment without a folder at the target: no rename of the old folder aside first."""
    out = tmp_path / "out"
    write_folder(out, {"a.json": b"old"})
    renames = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: renames.append((a, b)) or real_replace(a, b))
    write_folder(out, {"a.json": b"new"})
    assert renames == []  # renameat2 exchanged them
    assert tree(out) == {"a.json": b"new", ownership.MARK: (out / ownership.MARK).read_bytes()}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "out"]  # the old one removed


def test_read_json_never_waits_on_a_pipe(tmp_path):
    os.mkfifo(tmp_path / "manifest.json")
    manifest = tmp_path / "manifest.json"
    script = f"from digits_core import ownership; print(ownership.read_json({str(manifest)!r}))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "None\n", "")
    (tmp_path / "a.json").write_text('{"step": 1}')
    assert ownership.read_json(tmp_path / "a.json") == {"step": 1}
    (tmp_path / "b.json").write_bytes(b"\xff not json")
    assert ownership.read_json(tmp_path / "b.json") is None
