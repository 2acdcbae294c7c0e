"""The box a digit is written in is erased; ruled paper, crossing strokes and the digit itself are not."""

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

import digits_core.images
from digits_core.frames import remove_frame
from digits_core.images import load_image

from helpers import eight, similarity

SIDE = 112


def page(*lines, width: int = 4, digit: bool = True) -> Image.Image:
    """White ink on black: an 8 and straight ``lines`` ((x0, y0), (x1, y1)), ``width`` pixels wide."""
    image = Image.new("L", (SIDE, SIDE), 0)
    draw = ImageDraw.Draw(image)
    if digit:
        eight(draw)
    for points in lines:
        draw.line(points, fill=255, width=width)
    return image


def ink(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32) / 255.0


M = 4  # the box's lines lie this many pixels in from the edges
TOP, BOTTOM = [(0, M), (SIDE - 1, M)], [(0, SIDE - 1 - M), (SIDE - 1, SIDE - 1 - M)]
LEFT, RIGHT = [(M, 0), (M, SIDE - 1)], [(SIDE - 1 - M, 0), (SIDE - 1 - M, SIDE - 1)]
BOXES = {
    "a box": [TOP, BOTTOM, LEFT, RIGHT],
    "a comb field": [LEFT, RIGHT],
    "a cell open at the top": [BOTTOM, LEFT, RIGHT],
}


@pytest.mark.parametrize("lines", BOXES.values(), ids=BOXES.keys())
@pytest.mark.parametrize("paper", ["dark", "light"])
def test_a_digit_in_a_box_reads_as_the_digit_alone(lines, paper, monkeypatch):
    boxed, clean = page(*lines), page()
    if paper == "light":  # dark ink on light paper: the lines cover the outer ring's pixels
        boxed, clean = ImageOps.invert(boxed), ImageOps.invert(clean)
    assert similarity(load_image(boxed), load_image(clean)) > 0.95
    # Taken for strokes, the box frames the digit and the crop takes it in: another picture.
    monkeypatch.setattr(digits_core.images, "remove_frame", lambda pixels: pixels)
    monkeypatch.setattr(digits_core.images, "PAPER_BANDS", (0.0,))  # the outermost pixels alone
    assert similarity(load_image(boxed), load_image(clean)) < 0.8


def test_the_lines_at_the_very_edge_of_light_paper_leave_its_polarity_alone():
    # The lines cover three sides of the outermost ring: that ring's median is ink, not paper.
    lines = [
        [(0, 1), (0, SIDE - 1)],
        [(SIDE - 1, 1), (SIDE - 1, SIDE - 1)],
        [(0, SIDE - 2), (SIDE - 1, SIDE - 2)],
    ]
    light = ImageOps.invert(page(*lines))
    read = load_image(light)
    assert read[0].max() == 0.0  # black paper around a white digit
    assert read[-1].max() == 0.0
    assert similarity(read, load_image(page())) > 0.95


def test_a_neighbouring_digit_beyond_a_line_is_erased_and_a_stroke_through_it_is_kept():
    image = page(LEFT, RIGHT)
    draw = ImageDraw.Draw(image)
    draw.arc((-30, 30, M - 1, 80), -60, 60, fill=255, width=5)  # part of the next box's digit
    draw.line([(56, 60), (SIDE - 1, 60)], fill=255, width=5)  # a stroke on through the right line
    erased = remove_frame(ink(image))
    assert erased[:, : M - 2].max() == 0.0  # left of the left line: nothing
    assert erased[55:66, SIDE - 1 - M :].max() == 1.0  # the stroke runs on to the edge
    assert erased[:50, SIDE - 1 - M - 2 :].max() == 0.0  # the right line is gone above it
    assert erased[:, M + 4 : SIDE - M - 4].sum() == pytest.approx(ink(image)[:, M + 4 : SIDE - M - 4].sum())


@pytest.mark.parametrize("spacing", [14, 24], ids=["squared", "ruled"])
def test_the_lines_of_ruled_and_squared_paper_are_not_a_frame(spacing):
    lines = [[(0, y), (SIDE - 1, y)] for y in range(4, SIDE, spacing)]
    if spacing == 14:
        lines += [[(x, 0), (x, SIDE - 1)] for x in range(4, SIDE, spacing)]
    pixels = ink(page(*lines, width=2))
    assert np.array_equal(remove_frame(pixels), pixels)


def test_a_digit_cropped_tight_and_a_bent_stroke_are_kept():
    tight = ink(page().crop((31, 9, 82, 103)))  # the 8's loops touch all four edges
    assert np.array_equal(remove_frame(tight), tight)
    bent = Image.new("L", (SIDE, SIDE), 0)
    ImageDraw.Draw(bent).arc((4, 4, SIDE - 5, 3 * SIDE), 200, 340, fill=255, width=5)  # a long flat arc
    eight(ImageDraw.Draw(bent))
    assert np.array_equal(remove_frame(ink(bent)), ink(bent))


@pytest.mark.parametrize("lines", [[TOP], [LEFT, RIGHT]], ids=["a bar alone", "two bars alone"])
def test_lines_that_are_all_the_ink_are_kept(lines):
    pixels = ink(page(*lines, digit=False))
    assert np.array_equal(remove_frame(pixels), pixels)


def test_a_box_on_a_large_scan_is_found_on_a_small_copy_and_erased_at_full_size():
    big = page(*BOXES["a box"]).resize((4 * SIDE, 4 * SIDE), Image.Resampling.BILINEAR)
    clean = page().resize((4 * SIDE, 4 * SIDE), Image.Resampling.BILINEAR)
    erased = remove_frame(ink(big))
    assert erased[:, :40].max() == 0.0  # the left line, in full
    assert erased[:40].max() == 0.0  # and the top one
    assert similarity(erased, ink(clean)) > 0.98


def test_a_box_of_lines_that_cover_a_thin_ring_of_light_paper_leaves_its_polarity_alone(monkeypatch):
    # Lines 8 pixels wide, 2 in from the edges: a ring a tenth of the side wide is mostly ink, the
    # outermost pixels and a ring a fifth of the side wide are mostly paper.
    thick = [[(0, 5), (SIDE - 1, 5)], [(0, SIDE - 6), (SIDE - 1, SIDE - 6)]]
    thick += [[(5, 0), (5, SIDE - 1)], [(SIDE - 6, 0), (SIDE - 6, SIDE - 1)]]
    read = load_image(ImageOps.invert(page(*thick, width=8)))
    clean = load_image(ImageOps.invert(page()))
    assert similarity(read, clean) > 0.75  # the 8, its strokes a little lighter
    monkeypatch.setattr(digits_core.images, "PAPER_BANDS", (0.1,))  # the thin ring alone
    assert similarity(load_image(ImageOps.invert(page(*thick, width=8))), clean) < 0.5  # paper for ink
