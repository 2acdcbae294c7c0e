"""Runtime numbers, each compared within this one run:

- `digits predict` on one image and `digits evaluate` on the eval split, whole processes, against
  the floor `python -c "import onnxruntime"` (medians of several runs), with the model's refusal
  rule applied (the script says which rule, or that the model has none);
- Predictor throughput at batch 256 on 2 threads;
- agreement of predictions on the eval split saved as PNG files with predictions on its arrays;
- `digits evaluate --split val` against the validation metrics recorded in the model at export.

    .venv/bin/python benchmarks/bench_runtime.py [--model MODEL] [--curated-dir CURATED]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from digits_core import contract
from digits_data import dataset
from digits_runtime import Predictor

BIN = Path(sys.executable).parent
RUNS = 7


def wall(command: list[str]) -> float:
    """Median wall time of a command over RUNS runs (after one warm-up run)."""
    subprocess.run(command, check=True, capture_output=True)
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description="runtime benchmarks")
    parser.add_argument("--model", default="artifacts/model.onnx")
    parser.add_argument("--curated-dir", default="artifacts/curated")
    args = parser.parse_args()
    split = dataset.load_split(args.curated_dir, "eval")
    predictor = Predictor(args.model, threads=2)
    rule = predictor.refusal
    print(
        f"refusal rule: {rule.condition()}, chosen to accept {rule.known_accept_rate:.2%}"
        if rule
        else "refusal rule: NONE, the model accepts every image"
    )

    with tempfile.TemporaryDirectory() as tmp:
        sample = Path(tmp) / "sample.png"
        Image.fromarray(split.images[0]).save(sample)
        floor = wall([sys.executable, "-c", "import onnxruntime"])
        predict = wall([str(BIN / "digits"), "predict", "--model", args.model, str(sample)])
        evaluate = wall(
            [str(BIN / "digits"), "evaluate", "--model", args.model, "--curated-dir", args.curated_dir]
        )
    print(f"floor: python -c 'import onnxruntime'       {floor * 1000:6.0f} ms")
    for label, seconds, target in (
        ("digits predict, one image", predict, 2),
        ("digits evaluate, eval split", evaluate, 3),
    ):
        print(
            f"{label + ' (whole process)':43}{seconds * 1000:6.0f} ms"
            f"  ratio {seconds / floor:.2f} (<= {target})"
        )

    batch = split.images[:256]
    predictor.classify(batch)
    rounds, start = 0, time.perf_counter()
    while time.perf_counter() - start < 3.0:
        predictor.classify(batch)  # probabilities, scores and the refusal decision
        rounds += 1
    rate = rounds * len(batch) / (time.perf_counter() - start)
    print(f"Predictor.classify throughput, batch 256, 2 threads: {rate:,.0f} images/s (>= 30,000)")

    from_arrays = np.asarray(predictor.labels)[predictor.probabilities(split.images).argmax(1)]
    # As saved (already in MNIST form), and as a "scan": 4x larger, dark ink on light paper, JPEG,
    # which takes the whole preprocessing path (inversion, crop, fit, centering).
    variants = {
        "as PNG files": lambda image: Image.fromarray(image),
        "as 112x112 dark-on-light JPEG files": lambda image: Image.fromarray(255 - image).resize(
            (112, 112), Image.Resampling.BICUBIC
        ),
    }
    for label, make in variants.items():
        with tempfile.TemporaryDirectory() as tmp:
            suffix = ".png" if "PNG" in label else ".jpg"
            paths = [Path(tmp) / f"{i:04d}{suffix}" for i in range(len(split))]
            for path, image in zip(paths, split.images, strict=True):
                make(image).save(path)
            from_files = np.asarray([p.prediction for p in predictor.predict_many(paths)])
        agree = float(np.mean(from_files == from_arrays))
        print(f"eval split {label} vs arrays: {agree:.2%} of {len(split)} predictions agree")

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "val.json"
        subprocess.run(
            [
                str(BIN / "digits"),
                "evaluate",
                "--model",
                args.model,
                "--curated-dir",
                args.curated_dir,
                "--split",
                "val",
                "--json",
                str(out),
            ],
            check=True,
            capture_output=True,
        )
        measured = json.loads(out.read_text())
    recorded = json.loads(predictor.metadata[contract.META_VAL_METRICS])
    same = (
        round(measured["macro_f1"], 6) == recorded["val_macro_f1"]
        and round(measured["accuracy"], 6) == recorded["val_accuracy"]
    )
    print(
        f"val split: evaluate macro-F1 {measured['macro_f1']:.6f}, accuracy {measured['accuracy']:.6f}; "
        f"recorded at export {recorded['val_macro_f1']:.6f}, {recorded['val_accuracy']:.6f}: "
        f"{'identical' if same else 'DIFFERENT'}"
    )


if __name__ == "__main__":
    main()
