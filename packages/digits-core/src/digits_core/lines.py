"""Marks across a scan: a ruling, a fold, a scratch, a zigzag or a pen line across the page.

Such a mark touches the digit, so :func:`digits_core.ink.keep_digit` keeps it with the digit, and
the crop takes it in: the digit shrinks to make room for the mark's ends, and a straight line
reads as a stroke of its own (a 0 struck through looks like an 8). Two steps undo that:

- :func:`remove_lines` finds a solid straight line that runs from edge to edge of the image and
  well past the rest of the ink at both ends, and erases it, except where a stroke of the digit
  crosses it or runs beside it;
- :func:`digit_box` crops to the digit, leaving out the ends of any thin band of ink (a zigzag, a
  wavy or dotted line) that runs on to two opposite edges of the image. Within the digit the mark
  stays, as training's own marks across the digit do.

A digit's own strokes are left alone: they stop short of the paper's edge, or do not run past the
rest of the digit (the bar of a 5 in a tight crop), or are most of the ink (a 1, a cross).
"""

import numpy as np

from digits_core.ink import search_copy

SEARCH_SIDE = 64  # lines are searched for on a copy of at most this many pixels a side
ANGLES = np.deg2rad(np.arange(0.0, 180.0, 2.0))  # directions tried: 1 degree off drifts 0.5 px in 32
MIN_LENGTH = 0.5  # a line covers at least this share of the image's longer side ...
MIN_COVERED = 0.8  # ... and where it runs clear of the digit, ink along this share of it
MIN_OVERHANG = 0.15  # it runs past the rest of the ink by this share of the rest's extent, each end
MIN_REST = 0.3  # the rest has at least this share of the ink and this share of the line's length
MAX_WIDTH = 4.0  # a line is at most this many pixels wide (of the search copy): a stroke, not a blot
MAX_LINES = 2
EDGE = 0.06  # each end of a mark is at most this share of the longer side from the image's edge
BAND = 0.35  # a line of pixels across a band holds ink over at most this share of the digit's extent
MIN_RUN = 0.08  # a band runs past the digit by at least this share of the image's side, at each end


def remove_lines(ink: np.ndarray) -> np.ndarray:
    """``ink`` (H, W) in [0, 1] with up to MAX_LINES straight lines across the digit erased."""
    for _ in range(MAX_LINES):
        found = _find_line(ink)
        if found is None:
            break
        ink = _erase(ink, *found)
    return ink


def _find_line(ink: np.ndarray) -> tuple[float, float, float] | None:
    """The strongest line that passes the tests above: (angle, offset, half width) in ``ink``'s
    pixels, the line being the points p with |p . (cos a, sin a) - offset| <= half width."""
    small, shrink = search_copy(ink, SEARCH_SIDE)
    long_side = max(small.shape)
    edge = int(EDGE * long_side) + 1  # rows and columns within EDGE of the border
    sides = (small[:edge], small[-edge:], small[:, :edge], small[:, -edge:])
    if sum(bool((side > 0.25).any()) for side in sides) < 2:
        return None  # cheap exit: a line ends at two sides of the image (most images have no ink there)
    ys, xs = np.nonzero(small > 0.25)
    if len(ys) < 8:
        return None
    weights = small[ys, xs]
    # A Hough transform: for each direction, the ink along each 1-pixel-wide band across the image.
    cos, sin = np.cos(ANGLES)[:, None], np.sin(ANGLES)[:, None]
    rho = xs[None, :] * cos + ys[None, :] * sin
    span = int(np.ceil(np.hypot(*small.shape))) + 2
    bins = np.rint(rho).astype(np.int64) + span
    votes = np.bincount(
        (np.arange(len(ANGLES))[:, None] * 2 * span + bins).ravel(),
        weights=np.broadcast_to(weights, bins.shape).ravel(),
        minlength=len(ANGLES) * 2 * span,
    ).reshape(len(ANGLES), 2 * span)
    if votes.max() < MIN_LENGTH * MIN_COVERED * long_side:
        return None  # no band holds enough ink for a line
    a, b = np.unravel_index(np.argmax(votes), votes.shape)
    row = votes[a]
    lo, hi = b, b
    while lo > 0 and row[lo - 1] >= 0.5 * row[b]:
        lo -= 1
    while hi + 1 < len(row) and row[hi + 1] >= 0.5 * row[b]:
        hi += 1
    if hi - lo + 1 > MAX_WIDTH:
        return None
    centre, half = (lo + hi) / 2 - span, (hi - lo + 1) / 2
    distance = np.abs(rho[a] - centre)
    # The rest of the ink is off the line by more than its soft edges, which run all its length.
    on_line, off_line = distance <= half, distance > half + 1.5
    along = -xs * sin[a, 0] + ys * cos[a, 0]  # position along the line
    t = along[on_line]
    t0, t1 = float(t.min()), float(t.max())
    rest = along[off_line]
    if t1 - t0 < MIN_LENGTH * long_side or weights[off_line].sum() < MIN_REST * weights.sum():
        return None
    r0, r1 = np.percentile(rest, [1, 99])  # a speck of noise far out does not count
    extent = r1 - r0
    if extent < MIN_REST * (t1 - t0) or min(r0 - t0, t1 - r1) < MIN_OVERHANG * extent:
        return None
    # Solid where it runs alone: a dotted line is not one, nor a digit's stroke that dots continue.
    alone = np.unique(np.rint(t[(t < r0) | (t > r1)]))
    if len(alone) < MIN_COVERED * (r0 - t0 + t1 - r1):
        return None
    # Its ends at opposite edges of the image (a corner counts as both of its edges): a ruling, a
    # fold or a scratch runs across the whole scan, where a pen stroke of the digit stops short of
    # the paper's margin, or, in a digit pushed into a corner, reaches two edges that meet.
    ends = np.array([[xs[on_line][i], ys[on_line][i]] for i in (np.argmin(t), np.argmax(t))])
    # Which of the left, top, right and bottom edges each end is near; rolled by two, the opposites.
    near = np.hstack([ends, np.array(small.shape[::-1]) - 1 - ends]) <= EDGE * long_side
    if not (near[0] & np.roll(near[1], 2)).any():
        return None
    # Back to ``ink``'s pixels: a pixel of the copy covers ``scale`` of them, centres included.
    # Half a pixel of the copy more on each side covers the direction's rounding to ANGLES.
    scale = 1.0 / shrink
    offset = centre * scale + (scale - 1) / 2 * (cos[a, 0] + sin[a, 0])
    return float(ANGLES[a]), offset, (half + 0.5) * scale + (scale - 1) / 2


def _erase(ink: np.ndarray, angle: float, offset: float, half_width: float) -> np.ndarray:
    """``ink`` without the line's band, except next to the digit's strokes.

    A band pixel with ink just outside the band, on either side, is kept: where a stroke crosses
    the line, so that no loop is cut open (an 8 cut twice reads as a 5), and where a stroke runs
    along it, wider than the line, so that the stroke is not taken with it.
    """
    h, w = ink.shape
    ys, xs = np.indices(ink.shape)
    normal = np.array([np.cos(angle), np.sin(angle)])
    distance = xs * normal[0] + ys * normal[1] - offset
    by, bx = np.nonzero(np.abs(distance) <= half_width)
    beside = np.zeros(len(by), dtype=bool)
    for side in (-1, 1):  # just outside the band, level with the pixel
        step = side * (half_width + 1.5) - distance[by, bx]
        sy = np.rint(by + step * normal[1]).astype(np.int64)
        sx = np.rint(bx + step * normal[0]).astype(np.int64)
        inside = (sy >= 0) & (sy < h) & (sx >= 0) & (sx < w)  # past the image's edge there is no ink
        beside |= inside & (ink[np.clip(sy, 0, h - 1), np.clip(sx, 0, w - 1)] > 0)
    out = ink.copy()
    out[by[~beside], bx[~beside]] = 0.0
    return out


def digit_box(ink: np.ndarray) -> tuple[slice, slice]:
    """The rows and columns of ``ink`` to crop to: where it holds ink, less the ends of a thin band
    that runs on to two opposite edges of the image (columns first, then rows within them)."""
    columns = _without_band_ends(ink.T, max(ink.shape))
    return _without_band_ends(ink[:, columns], max(ink.shape)), columns


def _without_band_ends(lines: np.ndarray, side: int) -> slice:
    """The span of ``lines`` (one array row per line of pixels) that holds ink, less a band's ends.

    A band's ends are runs of lines at both ends of the span, each reaching the image's edge and
    at least MIN_RUN of its side long, whose ink lies within the narrow range (at most BAND of
    the ink's extent across the lines) that the band's outermost lines hold. A digit alone at one
    edge (shifted, or cropped tight there) keeps all of itself.
    """
    mask = lines > 0
    held = np.flatnonzero(mask.any(1))
    start, stop = int(held[0]), int(held[-1]) + 1
    run = int(np.ceil(MIN_RUN * len(lines)))
    if start > EDGE * side or len(lines) - stop > EDGE * side or stop - start <= 2 * run:
        return slice(start, stop)
    across = np.flatnonzero(mask.any(0))
    limit = BAND * (across[-1] - across[0] + 1)

    def band_lines(order: np.ndarray) -> int:
        """How many lines, taken in ``order`` from one end, hold ink only within the band there."""
        inked = np.flatnonzero(mask[order[:run]].any(0))
        if inked[-1] - inked[0] + 1 > limit:
            return 0  # too wide for a band: the digit itself reaches the edge
        slack = (inked[-1] - inked[0]) // 4 + 1  # a zigzag's next turns, a wavy line's next swing
        low, high = max(inked[0] - slack, 0), inked[-1] + slack + 1
        outside = mask[order][:, np.r_[:low, high : mask.shape[1]]].any(1)
        return int(np.argmax(outside)) if outside.any() else len(order)

    begin = start + band_lines(np.arange(start, stop))
    end = stop - band_lines(np.arange(stop - 1, start - 1, -1))
    if begin < end and min(begin - start, stop - end) >= run:
        return slice(begin, end)
    return slice(start, stop)
