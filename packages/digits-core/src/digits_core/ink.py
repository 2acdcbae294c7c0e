"""Finding a digit's ink in a grayscale page: noise, uneven light, inverted margins and stray marks.

Each function works on a float image; :func:`digits_core.images.to_mnist` calls them in order:
:func:`noisy` decides whether to denoise, :func:`margins_of` finds margins of the other shade and
the paper's polarity, :func:`find_ink` removes the background, and :func:`keep_digit` drops specks
(after :func:`digits_core.lines.remove_lines` has erased lines across the page).
"""

import numpy as np
from PIL import Image, ImageFilter

MARGIN_MIN, MARGIN_MAX = 0.08, 0.34  # margins along two opposite edges, each this share of the side
MARGIN_PAPER = 0.6  # of the lines between two margins, at least this share has the paper's shade
NOISE_LEVEL = 0.02  # a median step between neighbours above this share of the range is noise
BACKGROUND_SIDE = 24  # the background is estimated at this resolution (long side, pixels)
MARGIN_EDGE = 2  # pixels each side of a light margin's border that are read as neither ink nor paper
MIN_PIECE = 0.08  # pieces of ink with less than this share of the largest piece's ink are specks
BACKGROUND_PERCENTILE = 20  # the background is this percentile of each neighbourhood ...
PAPER_PERCENTILE, PAPER_MARGIN = 2, 0.1  # ... but at most this near-minimum plus this margin


def noisy(gray: np.ndarray) -> bool:
    """True when the image has noise: most neighbouring pixels differ, or many pixels stand alone.

    The median of the differences between horizontal neighbours is 0 on clean paper whatever the
    digit (strokes are a minority of pixels), and grows with sensor noise. Salt and pepper leaves
    most pixels clean but makes single pixels far brighter or darker than all eight neighbours,
    which no stroke does, however thin.
    """
    spread = max(float(gray.max() - gray.min()), 1e-6)
    if np.median(np.abs(np.diff(gray, axis=1))) > NOISE_LEVEL * spread:
        return True
    h, w = gray.shape
    padded = np.pad(gray, 1, mode="edge")
    around = [
        padded[1 + dy : h + 1 + dy, 1 + dx : w + 1 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx
    ]
    alone = (gray - np.max(around, axis=0) > 0.3 * spread) | (np.min(around, axis=0) - gray > 0.3 * spread)
    return bool(alone.mean() > 0.005)


def find_ink(gray: np.ndarray, margins: list[tuple[slice, slice]]) -> np.ndarray:
    """Ink in [0, 1] from luminance that is mostly dark: light strokes over an uneven background.

    The background is a low percentile of each neighbourhood, not one level for the whole image,
    so gradients, shadows and haze go with it. Inside a heavy digit most of a neighbourhood is
    ink, and that percentile is ink too: subtracted, it would hollow the strokes out (a thick 8
    whose loops have closed reads as 0). So the background is at most a little above the
    neighbourhood's darkest pixels, which a few pixels of paper anywhere in it reach. It is
    estimated on a copy of at most BACKGROUND_SIDE pixels a side: cheap whatever the image's
    size, and smooth at the digit's scale. Light margins (part of the page inverted, as at a
    scan's edges) are read inverted.
    """
    h, w = gray.shape
    shrink = min(1.0, BACKGROUND_SIDE / max(h, w))
    size = (max(1, round(w * shrink)), max(1, round(h * shrink)))
    small = Image.fromarray(gray.astype(np.float32)).resize(size, Image.Resampling.BOX)
    window = 2 * (min(size) // 4) + 1  # odd, about half the shorter side

    def percentile(p: int) -> np.ndarray:
        return np.asarray(small.filter(ImageFilter.RankFilter(window, window * window * p // 100)))

    background = percentile(BACKGROUND_PERCENTILE)
    # No neighbourhood's darkest pixels are darker than the image's: where the background is
    # nowhere more than PAPER_MARGIN above those, the cap cannot bind (most images: only heavy
    # strokes and uneven light raise it), and the second filter is skipped.
    if background.max() > np.asarray(small).min() + PAPER_MARGIN:
        background = np.minimum(background, percentile(PAPER_PERCENTILE) + PAPER_MARGIN)
    background = np.asarray(Image.fromarray(background).resize((w, h), Image.Resampling.BILINEAR))
    ink = np.clip(gray - background, 0.0, None)
    for rows, cols in margins:
        # Inside a light margin the strokes are the dark pixels: ink is how far below the margin's
        # own level they are. Its inner border, half light and half dark, is neither.
        level = float(np.median(gray[rows, cols]))
        ink[rows, cols] = np.clip(level - gray[rows, cols], 0.0, None)
        across = cols if rows == slice(0, h) else rows  # the side the margin cuts
        border = across.stop if across.start == 0 else across.start
        lines = slice(max(border - MARGIN_EDGE, 0), border + MARGIN_EDGE)
        ink[(slice(None), lines) if across is cols else lines] = 0.0
    return ink / max(float(ink.max()), 1e-6)


def margins_of(gray: np.ndarray) -> tuple[list[tuple[slice, slice]], bool | None]:
    """The margins of the page and whether its paper is light (None: no margins to tell by).

    A scan often has margins of the other shade along two opposite edges: the column (or row)
    medians then go A..A B..B A..A, with each A run between MARGIN_MIN and MARGIN_MAX of the
    width. The digit crosses few pixels of any line, so B is the paper's shade; the A runs are
    the margins, to be read with the other polarity.
    """
    h, w = gray.shape
    for axis, length in ((0, w), (1, h)):  # columns (left and right margins), then rows
        light = np.median(gray, axis=axis) > 0.5
        first = int(np.argmax(light != light[0])) if not light.all() and light.any() else 0
        last = int(np.argmax(light[::-1] != light[-1])) if first else 0
        if light[0] != light[-1] or not all(
            MARGIN_MIN * length <= n <= MARGIN_MAX * length for n in (first, last)
        ):
            continue
        # Between the margins mostly the other shade (where strokes run along a line, its median
        # is theirs). That paper runs to the other two edges; a heavy digit between two strips of
        # background, which would look the same so far, does not.
        paper = not light[0]
        if np.mean(light[first : length - last] == paper) < MARGIN_PAPER:
            continue
        between = gray[:, first : length - last] if axis == 0 else gray[first : length - last].T
        if all((np.median(ends) > 0.5) == paper for ends in (between[:2], between[-2:])):
            spans = (slice(0, first), slice(length - last, length))
            return [(slice(0, h), span) if axis == 0 else (span, slice(0, w)) for span in spans], paper
    return [], None


def keep_digit(ink: np.ndarray) -> np.ndarray:
    """Ink of the digit's strokes: connected pieces of at least MIN_PIECE of the largest one's ink.

    Specks of noise and small marks apart from the digit would otherwise pull the crop and the
    centre of mass away from it.
    """
    labels = components(ink > 0)
    mass = np.bincount(labels.ravel(), weights=ink.ravel())
    mass[0] = 0.0  # label 0 is the background
    keep = mass >= MIN_PIECE * mass.max()
    return np.where(keep[labels], ink, 0.0)


def search_copy(ink: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """``ink`` box-averaged down to at most ``side`` pixels a side (``ink`` itself when no larger)
    and the factor it was shrunk by: a search on the copy costs the same whatever the image's size."""
    h, w = ink.shape
    shrink = min(1.0, side / max(h, w))
    if shrink == 1.0:
        return ink, shrink
    size = (max(1, round(w * shrink)), max(1, round(h * shrink)))
    return np.asarray(Image.fromarray(ink.astype(np.float32)).resize(size, Image.Resampling.BOX)), shrink


def components(mask: np.ndarray) -> np.ndarray:
    """Label the 8-connected pieces of ``mask``: 0 outside it, 1..K for the K pieces.

    Works on runs of set pixels along each row: runs in neighbouring rows that touch (diagonals
    included) are joined with a union-find, so the cost grows with the number of runs, not of
    pixels, and needs no library beyond numpy.
    """
    h, w = mask.shape
    edges = np.diff(np.pad(mask, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    rows, starts = np.nonzero(edges == 1)
    ends = np.nonzero(edges == -1)[1]  # exclusive; runs come in the same row-major order
    first = np.searchsorted(rows, np.arange(h + 1))  # runs of row r: first[r] .. first[r + 1]
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for r in range(1, h):
        i, j = first[r - 1], first[r]
        while i < first[r] and j < first[r + 1]:
            if starts[j] <= ends[i] and starts[i] <= ends[j]:  # overlap, or touch at a corner
                parent[root(j)] = root(i)
            if ends[i] < ends[j]:
                i += 1
            else:
                j += 1
    roots = np.array([root(i) for i in range(len(rows))], dtype=np.int64)
    numbers = np.unique(roots, return_inverse=True)[1] + 1
    labels = np.zeros(mask.shape, dtype=np.int64)
    lengths = ends - starts
    flat = np.repeat(rows * w + starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
    labels.ravel()[flat] = np.repeat(numbers, lengths)
    return labels
