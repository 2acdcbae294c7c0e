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
"""

import contextlib
import errno
import fcntl
import hashlib
import importlib.util
import json
import os
import re
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

from digits_core import atomic
from digits_core.contract import META_FINGERPRINT
from digits_core.errors import DigitsError, UsageError, first_line
from digits_runtime.inputs import Input, list_inputs
from digits_runtime.inputs import opened as opened_sources
from digits_runtime.predictor import BATCH_SIZE, Predictor
from digits_runtime.sources import Source
from digits_runtime.workers import bounded, predictor_for, process_pool

PART = re.compile(r"part-(\d{6})-([0-9a-f]{16})\.parquet")
SCRATCH = re.compile(r"\.part-\d{6}-[0-9a-f]{16}\.parquet\..*\.tmp")  # atomic.write_bytes's scratch
META = "digits."  # the prefix of the key-value metadata every part carries
MAX_PARTITION = 4 * BATCH_SIZE  # images per part; see default_partition_size
MIN_PARTS = 8  # cut small jobs finer, so that every worker gets some of them
CONNECT_SECONDS = 5  # a scheduler that does not answer by then is reported, not waited for
EXTRA = "pip install 'digits-runtime[batch]'"
SCHEDULER = re.compile(r"(tcp|tls|ws|wss)://(\[[0-9a-fA-F:]+\]|[^/\s:\[\]]+):\d+/?")  # HOST:PORT


def part_name(index: int, data: bytes) -> str:
    """The name of part ``index`` holding ``data``: its index and its content's sha256 (16 hex digits)."""
    return f"part-{index:06d}-{hashlib.sha256(data).hexdigest()[:16]}.parquet"


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


def schema(labels: Sequence[int]) -> Any:
    """The Arrow schema of every part: explicit, so that a part of error rows only has the same types.

    Its pandas metadata names nullable dtypes (Int64, boolean), so pandas and dask.dataframe read
    ``prediction`` and ``accepted`` with the same dtype whether or not a part holds error rows.
    """
    import pyarrow as pa

    columns = _prob_columns(labels)
    fields = (
        [("path", pa.string(), "object"), ("prediction", pa.int64(), "Int64")]
        + [(c, pa.float32(), "float32") for c in columns]
        + [
            ("accepted", pa.bool_(), "boolean"),
            ("score", pa.float64(), "float64"),
            ("error", pa.string(), "object"),
        ]
    )
    pandas = {
        "index_columns": [],
        "column_indexes": [],
        "columns": [
            {"name": n, "field_name": n, "pandas_type": _PANDAS_TYPES[d], "numpy_type": d, "metadata": None}
            for n, _, d in fields
        ],
        "attributes": {},
        "creator": {"library": "digits-runtime"},
    }
    return pa.schema([(n, t) for n, t, _ in fields], metadata={"pandas": json.dumps(pandas)})


_PANDAS_TYPES = {
    "object": "unicode",
    "Int64": "int64",
    "float32": "float32",
    "boolean": "bool",
    "float64": "float64",
}


def _text(value: str | None) -> str | None:
    """``value`` as valid UTF-8: a file name's bytes that are not UTF-8 are written as ``\\xNN``."""
    if value is None:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(value).decode("utf-8", "backslashreplace")
    return value


def score_part(
    model: bytes, threads: int, job: dict, part: tuple[int, str, list[Input]]
) -> tuple[int, bytes, str, Counter[str]]:
    """A worker's task: a partition's index, its rows as a Parquet file, which process (host/pid)
    scored them, and their counts.

    The file is made here, not by the driver: the work spreads over the workers, and what comes
    back is a few compressed kilobytes instead of a thousand Python dicts to unpickle.
    """
    index, stamp, entries = part
    pa, pq = _pyarrow()
    predictor = predictor_for(model, threads)
    rows = _rows(predictor, [(path, error) for path, error, _ in entries])
    for row in rows:
        row["path"], row["error"] = _text(row["path"]), _text(row["error"])
    counts = _counts(rows)
    table = pa.Table.from_pylist(rows, schema=schema(predictor.labels))
    table = table.replace_schema_metadata(
        {**table.schema.metadata, **_metadata(job, predictor, index, stamp, counts)}
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return index, sink.getvalue().to_pybytes(), f"{socket.gethostname()}/{os.getpid()}", counts


def _metadata(job: dict, predictor: Predictor, index: int, stamp: str, counts: Counter[str]) -> dict:
    """The key-value metadata of a part: what it is, for readers, and what batch needs to carry a job on."""
    return {
        f"{META}model_sha256": job["model_sha256"],
        f"{META}labels": json.dumps(list(predictor.labels)),
        f"{META}fingerprint": str(predictor.metadata.get(META_FINGERPRINT, "")),
        f"{META}job": json.dumps(job, sort_keys=True),
        f"{META}part": json.dumps({"index": index, "inputs_stamp": stamp, "counts": dict(counts)}),
    }


def _pyarrow() -> tuple[Any, Any]:
    """pyarrow, or one line saying which worker lacks it (a Dask worker may not have the extra)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DigitsError(
            f"the worker on {socket.gethostname()} has no pyarrow: {EXTRA} on every Dask worker"
        ) from None
    return pa, pq


def read_part(part: tuple[str, bytes]) -> dict | None:
    """A worker's task: the job and part records of a part written before (its name and bytes),
    or None if it has none."""
    _, data = part
    pa, pq = _pyarrow()
    try:
        metadata = pq.read_metadata(pa.BufferReader(data)).metadata or {}
        return {
            "job": json.loads(metadata[f"{META}job".encode()]),
            **json.loads(metadata[f"{META}part".encode()]),
        }
    except (pa.ArrowException, ValueError, KeyError, TypeError):  # not a part of ours
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

        self.name = output.rstrip("/") or output
        try:
            self.fs, root = fsspec.core.url_to_fs(output)
        except ImportError as exc:  # s3:// without s3fs, gs:// without gcsfs, ...
            raise DigitsError(f"cannot write {output}: {first_line(exc)}") from None
        except ValueError as exc:  # an unknown protocol
            raise DigitsError(
                f"cannot write {output}: {first_line(exc)}: give a folder or a URI fsspec writes"
            ) from None
        self.local = "file" in self.fs.protocol
        if not self.local and set(self.fs.protocol) & {"http", "https"}:
            raise DigitsError(
                f"cannot write {output}: HTTP is read-only: give a folder or an object store URI"
            )
        self.root = os.path.abspath(root) if self.local else root.rstrip("/")

    def create(self) -> None:
        """Make the folder (locally; an object store has none to make), refusing a file in its place."""
        if self.local:
            if Path(self.root).exists() and not Path(self.root).is_dir():
                raise DigitsError(f"{self.name} is a file: give a folder for the Parquet files")
            atomic.ensure_dir(self.root)
        elif self._call(self.fs.isfile, self.root):
            raise DigitsError(f"{self.name} is a file: give a folder for the Parquet files")

    def _call(self, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except FileNotFoundError:
            raise
        except Exception as exc:  # an object store's client raises its own kinds of error
            raise DigitsError(f"cannot write {self.name}: {first_line(exc)}") from None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold OUTPUT for this run: ``flock`` on the folder itself, so nothing is added to it.

        A second run on the same OUTPUT stops at once with one line. An object store has no lock:
        there a run checks at its end that OUTPUT holds its own parts only, once each.
        """
        if not self.local:
            yield
            return
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DigitsError(
                    f"{self.name} is being written by another digits batch: wait for it to end, "
                    "or give another OUTPUT"
                ) from None
            except OSError as exc:
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP):
                    raise
            yield
        finally:
            os.close(fd)  # releases the lock

    def path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def entries(self) -> dict[str, bool]:
        """Each name in the folder, and whether it is a regular file (not a link, folder or device)."""
        if self.local:
            with os.scandir(self.root) as found:
                return {e.name: e.is_file(follow_symlinks=False) for e in found}
        try:
            listed = self._call(self.fs.ls, self.root, True)
        except FileNotFoundError:
            return {}
        return {info["name"].rsplit("/", 1)[-1]: info.get("type") == "file" for info in listed}

    def read_bytes(self, name: str) -> bytes | None:
        """The file's bytes, or None if there is no such file."""
        try:
            return self._call(self.fs.cat_file, self.path(name))
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        if self.local:
            atomic.write_bytes(self.path(name), data, follow_link=False)
        else:
            self._call(self.fs.pipe_file, self.path(name), data)  # one object, whole or not at all

    def remove(self, name: str) -> None:
        if self.local:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path(name))
        else:
            with contextlib.suppress(FileNotFoundError):
                self._call(self.fs.rm_file, self.path(name))


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
    folder = _Folder(output)
    with _engine(engine, workers, scheduler, model_bytes) as (executor, model_ref, ahead):
        entries = list_inputs(source, skip=folder.root if folder.local else None)
        size = partition_size or default_partition_size(len(entries))
        paths = "\n".join(path for path, _, _ in entries).encode("utf-8", "surrogateescape")
        job = {
            "source": _text(source),
            "inputs": len(entries),
            "inputs_sha256": hashlib.sha256(paths).hexdigest(),
            "model_sha256": hashlib.sha256(model_bytes).hexdigest(),
            "partition_size": size,
        }
        parts = [
            (i // size, _stamp(entries[i : i + size]), entries[i : i + size])
            for i in range(0, len(entries), size)
        ]
        folder.create()
        with folder.locked():
            kept, stale = _survey(folder, job, parts, retry_errors, (executor, ahead))
            todo = [part for part in parts if part[0] not in kept]
            if not todo and not stale:
                print(f"digits batch: {output} is already complete", file=sys.stderr)
            by_worker, counts = _score_parts(
                folder, todo, stale, len(entries), (executor, model_ref, ahead), job
            )
            _check_complete(folder, len(parts))
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


def _stamp(entries: Sequence[Input]) -> str:
    """The sha256 of a part's inputs: their paths and stamps (size and modification time)."""
    text = "".join(f"{path}\0{stamp}\n" for path, _, stamp in entries)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def _survey(
    folder: _Folder, job: dict, parts: list[tuple[int, str, list]], retry_errors: bool, engine: tuple
) -> tuple[dict[int, Counter[str]], dict[int, list[str]]]:
    """What OUTPUT holds: the counts of the parts to keep, and the names of this job's files to
    replace (cut short, or of inputs that changed since), by part index.

    Refuses an OUTPUT that holds anything batch did not write, or the parts of another job.
    """
    executor, ahead = engine
    found = folder.entries()
    if folder.local:  # what a killed run left while writing; no run is writing now (the lock)
        for name in [n for n, regular in found.items() if regular and SCRATCH.fullmatch(n)]:
            folder.remove(name)
            del found[name]
    strangers = sorted(n for n, regular in found.items() if not (regular and PART.fullmatch(n)))
    if strangers:
        listed = ", ".join(map(_text, strangers[:3])) + (", ..." if len(strangers) > 3 else "")
        raise DigitsError(
            f"{folder.name} holds files that digits batch did not write ({listed}): "
            "give a new or empty folder, or move them out"
        )
    stale: dict[int, list[str]] = {}
    whole = []
    for name in sorted(found):
        data = folder.read_bytes(name) or b""
        index = int(PART.fullmatch(name)[1])
        if part_name(index, data) == name:
            whole.append((name, data))
        else:  # cut short or changed since it was written: ours by its name, not by its content
            stale.setdefault(index, []).append(name)
    kept: dict[int, Counter[str]] = {}
    for (name, _), record in _guarded(bounded(executor, read_part, whole, ahead)):
        if record is None or record["job"] != job:
            raise DigitsError(
                f"{folder.name} holds the results of another job (other inputs, model or partition "
                "size): give a new folder, or remove this one to start again"
            )
        index = record["index"]
        counts = Counter(record["counts"])
        fresh = index < len(parts) and record["inputs_stamp"] == parts[index][1]
        if fresh and index not in kept and not (retry_errors and counts["errors"]):
            kept[index] = counts
        else:
            stale.setdefault(index, []).append(name)
    return kept, stale


def _score_parts(
    folder: _Folder, todo: list, stale: dict[int, list[str]], total: int, engine: tuple, job: dict
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
        for _, (index, data, worker, part_counts) in _guarded(
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


def _check_complete(folder: _Folder, parts: int) -> None:
    """OUTPUT holds one part per index and nothing else: what another run on an object store
    (which has no lock) would break."""
    indexes = sorted(int(m[1]) for m in map(PART.fullmatch, folder.entries()) if m)
    if indexes != list(range(parts)):
        raise DigitsError(
            f"{folder.name} was changed by another run while this one wrote it: "
            "run the same command again once it has ended"
        )


@contextlib.contextmanager
def _engine(engine: str, workers: int, scheduler: str | None, model: bytes) -> Iterator[tuple[Any, Any, int]]:
    """Yield (a concurrent.futures executor, how tasks get the model, how many parts to keep in flight)."""
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
    timeout = f"{CONNECT_SECONDS}s"
    with dask.config.set({"distributed.comm.timeouts.connect": timeout}):
        client = _within(
            CONNECT_SECONDS + 2, lambda: Client(scheduler, timeout=timeout, set_as_default=False)
        )
    if not isinstance(client, Client):
        reason = first_line(client) if client is not None else f"no answer within {CONNECT_SECONDS} s"
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
