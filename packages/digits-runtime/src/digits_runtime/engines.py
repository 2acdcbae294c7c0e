"""Where `digits batch` runs its tasks: a pool of processes on this machine, or a Dask cluster.

This module owns the engines: starting the local pool, or connecting to a Dask scheduler
(bounded in time, its workers checked for the modules a task needs), sending the model to the
workers once, and saying a failure of the cluster in one line. Both engines are used as one
``concurrent.futures`` executor. Dask and distributed come with the ``batch`` extra and are
imported only here, only for ``--engine dask``.
"""

import contextlib
import re
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import CancelledError
from typing import Any

from digits_core.errors import DigitsError, first_line
from digits_runtime.parts import EXTRA
from digits_runtime.workers import process_pool

CONNECT_SECONDS = 5.0  # by default, a scheduler that does not answer by then is reported, not waited for
SCHEDULER = re.compile(r"(tcp|tls|ws|wss)://(\[[0-9a-fA-F:]+\]|[^/\s:\[\]]+):\d+/?")  # HOST:PORT


@contextlib.contextmanager
def engine_for(
    engine: str, workers: int, scheduler: str | None, model: bytes, connect_timeout: float = CONNECT_SECONDS
) -> Iterator[tuple[Any, Any, int]]:
    """Yield (a concurrent.futures executor, how tasks get the model, how many parts to keep in flight).

    A Dask scheduler that has not answered within ``connect_timeout`` seconds is reported.
    """
    if engine == "local":
        with process_pool(workers) as pool:
            yield pool, model, 2 * workers
        return
    try:
        import dask
        from distributed import Client
    except ImportError:
        raise DigitsError(f"digits batch --engine dask needs the batch extra: {EXTRA}") from None
    # The connect timeout bounds each attempt (and the handshake with a port that accepts and
    # never answers); the thread bounds the whole, whatever Dask does in between.
    timeout = f"{connect_timeout}s"
    with dask.config.set({"distributed.comm.timeouts.connect": timeout}):
        client = _within(
            connect_timeout + 2, lambda: Client(scheduler, timeout=timeout, set_as_default=False)
        )
    if not isinstance(client, Client):
        reason = first_line(client) if client is not None else f"no answer within {connect_timeout:g} s"
        raise DigitsError(
            f"no Dask scheduler answers at {scheduler} ({reason}): "
            "start one with `dask scheduler`, or give the address of yours"
        )
    with client:
        if not client.nthreads():
            print(f"digits batch: waiting for a Dask worker to join {scheduler} ...", file=sys.stderr)
            client.wait_for_workers(1)
        lacking = {w: m for w, m in client.run(_missing_modules).items() if m}
        if lacking:
            names = sorted({name for m in lacking.values() for name in m})
            raise DigitsError(
                f"Dask workers at {scheduler} cannot import {', '.join(names)} ({len(lacking)} of "
                f"{len(client.nthreads())} workers): {EXTRA} on every worker"
            )
        threads = sum(client.nthreads().values())
        # Sent once to every worker; tasks refer to it, and a worker that joins later gets a copy.
        model_ref = client.scatter(model, broadcast=True, hash=False)
        yield client.get_executor(), model_ref, max(4, 2 * threads)


def _within(seconds: float, call: Any) -> Any:
    """``call()``'s result or exception, or None if it has not returned within ``seconds``."""
    outcome: list[Any] = []

    def attempt() -> None:
        try:
            outcome.append(call())
        except Exception as exc:  # handed back to the caller, which says it in one line
            outcome.append(exc)

    thread = threading.Thread(target=attempt, name="dask-connect", daemon=True)
    thread.start()
    thread.join(seconds)
    return outcome[0] if outcome else None


def _missing_modules() -> list[str]:
    """Run on each Dask worker: the modules a task needs that it cannot import."""
    import importlib

    missing = []
    for name in ("digits_runtime", "pyarrow"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name.replace("_", "-"))
    return missing


# Sent by value, not by reference: it must run on a worker that cannot import this module.
_missing_modules.__module__ = "__main__"


def guarded(results: Iterator[Any]) -> Iterator[Any]:
    """Dask's failures of a worker, a scheduler or the network, as one line that says what to do."""
    try:
        yield from results
    except Exception as exc:
        if type(exc).__module__.split(".")[0] != "distributed" and not isinstance(exc, CancelledError):
            raise
        raise DigitsError(
            f"the Dask cluster failed ({type(exc).__name__}: {first_line(exc)}): "
            "run the same command again to carry on where it stopped"
        ) from None
