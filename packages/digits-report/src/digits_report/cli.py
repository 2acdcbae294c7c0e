"""`digits-report`: write the HTML report on the data, the training and the model's errors."""

from digits_data.checks import check_path
from digits_data.cli_support import main_for
from digits_runtime.cli import DEFAULT_MODEL


def report(
    curated_dir: str = "artifacts/curated",
    train_dir: str = "artifacts/train",
    model: str = DEFAULT_MODEL,
    eval_dir: str = "artifacts/eval",
    timings_dir: str = "artifacts/timings",
    output_dir: str = "artifacts/report",
    handwriting_dir: str = "artifacts/handwriting",
    suite_dir: str = "artifacts/suite",
) -> None:
    """Write index.html, its figures and report.json from what the earlier pipeline steps wrote.

    Args:
        curated_dir: Folder written by `digits-data curate`.
        train_dir: Folder written by `digits-train fit`.
        model: The ONNX model written by `digits-train export`.
        eval_dir: Folder with eval.json, test.json and other.json from `digits evaluate --json`.
        timings_dir: Folder with the recorded wall time of each pipeline step.
        output_dir: Folder for index.html, its figures and report.json.
        handwriting_dir: The generated handwriting set that EVAL_DIR/handwriting.json (written by
            benchmarks/handwriting.py) measured; its section is left out when that file is absent.
        suite_dir: The degradation suite that EVAL_DIR/degraded.json (written by `digits
            robustness`) measured; its section is left out when that file is absent.
    """
    check_path("output_dir", output_dir)
    from digits_report.report import write_report  # matplotlib loads only when a report is written

    index = write_report(
        curated_dir, train_dir, model, eval_dir, timings_dir, output_dir, handwriting_dir, suite_dir
    )
    print(f"report written to {index}")


main = main_for(report, "digits-report")
