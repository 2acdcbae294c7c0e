"""Score archives of images into Parquet: on every core of this machine, or on a Dask cluster.

The inputs (a folder, a glob, or a URI that fsspec reads, such as ``s3://bucket/scans/``) are
listed once, in the order `digits predict` uses, and cut into partitions of a whole number of
onnxruntime batches. Each partition is scored where a worker is free and comes back as rows,
which become one Parquet file, ``part-NNNNNN.parquet``, written whole or not at all. So a job
killed and run again finds the parts it already wrote and scores only the others, and every
input ends up in exactly one row. ``_job.json`` (written first) says which inputs and which
model the parts belong to; ``_summary.json`` is written last, once every part is there. Their
names start with ``_`` so that Parquet readers (pyarrow, pandas, Spark, DuckDB) read the folder
as one table and skip them.

The model reaches the workers as its bytes (a Dask cluster need not share this machine's files):
sent once to each Dask worker, loaded once per worker process and kept, keyed by its sha256.

:func:`score` is the same work as a plain function, for a partition of an existing pipeline.
pyarrow, fsspec and Dask are imported only where used: they come with the ``batch`` extra. The
Parquet files are made and read back by the workers; the driver never loads pyarrow.
"""

import contextlib
import hashlib
import importlib.util
import json
import os
import socket
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

from digits_core import atomic
from digits_core.contract import META_FINGERPRINT
from digits_core.errors import DigitsError, first_line
from digits_runtime.inputs import list_inputs
from digits_runtime.inputs import opened as opened_sources
from digits_runtime.predictor import BATCH_SIZE, Predictor
from digits_runtime.sources import Source
from digits_runtime.workers import bounded, predictor_for, process_pool

PART = "part-{:06d}.parquet"
JOB = "_job.json"
SUMMARY = "_summary.json"
MAX_PARTITION = 4 * BATCH_SIZE  # images per part; see default_partition_size
MIN_PARTS = 8  # cut small jobs finer, so that every worker gets some of them
CONNECT_SECONDS = 5  # a scheduler that does not answer by then is reported, not waited for
EXTRA = "pip install 'digits-runtime[batch]'"


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
    return _rows(predictor_for(model, threads), [(source, None) for source in sources])


def _rows(predictor: Predictor, entries: Sequence[tuple[Source, str | None]]) -> list[dict]:
    """The rows of ``(source, listing error or None)`` entries, one onnxruntime batch at a time."""
    rows = []
    columns = _prob_columns(predictor.labels)
    for start in range(0, len(entries), BATCH_SIZE):
        chunk = entries[start : start + BATCH_SIZE]
        opened = opened_sources(chunk)
        readable = [source for source in opened if not isinstance(source, DigitsError)]
        classified, errors = predictor.classify_each(readable)
        fields = (classified.probabilities, classified.predicted, classified.scores, classified.accepted)
        answers = zip(*fields, strict=True)
        failed = iter(errors)
        for (source, _), item in zip(chunk, opened, strict=True):
            error = item if isinstance(item, DigitsError) else next(failed)
            path = str(source) if isinstance(source, str | os.PathLike) else None
            if error is not None:
                empty = {"prediction": None, **dict.fromkeys(columns), "accepted": None, "score": None}
                rows.append({"path": path, **empty, "error": str(error)})
                continue
            probabilities, predicted, value, accepted = next(answers)
            probs = dict(zip(columns, map(float, probabilities), strict=True))  # float32 to float: exact
            rows.append(
                {"path": path, "prediction": int(predicted), **probs}
                | {"accepted": bool(accepted), "score": float(value), "error": None}
            )
    return rows


def _prob_columns(labels: Sequence[int]) -> list[str]:
    return [f"prob_{digit}" for digit in labels]


def score_part(
    model: bytes, threads: int, part: tuple[int, list[tuple[str, str | None]]]
) -> tuple[int, bytes, str, Counter[str]]:
    """A worker's task: a partition's index, its rows as a Parquet file, which process (host/pid)
    scored them, and their counts.

    The file is made here, not by the driver: the work spreads over the workers, and what comes
    back is a few compressed kilobytes instead of a thousand Python dicts to unpickle.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    index, entries = part
    predictor = predictor_for(model, threads)
    columns = _prob_columns(predictor.labels)
    schema = pa.schema(
        [("path", pa.string()), ("prediction", pa.int64())]
        + [(c, pa.float32()) for c in columns]
        + [("accepted", pa.bool_()), ("score", pa.float64()), ("error", pa.string())]
    )
    rows = _rows(predictor, entries)
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), sink)
    return index, sink.getvalue().to_pybytes(), f"{socket.gethostname()}/{os.getpid()}", _counts(rows)


def count_part(part: tuple[int, bytes]) -> Counter[str] | None:
    """A worker's task: the counts of a part written before (its index and bytes), or None if it
    is not a whole part."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, data = part
    try:
        return _counts(pq.read_table(pa.BufferReader(data), columns=["accepted", "error"]).to_pylist())
    except (pa.ArrowException, ValueError, KeyError):  # cut short, or not a file of ours
        return None


def _counts(rows: Sequence[dict]) -> Counter[str]:
    return Counter(
        inputs=len(rows),
        errors=sum(row["error"] is not None for row in rows),
        refused=sum(row["accepted"] is False for row in rows),
    )


def default_partition_size(inputs: int) -> int:
    """Images per part: whole onnxruntime batches, at most MAX_PARTITION, at least MIN_PARTS parts if it can.

    Measured (benchmarks/bench_batch.py): per-part overhead is a few ms on Dask, so 1024 costs
    nothing next to the ~0.3 s its PNGs take; finer parts let a few large photos spread over
    every worker instead of waiting for one.
    """
    batches = max(1, min(MAX_PARTITION // BATCH_SIZE, inputs // (MIN_PARTS * BATCH_SIZE)))
    return batches * BATCH_SIZE


class _Folder:
    """The OUTPUT folder, on this machine (files written whole, then renamed) or in an fsspec store."""

    def __init__(self, output: str) -> None:
        import fsspec

        self.name = output.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(output)
        self.local = "file" in self.fs.protocol
        if self.local:
            if Path(self.root).exists() and not Path(self.root).is_dir():
                raise DigitsError(f"{output} is a file: give a folder for the Parquet files")
            atomic.ensure_dir(self.root)
        elif self.fs.isfile(self.root):
            raise DigitsError(f"{output} is a file: give a folder for the Parquet files")

    def path(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}"

    def names(self) -> set[str]:
        try:
            return {p.rsplit("/", 1)[-1] for p in self.fs.ls(self.root, detail=False)}
        except FileNotFoundError:
            return set()

    def read_bytes(self, name: str) -> bytes | None:
        """The file's bytes, or None if there is no such file."""
        try:
            return self.fs.cat_file(self.path(name))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise DigitsError(f"cannot read {self.name}/{name}: {first_line(exc)}") from None

    def read_json(self, name: str) -> dict | None:
        data = self.read_bytes(name)
        try:
            return None if data is None else json.loads(data)
        except ValueError as exc:
            raise DigitsError(f"cannot read {self.name}/{name}: {first_line(exc)}") from None

    def write(self, name: str, data: bytes) -> None:
        if self.local:
            atomic.write_bytes(self.path(name), data)
            return
        try:
            self.fs.pipe_file(self.path(name), data)  # one object, whole or not at all
        except OSError as exc:
            raise DigitsError(f"cannot write {self.name}/{name}: {first_line(exc)}") from None


def run(
    source: str,
    output: str,
    model: str | os.PathLike,
    *,
    engine: str = "local",
    workers: int = 1,
    scheduler: str | None = None,
    partition_size: int | None = None,
) -> dict:
    """Score every image under ``source`` into Parquet files in ``output``; return the summary.

    A job that was stopped is carried on: the parts already in ``output`` are kept. See
    `digits batch` for the arguments. Nothing is written before the model has been checked and
    the engine (the local processes, or the Dask scheduler) is there.
    """
    # Looked for, not imported: the workers write and read the Parquet files, and the driver
    # keeps Arrow's thread pools out of its process, where they can abort it at exit now and
    # then ("terminate called without an active exception", apache/arrow#34314).
    if importlib.util.find_spec("pyarrow") is None:
        raise DigitsError(f"digits batch needs the batch extra: {EXTRA}")
    started = time.perf_counter()
    # Checked here, before any worker starts; the workers classify, so this session (and its
    # onnxruntime threads) ends at once rather than at interpreter exit.
    fingerprint = Predictor(model).metadata.get(META_FINGERPRINT)
    model_bytes = Path(model).read_bytes()
    if engine == "dask" and "://" not in source:
        source = os.path.abspath(source)  # a Dask worker runs in a folder of its own
    with _engine(engine, workers, scheduler, model_bytes) as (executor, model_ref, ahead):
        entries = list_inputs(source)
        folder = _Folder(output)
        size = partition_size or default_partition_size(len(entries))
        paths = "\n".join(path for path, _ in entries).encode("utf-8", "surrogateescape")
        job = {
            "source": source,
            "inputs": len(entries),
            "inputs_sha256": hashlib.sha256(paths).hexdigest(),
            "model_sha256": hashlib.sha256(model_bytes).hexdigest(),
            "partition_size": size,
        }
        names = folder.names()
        done = _check_job(folder, names, job)
        if done is not None:
            print(f"digits batch: {output} is already complete", file=sys.stderr)
            return done
        if JOB not in names:
            folder.write(JOB, (json.dumps(job, indent=1) + "\n").encode())
        parts = [entries[start : start + size] for start in range(0, len(entries), size)]
        found = (
            (i, folder.read_bytes(PART.format(i)) or b"")
            for i in range(len(parts))
            if PART.format(i) in names
        )
        kept = {
            i: part_counts
            for (i, _), part_counts in _guarded(bounded(executor, count_part, found, ahead))
            if part_counts is not None and part_counts["inputs"] == len(parts[i])
        }
        todo = [(i, part) for i, part in enumerate(parts) if i not in kept]
        by_worker, counts = _score_parts(folder, todo, len(entries), (executor, model_ref, ahead))
    seconds = time.perf_counter() - started
    counts = sum(kept.values(), counts)
    if counts["inputs"] != len(entries):  # the parts cover the inputs once: this cannot happen
        raise DigitsError(
            f"{output} holds {counts['inputs']} rows for {len(entries)} inputs: remove it, run again"
        )
    summary = {
        **job,
        "scored": counts["inputs"] - counts["errors"],
        "refused": counts["refused"],
        "errors": counts["errors"],
        "parts": len(parts),
        "model": str(model),
        "fingerprint": fingerprint,
        "engine": engine,
        "workers": workers if engine == "local" else len(by_worker),
        "scheduler": scheduler,
        "parts_kept": len(kept),
        "parts_by_worker": dict(sorted(by_worker.items())),
        "seconds": round(seconds, 3),  # this run's, from start to summary
        "images_per_second": round(sum(len(part) for _, part in todo) / seconds, 1),
    }
    folder.write(SUMMARY, (json.dumps(summary, indent=1) + "\n").encode())
    return summary


def _score_parts(
    folder: "_Folder", todo: list[tuple[int, list]], total: int, engine: tuple
) -> tuple[Counter[str], Counter[str]]:
    """Score the parts on the engine and write each as it comes.

    Returns how many parts each worker scored, and the counts of the rows written.
    """
    from tqdm import tqdm

    executor, model_ref, ahead = engine
    sizes = {index: len(part) for index, part in todo}
    by_worker: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    # disable=None: the bar is drawn only when stderr is a terminal.
    with tqdm(
        total=total, initial=total - sum(sizes.values()), desc="batch", unit="image", disable=None
    ) as bar:
        for _, (index, data, worker, part_counts) in _guarded(
            bounded(executor, score_part, todo, ahead, model_ref, 1)
        ):
            folder.write(PART.format(index), data)
            by_worker[worker] += 1
            counts += part_counts
            bar.update(sizes[index])
    return by_worker, counts


def _check_job(folder: _Folder, names: set[str], job: dict) -> dict | None:
    """Refuse an OUTPUT that holds something else; return its summary if the same job is complete."""
    if JOB not in names:
        ours = {n for n in names if n.startswith((".", "part-"))}
        if names - ours:
            raise DigitsError(
                f"{folder.name} holds files that digits batch did not write: give a new or empty folder"
            )
        return None
    if folder.read_json(JOB) != job:
        raise DigitsError(
            f"{folder.name} holds the results of another job (other inputs, model or partition size): "
            "give a new folder, or remove this one to start again"
        )
    return folder.read_json(SUMMARY)


@contextlib.contextmanager
def _engine(engine: str, workers: int, scheduler: str | None, model: bytes) -> Iterator[tuple[Any, Any, int]]:
    """Yield (a concurrent.futures executor, how tasks get the model, how many parts to keep in flight)."""
    if engine == "local":
        with process_pool(workers) as pool:
            yield pool, model, 2 * workers
        return
    try:
        from distributed import Client
    except ImportError:
        raise DigitsError(f"digits batch --engine dask needs the batch extra: {EXTRA}") from None
    try:
        client = Client(scheduler, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise DigitsError(
            f"no Dask scheduler answers at {scheduler} ({first_line(exc)}): "
            "start one with `dask scheduler`, or give the address of yours"
        ) from None
    with client:
        if not client.nthreads():
            print(f"digits batch: waiting for a Dask worker to join {scheduler} ...", file=sys.stderr)
            client.wait_for_workers(1)
        threads = sum(client.nthreads().values())
        # Sent once to every worker; tasks refer to it, and a worker that joins later gets a copy.
        model_ref = client.scatter(model, broadcast=True, hash=False)
        yield client.get_executor(), model_ref, max(4, 2 * threads)


def _guarded(results: Iterator[Any]) -> Iterator[Any]:
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
