"""`digits batch` against what an unlucky user or an attacker leaves in its way.

User files in OUTPUT, inputs changed between runs, parts removed or cut short, a second run on
the same OUTPUT, names that are not UTF-8 or hold glob characters, links that loop, OUTPUT
inside its own INPUT, OUTPUT URIs that cannot be written, and Ctrl-C or SIGTERM mid-start.
Each ends in the right rows, or one line and a documented exit code.
"""

import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from digits_runtime import cli
from digits_runtime.predictor import Predictor

from helpers import EXE, cli_runner, digits

pq = pytest.importorskip("pyarrow.parquet")

run = cli_runner(cli.COMMANDS, "digits")


@pytest.fixture
def scans(archive, tmp_path) -> Path:
    """300 readable PNGs (two parts of 256 and 44), a copy the test may change."""
    folder = tmp_path / "scans"
    shutil.copytree(archive / "a", folder, ignore=shutil.ignore_patterns("*.jpg"))
    return folder


def batch(*argv) -> subprocess.CompletedProcess:
    """`digits batch` ``argv`` on one worker process: what these tests check is OUTPUT and the
    inputs, and a part holds the same bytes however many processes score the job."""
    return digits("batch", *argv, "--workers", "1")


def rows(output: Path) -> list[dict]:
    return pq.read_table(output).sort_by("path").to_pylist()


def answer(model: Path, path: Path) -> int:
    return Predictor(model).predict(path).prediction


def parts(output: Path) -> list[Path]:
    return sorted(output.iterdir())


@pytest.mark.slow  # three runs of digits batch or more
def test_user_files_and_links_in_output_are_never_written(scans, model, tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    mine = output / "part-000000.parquet"  # a user's file named as batch once named its parts
    mine.write_bytes(b"PAR1 mine")
    target = tmp_path / "target.parquet"
    target.write_bytes(b"precious")
    (output / "part-000001.parquet").symlink_to(target)
    done = batch("--model", model, scans, output)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"digits: error: {output} holds files that digits batch did not write (part-000000.parquet, "
        "part-000001.parquet): give a new or empty folder, or move them out\n"
    )
    assert (mine.read_bytes(), target.read_bytes()) == (b"PAR1 mine", b"precious")
    # A link named as a part of ours is not ours either: batch never writes through a link.
    clean = tmp_path / "clean"
    assert batch("--model", model, scans, clean).returncode == 0
    first = parts(clean)[0]
    first.unlink()
    first.symlink_to(target)
    again = batch("--model", model, scans, clean)
    assert again.returncode == 1
    assert f"holds files that digits batch did not write ({first.name})" in again.stderr
    assert target.read_bytes() == b"precious"


@pytest.mark.slow
def test_an_input_changed_since_is_scored_again_with_its_new_answer(scans, model, tmp_path):
    output = tmp_path / "out"
    assert batch("--model", model, scans, output).returncode == 0
    before = {row["path"]: row["prediction"] for row in rows(output)}
    changed = scans / "0010.png"
    other = next(p for p in sorted(scans.iterdir()) if answer(model, p) != before[str(changed)])
    stat = changed.stat()
    shutil.copyfile(other, changed)  # same name, other content: a 0 that is now an 8
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    untouched = parts(output)[1]
    mtime = untouched.stat().st_mtime_ns
    again = batch("--model", model, scans, output)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert (summary["parts_kept"], sum(summary["parts_by_worker"].values())) == (1, 1)
    after = {row["path"]: row["prediction"] for row in rows(output)}
    assert after[str(changed)] == answer(model, changed) != before[str(changed)]
    assert {p: v for p, v in after.items() if p != str(changed)} == {
        p: v for p, v in before.items() if p != str(changed)
    }
    assert len(parts(output)) == 2
    assert untouched.stat().st_mtime_ns == mtime


@pytest.mark.slow  # three runs of digits batch or more
@pytest.mark.parametrize("damage", ["deleted", "cut short"])
def test_a_part_deleted_or_cut_short_after_the_job_is_scored_again(scans, model, tmp_path, damage):
    output = tmp_path / "out"
    assert batch("--model", model, scans, output).returncode == 0
    whole = {p.name: p.read_bytes() for p in parts(output)}
    victim = parts(output)[0]
    if damage == "deleted":
        victim.unlink()
    else:
        victim.write_bytes(victim.read_bytes()[:100])
    again = batch("--model", model, scans, output)
    assert (again.returncode, again.stderr) == (0, "")
    assert json.loads(again.stdout)["parts_kept"] == 1
    assert {p.name: p.read_bytes() for p in parts(output)} == whole
    assert len(rows(output)) == 300


@pytest.mark.slow
def test_a_second_run_on_an_output_being_written_stops_in_one_line(capsys, scans, model, tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    holder = os.open(output, os.O_RDONLY)  # what a first run holds while it writes OUTPUT
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        code, out, err = run(capsys, "batch", "--model", model, scans, output)  # refused at once: in process
    finally:
        os.close(holder)
    assert (code, out) == (1, "")
    assert err == (
        f"digits: error: {output} is being written by another digits batch: wait for it to end, "
        "or give another OUTPUT\n"
    )
    assert list(output.iterdir()) == []
    assert batch("--model", model, scans, output).returncode == 0


@pytest.mark.slow
def test_two_runs_at_once_leave_one_job(archive, model, tmp_path):
    output = tmp_path / "out"
    argv = [*EXE, "batch", "--model", model, archive, output, "--workers", "1"]
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The first run starts its worker for its first part, so it holds OUTPUT by then; that worker
    # stopped keeps the run mid-job for as long as the second run takes, however busy the machine.
    parent = psutil.Process(first.pid)
    while not (pool := pool_children(parent)):
        assert first.poll() is None, first.communicate()
        time.sleep(0.005)
    pool[0].suspend()
    try:
        second = digits("batch", "--model", model, archive, output)
        assert first.poll() is None  # still mid-job while the second run ran
    finally:
        pool[0].resume()
    out, err = first.communicate(timeout=300)
    assert (first.returncode, err) == (0, "")
    assert second.returncode == 1
    assert "is being written by another digits batch" in second.stderr
    assert second.stderr.count("\n") == 1
    assert len(rows(output)) == json.loads(out)["inputs"] == 604


@pytest.mark.slow
def test_a_name_that_is_not_utf8_is_a_row(scans, model, tmp_path):
    odd = os.fsencode(scans) + b"/scan\xff.png"
    shutil.copyfile(scans / "0000.png", odd)
    output = tmp_path / "out"
    done = batch("--model", model, scans, output)
    assert (done.returncode, done.stderr) == (0, "")
    found = {row["path"]: row for row in rows(output)}
    assert len(found) == 301
    row = found[f"{scans}/scan\\xff.png"]  # its byte, written as \xff: Parquet strings are UTF-8
    assert {**row, "path": None} == {**found[str(scans / "0000.png")], "path": None}


@pytest.mark.slow
def test_glob_characters_in_real_names_are_taken_literally(scans, model, tmp_path):
    shutil.copyfile(scans / "0000.png", scans / "x[1].png")
    shutil.copyfile(scans / "0001.png", scans / "x1.png")
    done = batch("--model", model, scans / "x[1].png", tmp_path / "one")
    assert done.returncode == 0, done.stderr
    assert [row["path"] for row in rows(tmp_path / "one")] == [str(scans / "x[1].png")]
    folder = tmp_path / "scan[1]"
    shutil.copytree(scans, folder)
    done = batch("--model", model, folder, tmp_path / "two")
    assert done.returncode == 0, done.stderr
    assert len(rows(tmp_path / "two")) == 302


@pytest.mark.slow
def test_a_recursive_glob_through_links_to_parents_ends(scans, model, tmp_path):
    (scans / "up").symlink_to("..")
    (scans / "again").symlink_to(scans)
    done = batch("--model", model, f"{scans}/**/*.png", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    assert len(rows(tmp_path / "out")) == 300


@pytest.mark.slow
def test_output_inside_a_glob_input_is_left_out_and_can_be_resumed(scans, model):
    output = scans / "out"
    first = batch("--model", model, f"{scans}/**", output)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["inputs"] == 300
    again = batch("--model", model, f"{scans}/**", output)
    assert (again.returncode, again.stderr) == (0, f"digits batch: {output} is already complete\n")


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("nowhere://bucket/out", "cannot write nowhere://bucket/out: Protocol not known: nowhere"),
        ("s3://bucket/out", "cannot write s3://bucket/out: Install s3fs to access S3"),
        ("http://127.0.0.1:9/out", "cannot write http://127.0.0.1:9/out: HTTP is read-only"),
    ],
)
def test_an_output_uri_that_cannot_be_written_is_one_line(capsys, scans, model, output, message):
    if output.startswith("s3:") and _has("s3fs"):
        pytest.skip("s3fs is installed here")
    code, out, err = run(capsys, "batch", "--model", model, scans, output)  # refused at once: in process
    assert (code, out) == (1, "")
    assert err.startswith(f"digits: error: {message}")
    assert err.count("\n") == 1


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.mark.slow  # three runs of digits batch or more
def test_retry_errors_scores_again_the_files_that_failed(scans, model, tmp_path):
    whole = (scans / "0000.png").read_bytes()
    uploading = scans / "uploading.png"
    uploading.write_bytes(whole[:40] + bytes(len(whole) - 40))  # space taken, bytes still coming
    stat = uploading.stat()
    output = tmp_path / "out"
    first = batch("--model", model, scans, output)
    assert (first.returncode, json.loads(first.stdout)["errors"]) == (0, 1)
    uploading.write_bytes(whole)  # the upload completes, in place: same size, and here same time
    os.utime(uploading, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = batch("--model", model, scans, output)  # its stamp cannot tell
    assert again.stderr == f"digits batch: {output} is already complete\n"
    assert json.loads(again.stdout)["errors"] == 1
    retried = batch("--model", model, scans, output, "--retry-errors")
    assert (retried.returncode, retried.stderr) == (0, "")
    summary = json.loads(retried.stdout)
    assert (summary["errors"], summary["scored"], summary["parts_kept"]) == (0, 301, 1)
    assert [r["error"] for r in rows(output)] == [None] * 301
    assert len(parts(output)) == 2


def pool_children(process: psutil.Process) -> list[psutil.Process]:
    """The pool's worker processes that ``process`` has started.

    Known by the command line of a spawned worker: a child just forked still has its parent's
    (the resource tracker too, which the pool starts before it takes OUTPUT).
    """
    return [c for c in process.children() if "--multiprocessing-fork" in _command_line(c)]


def _command_line(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:  # ended since it was listed
        return []


@pytest.mark.slow
@pytest.mark.parametrize("command", ["predict", "batch"])
def test_ctrl_c_while_the_workers_start_prints_one_line(slow_archive, model, tmp_path, command):
    # An archive that keeps the workers busy for seconds: a job that has already ended, or is
    # ending (Python then no longer handles Ctrl-C), would tell nothing.
    for delay in (0.0, 0.1, 0.3):
        argv = [*EXE, command, "--model", str(model), "--workers", "2", str(slow_archive[0])]
        argv += [str(tmp_path / f"out{delay}")] if command == "batch" else []
        job = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        parent = psutil.Process(job.pid)
        while not pool_children(parent) and job.poll() is None:
            time.sleep(0.005)
        time.sleep(delay)
        os.killpg(job.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
        _, err = job.communicate(timeout=60)
        assert (job.returncode, err) == (130, "digits: interrupted\n"), delay


@pytest.mark.slow
def test_sigterm_stops_the_pool_without_a_leaked_semaphore_warning(slow_archive, model, tmp_path):
    argv = [*EXE, "batch", "--model", model, slow_archive[0], tmp_path / "out", "--workers", "2"]
    job = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    parent = psutil.Process(job.pid)
    while len(pool_children(parent)) < 2 and job.poll() is None:
        time.sleep(0.01)
    pool = pool_children(parent)
    time.sleep(0.5)
    job.send_signal(signal.SIGTERM)
    _, err = job.communicate(timeout=60)
    assert (job.returncode, err) == (128 + signal.SIGTERM, "")
    _, alive = psutil.wait_procs(pool, timeout=10)
    assert alive == []


@pytest.mark.slow  # three runs of digits batch or more
def test_the_same_job_typed_three_ways_and_both_engines_have_one_path(scans, model, tmp_path, monkeypatch):
    monkeypatch.chdir(scans.parent)
    output = tmp_path / "out"
    done = batch("--model", model, "scans", output)
    assert done.returncode == 0
    assert rows(output)[0]["path"] == str(scans / "0000.png")  # the path a Dask worker gets too
    for typed in ("scans/", str(scans), "./scans"):
        again = batch("--model", model, typed, output)
        assert (again.returncode, again.stderr) == (0, f"digits batch: {output} is already complete\n")
