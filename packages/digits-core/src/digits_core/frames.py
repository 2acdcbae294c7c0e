"""The box a digit was written in: a form's cell, a comb field, a frame drawn around it.

Forms ask for digits in boxes, and an image cut to one box keeps the box's lines along its edges.
Taken for strokes, they turn the digit into a 0 inside a frame and pull the crop out to the box,
so the digit shrinks. :func:`remove_frame` finds, along each edge, a straight line that runs near
it over most of its length, and erases it, except where a stroke of the digit crosses it, and
what lies beyond it unless joined to the digit (a neighbouring box's digit).

A digit's own strokes are left alone: they stop short of the edges at one end at least, or are
not thin lines beside empty paper, or are all the ink there is. So are the lines of ruled or
squared paper, more than a box has: the model reads a digit through lines across it.
"""

import numpy as np

from digits_core.ink import components, search_copy

SEARCH_SIDE = 64  # lines are searched for on a copy of at most this many pixels a side
BAND = 0.2  # a frame line lies within this share of the side from its edge ...
MIN_SPAN = 0.8  # ... holds ink along at least this share of the edge's length ...
MAX_WIDTH = 0.08  # ... and is at most this share of the side thick
MAX_BEND = 0.3  # ... and straight: its middle strays from a straight line by this many pixels on average
LINE_ROW = 0.1  # a row holds part of the line when at least this share of it is inked
INK = 0.25  # a pixel of the search copy with at least this much ink is inked
MIN_LEFT = 0.15  # inside the frame stays at least this share of the ink (else it is the digit's)


def remove_frame(ink: np.ndarray) -> np.ndarray:
    """``ink`` (H, W) in [0, 1] without the lines of a box along its edges and what lies outside
    them; ``ink`` itself when it has none."""
    inked = search_copy(ink, SEARCH_SIDE)[0] > INK
    if not (_may_hold_line(inked) or _may_hold_line(inked.T)):
        return ink  # most images: no line near an edge is long enough, and this costs little
    # Each edge in turn is the top of the turned image; all are found before any is erased, so
    # that erasing one does not shorten the lines that meet it.
    found = [_line_at_top(np.rot90(ink, turns)) for turns in range(4)]
    if not any(found):
        return ink
    h, w = ink.shape
    top, right, bottom, left = (line[1] if line else 0 for line in found)
    inside = (slice(top, h - bottom), slice(left, w - right))
    if ink[inside].sum() < MIN_LEFT * ink.sum():
        return ink
    out = ink.copy()
    for turns, line in enumerate(found):
        if line:
            start, cut, crossing = line
            np.rot90(out, turns)[start:cut, ~crossing] = 0.0  # a view: this writes into ``out``
    # Beyond the lines, only what a stroke joins to the digit inside stays.
    pieces = components(out > 0)
    out[~np.isin(pieces, np.unique(pieces[inside]))] = 0.0
    return out if out.sum() >= MIN_LEFT * ink.sum() else ink


def _may_hold_line(inked: np.ndarray) -> bool:
    """Whether a row near the top or bottom edge of ``inked`` (a search copy's inked pixels) can
    count MIN_SPAN of its columns inked, with the rows next to it: at most the sum of the three's."""
    share = inked.mean(1)
    around = share + np.r_[share[1:], 0.0] + np.r_[0.0, share[:-1]]
    band = max(1, int(BAND * len(share)))
    return bool((around[:band] >= MIN_SPAN).any() or (around[-band:] >= MIN_SPAN).any())


def _line_at_top(ink: np.ndarray) -> tuple[int, int, np.ndarray] | None:
    """A frame line along the top edge of ``ink``: its first row, the first row below it, and
    the columns where a stroke crosses it (ink just above and just below); None if there is none."""
    h, w = ink.shape
    small, shrink = search_copy(ink, SEARCH_SIDE)
    inked = small > INK
    # A line a scan tilted drifts across rows: each row counts the columns inked in it or the
    # rows next to it.
    near = inked | np.roll(inked, 1, axis=0) | np.roll(inked, -1, axis=0)
    near[0], near[-1] = inked[:2].any(0), inked[-2:].any(0)
    long = near.mean(1) >= MIN_SPAN
    band = max(1, int(BAND * len(small)))
    rows = np.flatnonzero(long[:band])
    if not len(rows) or np.count_nonzero(long[1:] & ~long[:-1]) + long[0] > 2:
        return None  # no line, or more than a box has across the image: ruled or squared paper
    # The innermost such row: the box's line, not one beyond it. The rows next to a line count
    # its columns too: the line itself is in the rows among them that hold some of its ink.
    last = int(rows[-1])
    if last + 1 < len(small) and long[last + 1]:
        return None  # thicker than a line: the digit's own body
    rows = rows[rows >= last - MAX_WIDTH * len(small) - 2]
    held = rows[inked[rows].mean(1) >= LINE_ROW]
    if not len(held):
        return None
    first, inner = int(held[0]), int(held[-1])
    # Straight: down each column the line's ink lies on one straight (maybe tilted) line, where
    # the top of a digit cropped tight (a 0's arc, a 5's hand-drawn bar) bends.
    rows_around = slice(max(first - 1, 0), inner + 2)
    weights = small[rows_around] * inked[rows_around]
    columns = np.flatnonzero(weights.sum(0) > 0)
    if len(columns) < 2:
        return None
    middle = (weights[:, columns] * np.arange(len(weights))[:, None]).sum(0) / weights[:, columns].sum(0)
    fitted = np.polyval(np.polyfit(columns, middle, 1), columns)
    if np.abs(middle - fitted).mean() > MAX_BEND:
        return None
    # A row of the copy more inside: the line's soft edge, which a copy's row holds in part.
    start, cut = int(first / shrink), min(h, int(np.ceil((inner + 2) / shrink)))
    crossing = (ink[min(cut, h - 1)] > 0) & (ink[start - 1] > 0) if start else np.zeros(w, dtype=bool)
    return start, cut, crossing
