"""The report's section on degraded digits: what `digits robustness` measured on the suite.

Reads ``degraded.json`` from the evaluation folder and the suite it was measured on; the section
is left out when the suite was not evaluated.
"""

from pathlib import Path

import numpy as np

from digits_core.errors import DigitsError
from digits_data import suite
from digits_report.figures import draw_tiles, save
from digits_report.inputs import read_json

RESULT_NAME = "degraded.json"


def draw_section(eval_dir: Path, suite_dir: Path, out: Path) -> tuple[dict | None, dict[str, str | None]]:
    """Draw the section's figure into ``out``; return the measured numbers and the figure names.

    Returns ``(None, {})`` when ``eval_dir`` holds no suite result. Raises :class:`DigitsError`
    when the result was measured on another suite than the one in ``suite_dir``.
    """
    path = eval_dir / RESULT_NAME
    if not path.is_file():
        return None, {}
    result = read_json(path, "evaluate")
    manifest, arrays = suite.load(suite_dir)
    if manifest["sha256"][suite.SUITE_FILE] != result["suite_sha256"]:
        raise DigitsError(f"{path} was measured on another suite than {suite_dir}: run `make evaluate`")
    return result, {"degraded_examples": plot_examples(result, arrays["images"], out)}


def plot_examples(result: dict, images: np.ndarray, out: Path) -> str:
    """One row per family: MNIST test images as the files look, each titled with the answer it got
    (green: right, red: accepted and wrong, grey: refused)."""
    rows = []
    for shown in result["examples"].values():
        row = []
        for example in shown:
            right = example["prediction"] == example["label"]
            colour = "grey" if not example["accepted"] else "tab:green" if right else "tab:red"
            answer = f"{example['prediction']}" if example["accepted"] else f"({example['prediction']})"
            row.append((images[example["row"]], answer, colour))
        rows.append(row)
    title = "Each family on the first MNIST test digits: the answer, (refused)"
    fig = draw_tiles(rows, title, cell_inches=0.9, labels=list(result["examples"]))
    return save(fig, out / "degraded_examples.png")
