"""`digits batch` under faults: a worker, the driver or a local worker killed by its pid mid-job, and
a scheduler address where nothing listens.

Every input ends up in exactly one row, with the Predictor's answer, bit for bit.
"""

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from helpers import EXE, SLOW_IMAGES, assert_each_input_once, dask_cluster, digits

pq = pytest.importorskip("pyarrow.parquet")


pytestmark = pytest.mark.slow  # killed processes and a scheduler that never answers: seconds each


def rows(output: Path) -> list[dict]:
    return pq.read_table(output).to_pylist()


def wait_for_parts(output: Path, process: subprocess.Popen) -> list[Path]:
    """Wait until the job has written its first part; return the parts there are then."""
    for _ in range(3000):
        parts = sorted(output.glob("part-*.parquet"))
        if parts or process.poll() is not None:
            return parts
        time.sleep(0.02)
    raise AssertionError("no part written in 60 s")


def still_running(processes: list[psutil.Process], seconds: float) -> list[psutil.Process]:
    """Those of ``processes`` that have not ended within ``seconds``.

    Ended is exited, reaped or not: a process whose parent was killed is reaped by init in its own
    time, which here can be seconds after it exited.
    """
    deadline = time.monotonic() + seconds
    while True:
        running = [p for p in processes if p.is_running() and _status(p) != psutil.STATUS_ZOMBIE]
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.02)


def _status(process: psutil.Process) -> str:
    try:
        return process.status()
    except psutil.NoSuchProcess:
        return psutil.STATUS_DEAD


def test_a_worker_killed_mid_job_leaves_the_job_complete(slow_archive, model, tmp_path):
    output = tmp_path / "out"
    with dask_cluster(tmp_path / "cluster") as (address, workers):
        job = subprocess.Popen(
            [
                *EXE,
                "batch",
                "--model",
                model,
                slow_archive[0],
                output,
                "--engine",
                "dask",
                "--scheduler",
                address,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        parts = wait_for_parts(output, job)
        assert 1 <= len(parts) < 4  # mid-job
        workers[0].send_signal(signal.SIGKILL)
        out, err = job.communicate(timeout=300)
        assert workers[0].wait(timeout=30) == -signal.SIGKILL
    assert job.returncode == 0, err
    summary = json.loads(out)
    assert (summary["inputs"], summary["scored"], summary["parts"]) == (SLOW_IMAGES, SLOW_IMAGES, 4)
    assert_each_input_once(output, slow_archive, model)


def test_the_driver_killed_mid_job_then_run_again_carries_on(slow_archive, model, tmp_path):
    output = tmp_path / "out"
    argv = [*EXE, "batch", "--model", model, slow_archive[0], output, "--workers", "2"]
    job = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert 1 <= len(wait_for_parts(output, job)) < 4
    pool = psutil.Process(job.pid).children(recursive=True)
    job.send_signal(signal.SIGKILL)
    job.wait()
    alive = still_running(pool, 30)  # the pool processes end with their parent
    for process in alive:
        process.kill()
    assert alive == []
    kept = {p.name: p.stat().st_mtime_ns for p in output.glob("part-*.parquet")}
    again = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["parts_kept"] == len(kept) >= 1
    assert all(p.name.startswith("part-") for p in output.iterdir())  # scratch of the killed run removed
    assert sum(summary["parts_by_worker"].values()) == 4 - len(kept)
    assert {name: (output / name).stat().st_mtime_ns for name in kept} == kept  # not scored again
    assert_each_input_once(output, slow_archive, model)


def test_a_local_worker_killed_stops_the_job_in_one_line_and_the_next_run_completes(
    slow_archive, model, tmp_path
):
    output = tmp_path / "out"
    argv = [*EXE, "batch", "--model", model, slow_archive[0], output, "--workers", "2"]
    job = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert 1 <= len(wait_for_parts(output, job)) < 4
    pool = [p for p in psutil.Process(job.pid).children() if "resource_tracker" not in " ".join(p.cmdline())]
    pool[0].kill()
    out, err = job.communicate(timeout=300)
    assert (job.returncode, out) == (1, "")
    assert (
        err == "digits: error: a worker process died (killed, or out of memory): run the same command again\n"
    )
    again = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["parts_kept"] >= 1
    assert_each_input_once(output, slow_archive, model)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_scheduler_address_where_nothing_listens(archive, model, tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    dask = ["--engine", "dask", "--scheduler", address, "--connect-timeout", "0.5"]
    done = digits("batch", "--model", model, archive, tmp_path / "out", *dask)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(f"digits: error: no Dask scheduler answers at {address} (")
    assert done.stderr.endswith("start one with `dask scheduler`, or give the address of yours\n")
    assert done.stderr.count("\n") == 1
