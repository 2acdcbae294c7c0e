"""`digits serve` as a process: SIGTERM, a second Ctrl-C, several workers started and stopped."""

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest

from http_helpers import SERVE, call, json_answer, post, results


@contextlib.contextmanager
def serve_process(model_path, *flags: str, temp: Path) -> Iterator[tuple[subprocess.Popen, str]]:
    """`digits serve` in a session of its own, so that Ctrl-C reaches all its processes, as in a terminal;
    killed by its pid at the end if it is still running. Its temporary files go to ``temp``, which
    it must leave empty however the test stopped it."""
    process = subprocess.Popen(
        [*SERVE, "--model", model_path, "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "TMPDIR": str(temp)},
    )
    line = process.stdout.readline()
    assert " at http://127.0.0.1:" in line, line + process.stderr.read()
    url = line.split(" at ")[1].split()[0]
    try:
        assert call(url, "GET", "/health")[0] == 200  # serving, its signal handlers in place
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert list(temp.iterdir()) == []  # the metrics folder went with the server


def half_sent(url: str, body: bytes) -> socket.socket:
    """A connection the server holds, with a request whose body is all sent but its last byte."""
    address = urlsplit(url)
    sock = socket.create_connection((address.hostname, address.port), timeout=30)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")  # answered: the server has the connection
    reply = b""
    while not reply.endswith(b'{"status":"ok"}'):
        chunk = sock.recv(4096)
        assert chunk, reply
        reply += chunk
    sock.sendall(
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body[:-1]
    )
    return sock


@pytest.mark.slow
def test_sigterm_stops_one_worker_with_exit_0(tmp_path, model_path, eval_pngs, expected):
    with serve_process(model_path, temp=tmp_path) as (process, url):
        assert post(url, eval_pngs[0])[::2] == (200, results(expected(eval_pngs[0])))
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert (process.returncode, err) == (0, "")


@pytest.mark.slow
def test_a_second_ctrl_c_ends_at_once_without_a_traceback(tmp_path, model_path, eval_pngs):
    with serve_process(model_path, temp=tmp_path) as (process, url):
        in_flight = half_sent(url, eval_pngs[0])
        os.killpg(process.pid, signal.SIGINT)
        address = urlsplit(url)
        for _ in range(200):  # the first Ctrl-C has begun the shutdown once the port stops listening
            try:
                socket.create_connection((address.hostname, address.port), timeout=1).close()
            except (ConnectionRefusedError, ConnectionResetError):
                break
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=30)
        try:
            reply = in_flight.recv(65536)
        except ConnectionResetError:
            reply = b""
        in_flight.close()
    assert (process.returncode, err) == (130, "digits: interrupted\n")
    assert reply == b""  # the request in flight was cut off, not answered 500


def listens(process: psutil.Process) -> bool:
    try:
        return any(c.status == psutil.CONN_LISTEN for c in process.net_connections())
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
def test_several_workers_serve_and_stop_like_one(tmp_path, model_path, eval_pngs, expected):
    """Ctrl-C: in-flight requests finish, then exit 130; a second Ctrl-C ends at once; SIGTERM: exit 0."""
    with serve_process(model_path, "--workers", "2", temp=tmp_path) as (process, url):
        for data in eval_pngs[:4]:
            assert post(url, data)[::2] == (200, results(expected(data)))
        in_flight = half_sent(url, eval_pngs[1])
        os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C in a terminal: every process of the group
        in_flight.sendall(eval_pngs[1][-1:])
        assert json_answer(in_flight.makefile("rb").read()) == (200, results(expected(eval_pngs[1])))
        in_flight.close()
        _, err = process.communicate(timeout=30)
        assert (process.returncode, err) == (130, "digits: interrupted\n")

    with serve_process(model_path, "--workers", "2", temp=tmp_path) as (process, url):
        in_flight = half_sent(url, eval_pngs[2])
        os.killpg(process.pid, signal.SIGINT)
        workers = psutil.Process(process.pid).children()
        for _ in range(200):  # the workers are shutting down once they no longer listen (or have ended)
            if not any(listens(worker) for worker in workers):
                break
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=30)
        assert (process.returncode, err) == (130, "digits: interrupted\n")
        in_flight.close()

    with serve_process(model_path, "--workers", "2", temp=tmp_path) as (process, url):
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert (process.returncode, err) == (0, "")


@pytest.mark.slow
def test_the_metrics_folder_a_killed_server_left_is_removed_by_the_next(tmp_path, model_path):
    running = tmp_path / f"digits-serve-metrics-{os.getpid()}-x"  # named after a process that runs
    with serve_process(model_path, temp=tmp_path) as (process, _):
        process.kill()  # SIGKILL: no clean-up runs
        process.communicate()
        [left] = tmp_path.iterdir()
        assert left.name.startswith(f"digits-serve-metrics-{process.pid}-")
        running.mkdir()
        with serve_process(model_path, temp=tmp_path) as (second, _):
            assert not left.exists()  # removed as the second server started
            assert running.is_dir()  # its process still runs: left alone
            running.rmdir()
            second.terminate()
            second.communicate(timeout=30)
