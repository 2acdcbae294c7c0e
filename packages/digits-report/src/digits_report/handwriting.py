"""The report's section on the generated handwriting: what `benchmarks/handwriting.py` measured.

Reads ``handwriting.json`` from the evaluation folder and the contact sheet and images of the set
it was measured on; the section is left out when the set was not evaluated.
"""

import shutil
from pathlib import Path

import numpy as np

from digits_core import contract
from digits_core.errors import DigitsError
from digits_core.images import load_image
from digits_data import handwriting
from digits_data.dataset import sha256_file
from digits_report import figures
from digits_report.inputs import read_json

RESULT_NAME = "handwriting.json"
MISREAD_SHOWN = 40  # misread 0/5/8 images drawn in the gallery


def draw_section(
    eval_dir: Path, handwriting_dir: Path, out: Path
) -> tuple[dict | None, dict[str, str | None]]:
    """Draw the section's figures into ``out``; return the measured numbers and the figure names.

    Returns ``(None, {})`` when ``eval_dir`` holds no handwriting result. Raises
    :class:`DigitsError` when the result was measured on another set than ``handwriting_dir``.
    """
    path = eval_dir / RESULT_NAME
    if not path.is_file():
        return None, {}
    result = read_json(path, "evaluate")
    manifest = handwriting.load_manifest(handwriting_dir)
    if sha256_file(handwriting_dir / contract.MANIFEST_NAME) != result["manifest_sha256"]:
        raise DigitsError(
            f"{path} was measured on another handwriting set than {handwriting_dir}: run `make evaluate`"
        )
    shutil.copyfile(handwriting_dir / manifest["sheet"], out / "handwriting_sheet.png")
    known = result["known"]
    confusion = {
        "split": "handwriting",
        "labels": known["labels"],
        "confusion_matrix": known["confusion_matrix"],
    }
    styles = {e["file"]: e["styles"] for e in manifest["samples"]}
    misread = known["misread"][:MISREAD_SHOWN]
    images = np.array([load_image(handwriting_dir / m["file"]) * 255.0 for m in misread])
    captions = [
        f"{m['label']} → {m['prediction']}\n{styles[m['file']]['glyph']}, {styles[m['file']]['slant']}"
        for m in misread
    ]
    drawn = {
        "handwriting_sheet": "handwriting_sheet.png",
        "handwriting_styles": figures.plot_handwriting_styles(result, out),
        "handwriting_confusion": figures.plot_confusion(confusion, out, "generated 0/5/8"),
        "handwriting_misread": figures.plot_gallery(
            images,
            captions,
            out,
            "handwriting_misread.png",
            f"Generated 0/5/8 read wrong ({len(known['misread'])}"
            + (f", the first {MISREAD_SHOWN} shown" if len(known["misread"]) > MISREAD_SHOWN else "")
            + "), as the model sees them",
        ),
    }
    return result, drawn
