"""Straight lines across a digit are erased; the digit's own strokes, dots and crosses are not."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

import digits_core.images
from digits_core.images import load_image
from digits_core.lines import digit_box, remove_lines

from helpers import eight, similarity

SIDE = 112


def page(*marks, side: int = SIDE) -> Image.Image:
    """White ink on black: an 8 and ``marks``, each ``(points, width)`` drawn as a polyline."""
    image = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(image)
    eight(draw)
    for points, width in marks:
        draw.line(points, fill=255, width=width)
    return image


def ink(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32) / 255.0


def bounding_box(pixels: np.ndarray) -> tuple[slice, slice]:
    rows, cols = np.flatnonzero(pixels.any(1)), np.flatnonzero(pixels.any(0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def zigzag(y: int, side: int = SIDE) -> list[tuple[int, int]]:
    """A zigzag from the left edge to the right one, about row ``y``."""
    return [(x, y + (8 if i % 2 else -8)) for i, x in enumerate(range(0, side + 10, 10))]


ACROSS = [(0, 20), (SIDE - 1, 95)]  # edge to edge, through both loops of the 8
SECOND = [(10, SIDE - 1), (100, 0)]


@pytest.mark.parametrize("marks", [[(ACROSS, 3)], [(ACROSS, 3), (SECOND, 2)]], ids=["one line", "two lines"])
def test_lines_across_the_page_are_erased_and_the_digit_fills_the_box(marks, monkeypatch):
    clean = load_image(page())
    struck = page(*marks)
    assert similarity(load_image(struck), clean) > 0.9
    # Taken for strokes, the line's ends pull the crop: another picture.
    monkeypatch.setattr(digits_core.images, "remove_lines", lambda pixels: pixels)
    monkeypatch.setattr(digits_core.images, "digit_box", bounding_box)
    assert similarity(load_image(struck), clean) < 0.75


def test_where_the_line_crosses_a_loop_the_loop_stays_closed():
    struck = ink(page(([(0, 34), (SIDE - 1, 34)], 3)))  # across the upper loop, left and right side
    erased = remove_lines(struck)
    assert erased[34, :8].max() == 0.0  # the line's ends are gone
    assert erased[34, -8:].max() == 0.0
    clean = ink(page())
    crossings = np.flatnonzero(clean[30:39].max(0) > 0.5)
    assert len(crossings) >= 8  # the loop's left and right strokes cross row 34
    assert (erased[30:39, crossings].max(0) > 0.5).all()  # each still has ink there


def test_a_straight_stroke_of_the_digit_that_stops_short_of_the_edge_is_kept():
    pixels = ink(page(([(78, 12), (104, 2)], 6)))  # a long tail, as some people write an 8
    assert np.array_equal(remove_lines(pixels), pixels)


def test_a_stroke_between_two_edges_that_meet_is_kept():
    # A digit pushed into the top left corner, a long stroke of it reaching both edges there: a
    # line across the page would end at opposite edges.
    pixels = ink(page(([(0, 80), (95, 0)], 6)))
    assert np.array_equal(remove_lines(pixels), pixels)


@pytest.mark.parametrize(
    "strokes",
    [[[(0, 0), (SIDE - 1, SIDE - 1)]], [[(0, 56), (SIDE - 1, 56)], [(56, 0), (56, SIDE - 1)]]],
    ids=["a 1 cropped tight", "a cross"],
)
def test_strokes_that_are_the_whole_character_are_kept(strokes):
    image = Image.new("L", (SIDE, SIDE), 0)
    for points in strokes:
        ImageDraw.Draw(image).line(points, fill=255, width=8)
    pixels = ink(image)
    assert np.array_equal(remove_lines(pixels), pixels)


def test_a_dotted_line_is_kept():
    image = page()
    draw = ImageDraw.Draw(image)
    for x in range(0, SIDE, 12):  # dots a third of the spacing wide: not a solid line
        draw.ellipse((x, 54, x + 4, 58), fill=255)
    pixels = ink(image)
    assert np.array_equal(remove_lines(pixels), pixels)


def test_a_line_on_a_large_scan_is_found_on_a_small_copy_and_erased_at_full_size():
    big = page((ACROSS, 3)).resize((4 * SIDE, 4 * SIDE), Image.Resampling.BILINEAR)
    clean = page().resize((4 * SIDE, 4 * SIDE), Image.Resampling.BILINEAR)
    struck, erased = ink(big), remove_lines(ink(big))
    left_end = (slice(60, 110), slice(0, 40))  # the line's first 40 pixels, clear of the digit
    assert struck[left_end].sum() > 200
    assert erased[left_end].max() == 0.0  # erased in full, edges included, though found 7x smaller
    assert erased.sum() > 0.9 * ink(clean).sum()  # the digit's strokes stay
    assert similarity(load_image(big), load_image(clean)) > 0.85


def test_a_zigzag_across_the_page_is_cropped_to_the_digit(monkeypatch):
    struck = page((zigzag(56), 3))
    assert digit_box(ink(struck)) == bounding_box(ink(page()))
    clean = load_image(page())
    assert similarity(load_image(struck), clean) > 0.85  # the zigzag stays across the digit
    monkeypatch.setattr(digits_core.images, "digit_box", bounding_box)
    assert similarity(load_image(struck), clean) < 0.75


@pytest.mark.parametrize("shift", [(-34, 0), (33, 0), (0, -12)], ids=["left edge", "right edge", "top"])
def test_a_digit_at_one_edge_keeps_all_of_itself(shift):
    pixels = np.roll(ink(page()), shift, axis=(1, 0))
    assert digit_box(pixels) == bounding_box(pixels)


def test_a_digit_cropped_tight_keeps_all_of_itself():
    tight = ink(page().crop((31, 9, 82, 103)))  # the 8 touches all four edges
    assert digit_box(tight) == bounding_box(tight)
