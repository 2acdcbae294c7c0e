"""Compare the candidate networks with the real training pipeline, over the same seeds.

Each network is trained with the default recipe otherwise, exported and evaluated exactly as
`benchmarks/seeds.py` does. The choice between networks is made on the validation columns only
(errors and macro-F1 over all seeds, then throughput); the eval split and the MNIST test digits
are printed as held-out numbers and never decide anything.

    .venv/bin/python benchmarks/compare_networks.py [--curated-dir artifacts/curated] [--seeds 1 2 3]
"""

import argparse
import statistics

from seeds import load_splits, run_seed

from digits_train.config import NETWORKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curated-dir", default="artifacts/curated")
    parser.add_argument("--handwriting-dir", default="artifacts/handwriting")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    splits, others = load_splits(args.curated_dir)
    print(f"{'network':10}{'val err':>8}{'val F1':>8}{'img/s':>9}   held out: {'eval F1':>8}{'test acc':>9}")
    for network in NETWORKS:
        rows = [
            run_seed(args.curated_dir, seed, {"network": network}, splits, others, args.handwriting_dir)
            for seed in args.seeds
        ]
        mean = {key: statistics.fmean(r[key] for r in rows) for key in rows[0] if key != "confusion"}
        print(
            f"{network:10}{sum(r['val_errors'] for r in rows):>8d}{mean['val_macro_f1']:>8.4f}"
            f"{mean['images_per_second']:>9,.0f}   held out: "
            f"{mean['eval_macro_f1']:>8.4f}{mean['test_accuracy']:>9.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
