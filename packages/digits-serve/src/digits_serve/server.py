"""The processes of `digits serve`: the listening socket, one worker or a supervisor of several,
and how Ctrl-C and SIGTERM stop them. uvicorn serves HTTP; :mod:`digits_serve.connections`
adds the limits it lacks.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from uvicorn.supervisors import Multiprocess

import digits_serve.connections as connections
from digits_core.errors import DigitsError
from digits_runtime.predictor import Predictor
from digits_serve.app import create_app
from digits_serve.observe import MULTIPROC_ENV

MODEL_ENV = "DIGITS_SERVE_MODEL"
"""How the model path reaches worker processes when there are several."""
OPTIONS_ENV = "DIGITS_SERVE_OPTIONS"
"""How the application's options (access log, CORS origins) reach them, as JSON."""
LOOPBACK = ("127.0.0.1", "::1", "localhost")
BACKLOG = 2048  # connections the kernel queues while workers are busy (uvicorn's default)
METRICS_PREFIX = "digits-serve-metrics-"
"""The metrics folder's name: this prefix, the server's process id, a dash and random letters."""


def app_from_env() -> Starlette:
    """The application of one worker process, for the model named by ``MODEL_ENV``."""
    # Ctrl-C reaches every process of the terminal's group; a worker leaves it to the supervisor,
    # which stops the workers the same way whatever the signal. (A worker starts with it ignored,
    # but uvicorn handles it again before it loads the application; this undoes that.)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return create_app(Predictor(os.environ[MODEL_ENV], threads=1), **json.loads(os.environ[OPTIONS_ENV]))


class Server(uvicorn.Server):
    """uvicorn's server, stopped one way by Ctrl-C and SIGTERM: finish what is in flight, then end.

    A second signal while in-flight requests finish ends the process at once: uvicorn would
    cancel those requests (a 500 each and a traceback on the log); exiting closes them instead.
    """

    interrupted = False  # stopped by Ctrl-C (exit 130) rather than by SIGTERM (exit 0)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Not uvicorn's: it restores the previous handlers once the server is done and raises
        # the signal again, which makes SIGTERM kill the process (exit -15), and a second Ctrl-C
        # while the event loop winds down a KeyboardInterrupt wherever it lands. These stay.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self.handle_exit)
        yield

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.interrupted |= sig == signal.SIGINT
        if self.should_exit:
            if self.interrupted:
                print("digits: interrupted", file=sys.stderr, flush=True)
            # os._exit skips the with-block of run() that removes the metrics folder: remove it here.
            if MULTIPROC_ENV in os.environ:
                shutil.rmtree(os.environ[MULTIPROC_ENV], ignore_errors=True)
            os._exit(130 if self.interrupted else 0)
        self.should_exit = True


class Supervisor(Multiprocess):
    """uvicorn's supervisor of several workers, stopped like :class:`Server`."""

    interrupted = False

    def init_processes(self) -> None:
        # Workers start with Ctrl-C ignored, a disposition that survives exec (and that Python
        # keeps), so that a Ctrl-C while one is still importing cannot end it with a traceback.
        # Blocked meanwhile, a Ctrl-C reaches the supervisor once the workers have started.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            super().init_processes()
        finally:
            signal.signal(signal.SIGINT, handler)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

    def handle_int(self) -> None:
        self.interrupted = True
        super().handle_int()

    def terminate_all(self) -> None:
        # From here on, a second Ctrl-C or SIGTERM kills the workers rather than waiting for them.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self.kill_all)
        super().terminate_all()

    def kill_all(self, sig: int, frame: Any) -> None:
        self.interrupted |= sig == signal.SIGINT
        for process in self.processes:
            process.kill()


def listen(host: str, port: int) -> socket.socket:
    """Bind the listening socket now, so that a taken port or a bad host is a one-line error."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise DigitsError(
            f"--host {host} is not an address this machine can listen on ({exc.strerror})"
        ) from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise DigitsError(
            f"cannot listen on {host} port {port}: {exc.strerror} (choose another --port or --host)"
        ) from None
    sock.listen(BACKLOG)  # from here on connections queue, so the printed address answers at once
    sock.set_inheritable(True)
    return sock


def run(
    model: str | os.PathLike,
    host: str,
    port: int,
    workers: int,
    access_log: bool = True,
    cors_origins: Sequence[str] = (),
) -> None:
    """Load and check the model, bind ``host:port``, then serve until Ctrl-C (exit 130) or SIGTERM (exit 0).

    SIGTERM is how service managers (systemd, Docker, Kubernetes) stop a server: a requested,
    graceful stop, hence exit 0 (systemd counts that as success, 143 it would not). Ctrl-C is an
    interruption, exit 130 as for every command. ``access_log`` and ``cors_origins`` are
    :func:`~digits_serve.app.create_app`'s.
    """
    # The metrics of every worker go to files in a folder of this server's own, removed at the end.
    remove_orphaned_metrics()
    with tempfile.TemporaryDirectory(prefix=f"{METRICS_PREFIX}{os.getpid()}-") as metrics:
        os.environ[MULTIPROC_ENV] = metrics
        options = {"access_log": access_log, "cors_origins": list(cors_origins), "workers": workers}
        serve(model, host, port, workers, options)


def remove_orphaned_metrics() -> None:
    """Remove the metrics folders of servers that were killed outright (SIGKILL runs no clean-up),
    known by the process id in their name no longer running."""
    for folder in Path(tempfile.gettempdir()).glob(f"{METRICS_PREFIX}*-*"):
        pid = folder.name.removeprefix(METRICS_PREFIX).split("-", 1)[0]
        try:
            if not pid.isdigit() or folder.is_symlink() or folder.lstat().st_uid != os.getuid():
                continue  # not a server's folder, or not this user's
            os.kill(int(pid), 0)  # signal 0 only asks whether the process exists
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (OSError, OverflowError):
            pass  # removed meanwhile, a process of another user has that id, or no process could


def serve(model: str | os.PathLike, host: str, port: int, workers: int, app_options: dict[str, Any]) -> None:
    """:func:`run`, once the metrics have their folder."""
    signal.signal(signal.SIGTERM, lambda sig, frame: sys.exit(0))  # until uvicorn handles it the same way
    predictor = Predictor(model, threads=1)  # one thread per request: requests run side by side
    sock = listen(host, port)
    bound = sock.getsockname()[1]
    url = f"http://[{host}]:{bound}" if ":" in host else f"http://{host}:{bound}"
    if host not in LOOPBACK:
        print(f"digits: warning: listening on {host}: other machines can reach this server", file=sys.stderr)
    print(f"digits: serving {model} at {url} with {workers} worker(s); Ctrl-C stops", flush=True)
    options: dict[str, Any] = {
        "access_log": False,
        "log_level": "warning",
        "lifespan": "off",
        "http": connections.Protocol,
        "timeout_keep_alive": connections.IDLE_TIMEOUT,
    }
    if workers == 1:
        stopper: Server | Supervisor = Server(uvicorn.Config(create_app(predictor, **app_options), **options))
        stopper.run(sockets=[sock])
    else:
        del predictor  # each worker loads its own
        os.environ[MODEL_ENV] = str(Path(model).resolve())
        os.environ[OPTIONS_ENV] = json.dumps(app_options)
        config = uvicorn.Config("digits_serve.server:app_from_env", factory=True, workers=workers, **options)
        stopper = Supervisor(config, sockets=[sock])
        stopper.run()
    if stopper.interrupted:
        raise KeyboardInterrupt  # exit 130 with "digits: interrupted"; SIGTERM ends with 0
