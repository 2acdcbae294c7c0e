"""What a `digits batch` job is, and which of its parts OUTPUT already holds.

This module owns the job's identity and the rules for carrying it on. A job is its inputs (their
number and the sha256 of their paths), its model (its sha256) and its partition size; each part
is stamped with the sha256 of its inputs' paths, sizes and modification times. A part already in
OUTPUT is kept when it is whole (its content matches its name), of this job, and its inputs have
not changed since; the others are replaced. An OUTPUT holding anything else is refused.
"""

import hashlib
from collections import Counter
from collections.abc import Sequence

from digits_core.errors import DigitsError
from digits_runtime.engines import guarded
from digits_runtime.inputs import Input
from digits_runtime.output import OutputFolder
from digits_runtime.parts import PART, SCRATCH, as_utf8, part_name, read_parts
from digits_runtime.predictor import BATCH_SIZE
from digits_runtime.workers import bounded

MAX_PARTITION = 4 * BATCH_SIZE  # images per part; see default_partition_size
MIN_PARTS = 8  # cut small jobs finer, so that every worker gets some of them
READ_PER_TASK = 64  # parts whose records one task reads back; see survey


def identity(source: str, entries: Sequence[Input], model: bytes, size: int) -> dict:
    """The job: what every part carries in its metadata, and what a run must match to carry it on."""
    paths = "\n".join(path for path, _, _ in entries).encode("utf-8", "surrogateescape")
    return {
        "source": as_utf8(source),
        "inputs": len(entries),
        "inputs_sha256": hashlib.sha256(paths).hexdigest(),
        "model_sha256": hashlib.sha256(model).hexdigest(),
        "partition_size": size,
    }


def partitions(entries: list[Input], size: int) -> list[tuple[int, str, list[Input]]]:
    """The job's parts: each one's index, the stamp of its inputs, and its inputs."""
    return [
        (i // size, _stamp(entries[i : i + size]), entries[i : i + size])
        for i in range(0, len(entries), size)
    ]


def default_partition_size(inputs: int) -> int:
    """Images per part: whole onnxruntime batches, at most MAX_PARTITION, at least MIN_PARTS parts if it can.

    Measured (benchmarks/bench_batch.py): per-part overhead is a few ms on Dask, so 1024 costs
    nothing next to the ~0.3 s its PNGs take; finer parts let a few large photos spread over
    every worker instead of waiting for one.
    """
    batches = max(1, min(MAX_PARTITION // BATCH_SIZE, inputs // (MIN_PARTS * BATCH_SIZE)))
    return batches * BATCH_SIZE


def _stamp(entries: Sequence[Input]) -> str:
    """The sha256 of a part's inputs: their paths and stamps (size and modification time)."""
    text = "".join(f"{path}\0{stamp}\n" for path, _, stamp in entries)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def survey(
    folder: OutputFolder, job: dict, parts: list[tuple[int, str, list]], retry_errors: bool, engine: tuple
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
        listed = ", ".join(map(as_utf8, strangers[:3])) + (", ..." if len(strangers) > 3 else "")
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
    # Reading a part's records takes a millisecond, starting a local worker process a few
    # hundred: a task per part would start a process per core only to read a complete job back.
    # Many parts per task, so that many parts are read in parallel and a few in one process.
    tasks = [whole[start : start + READ_PER_TASK] for start in range(0, len(whole), READ_PER_TASK)]
    read = (
        (name, record)
        for task, records in guarded(bounded(executor, read_parts, tasks, ahead))
        for (name, _), record in zip(task, records, strict=True)
    )
    for name, record in read:
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


def check_complete(folder: OutputFolder, parts: int) -> None:
    """OUTPUT holds one part per index and nothing else: what another run on an object store
    (which has no lock) would break."""
    indexes = sorted(int(m[1]) for m in map(PART.fullmatch, folder.entries()) if m)
    if indexes != list(range(parts)):
        raise DigitsError(
            f"{folder.name} was changed by another run while this one wrote it: "
            "run the same command again once it has ended"
        )
