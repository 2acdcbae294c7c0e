"""`digits-report` of this checkout against another revision's, on the pipeline's artifacts.

Each side is a whole `python -m digits_report` process that draws the report of `make all`'s
artifacts into a temporary folder; the other revision's `digits_report` comes from `git archive`
into a temporary folder, first on `PYTHONPATH` (everything else is this checkout's). The sides
run alternately, ``--rounds`` times each, and the fastest time of each is kept, so the ratio is
measured within one run.

    make all
    .venv/bin/python benchmarks/bench_report.py --against HEAD~1
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REPORT = "packages/digits-report/src"


def draw(source: Path, out: Path) -> float:
    """Seconds for one `digits-report` process with ``source`` as its `digits_report`."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(source), os.environ.get("PYTHONPATH")])),
    }
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "digits_report", "--output-dir", str(out)],
        env=env,
        cwd=REPO,
        capture_output=True,
    )
    seconds = time.perf_counter() - start
    if done.returncode:  # the report's own one line says what is missing
        sys.exit(
            f"with {source}: {(done.stderr.decode().strip().splitlines() or [f'exit {done.returncode}'])[-1]}"
        )
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="HEAD", help="the revision to compare with (default HEAD)")
    parser.add_argument("--rounds", type=int, default=2, help="reports drawn by each side")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", args.against, REPORT], cwd=REPO, capture_output=True)
        if archive.returncode:
            parser.error(f"--against {args.against}: {archive.stderr.decode().strip().splitlines()[-1]}")
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        sides = {args.against: Path(tmp) / REPORT, "this checkout": REPO / REPORT}
        times: dict[str, list[float]] = {name: [] for name in sides}
        for round_ in range(args.rounds):
            for k, (name, source) in enumerate(sides.items()):
                times[name].append(draw(source, Path(tmp) / f"report-{round_}-{k}"))
    old, new = min(times[args.against]), min(times["this checkout"])
    print(f"digits-report, fastest of {args.rounds}: {args.against} {old:.1f} s, here {new:.1f} s")
    print(f"ratio: {new / old:.2f}x")


if __name__ == "__main__":
    main()
