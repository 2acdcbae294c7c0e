"""Work spread over this machine's cores, in spawned processes, in the order it was given."""

import concurrent.futures as cf
import multiprocessing
import os
from collections.abc import Callable


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def on_processes(work: Callable, items: list, workers: int) -> list:
    """``[work(item) for item in items]``, on ``workers`` processes when there are several.

    ``work`` must be a module-level function (or a partial of one), so that it can be pickled.
    """
    if workers <= 1 or len(items) < 2:
        return [work(item) for item in items]
    # Spawned, not forked: the caller may hold threads (onnxruntime's, torch's) that a fork copies
    # mid-work.
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(min(workers, len(items)), mp_context=context) as pool:
        return list(pool.map(work, items))
