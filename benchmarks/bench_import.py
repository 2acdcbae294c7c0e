"""What `import digits_runtime` costs a fresh interpreter, against another copy of the sources.

Each run is a new process; its cost is the cumulative microseconds that ``python -X importtime``
reports for digits_runtime (everything it pulls in, numpy included, interpreter start-up not).
Runs of this checkout and of the other sources alternate, so a busy machine slows both alike;
the medians are compared.

    .venv/bin/python benchmarks/bench_import.py [--against PACKAGES_DIR] [--runs N]

PACKAGES_DIR is the packages/ folder of another checkout, e.g. /tmp/before/packages after
``mkdir /tmp/before && git archive main packages | tar -x -C /tmp/before``; without it, only
this checkout is measured.
"""

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "packages"


def import_microseconds(packages: Path) -> int:
    """Cumulative import time of digits_runtime, in µs, with the sources under ``packages`` first."""
    path = os.pathsep.join(str(p) for p in sorted(packages.glob("*/src")))
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import digits_runtime"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": path},
    )
    for line in done.stderr.splitlines():
        fields = [f.strip() for f in line.removeprefix("import time:").split("|")]
        if fields[-1] == "digits_runtime":
            return int(fields[1])
    raise RuntimeError("python -X importtime did not report digits_runtime")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, help="the packages/ folder of another checkout")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    trees = {"this checkout": HERE} | ({"against": args.against} if args.against else {})
    times: dict[str, list[int]] = {name: [] for name in trees}
    for packages in trees.values():  # warm the file cache once
        import_microseconds(packages)
    for _ in range(args.runs):
        for name, packages in trees.items():
            times[name].append(import_microseconds(packages))
    for name, values in times.items():
        print(
            f"{name:>14}: median {statistics.median(values) / 1000:.1f} ms, "
            f"min {min(values) / 1000:.1f} ms over {len(values)} runs ({trees[name]})"
        )
    if args.against:
        ratio = statistics.median(times["this checkout"]) / statistics.median(times["against"])
        print(f"this checkout / against: {ratio:.3f} (medians)")


if __name__ == "__main__":
    main()
