"""`digits batch --engine dask` when the cluster is not what it should be: one line, never a hang.

Addresses that are not a scheduler's, a port that accepts and never answers, an HTTP server,
workers without pyarrow or without digits-runtime (real `dask worker` processes whose preload
hides the module), and a job begun on this machine's cores carried on by a cluster.
"""

import http.server
import json
import socket
import threading

import pytest

from digits_runtime import cli

from helpers import cli_runner, dask_cluster, digits

pq = pytest.importorskip("pyarrow.parquet")

run = cli_runner(cli.COMMANDS, "digits")


@pytest.mark.parametrize("address", ["garbage", "inproc://x", "tcp://127.0.0.1", "http://127.0.0.1:80"])
@pytest.mark.parametrize("given", ["flag", "environment"])
def test_an_address_that_is_not_a_schedulers_is_a_usage_error(
    capsys, monkeypatch, archive, model, tmp_path, address, given
):
    # In this process: the address is refused before any process or connection is started.
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    argv = ["batch", "--model", model, archive, tmp_path / "out", "--engine", "dask"]
    if given == "flag":
        code, out, err = run(capsys, *argv, "--scheduler", address)
    else:
        monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", address)
        code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    expected = f"--scheduler must be a Dask scheduler's address, tcp://HOST:PORT, got {address!r}"
    assert err == f"digits: error: {expected}\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.parametrize("listener", ["silent", "http"])
def test_a_port_that_is_not_a_scheduler_is_one_line(archive, model, tmp_path, listener):
    if listener == "silent":  # accepts connections (the kernel's backlog) and never answers
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen()
        port, stop = server.getsockname()[1], server.close
    else:
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
        httpd.RequestHandlerClass.log_message = lambda *args: None
        threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True).start()  # stops at once
        port = httpd.server_address[1]

        def stop() -> None:
            httpd.shutdown()
            httpd.server_close()

    try:
        address = f"tcp://127.0.0.1:{port}"
        # The default wait once, a shorter one given by --connect-timeout the other time.
        waited = ["--connect-timeout", "0.5"] if listener == "http" else []
        dask = ["--engine", "dask", "--scheduler", address, *waited]
        done = digits("batch", "--model", model, archive, tmp_path / "out", *dask)
    finally:
        stop()
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"digits: error: no Dask scheduler answers at {address} "
        f"(no answer within {'0.5' if waited else '5'} s): "
        "start one with `dask scheduler`, or give the address of yours\n"
    )


@pytest.mark.slow
@pytest.mark.parametrize(("hidden", "named"), [("pyarrow", "pyarrow"), ("digits_runtime", "digits-runtime")])
def test_workers_without_a_module_they_need_are_one_line(
    archive, model, tmp_path, monkeypatch, hidden, named
):
    preload = tmp_path / "hide.py"
    preload.write_text(f"import sys\nsys.modules[{hidden!r}] = None  # as if not installed\n")
    monkeypatch.setenv("DASK_DISTRIBUTED__WORKER__PRELOAD", f"[{str(preload)!r}]")
    with dask_cluster(tmp_path / "cluster", workers=1) as (address, _):
        done = digits(
            "batch", "--model", model, archive, tmp_path / "out", "--engine", "dask", "--scheduler", address
        )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"digits: error: Dask workers at {address} cannot import {named} (1 of 1 workers): "
        "pip install 'digits-runtime[batch]' on every worker\n"
    )
    assert not (tmp_path / "out").exists()  # nothing written before the cluster is checked


@pytest.mark.slow
def test_a_local_job_is_carried_on_by_a_dask_cluster(archive, model, tmp_path, monkeypatch):
    monkeypatch.chdir(archive.parent)
    output = tmp_path / "out"
    local = digits("batch", "--model", model, archive.name, output, "--workers", "1")
    assert local.returncode == 0
    parts = sorted(output.iterdir())
    whole = {p.name: p.read_bytes() for p in parts}
    parts[1].unlink()  # as if stopped before it was written
    with dask_cluster(tmp_path / "cluster", workers=1) as (address, _):  # for the one part left
        done = digits(
            "batch", "--model", model, f"{archive}/", output, "--engine", "dask", "--scheduler", address
        )
    assert (done.returncode, done.stderr) == (0, "")
    summary = json.loads(done.stdout)
    assert (summary["parts_kept"], sum(summary["parts_by_worker"].values())) == (len(parts) - 1, 1)
    assert {p.name: p.read_bytes() for p in output.iterdir()} == whole  # the same bytes, the same paths
