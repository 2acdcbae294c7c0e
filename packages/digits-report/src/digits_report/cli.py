"""`digits-report`: write the HTML report on the data, the training and the model's errors."""

from digits_core import layout
from digits_core.checks import check_path
from digits_core.cli_support import main_for


def report(
    curated_dir: str = layout.CURATED_DIR,
    train_dir: str = layout.TRAIN_DIR,
    model: str = layout.MODEL,
    eval_dir: str = layout.EVAL_DIR,
    timings_dir: str = layout.TIMINGS_DIR,
    output_dir: str = layout.REPORT_DIR,
    handwriting_dir: str = layout.HANDWRITING_DIR,
    suite_dir: str = layout.SUITE_DIR,
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
