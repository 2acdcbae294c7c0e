"""Read what the earlier pipeline steps wrote: training logs and summary, evaluations, timings."""

import csv
import json
from pathlib import Path

from digits_core.errors import DigitsError

STEPS = (
    "download",
    "curate",
    "handwriting",
    "suite",
    "train",
    "export",
    "evaluate",
    "evaluate-handwriting",
    "robustness",
)
"""The pipeline steps whose wall time `make` records."""


def read_json(path: Path, target: str) -> dict:
    """Load a JSON file that `make target` writes; a missing or broken file names that target."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DigitsError(f"{path} is missing: run `make {target}` first") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DigitsError(f"{path} is not readable JSON ({exc}): run `make {target}` again") from None


def read_epochs(metrics_csv: Path) -> list[dict[str, float]]:
    """Merge Lightning's CSV rows (train and val metrics land on separate rows) into one per epoch."""
    try:
        rows = list(csv.DictReader(metrics_csv.read_text(encoding="utf-8").splitlines()))
    except FileNotFoundError:
        raise DigitsError(f"{metrics_csv} is missing: run `make train` first") from None
    epochs: dict[int, dict[str, float]] = {}
    for row in rows:
        if not row.get("epoch"):
            continue
        merged = epochs.setdefault(int(row["epoch"]), {"epoch": int(row["epoch"])})
        merged |= {k: float(v) for k, v in row.items() if v and k not in ("epoch", "step")}
    return [epochs[e] for e in sorted(epochs)]


def read_timings(timings_dir: Path) -> dict[str, float | None]:
    """Seconds per pipeline step, None for a step whose time was not recorded."""
    timings: dict[str, float | None] = {}
    for step in STEPS:
        path = timings_dir / f"{step}.json"
        timings[step] = json.loads(path.read_text())["seconds"] if path.is_file() else None
    return timings


def read_model_metadata(model: Path) -> dict[str, str]:
    """The model's metadata_props, read with onnxruntime."""
    from digits_runtime.predictor import Predictor

    if not model.is_file():
        raise DigitsError(f"{model} is missing: run `make train` first")
    return Predictor(model).metadata
