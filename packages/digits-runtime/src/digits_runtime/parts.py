"""A part of `digits batch`'s OUTPUT: one partition's rows as one Parquet file.

This module owns what a part is: its rows (the answers for a partition of images), its Arrow
schema, its name (its index and the first 16 hex digits of its content's sha256) and its
key-value metadata (the job, the part's index, the stamps of its inputs, its counts). It also
holds the two tasks that run on the workers, :func:`score_part` and :func:`read_parts`: a local
process or a Dask worker imports them from here by name, so they stay importable on every
worker with the ``batch`` extra. pyarrow is imported only inside them; the driver never loads it.
"""

import hashlib
import json
import os
import re
import socket
from collections import Counter
from collections.abc import Sequence
from typing import Any

from digits_core.contract import META_FINGERPRINT
from digits_core.errors import DigitsError
from digits_runtime.inputs import Input
from digits_runtime.inputs import opened as opened_sources
from digits_runtime.predictor import BATCH_SIZE, Predictor
from digits_runtime.sources import Source
from digits_runtime.workers import predictor_for

PART = re.compile(r"part-(\d{6})-([0-9a-f]{16})\.parquet")
SCRATCH = re.compile(r"\.part-\d{6}-[0-9a-f]{16}\.parquet\..*\.tmp")  # atomic.write_bytes's scratch
META = "digits."  # the prefix of the key-value metadata every part carries
EXTRA = "pip install 'digits-runtime[batch]'"


def part_name(index: int, data: bytes) -> str:
    """The name of part ``index`` holding ``data``: its index and its content's sha256 (16 hex digits)."""
    return f"part-{index:06d}-{hashlib.sha256(data).hexdigest()[:16]}.parquet"


def score_rows(predictor: Predictor, entries: Sequence[tuple[Source, str | None]]) -> list[dict]:
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


def as_utf8(value: str | None) -> str | None:
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
    rows = score_rows(predictor, [(path, error) for path, error, _ in entries])
    for row in rows:
        row["path"], row["error"] = as_utf8(row["path"]), as_utf8(row["error"])
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


def read_parts(parts: Sequence[tuple[str, bytes]]) -> list[dict | None]:
    """A worker's task: the job and part records of parts written before (each one's name and
    bytes), in order; None for a part that has none."""
    pa, pq = _pyarrow()
    return [_records(pa, pq, data) for _, data in parts]


def _records(pa: Any, pq: Any, data: bytes) -> dict | None:
    """The job and part records of a part's bytes, or None if it has none."""
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
