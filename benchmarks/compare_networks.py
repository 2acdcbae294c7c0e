"""Compare the candidate networks with the real training pipeline, over a few seeds.

Each network is trained with `digits_train.fit` (defaults otherwise) and exported; the table
shows the validation macro-F1 that selection sees, then the eval split and the MNIST test
digits (held out: reported, never used to choose), and onnxruntime throughput.

    .venv/bin/python benchmarks/compare_networks.py [--curated-dir artifacts/curated] [--seeds 11122025 1 2]
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from digits_data import dataset
from digits_data.contract import DEFAULT_SEED
from digits_runtime import Predictor
from digits_runtime.metrics import report
from digits_train.config import NETWORKS, FitConfig
from digits_train.export import export
from digits_train.fit import fit


def throughput(predictor: Predictor, images: np.ndarray, seconds: float = 2.0) -> float:
    batch = images[:256]
    predictor.probabilities(batch)
    rounds, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        predictor.probabilities(batch)
        rounds += 1
    return rounds * len(batch) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curated-dir", default="artifacts/curated")
    parser.add_argument("--seeds", type=int, nargs="+", default=[DEFAULT_SEED, 1, 2])
    args = parser.parse_args()
    splits = {
        "eval": dataset.load_split(args.curated_dir, "eval"),
        "test": dataset.load_test_split(args.curated_dir),
    }
    print(
        f"{'network':10}{'seed':>10}{'epochs':>8}{'val F1':>8}{'eval F1':>9}{'eval acc':>9}"
        f"{'test acc':>9}{'fit s':>7}{'img/s':>9}"
    )
    for network in NETWORKS:
        for seed in args.seeds:
            with tempfile.TemporaryDirectory() as out:
                summary = fit(args.curated_dir, out, FitConfig(seed=seed, network=network))
                export(Path(out) / "best.ckpt", Path(out) / "model.onnx")
                predictor = Predictor(Path(out) / "model.onnx", threads=2)
                scores = {}
                for name, split in splits.items():
                    predicted = np.asarray(predictor.labels)[predictor.probabilities(split.images).argmax(1)]
                    scores[name] = report(split.labels, predicted, predictor.labels)
                rate = throughput(predictor, splits["eval"].images)
            print(
                f"{network:10}{seed:>10}{summary['epochs_run']:>8}{summary['best_val_metrics']['val_macro_f1']:>8.4f}"
                f"{scores['eval']['macro_f1']:>9.4f}{scores['eval']['accuracy']:>9.4f}"
                f"{scores['test']['accuracy']:>9.4f}{summary['wall_time_seconds']:>7.1f}{rate:>9,.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
