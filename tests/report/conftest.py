"""The report's fixtures: what a tiny run of the earlier steps wrote."""

import json

import pytest

from helpers import evaluate

METRICS_CSV = """\
epoch,step,train_loss,val_accuracy,val_loss,val_macro_f1,val_recall_0,val_recall_5,val_recall_8,lr
0,7,,0.81,0.52,0.78,0.9,0.5,0.85,0.001
0,7,0.91,,,,,,,
1,15,,0.9,0.31,0.88,0.95,0.7,0.9,0.001
1,15,0.45,,,,,,,
2,23,,0.88,0.35,0.86,0.9,0.7,0.92,0.0005
2,23,0.33,,,,,,,
"""


@pytest.fixture(scope="session")
def report_inputs(refusing_model, small_curated, tmp_path_factory):
    model_path, _ = refusing_model
    root = tmp_path_factory.mktemp("run")
    train = root / "train"
    (train / "lightning_logs").mkdir(parents=True)
    (train / "lightning_logs" / "metrics.csv").write_text(METRICS_CSV)
    summary = {
        "epochs_run": 3,
        "best_epoch": 1,
        "stopped_early": True,
        "stopped_epoch": 2,
        "best_val_metrics": {"val_macro_f1": 0.88, "val_accuracy": 0.9, "val_loss": 0.31},
        "wall_time_seconds": 1.5,
        "config": {"seed": 1},
    }
    (train / "summary.json").write_text(json.dumps(summary))
    evaluations = root / "eval"
    evaluate(model_path, small_curated, evaluations)
    timings = root / "timings"
    timings.mkdir()
    (timings / "train.json").write_text(json.dumps({"step": "train", "command": [], "seconds": 12.5}))
    return {
        "curated": small_curated,
        "train": train,
        "model": model_path,
        "eval": evaluations,
        "timings": timings,
    }
