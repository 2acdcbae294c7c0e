"""Score archives of images into Parquet: on every core of this machine, or on a Dask cluster.

The inputs (a folder, a glob, or a URI that fsspec reads, such as ``s3://bucket/scans/``) are
listed once, in the order `digits predict` uses, and cut into partitions of a whole number of
onnxruntime batches. Each partition is scored where a worker is free and comes back as one
Parquet file, written whole or not at all.

OUTPUT holds nothing but those files, so that every reader (pyarrow, pandas, Dask, polars,
DuckDB, Spark) reads the folder as one table: polars and DuckDB would also read a hidden or
``_`` file. What batch needs to carry a job on sits in each file's key-value metadata: the job
(its inputs, model and partition size), the part's index, the stamps (size and modification
time) of its inputs, and its counts. A file's name ends with the first 16 hex digits of its
content's sha256, ``part-000003-0123456789abcdef.parquet``: batch writes and removes only files
so named whose content matches their name, or that are cut short and carry that name, and
refuses an OUTPUT that holds anything else. A job killed and run again keeps the parts whose
inputs have not changed and scores the others, so every input ends up in exactly one row, with
the answer of its current content.

The model reaches the workers as its bytes (a Dask cluster need not share this machine's files):
sent once to each Dask worker, loaded once per worker process and kept, keyed by its sha256.

:func:`score` is the same work as a plain function, for a partition of an existing pipeline.
pyarrow, fsspec and Dask are imported only where used: they come with the ``batch`` extra. The
Parquet files are made and read back by the workers; the driver never loads pyarrow.

This module is the entry point: :func:`run` and :func:`score`, and the loop that writes each
part as it comes. What a part is lives in :mod:`digits_runtime.parts`, the OUTPUT folder in
:mod:`digits_runtime.output`, the job and its resume rules in :mod:`digits_runtime.jobs`, the
local and Dask engines in :mod:`digits_runtime.engines`.
"""

import importlib.util
import os
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from digits_core.contract import META_FINGERPRINT
from digits_core.errors import DigitsError, UsageError
from digits_runtime import jobs
from digits_runtime.engines import CONNECT_SECONDS, SCHEDULER, engine_for, guarded
from digits_runtime.inputs import list_inputs
from digits_runtime.output import OutputFolder
from digits_runtime.parts import EXTRA, part_name, score_part, score_rows
from digits_runtime.predictor import Predictor
from digits_runtime.sources import Source
from digits_runtime.workers import bounded, predictor_for

__all__ = ["run", "score"]


def score(sources: Iterable[Source], model: str | os.PathLike | bytes, *, threads: int = 1) -> list[dict]:
    """Score a partition of images: one row per source, in order, as `digits batch` writes them.

    Each source is a local path, a URI that fsspec reads (``s3://...``), an image file's bytes or
    a binary file object. A row has ``path`` (None for bytes and file objects), ``prediction``,
    ``prob_<digit>`` for each of the model's digits, ``accepted``, the refusal ``score`` and
    ``error`` (None, or why the image could not be scored: then the other values are None).
    The model (its path or bytes) is loaded once per process and kept. The answers are those of
    `digits predict` (same preprocessing, same model); bit for bit when the partition starts at a
    multiple of 256 in `digits predict`'s order, since onnxruntime then sees the same batches.

    Args:
        sources: The images of one partition.
        model: The ONNX model written by `digits-train export`: its path or its bytes.
        threads: onnxruntime threads per call; one suits one process per core.
    """
    return score_rows(predictor_for(model, threads), [(source, None) for source in sources])


def run(
    source: str,
    output: str,
    model: str | os.PathLike,
    *,
    engine: str = "local",
    workers: int = 1,
    scheduler: str | None = None,
    partition_size: int | None = None,
    retry_errors: bool = False,
    connect_timeout: float | None = None,
) -> dict:
    """Score every image under ``source`` into Parquet files in ``output``; return the summary.

    A job that was stopped is carried on: the parts already in ``output`` whose inputs have not
    changed are kept (with ``retry_errors``, not those with error rows). See `digits batch` for
    the arguments. Nothing is written before the model has been checked and the engine (the
    local processes, or the Dask scheduler) is there.
    """
    # Looked for, not imported: the workers write and read the Parquet files, and the driver
    # keeps Arrow's thread pools out of its process, where they can abort it at exit now and
    # then ("terminate called without an active exception", apache/arrow#34314).
    if importlib.util.find_spec("pyarrow") is None:
        raise DigitsError(f"digits batch needs the batch extra: {EXTRA}")
    if engine == "dask" and not SCHEDULER.fullmatch(scheduler or ""):
        raise UsageError(
            f"--scheduler must be a Dask scheduler's address, tcp://HOST:PORT, got {scheduler!r}"
        )
    started = time.perf_counter()
    # Checked here, before any worker starts; the workers classify, so this session (and its
    # onnxruntime threads) ends at once rather than at interpreter exit.
    predictor = Predictor(model)
    fingerprint, labels = predictor.metadata.get(META_FINGERPRINT), list(predictor.labels)
    del predictor
    model_bytes = Path(model).read_bytes()
    # A job is what it means: the same folder however it is typed, and the same paths in its
    # rows whichever engine scores them (a Dask worker runs in a folder of its own).
    source = source if "://" in source else os.path.abspath(source)
    folder = OutputFolder(output)
    timeout = CONNECT_SECONDS if connect_timeout is None else connect_timeout
    with engine_for(engine, workers, scheduler, model_bytes, timeout) as (executor, model_ref, ahead):
        entries = list_inputs(source, skip=folder.root if folder.local else None)
        size = partition_size or jobs.default_partition_size(len(entries))
        job = jobs.identity(source, entries, model_bytes, size)
        parts = jobs.partitions(entries, size)
        folder.create()
        with folder.locked():
            kept, stale = jobs.survey(folder, job, parts, retry_errors, (executor, ahead))
            todo = [part for part in parts if part[0] not in kept]
            if not todo and not stale:
                print(f"digits batch: {output} is already complete", file=sys.stderr)
            by_worker, counts = _score_parts(
                folder, todo, stale, len(entries), (executor, model_ref, ahead), job
            )
            folder.flush()
            jobs.check_complete(folder, len(parts))
    seconds = time.perf_counter() - started
    counts = sum(kept.values(), counts)
    return {
        **job,
        "scored": counts["inputs"] - counts["errors"],
        "refused": counts["refused"],
        "errors": counts["errors"],
        "parts": len(parts),
        "model": str(model),
        "fingerprint": fingerprint,
        "labels": labels,
        "engine": engine,
        "workers": workers if engine == "local" else len(by_worker),
        "scheduler": scheduler,
        "parts_kept": len(kept),
        "parts_by_worker": dict(sorted(by_worker.items())),
        "seconds": round(seconds, 3),  # this run's, from start to summary
        "images_per_second": round(sum(len(part) for _, _, part in todo) / seconds, 1),
    }


def _score_parts(
    folder: OutputFolder, todo: list, stale: dict[int, list[str]], total: int, engine: tuple, job: dict
) -> tuple[Counter[str], Counter[str]]:
    """Score the parts on the engine and write each as it comes, removing the files it replaces.

    Returns how many parts each worker scored, and the counts of the rows written.
    """
    from tqdm import tqdm

    executor, model_ref, ahead = engine
    sizes = {index: len(part) for index, _, part in todo}
    for index in set(stale) - set(sizes):  # replaced by a part kept, or past the job's last part
        for name in stale[index]:
            folder.remove(name)
    by_worker: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    # disable=None: the bar is drawn only when stderr is a terminal.
    with tqdm(
        total=total, initial=total - sum(sizes.values()), desc="batch", unit="image", disable=None
    ) as bar:
        for _, (index, data, worker, part_counts) in guarded(
            bounded(executor, score_part, todo, ahead, model_ref, 1, job)
        ):
            name = part_name(index, data)
            for old in stale.get(index, []):  # first: never two parts of one index in OUTPUT
                if old != name:
                    folder.remove(old)
            folder.write(name, data)
            by_worker[worker] += 1
            counts += part_counts
            bar.update(sizes[index])
    return by_worker, counts
