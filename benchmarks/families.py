"""The degradation suite per family, as a distribution over models: min / mean / max of each column.

Each model (one per seed, as `benchmarks/seeds.py --keep-dir DIR` keeps them) is scored on the
suite's MNIST test images exactly as `digits robustness` scores them: accuracy, the share its
refusal rule accepts, and the share accepted with a wrong digit. The images are preprocessed once
and shared by every model. Prints a Markdown table, one row per family, and writes it as JSON.

    .venv/bin/python benchmarks/seeds.py --seeds 1 2 3 --keep-dir artifacts/seeds
    .venv/bin/python benchmarks/families.py artifacts/seeds/seed-*.onnx [--json artifacts/families.json]
"""

import argparse
import json
import statistics

from digits_core import atomic, layout
from digits_data import parallel, suite
from digits_runtime import Predictor, robustness

COLUMNS = ("accuracy", "accepted", "accepted_wrong")


def spread(values: list[float]) -> str:
    """``min / mean / max`` of ``values``, as the table shows it."""
    return f"{min(values):.3f} / {statistics.mean(values):.3f} / {max(values):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="ONNX models, one per seed")
    parser.add_argument("--suite-dir", default=layout.SUITE_DIR, help="`make suite`")
    parser.add_argument("--source", default="mnist-test", help="which images of the suite")
    parser.add_argument("--json", help="also write the per-model rows here")
    args = parser.parse_args()

    manifest, arrays = suite.load(args.suite_dir)
    pixels, readable = suite.preprocess(arrays["images"], parallel.cores())
    per_model = {
        model: robustness.evaluate(Predictor(model), manifest, arrays, pixels, readable)["sources"][
            args.source
        ]
        for model in args.models
    }
    families = manifest["families"]
    print(f"{args.source}, {len(args.models)} models: min / mean / max\n")
    print("| family | accuracy | accepted | accepted and wrong |")
    print("|---|---|---|---|")
    for family in families:
        cells = [spread([r["families"][family][c] for r in per_model.values()]) for c in COLUMNS]
        print(f"| {family} | " + " | ".join(cells) + " |")
    summary = [r["summary"] for r in per_model.values()]
    print(
        f"\nmean over the degraded families: accuracy {spread([s['mean_accuracy'] for s in summary])}, "
        f"accepted and wrong {spread([s['mean_accepted_wrong'] for s in summary])}; worst family accuracy "
        f"{spread([s['min_accuracy'] for s in summary])}; largest accepted and wrong "
        f"{spread([s['max_accepted_wrong'] for s in summary])}"
    )
    if args.json:
        atomic.write_text(args.json, json.dumps(per_model, indent=1) + "\n")


if __name__ == "__main__":
    main()
