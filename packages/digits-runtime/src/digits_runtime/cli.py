"""`digits`: classify image files, evaluate the model on curated data, serve it over HTTP."""

import json as jsonlib
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from digits_data import atomic, dataset
from digits_data.checks import check_int
from digits_data.cli_support import main_for
from digits_data.contract import META_FINGERPRINT, SPLITS
from digits_data.errors import DigitsError, UsageError
from digits_data.images import IMAGE_SUFFIXES

DEFAULT_MODEL = "artifacts/model.onnx"
EVAL_SPLITS = (*SPLITS, "test", "other")


def predict(*images: str, model: str = DEFAULT_MODEL, threads: int | None = None) -> None:
    """Classify image files (photos, scans or MNIST-style images) as 0, 5 or 8.

    One image prints {"probs": {"0": p0, "5": p5, "8": p8}, "prediction": d, "accepted": true};
    "accepted" is false when the image does not look like a 0, 5 or 8. Several images, or
    folders (their image files, in sorted order), print one such JSON object per line with its
    "path"; a file that cannot be read gives a line with "path" and "error", the others still run,
    and the exit code is then 1.

    Args:
        images: Image files or folders of image files.
        model: The ONNX model written by `digits-train export`.
        threads: onnxruntime threads (default: one per core).
    """
    if not images:
        raise UsageError(
            "give at least one image file or folder: digits predict --model MODEL IMAGE_OR_DIR ..."
        )
    from digits_runtime.predictor import BATCH_SIZE, Predictor

    check_threads(threads)
    entries = expand(images)
    predictor = Predictor(model, threads=threads)
    if len(images) == 1 and len(entries) == 1 and entries[0][0] == Path(str(images[0])):
        path, error = entries[0]
        if error is not None:
            raise error
        print(jsonlib.dumps(predictor.predict(path).to_json()))
        return
    from tqdm import tqdm  # only here: importing it costs a single-image call a tenth of its time

    failed = 0
    # disable=None: the bar is drawn only when stderr is a terminal.
    with tqdm(total=len(entries), desc="predict", unit="image", disable=None) as bar:
        # Chunks of one onnxruntime batch, so lines appear as they are ready.
        for start in range(0, len(entries), BATCH_SIZE):
            chunk = entries[start : start + BATCH_SIZE]
            answers = iter(predictor.predict_each([path for path, error in chunk if error is None]))
            for path, error in chunk:
                result = error or next(answers)
                if isinstance(result, DigitsError):
                    failed += 1
                    line = {"path": str(path), "error": str(result)}
                else:
                    line = {"path": str(path), **result.to_json()}
                print(jsonlib.dumps(line))
            bar.update(len(chunk))
    if failed:
        raise DigitsError(
            f'{failed} of {len(entries)} images could not be classified (see their "error" lines)'
        )


def check_threads(threads: object) -> None:
    """Refuse a --threads value that is not a whole number of threads onnxruntime can start."""
    from digits_runtime.predictor import MAX_THREADS

    if threads is not None:
        check_int("threads", threads, 1, MAX_THREADS)


def expand(inputs: Sequence[str]) -> list[tuple[Path, DigitsError | None]]:
    """Turn files and folders into the files to classify; folders give their images, sorted.

    Each entry is a path and, for a folder without image files or one that cannot be read, the
    error that is its answer, so that it becomes its own error line while the other inputs are
    still classified.
    """
    entries: list[tuple[Path, DigitsError | None]] = []
    for item in inputs:
        path = Path(str(item))
        try:
            is_dir = path.is_dir()
        except OSError:  # e.g. a name too long: reading it as a file says what is wrong
            is_dir = False
        if not is_dir:
            entries.append((path, None))
            continue
        found = _folder_images(path)
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        empty = DigitsError(f"folder {path} holds no image files ({suffixes})")
        entries.extend(found or [(path, empty)])
    return entries


def _folder_images(folder: Path) -> list[tuple[Path, DigitsError | None]]:
    """The image files under ``folder``, and a folder that cannot be read with its error, sorted by path.

    Folders are walked as ``rglob`` would (symbolic links to folders are not entered), but one
    that cannot be listed is reported rather than skipped without a word.
    """
    entries: list[tuple[Path, DigitsError | None]] = []

    def unreadable(exc: OSError) -> None:
        entries.append(
            (Path(exc.filename), DigitsError(f"folder {exc.filename} cannot be read: {exc.strerror}"))
        )

    for top, _, names in os.walk(folder, onerror=unreadable):
        for name in names:
            file = Path(top) / name
            if file.suffix.lower() in IMAGE_SUFFIXES and file.is_file():
                entries.append((file, None))
    return sorted(entries, key=lambda entry: entry[0])


def evaluate(
    model: str = DEFAULT_MODEL,
    curated_dir: str = "artifacts/curated",
    split: str = "eval",
    json: str | None = None,
    threads: int | None = None,
    data_dir: str | None = None,
) -> None:
    """Report precision, recall, F1, accuracy, the confusion matrix and the share refused on a split.

    On the split "other" (the MNIST test set's digits 1, 2, 3, 4, 6, 7, 9), report only how many
    images the model refuses as not a 0, 5 or 8, per digit.

    Args:
        model: The ONNX model written by `digits-train export`.
        curated_dir: Folder written by `digits-data curate`.
        split: eval, val or train (curated splits), test (the MNIST test set's digits 0/5/8), or
            other (its other digits).
        json: Also write the results, with every prediction, to this JSON file.
        threads: onnxruntime threads (default: one per core).
        data_dir: The MNIST folder, for --split test and other (default: beside the curated folder, or
            artifacts/mnist).
    """
    if split not in EVAL_SPLITS:
        raise UsageError(f"--split must be one of {', '.join(EVAL_SPLITS)}, got {split!r}")
    check_threads(threads)
    if json is not None and (not isinstance(json, str) or not json):
        raise UsageError(f"--json must name a JSON file to write, got {json!r}")
    if json is not None and Path(json).is_dir():
        raise UsageError(f"--json {json} is a folder: give the path of a JSON file to write")
    from digits_runtime.metrics import format_refusal, format_report, refusal_summary, report
    from digits_runtime.predictor import Predictor

    predictor = Predictor(model, threads=threads)
    if split in ("test", "other"):
        data = dataset.load_test_split(curated_dir, data_dir=data_dir, other=split == "other")
    else:
        data = dataset.load_split(curated_dir, split)
    classes = dataset.load_manifest(curated_dir, verify=False)["classes"]
    if sorted(classes) != sorted(predictor.labels):
        raise DigitsError(
            f"{model} has labels {list(predictor.labels)} but {curated_dir} holds the digits {classes}: "
            "the model and the data disagree; evaluate the model on the curated data it was trained on"
        )
    fingerprint = dataset.fingerprint(curated_dir)
    if predictor.metadata.get(META_FINGERPRINT) != fingerprint:
        print(
            f"digits: warning: {model} was trained on other curated data than {curated_dir} "
            "(fingerprints differ); the numbers may not mean what you think",
            file=sys.stderr,
        )
    classified = predictor.classify(data.images)
    rule = None if predictor.refusal is None else asdict(predictor.refusal)
    refusal = refusal_summary(data.labels, classified.accepted, rule, predictor.score_kind)
    if split == "other":  # not 0, 5 or 8: only refusing them is right
        result = {"split": split, "n": len(data), "refusal": refusal}
    else:
        result = {"split": split, **report(data.labels, classified.predicted, predictor.labels)}
        result["refusal"] = refusal
    if json is not None:  # written first: no report is printed when its JSON could not be written
        result |= {
            "model": str(model),
            "fingerprint": fingerprint,
            "predictions": [
                {
                    "index": int(i),
                    "label": int(t),
                    "prediction": int(p),
                    "probs": [round(float(x), 6) for x in row],
                    "score": float(s),  # unrounded: the trade-off curve is drawn from these
                    "accepted": bool(a),
                }
                for i, t, p, row, s, a in zip(
                    data.indices,
                    data.labels,
                    classified.predicted,
                    classified.probabilities,
                    classified.scores,
                    classified.accepted,
                    strict=True,
                )
            ],
        }
        atomic.write_text(json, jsonlib.dumps(result, indent=1) + "\n")
    print(f"{model} on the {split} split of {curated_dir} ({result['n']} images)\n")
    if split != "other":
        print(format_report(result) + "\n")
    print(format_refusal(refusal))


def serve(model: str = DEFAULT_MODEL, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Serve the model over HTTP: POST /predict, a drawing page at /, GET /health and GET /model.

    Needs the `serve` extra (pip install 'digits-runtime[serve]'). Stops on Ctrl-C.

    Args:
        model: The ONNX model written by `digits-train export`; checked before the port is bound.
        host: Address to listen on; the default answers this machine only.
        port: TCP port (0: any free port, printed at start).
        workers: Processes, each with the model loaded once (at most one per core).
    """
    port = check_int("port", port, 0, 65535)
    workers = check_int("workers", workers, 1, os.cpu_count() or 1)
    if not isinstance(host, str) or not host:
        raise UsageError(f"--host must be an address such as 127.0.0.1, got {host!r}")
    try:
        from digits_runtime.serve import run
    except ImportError as exc:
        raise DigitsError(
            f"digits serve needs the serve extra ({exc}): pip install 'digits-runtime[serve]'"
        ) from None
    run(model, host, port, workers)


COMMANDS = {"predict": predict, "evaluate": evaluate, "serve": serve}
main = main_for(COMMANDS, "digits")
