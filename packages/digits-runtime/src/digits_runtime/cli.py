"""`digits`: classify image files, evaluate the model on curated data, serve it over HTTP."""

import io
import json as jsonlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from digits_core import atomic, layout
from digits_core.checks import check_float, check_int
from digits_core.cli_support import main_for
from digits_core.contract import SPLITS
from digits_core.errors import DigitsError, UsageError
from digits_runtime.inputs import expand

EVAL_SPLITS = (*SPLITS, "test", "other", "handwriting")


def predict(*images: str, model: str = layout.MODEL, threads: int | None = None, workers: int = 1) -> None:
    """Classify image files (photos, scans or MNIST-style images) as 0, 5 or 8.

    One image prints {"probs": {"0": p0, "5": p5, "8": p8}, "prediction": d, "accepted": true,
    "score": s}; "accepted" is false when the image does not look like a 0, 5 or 8 (its refusal
    "score" is below the model's threshold) or looks as much like one of them as another (its top
    probability is below the rule's floor). Several images, or folders (their image files, in
    sorted order), print one such JSON object per line with its "path"; a file that cannot be
    read gives a line with "path" and "error", the others still run, and the exit code is then 1.
    - reads one image file from standard input (cat scan.png | digits predict -).

    Args:
        images: Image files or folders of image files; - for standard input.
        model: The ONNX model written by `digits-train export`.
        threads: onnxruntime threads (default: one per core; one per process with --workers).
        workers: Processes that classify (at most one per core): same lines, same order, same answers.
    """
    if not images:
        raise UsageError(
            "give at least one image file or folder: digits predict --model MODEL IMAGE_OR_DIR ..."
        )
    from digits_runtime.predictor import BATCH_SIZE, Predictor

    check_threads(threads)
    workers = check_int("workers", workers, 1, os.cpu_count() or 1)
    entries = _entries(images)
    predictor = Predictor(model, threads=threads)
    if len(images) == 1 and len(entries) == 1 and (images[0] == STDIN or entries[0][0] == Path(images[0])):
        source, error = entries[0]
        if error is not None:
            raise error
        print(jsonlib.dumps(predictor.predict(source).to_json()))
        return
    from tqdm import tqdm  # only here: importing it costs a single-image call a tenth of its time

    failed = 0
    # Chunks of one onnxruntime batch, so lines appear as they are ready.
    chunks = [entries[start : start + BATCH_SIZE] for start in range(0, len(entries), BATCH_SIZE)]
    # disable=None: the bar is drawn only when stderr is a terminal.
    with tqdm(total=len(entries), desc="predict", unit="image", disable=None) as bar:
        for chunk, answers in zip(chunks, _answers(predictor, chunks, workers, threads), strict=True):
            answers = iter(answers)
            for source, error in chunk:
                result = error or next(answers)
                if isinstance(result, DigitsError):
                    failed += 1
                    line = {"path": _label(source), "error": str(result)}
                else:
                    line = {"path": _label(source), **result.to_json()}
                print(jsonlib.dumps(line))
            bar.update(len(chunk))
    if failed:
        raise DigitsError(
            f'{failed} of {len(entries)} images could not be classified (see their "error" lines)'
        )


STDIN = "-"


def _entries(images: tuple[str, ...]) -> list[tuple[Path | io.BytesIO, DigitsError | None]]:
    """The files to classify (folders expanded) and their listing errors; - as standard input's bytes."""
    if images.count(STDIN) > 1:
        raise UsageError("- (standard input) can be given once: it holds one image file")
    entries = []
    for image in images:
        if not image.strip():  # "" would be read as the current folder
            raise UsageError(f"an image name is blank ({image!r}): give image files or folders")
        entries.extend([(_stdin(), None)] if image == STDIN else expand([image]))
    return entries


def _stdin() -> io.BytesIO:
    """Standard input's bytes, read whole: one image file."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        raise UsageError("- reads an image from standard input, but it is closed: pipe an image file into it")
    if stream.isatty():
        raise UsageError(
            "- reads an image from standard input, which is a terminal: "
            "pipe or redirect an image file, e.g. digits predict - < scan.png"
        )
    data = io.BytesIO(stream.read())
    data.name = "standard input"  # named so in error messages
    return data


def _label(source: Path | io.BytesIO) -> str:
    """An entry as its line's "path": the path as found, or - for standard input."""
    return STDIN if isinstance(source, io.BytesIO) else str(source)


def _answers(predictor, chunks, workers: int, threads: int | None) -> Iterator[list]:
    """The answers for each chunk's readable paths, chunk after chunk, here or in ``workers`` processes."""
    paths = ([source for source, error in chunk if error is None] for chunk in chunks)
    if workers == 1:
        yield from map(predictor.predict_each, paths)
        return
    from digits_runtime.workers import in_order, predict_chunk, process_pool

    with process_pool(workers) as pool:
        yield from in_order(pool, predict_chunk, paths, 2 * workers, str(predictor.path), threads or 1)


def check_threads(threads: object) -> None:
    """Refuse a --threads value that is not a whole number of threads onnxruntime can start."""
    from digits_runtime.predictor import MAX_THREADS

    if threads is not None:
        check_int("threads", threads, 1, MAX_THREADS)


def evaluate(
    model: str = layout.MODEL,
    curated_dir: str = layout.CURATED_DIR,
    split: str = "eval",
    json: str | None = None,
    threads: int | None = None,
    data_dir: str | None = None,
    handwriting_dir: str = layout.HANDWRITING_DIR,
) -> None:
    """Report precision, recall, F1, accuracy, the confusion matrix and the share refused on a split.

    On the split "other" (the MNIST test set's digits 1, 2, 3, 4, 6, 7, 9), report only how many
    images the model refuses as not a 0, 5 or 8, per digit. On the split "handwriting" (the set
    `digits-data handwriting` generates), report accuracy per style and what is refused. Needs the
    evaluate extra (pip install 'digits-runtime[evaluate]').

    Args:
        model: The ONNX model written by `digits-train export`.
        curated_dir: Folder written by `digits-data curate`.
        split: eval, val or train (curated splits), test (the MNIST test set's digits 0/5/8),
            other (its other digits), or handwriting (the generated handwriting set).
        json: Also write the results, with every prediction, to this JSON file.
        threads: onnxruntime threads (default: one per core).
        data_dir: The MNIST folder, for --split test and other (default: beside the curated folder, or
            artifacts/mnist).
        handwriting_dir: Folder written by `digits-data handwriting`, for --split handwriting.
    """
    if split not in EVAL_SPLITS:
        raise UsageError(f"--split must be one of {', '.join(EVAL_SPLITS)}, got {split!r}")
    check_threads(threads)
    if json is not None and (not isinstance(json, str) or not json.strip()):
        raise UsageError(f"--json must name a JSON file to write, got {json!r}")
    if json is not None and Path(json).is_dir():
        raise UsageError(f"--json {json} is a folder: give the path of a JSON file to write")
    from digits_runtime.metrics import format_refusal, format_report
    from digits_runtime.predictor import Predictor

    try:
        from digits_runtime import evaluation, handwriting
    except ImportError as exc:
        raise DigitsError(
            f"digits evaluate needs the evaluate extra ({exc}): pip install 'digits-runtime[evaluate]'"
        ) from None
    predictor = Predictor(model, threads=threads)
    if split == "handwriting":
        result = handwriting.evaluate(predictor, handwriting_dir)
        if json is not None:
            atomic.write_text(json, jsonlib.dumps(result, indent=1) + "\n")
        print(handwriting.format_table(result))
        if json is not None:
            print(f"written to {json}")
        return
    result = evaluation.evaluate_split(
        predictor, model, curated_dir, split, data_dir=data_dir, with_predictions=json is not None
    )
    if json is not None:  # written first: no report is printed when its JSON could not be written
        atomic.write_text(json, jsonlib.dumps(result, indent=1) + "\n")
    print(f"{model} on the {split} split of {curated_dir} ({result['n']} images)\n")
    if split != "other":
        print(format_report(result) + "\n")
    print(format_refusal(result["refusal"]))


def robustness(
    model: str = layout.MODEL,
    suite_dir: str = layout.SUITE_DIR,
    json: str | None = None,
    workers: int | None = None,
) -> None:
    """Report accuracy, the share accepted and the share accepted and wrong on degraded digits.

    Every image of the degradation suite (`digits-data degrade`: MNIST test and generated
    handwriting 0/5/8, each degraded by every family) goes through the same preprocessing as an
    image file, then the model and its refusal rule. One block per source, one row per family.

    Needs the evaluate extra (pip install 'digits-runtime[evaluate]').

    Args:
        model: The ONNX model written by `digits-train export`.
        suite_dir: Folder written by `digits-data degrade`.
        json: Also write the results to this JSON file.
        workers: Processes that preprocess the images (default: one per core).
    """
    if json is not None and (not isinstance(json, str) or not json.strip()):
        raise UsageError(f"--json must name a JSON file to write, got {json!r}")
    if json is not None and Path(json).is_dir():
        raise UsageError(f"--json {json} is a folder: give the path of a JSON file to write")
    workers = check_int(
        "workers", os.cpu_count() or 1 if workers is None else workers, 1, os.cpu_count() or 1
    )
    from digits_runtime import robustness as measure
    from digits_runtime.predictor import Predictor

    try:
        from digits_data import suite
    except ImportError as exc:
        raise DigitsError(
            f"digits robustness needs the evaluate extra ({exc}): pip install 'digits-runtime[evaluate]'"
        ) from None

    predictor = Predictor(model)
    manifest, arrays = suite.load(suite_dir)
    pixels, readable = suite.preprocess(arrays["images"], workers)
    result = measure.evaluate(predictor, manifest, arrays, pixels, readable)
    if json is not None:
        result |= {"model": str(model), "suite_sha256": manifest["sha256"][suite.SUITE_FILE]}
        atomic.write_text(json, jsonlib.dumps(result, indent=1) + "\n")
    print(f"{model} on the degradation suite in {suite_dir} ({len(arrays['labels'])} images)\n")
    print(measure.table(result))


def serve(
    model: str = layout.MODEL,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    access_log: str = "on",
    cors_origin: str | None = None,
) -> None:
    """Serve the model over HTTP: POST /predict, a drawing page at /, the API described at /docs.

    Also GET /healthz, /readyz, /model, /metrics (Prometheus) and /openapi.json. Needs the `serve`
    extra, the package digits-serve (pip install 'digits-runtime[serve]'). Ctrl-C (exit 130) or
    SIGTERM (exit 0) stops it once the requests in flight are answered; a second one stops it at once.

    Args:
        model: The ONNX model written by `digits-train export`; checked before the port is bound.
        host: Address to listen on; the default answers this machine only.
        port: TCP port (0: any free port, printed at start).
        workers: Processes, each with the model loaded once (at most one per core).
        access_log: on (one line per request on standard output) or off.
        cors_origin: Origins whose pages may call the API from a browser, comma-separated, or * for any.
    """
    port = check_int("port", port, 0, 65535)
    workers = check_int("workers", workers, 1, os.cpu_count() or 1)
    if not isinstance(host, str) or not host.strip():
        raise UsageError(f"--host must be an address such as 127.0.0.1, got {host!r}")
    if str(access_log).lower() not in ("on", "off", "true", "false"):
        raise UsageError(f"--access-log must be on or off, got {access_log!r}")
    origins = cors_origins(cors_origin)
    try:
        from digits_serve import run  # digits-serve stands on this package: imported here, never above
    except ImportError as exc:
        raise DigitsError(
            f"digits serve needs the serve extra ({exc}): pip install 'digits-runtime[serve]'"
        ) from None
    run(model, host, port, workers, str(access_log).lower() in ("on", "true"), origins)


def cors_origins(value: object) -> list[str]:
    """The origins given to --cors-origin (comma-separated, or a list), each checked."""
    if value is None:
        return []
    given = value if isinstance(value, list | tuple) else str(value).split(",")
    origins = [str(origin).strip().rstrip("/") for origin in given if str(origin).strip()]
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise UsageError(
                f"--cors-origin takes origins such as https://app.example.com (or *), got {origin!r}"
            )
    return origins


def batch(
    input: str,
    output: str,
    model: str = layout.MODEL,
    engine: str = "local",
    workers: int | None = None,
    scheduler: str | None = None,
    partition_size: int | None = None,
    retry_errors: bool = False,
    connect_timeout: float | None = None,
) -> None:
    """Score every image under INPUT into OUTPUT, a folder of Parquet files, then print its summary.

    One row per input: path, prediction, prob_<digit> for each digit, accepted, the refusal
    score, and error (null unless the file could not be read: the job goes on). The answers are
    those of `digits predict`, bit for bit. OUTPUT holds only Parquet files, each carrying the
    model's sha256, labels and data fingerprint in its metadata. A job that was stopped carries
    on when run again with the same OUTPUT, scoring again the files that changed since; the
    summary (counts, engine, workers, seconds, images/s) is printed at the end. Needs the batch extra
    (pip install 'digits-runtime[batch]').

    Args:
        input: A folder (its images, as `digits predict` finds them), a glob, or a URI (s3://bucket/scans/).
        output: The folder to write the Parquet files in (a path or a URI).
        model: The ONNX model written by `digits-train export`.
        engine: local (processes on this machine) or dask (a Dask cluster).
        workers: Processes on this machine, for --engine local (default: one per core).
        scheduler: The Dask scheduler, tcp://HOST:PORT (default: $DASK_SCHEDULER_ADDRESS).
        partition_size: Images per Parquet part, a multiple of 256 (default: up to 1024).
        retry_errors: Score again the parts that hold error rows (files unreadable last time).
        connect_timeout: Seconds to wait for the Dask scheduler to answer, for --engine dask (default: 5).
    """
    from digits_runtime.predictor import BATCH_SIZE

    if engine not in ("local", "dask"):
        raise UsageError(f"--engine must be local or dask, got {engine!r}")
    for name, value in (("input", input), ("output", output)):
        if not isinstance(value, str) or not value.strip():
            raise UsageError(
                f"give {name.upper()} as a folder, glob or URI, got {value!r}: digits batch INPUT OUTPUT"
            )
    if partition_size is not None:
        check_int("partition_size", partition_size, BATCH_SIZE, 1 << 20)
        if partition_size % BATCH_SIZE:
            raise UsageError(f"--partition-size must be a multiple of {BATCH_SIZE}, got {partition_size}")
    if engine == "local":
        for name, value in (("scheduler", scheduler), ("connect_timeout", connect_timeout)):
            if value is not None:
                raise UsageError(f"--{name.replace('_', '-')} is for --engine dask")
        workers = check_int(
            "workers", (os.cpu_count() or 1) if workers is None else workers, 1, os.cpu_count() or 1
        )
    else:
        if workers is not None:
            raise UsageError("--workers is for --engine local: a Dask cluster has the workers it was given")
        if connect_timeout is not None:
            connect_timeout = check_float("connect_timeout", connect_timeout, 0.0, 3600.0)
        scheduler = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
        if not scheduler or not isinstance(scheduler, str):
            raise UsageError("--engine dask needs --scheduler tcp://HOST:PORT (or DASK_SCHEDULER_ADDRESS)")
    from digits_runtime.batch import run  # pyarrow, fsspec and Dask only where they are used

    # Dask's own warnings (an event loop slow to answer on a busy machine, ...) are not the
    # command's output; its errors still show, and a failed job is one line of ours.
    logging.getLogger("distributed").setLevel(logging.ERROR)

    summary = run(
        input,
        output,
        model,
        engine=engine,
        workers=workers,
        scheduler=scheduler,
        partition_size=partition_size,
        retry_errors=bool(retry_errors),
        connect_timeout=connect_timeout,
    )
    print(jsonlib.dumps(summary))


COMMANDS = {
    "predict": predict,
    "evaluate": evaluate,
    "robustness": robustness,
    "serve": serve,
    "batch": batch,
}
main = main_for(COMMANDS, "digits")
