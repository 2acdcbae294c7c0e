"""Model quality as a distribution: train, export and evaluate one model per seed.

For each seed the real pipeline runs with the defaults (`digits_train.fit`, `export`, then the
torch-free `Predictor`). "val NLL" is the mean negative log-likelihood of the true digit on the
validation split; "eval acc'd" is the share of eval digits the model's refusal rule accepts,
"other ref'd" the share of the MNIST test set's other digits (1, 2, 3, 4, 6, 7, 9) it refuses,
"oval ref'd" the share of other_val (validation outliers) it refused at export, "lval ref'd" the
share of letters and other digits in handwriting fonts training never sees refused
(digits_train.typeset.validation_characters); "hw acc" is the
accuracy on the generated handwriting's 0/5/8 and "hw ref'd" the share of its other digits and
letters refused (`make handwriting`, scored as `digits evaluate --split handwriting` does), "hw
unlike" that share without the letters written like 0, 5 or 8 (O, S, B); "deg mean",
"deg min" and "deg a&w" are the degradation suite's (`make suite`, scored as `digits robustness`
does) mean and worst family accuracy on its MNIST test images and its largest share accepted and
wrong in any family, "clean acc'd" the share of its clean MNIST test images accepted, "type acc"
the accuracy on digits in typefaces training never saw, and "dval a&w" the share of degraded
validation digits accepted with a wrong digit (what export chooses the refusal score on). One row
per seed, then min / mean / max of each column; the rows and the summary are also written as
JSON. Validation columns are what a choice may be based on; the eval split, the MNIST test
digits, the generated handwriting and the suite are only reported.

    .venv/bin/python benchmarks/seeds.py [--seeds 1 2 3 4 5] [--json artifacts/seeds.json]
    .venv/bin/python benchmarks/seeds.py --set selection=best --set schedule=plateau   # a variant
    .venv/bin/python benchmarks/seeds.py --threads 1 ...   # two sweeps side by side on 2 cores
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
        .venv/bin/python benchmarks/seeds.py ...   # the weights an AVX2 CPU gives, on an AVX-512 one

`--set FIELD=VALUE` changes a `FitConfig` field (VALUE is read as JSON, else as a string), to
compare recipes on validation data over the same seeds.
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from digits_core import atomic, contract, layout
from digits_data import dataset, parallel, suite
from digits_runtime import Predictor, robustness
from digits_runtime.handwriting import evaluate as evaluate_handwriting
from digits_runtime.metrics import report
from digits_train import typeset
from digits_train.config import FitConfig
from digits_train.export import export
from digits_train.fit import fit

COLUMNS = {  # column -> (header, format)
    "val_errors": ("val err", "{:>8d}"),
    "val_nll": ("val NLL", "{:>8.4f}"),
    "val_macro_f1": ("val F1", "{:>8.4f}"),
    "eval_macro_f1": ("eval F1", "{:>8.4f}"),
    "eval_accuracy": ("eval acc", "{:>9.4f}"),
    "eval_recall_5": ("eval R5", "{:>8.4f}"),
    "test_accuracy": ("test acc", "{:>9.4f}"),
    "test_recall_5": ("test R5", "{:>8.4f}"),
    "other_val_refused": ("oval ref'd", "{:>11.4f}"),
    "eval_accepted": ("eval acc'd", "{:>11.4f}"),
    "other_refused": ("other ref'd", "{:>12.4f}"),
    "letters_val_refused": ("lval ref'd", "{:>11.4f}"),
    "handwriting_accuracy": ("hw acc", "{:>7.4f}"),
    "handwriting_refused": ("hw ref'd", "{:>9.4f}"),
    "handwriting_unlike_refused": ("hw unlike", "{:>10.4f}"),
    "degraded_val_accepted_wrong": ("dval a&w", "{:>9.4f}"),
    "suite_mean_accuracy": ("deg mean", "{:>9.4f}"),
    "suite_min_accuracy": ("deg min", "{:>8.4f}"),
    "suite_max_accepted_wrong": ("deg a&w", "{:>8.4f}"),
    "suite_clean_accepted": ("clean acc'd", "{:>12.4f}"),
    "typeface_accuracy": ("type acc", "{:>9.4f}"),
    "fit_seconds": ("fit s", "{:>7.1f}"),
}


def parse_override(text: str) -> tuple[str, object]:
    """``FIELD=VALUE`` -> (field, value), VALUE parsed as JSON when it can be."""
    field, _, raw = text.partition("=")
    try:
        return field, json.loads(raw)
    except json.JSONDecodeError:
        return field, raw


def score(predictor: Predictor, split: dataset.Split) -> dict:
    """Metrics of the predictor's argmax on one split, the share its refusal rule accepts, and the
    mean negative log-likelihood of the true digits (finer than a count of errors)."""
    result = predictor.classify(split.images)
    true = result.probabilities[np.arange(len(split)), [predictor.labels.index(d) for d in split.labels]]
    return report(split.labels, result.predicted, predictor.labels) | {
        "accepted": float(result.accepted.mean()),
        "nll": float(-np.log(np.maximum(true, 1e-12)).mean()),
    }


def throughput(predictor: Predictor, images: np.ndarray, seconds: float = 2.0) -> float:
    """Images per second through ``Predictor.probabilities`` at batch 256."""
    batch = images[:256]
    predictor.probabilities(batch)
    rounds, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        predictor.probabilities(batch)
        rounds += 1
    return rounds * len(batch) / (time.perf_counter() - start)


def load_splits(curated_dir: str) -> tuple[dict[str, dataset.Split], dataset.Split]:
    """The splits a seed is scored on (val, eval, MNIST test 0/5/8) and the MNIST test's other digits."""
    splits = {
        "val": dataset.load_split(curated_dir, "val"),
        "eval": dataset.load_split(curated_dir, "eval"),
        "test": dataset.load_test_split(curated_dir),
    }
    return splits, dataset.load_test_split(curated_dir, other=True)


def run_seed(
    curated_dir: str,
    seed: int,
    overrides: dict,
    splits: dict,
    others: dataset.Split,
    letters: np.ndarray,
    handwriting_dir: str,
    degraded: tuple,
    keep_dir: str | None = None,
    threads: int | None = None,
) -> dict:
    """Fit, export and evaluate one seed; return its row. ``keep_dir`` keeps seed-S.onnx there;
    ``threads`` is torch's threads for training (default one per core)."""
    config = FitConfig(**{**overrides, "seed": seed})
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "fit"  # a folder inside: fit's lock file goes beside it, and with it
        summary = fit(curated_dir, out, config, threads)
        model = Path(keep_dir or scratch) / f"seed-{seed}.onnx"
        export(out / "best.ckpt", model)
        predictor = Predictor(model)
        scores = {name: score(predictor, split) for name, split in splits.items()}
        other_accepted = float(predictor.classify(others.images).accepted.mean())
        letters_accepted = float(predictor.classify(letters).accepted.mean())
        recorded = json.loads(predictor.metadata[contract.META_VAL_METRICS])
        rate = throughput(predictor, splits["eval"].images)
        generated = evaluate_handwriting(predictor, handwriting_dir)
        measured = robustness.evaluate(predictor, *degraded)["sources"]
    tested = measured["mnist-test"]["summary"]
    return {
        "seed": seed,
        "val_errors": scores["val"]["n"] - int(np.trace(scores["val"]["confusion_matrix"])),
        "val_nll": scores["val"]["nll"],
        "val_macro_f1": scores["val"]["macro_f1"],
        "eval_macro_f1": scores["eval"]["macro_f1"],
        "eval_accuracy": scores["eval"]["accuracy"],
        "eval_recall_5": scores["eval"]["per_class"]["5"]["recall"],
        "test_accuracy": scores["test"]["accuracy"],
        "test_recall_5": scores["test"]["per_class"]["5"]["recall"],
        "other_val_refused": recorded[f"other_val_refused_{predictor.score_kind}"],
        "eval_accepted": scores["eval"]["accepted"],
        "other_refused": 1 - other_accepted,
        "letters_val_refused": 1 - letters_accepted,
        "handwriting_accuracy": generated["known"]["accuracy"],
        "handwriting_refused": generated["refusal"]["others_refused"],
        "handwriting_unlike_refused": generated["refusal"]["unlike_digits_refused"],
        "degraded_val_accepted_wrong": recorded[f"degraded_val_accepted_wrong_{predictor.score_kind}"],
        "suite_mean_accuracy": tested["mean_accuracy"],
        "suite_min_accuracy": tested["min_accuracy"],
        "suite_max_accepted_wrong": tested["max_accepted_wrong"],
        "suite_clean_accepted": tested["clean_accepted"],
        "typeface_accuracy": measured["typeface"]["families"]["clean"]["accuracy"],
        "suite": measured,
        "fit_seconds": summary["wall_time_seconds"],
        "images_per_second": rate,
        "kept_epoch": summary["best_epoch"],
        "confusion": {name: s["confusion_matrix"] for name, s in scores.items()},
    }


def summarize(rows: list[dict]) -> dict:
    """min / mean / max of every column over the rows."""
    return {
        column: {
            "min": min(r[column] for r in rows),
            "mean": statistics.fmean(r[column] for r in rows),
            "max": max(r[column] for r in rows),
        }
        for column in COLUMNS
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curated-dir", default="artifacts/curated")
    parser.add_argument("--handwriting-dir", default="artifacts/handwriting", help="`make handwriting`")
    parser.add_argument("--suite-dir", default=layout.SUITE_DIR, help="`make suite`")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", type=parse_override)
    parser.add_argument("--json", default="artifacts/seeds.json", help="where to write the rows and summary")
    parser.add_argument("--keep-dir", help="keep each seed's model here as seed-S.onnx")
    parser.add_argument(
        "--threads", type=int, help="torch threads for training (default one per core; weights depend on it)"
    )
    args = parser.parse_args()
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    overrides = dict(args.set)
    config = FitConfig(**overrides)  # fail before any training on a bad override
    splits, others = load_splits(args.curated_dir)
    manifest, arrays = suite.load(args.suite_dir)
    degraded = (manifest, arrays, *suite.preprocess(arrays["images"], parallel.cores()))
    letters = np.round(typeset.validation_characters() * 255).astype(np.uint8)
    # The vector kernels decide the weights as much as the seed does: say which ones trained these.
    kernels = torch.backends.cpu.get_cpu_capability()
    print(f"CPU kernels: {kernels}")
    print(f"{'seed':>6}" + "".join(f"{header:>{len(fmt.format(0))}}" for header, fmt in COLUMNS.values()))
    rows = []
    for seed in args.seeds:
        row = run_seed(
            args.curated_dir,
            seed,
            overrides,
            splits,
            others,
            letters,
            args.handwriting_dir,
            degraded,
            args.keep_dir,
            args.threads,
        )
        rows.append(row)
        cells = "".join(fmt.format(row[column]) for column, (_, fmt) in COLUMNS.items())
        print(f"{seed:>6}{cells}", flush=True)
    summary = summarize(rows)
    for stat in ("min", "mean", "max"):
        cells = "".join(
            fmt.replace("d}", ".1f}").format(summary[column][stat]) for column, (_, fmt) in COLUMNS.items()
        )
        print(f"{stat:>6}{cells}")
    result = {
        "config": {**config.to_dict(), "seed": args.seeds},
        "cpu_kernels": kernels,
        "rows": rows,
        "summary": summary,
    }
    atomic.write_text(args.json, json.dumps(result, indent=1) + "\n")
    print(f"written to {args.json}")


if __name__ == "__main__":
    main()
