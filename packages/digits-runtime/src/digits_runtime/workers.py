"""Every core of this machine: a pool of processes, each with the model loaded once.

Decoding and preprocessing an image costs far more than the model's answer, and both hold the
GIL for much of the time, so the work is spread over processes, not threads. `digits predict
--workers N` and `digits batch --engine local` share this pool; a Dask worker shares the
per-process model cache (:func:`predictor_for`).
"""

import concurrent.futures as cf
import hashlib
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from digits_core.errors import DigitsError
from digits_runtime.predictor import Prediction, Predictor

_PREDICTORS: dict[tuple[str, int | None], Predictor] = {}
_LOCK = threading.Lock()


def predictor_for(model: bytes | str | os.PathLike, threads: int | None = 1) -> Predictor:
    """The Predictor of ``model`` (the ONNX file's path or its bytes), loaded once per process.

    Cached by the sha256 of the model's bytes, so a worker that is sent the same model again (a
    Dask worker running task after task) reuses its session, and a changed file is loaded anew.
    One onnxruntime thread by default: the parallelism comes from the processes.
    """
    data = model if isinstance(model, bytes) else Path(model).read_bytes()
    key = (hashlib.sha256(data).hexdigest(), threads)
    with _LOCK:  # a Dask worker with several threads must not load the same model twice at once
        if key not in _PREDICTORS:
            # Bytes are loaded as they are: no file of them is written, so a worker killed while
            # it loads leaves nothing behind.
            _PREDICTORS[key] = Predictor(model, threads=threads)
        return _PREDICTORS[key]


def process_pool(workers: int) -> cf.ProcessPoolExecutor:
    """``workers`` fresh processes (spawned: the caller may already run onnxruntime's threads).

    Each process ends by itself when this one dies, however it dies (kill -9 included), instead
    of waiting forever for work that will not come. Signals are this process's to handle: Ctrl-C
    (sent to the whole process group by a terminal) is ignored by the workers, even while they
    start, and this process stops them when it leaves the pool on an exception; SIGTERM ends it
    as Ctrl-C would, with its pool shut down and its semaphores released, exit code 143.
    """
    context = multiprocessing.get_context("spawn")
    return _Pool(workers, mp_context=context, initializer=_start_worker, initargs=(os.getpid(),))


class _Pool(cf.ProcessPoolExecutor):
    """A process pool whose workers leave signals to the process that started them."""

    _SIGNALS = frozenset({signal.SIGINT})  # SIGTERM ends a worker quietly as it is

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        # A worker is started here, when one is needed. A blocked signal stays blocked in the
        # started process until its initializer ignores it, so a Ctrl-C during its start-up is
        # not a traceback of its imports. The mask is this thread's only: another thread of this
        # process may still take the Ctrl-C, and Python would then raise KeyboardInterrupt here
        # half way through handing a worker its start-up data, which the worker would report as
        # a traceback. So a Ctrl-C is only noted while a worker starts, and raised after.
        noted: list[int] = []
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, lambda number, frame: noted.append(number)) if main else None
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, self._SIGNALS)
        try:
            return super().submit(fn, *args, **kwargs)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            if main:
                signal.signal(signal.SIGINT, previous)
                if noted:
                    raise KeyboardInterrupt

    def __enter__(self) -> "_Pool":
        self._sigterm = None
        if threading.current_thread() is threading.main_thread():
            self._sigterm = signal.signal(signal.SIGTERM, _terminated)
        return self

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        try:
            if kind is None:
                self.shutdown(wait=True)
                return
            # Interrupted, or failed: the workers ignore Ctrl-C, so stop them rather than wait
            # for the work they have in hand. Listed first: shutdown() forgets its processes.
            processes = list((self._processes or {}).values())
            manager = self._executor_manager_thread
            self.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.terminate()
            for process in processes:
                process.join()
            if manager is not None:  # it sees its workers gone, fails what they held, and ends
                manager.join()
        finally:
            if self._sigterm is not None:
                signal.signal(signal.SIGTERM, self._sigterm)


def _terminated(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _start_worker(parent: int) -> None:
    """A worker's initializer: ignore Ctrl-C, which its parent handles, and end with its parent."""
    for number in _Pool._SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _Pool._SIGNALS)  # what arrived while starting is dropped

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def bounded(
    executor: cf.Executor, call: Callable[..., Any], items: Iterable[Any], ahead: int, *args: Any
) -> Iterator[tuple[Any, Any]]:
    """Yield ``(item, call(*args, item))`` for each item as it completes, at most ``ahead`` in flight.

    In flight, not all at once: memory stays bounded however many items there are. A
    ``BrokenProcessPool`` (a worker process killed) becomes one :class:`DigitsError`.
    """
    items = iter(items)
    pending: dict[cf.Future, Any] = {}
    while True:
        for item in items:
            pending[executor.submit(call, *args, item)] = item
            if len(pending) >= ahead:
                break
        if not pending:
            return
        done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
        for future in done:
            item = pending.pop(future)
            yield item, _result(future)


def in_order(
    executor: cf.Executor, call: Callable[..., Any], items: Iterable[Any], ahead: int, *args: Any
) -> Iterator[Any]:
    """Yield ``call(*args, item)`` for each item in the items' order, at most ``ahead`` in flight."""
    queue: deque[cf.Future] = deque()
    items = iter(items)
    for item in items:
        queue.append(executor.submit(call, *args, item))
        if len(queue) >= ahead:
            break
    while queue:
        result = _result(queue.popleft())
        for item in items:  # keep the pool busy: one more in for the one that came out
            queue.append(executor.submit(call, *args, item))
            break
        yield result


def _result(future: cf.Future) -> Any:
    try:
        return future.result()
    except cf.process.BrokenProcessPool:
        raise DigitsError(
            "a worker process died (killed, or out of memory): run the same command again"
        ) from None


def predict_chunk(model: str, threads: int | None, paths: list[Path]) -> list[Prediction | DigitsError]:
    """`digits predict` in a pool process: the answers for one chunk of paths, in order."""
    return predictor_for(model, threads).predict_each(paths)
