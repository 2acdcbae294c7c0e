"""The preprocessing of this checkout against another revision's, on validation data, same models.

A change to `digits_core`'s preprocessing is chosen on degraded images made from the MNIST
training set (the val split, degraded by every family of the suite as `digits-train export` does
when it chooses the refusal rule), never on the suite's MNIST test images. This script reads the
same degraded validation digits twice, once with `digits_core` as it is in REVISION and once as it
is here, scores them with the same models, and prints per family and model the accuracy and the
share accepted with a wrong digit, before and after; then the time to preprocess the suite's
images with each, as a ratio measured within this run (each side timed twice, alternately, the
faster time kept).

    .venv/bin/python benchmarks/preprocessing.py artifacts/model.onnx artifacts/seeds/*.onnx --against HEAD~1

Each side runs in a child process whose `digits_core` is that revision's (`git archive` into a
temporary folder, first on `PYTHONPATH`); everything else is this checkout's.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CORE = "packages/digits-core/src"


def score(models: list[str], per_family: int, seed: int, curated_dir: str) -> dict:
    """Per model, per family: accuracy and share accepted with a wrong digit, on degraded val digits."""
    from digits_data import dataset, parallel, suite
    from digits_runtime import Predictor

    families = suite.FAMILIES[1:]
    val = dataset.load_split(curated_dir, "val")
    pixels, labels, readable = suite.degraded_split(val, per_family, seed, parallel.cores())
    out = {}
    for model in models:
        classified = Predictor(model).classify(pixels)
        right = (classified.predicted == labels) & readable
        wrong = classified.accepted & readable & ~right
        out[model] = {
            name: by_family(mask, families) for name, mask in (("accuracy", right), ("wrong", wrong))
        }
    return out


def by_family(mask: np.ndarray, families: tuple[str, ...]) -> dict[str, float]:
    """The share of each family's images (consecutive, equally many) that ``mask`` marks."""
    return dict(zip(families, mask.reshape(len(families), -1).mean(1).tolist(), strict=True))


def timing(suite_dir: str, count: int) -> float:
    """Milliseconds per image to preprocess ``count`` of the suite's images, one process."""
    from digits_data import suite

    _, arrays = suite.load(suite_dir)
    images = arrays["images"][:: max(1, len(arrays["images"]) // count)][:count]
    start = time.perf_counter()
    suite.preprocess(images, workers=1)
    return (time.perf_counter() - start) / len(images) * 1000


def child(core: Path, task: list[str]) -> dict | float:
    """Run ``task`` (this script's arguments) with ``core`` as ``digits_core``; return its JSON."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(core), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, __file__, *task]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO)
    if done.returncode:  # the child's last line says what went wrong
        sys.exit(f"with {core}: {(done.stderr.strip().splitlines() or [f'exit {done.returncode}'])[-1]}")
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="ONNX models to score with (the same for both sides)")
    parser.add_argument("--against", default="HEAD", help="the revision to compare with (default HEAD)")
    parser.add_argument("--per-family", type=int, default=300, help="validation digits per family")
    parser.add_argument("--seed", type=int, default=31, help="draws the digits and their degradations")
    parser.add_argument("--curated-dir", default="artifacts/curated")
    parser.add_argument("--suite-dir", default="artifacts/suite", help="`make suite`: images to time")
    parser.add_argument("--time-images", type=int, default=2000, help="0 to skip the timing")
    parser.add_argument("--child", choices=["score", "timing"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "score":
        print(json.dumps(score(args.models, args.per_family, args.seed, args.curated_dir)))
        return
    if args.child == "timing":
        print(json.dumps(timing(args.suite_dir, args.time_images)))
        return
    if not args.models:
        parser.error("give at least one model")

    with tempfile.TemporaryDirectory() as tmp:  # REVISION's digits_core
        archive = subprocess.run(["git", "archive", args.against, CORE], cwd=REPO, capture_output=True)
        if archive.returncode:
            parser.error(f"--against {args.against}: {archive.stderr.decode().strip().splitlines()[-1]}")
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        sides = {args.against: Path(tmp) / CORE, "this checkout": REPO / CORE}
        common = [*args.models, "--per-family", str(args.per_family), "--seed", str(args.seed)]
        common += ["--curated-dir", args.curated_dir]
        scores = {name: child(core, [*common, "--child", "score"]) for name, core in sides.items()}
        times: dict[str, list[float]] = {name: [] for name in sides}
        if args.time_images:
            for _ in range(2):
                for name, core in sides.items():
                    task = ["--child", "timing", "--suite-dir", args.suite_dir]
                    times[name].append(child(core, [*task, "--time-images", str(args.time_images)]))

    before, after = scores[args.against], scores["this checkout"]
    print(f"{args.per_family} degraded val digits per family, seed {args.seed}: {args.against} -> here")
    print("\n| family | model | accuracy | accepted and wrong |\n|---|---|---|---|")
    for family in next(iter(before.values()))["accuracy"]:
        for model in args.models:
            old = before[model]["accuracy"][family], before[model]["wrong"][family]
            new = after[model]["accuracy"][family], after[model]["wrong"][family]
            if old != new:
                name = Path(model).name
                print(f"| {family} | {name} | {old[0]:.3f} -> {new[0]:.3f} | {old[1]:.4f} -> {new[1]:.4f} |")
    print("\n(families not listed: the same for every model)\n")
    for model in args.models:
        old, new = (list(side[model]["wrong"].values()) for side in (before, after))
        print(
            f"{Path(model).name}: accepted and wrong, mean over families {np.mean(old):.4f} -> "
            f"{np.mean(new):.4f}, largest {max(old):.4f} -> {max(new):.4f}"
        )
    if args.time_images:
        old, new = min(times[args.against]), min(times["this checkout"])
        print(f"\npreprocessing, ms per suite image: {old:.2f} -> {new:.2f} ({new / old:.2f}x)")


if __name__ == "__main__":
    main()
