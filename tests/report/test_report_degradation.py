"""The report's figures of digits: tiles on one axes, and the degradation section that uses them."""

import json

import numpy as np
import pytest
from PIL import Image

from digits_core.errors import DigitsError
from digits_data import dataset, suite
from digits_report import degradation
from digits_report.figures import draw_tiles
from digits_runtime import Predictor, robustness


def test_tiles_lay_out_images_captions_and_row_names():
    a, b, c = (np.full((6, 4), value, dtype=np.uint8) for value in (10, 20, 30))
    rows = [[(a, "0", "tab:green"), (b, "(5)", "grey")], [(c, "8", "tab:red")], []]
    fig = draw_tiles(rows, "title", cell_inches=0.5, labels=["first", "second", "third"])
    (ax,) = fig.axes  # one axes, whatever the number of tiles
    (image,) = ax.images
    mosaic = image.get_array()
    band, gap = round(6 * 0.3), round(4 * 0.15)  # one line of caption; the space between tiles
    cell_h, cell_w = 6 + band, 4 + gap
    assert mosaic.shape == (3 * cell_h, 2 * cell_w - gap)
    assert (mosaic[band : band + 6, :4] == 10).all()
    assert (mosaic[band : band + 6, cell_w : cell_w + 4] == 20).all()
    assert (mosaic[cell_h + band : 2 * cell_h, :4] == 30).all()
    assert mosaic.mask[cell_h + band : 2 * cell_h, cell_w:].all()  # one tile in the second row
    assert mosaic.mask[2 * cell_h :].all()  # none in the third
    assert mosaic.mask[:band].all()  # the band the captions stand in
    assert mosaic.mask[:, 4:cell_w].all()  # the gap between tiles
    said = {(t.get_text(), t.get_color()) for t in ax.texts}
    assert {("0", "tab:green"), ("(5)", "grey"), ("8", "tab:red")} <= said
    assert {"first", "second", "third"} <= {t.get_text() for t in ax.texts}
    assert ax.get_title() == "title"


@pytest.fixture(scope="module")
def measured_suite(small_curated, refusing_model, tmp_path_factory):
    """A suite of val digits, two per source and family, and what `digits robustness` measured on it."""
    root = tmp_path_factory.mktemp("degraded")
    val = dataset.load_split(small_curated, "val")
    cells = [(s, f) for s in range(len(suite.SOURCES)) for f in range(len(suite.FAMILIES)) for _ in range(2)]
    pick = np.arange(len(cells)) % len(val)
    arrays = {
        "images": np.kron(val.images[pick], np.ones((2, 2), dtype=np.uint8)),  # 56x56, as the suite's
        "labels": val.labels[pick],
        "source": np.array([s for s, _ in cells]),
        "family": np.array([f for _, f in cells]),
        "index": pick,
    }
    manifest = suite.write(root / "suite", arrays, seed=0, per_family=2)
    pixels, readable = suite.preprocess(arrays["images"])
    result = robustness.evaluate(Predictor(refusing_model[0]), manifest, arrays, pixels, readable)
    result["suite_sha256"] = manifest["sha256"][suite.SUITE_FILE]
    (root / "eval").mkdir()
    (root / "eval" / degradation.RESULT_NAME).write_text(json.dumps(result))
    return root


@pytest.mark.slow
def test_degradation_section_draws_a_row_of_examples_per_family(measured_suite, tmp_path):
    result, drawn = degradation.draw_section(measured_suite / "eval", measured_suite / "suite", tmp_path)
    assert list(result["examples"]) == list(suite.FAMILIES)
    assert drawn == {"degraded_examples": "degraded_examples.png"}
    with Image.open(tmp_path / "degraded_examples.png") as image:
        width, height = image.size
        pixels = np.asarray(image.convert("RGB"))
    assert height > 5 * width  # 31 rows of two digits
    assert pixels.std() > 10


@pytest.mark.slow
def test_degradation_section_is_left_out_or_refused(measured_suite, tmp_path):
    assert degradation.draw_section(tmp_path, measured_suite / "suite", tmp_path) == (None, {})
    other = tmp_path / "eval"
    other.mkdir()
    result = json.loads((measured_suite / "eval" / degradation.RESULT_NAME).read_text())
    (other / degradation.RESULT_NAME).write_text(json.dumps(result | {"suite_sha256": "0" * 64}))
    with pytest.raises(DigitsError, match="was measured on another suite than .*: run `make evaluate`"):
        degradation.draw_section(other, measured_suite / "suite", tmp_path)
