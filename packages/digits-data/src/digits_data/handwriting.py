"""A generated set of handwriting that is not MNIST: digits and letters drawn from pen strokes.

Each character has one or more glyphs (ways people write it: an 8 as two stacked loops or as one
figure-eight stroke, a 7 with or without a bar, ...), each a few strokes through control points
in a box one unit tall. Every sample jitters the control points, then varies the slant (shear),
pen width and pressure, size and position in the frame, rotation and polarity, and is rendered
anti-aliased on paper with grain, uneven light and sometimes blur, as a PNG or JPEG file of 96 to
160 pixels. The files go through the product's own preprocessing like any photo or scan.

Everything comes from one seed: the same seed and count give the same bytes. Each sample draws
from its own generator, seeded by (seed, glyph, sample number), so asking for more samples per
glyph keeps the first ones unchanged.
"""

import io
import itertools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from digits_data import atomic
from digits_data.checks import check_int
from digits_data.contract import CLASSES, MANIFEST_NAME
from digits_data.dataset import sha256_file
from digits_data.errors import DigitsError

FORMAT = "digits-handwriting/1"  # the manifest's "format"
DEFAULT_SEED = 20251125
DEFAULT_PER_STYLE = 24
SHEET_NAME = "sheet.png"

KINDS = ("known", "other_digit", "letter")
"""What a sample is: one of the model's digits, another digit, or a letter."""

# Each rendering axis and its levels; every glyph gets them in balanced, shuffled proportions.
SLANTS = {"upright": (-0.06, 0.06), "right": (0.22, 0.45), "left": (-0.32, -0.16)}  # shear x per y
PENS = {"thin": (0.035, 0.05), "medium": (0.07, 0.095), "thick": (0.12, 0.16)}  # width / glyph height
SIZES = {"small": (0.3, 0.42), "medium": (0.5, 0.62), "large": (0.7, 0.82)}  # glyph height / frame
POLARITIES = ("dark-on-light", "light-on-dark")
AXES = {"slant": tuple(SLANTS), "pen": tuple(PENS), "size": tuple(SIZES), "polarity": POLARITIES}

JITTER = 0.022  # standard deviation of each control point's offset, in glyph heights
ROTATION = 8.0  # degrees, uniform in +-ROTATION
SUPERSAMPLE = 3  # strokes are drawn this many times larger, then reduced: anti-aliasing


def kind_of(label: str) -> str:
    """What a character is (one of :data:`KINDS`): one of the model's digits, another digit, or a letter."""
    if not label.isdigit():
        return "letter"
    return "known" if int(label) in CLASSES else "other_digit"


@dataclass(frozen=True)
class Stroke:
    """One pen stroke: a polyline (``line``), a smooth curve through the points (``curve``), or a
    closed smooth curve (``loop``). Points are (x, y), y down, in a box one unit tall."""

    kind: str
    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Glyph:
    """One way of writing a character."""

    label: str  # the digit or letter, e.g. "8" or "a"
    name: str  # the style of this glyph, e.g. "two-loops"
    cursive: bool  # written in one joined or looped movement rather than print strokes
    strokes: tuple[Stroke, ...]

    @property
    def kind(self) -> str:
        """``known`` for the model's digits, ``other_digit`` for the rest, ``letter`` otherwise."""
        return kind_of(self.label)

    @property
    def key(self) -> str:
        """A file-name-safe, case-safe identifier, e.g. ``digit-8-two-loops`` or ``lower-a-print``."""
        if self.label.isdigit():
            prefix = f"digit-{self.label}"
        else:
            prefix = f"{'upper' if self.label.isupper() else 'lower'}-{self.label.lower()}"
        return f"{prefix}-{self.name}"


def _line(*points: tuple[float, float]) -> Stroke:
    return Stroke("line", points)


def _curve(*points: tuple[float, float]) -> Stroke:
    return Stroke("curve", points)


def _oval(cx: float, cy: float, rx: float, ry: float, n: int = 8, start: float = -90.0) -> Stroke:
    """A closed loop through ``n`` points on an ellipse, starting at ``start`` degrees (-90 = top)."""
    angles = np.radians(start + 360.0 * np.arange(n) / n)
    points = tuple((cx + rx * float(np.cos(a)), cy + ry * float(np.sin(a))) for a in angles)
    return Stroke("loop", points)


def _glyphs() -> tuple[Glyph, ...]:
    """The glyph table. Coordinates: x to the right, y down, the character one unit tall."""
    g = []

    def add(label: str, name: str, *strokes: Stroke, cursive: bool = False) -> None:
        g.append(Glyph(label, name, cursive, strokes))

    # The model's digits.
    add("0", "oval", _oval(0.3, 0.5, 0.27, 0.48))
    add(
        "0",
        "open",
        _curve(
            (0.4, 0.06),
            (0.26, 0.02),
            (0.08, 0.2),
            (0.03, 0.55),
            (0.14, 0.88),
            (0.32, 0.98),
            (0.52, 0.84),
            (0.58, 0.48),
            (0.5, 0.15),
        ),
    )
    add(
        "0",
        "looped",
        _curve(
            (0.36, 0.03),
            (0.14, 0.12),
            (0.03, 0.45),
            (0.1, 0.84),
            (0.3, 0.98),
            (0.5, 0.86),
            (0.58, 0.5),
            (0.5, 0.14),
            (0.3, 0.04),
            (0.2, 0.16),
        ),
        cursive=True,
    )
    add(
        "5",
        "separate-bar",
        _line((0.14, 0.04), (0.1, 0.46)),
        _curve((0.1, 0.46), (0.3, 0.38), (0.5, 0.48), (0.57, 0.68), (0.48, 0.89), (0.27, 0.97), (0.05, 0.88)),
        _line((0.15, 0.04), (0.56, 0.02)),
    )
    add(
        "5",
        "joined-bar",
        _line((0.58, 0.03), (0.15, 0.05), (0.1, 0.46)),
        _curve((0.1, 0.46), (0.32, 0.37), (0.52, 0.48), (0.58, 0.7), (0.46, 0.9), (0.26, 0.97), (0.04, 0.87)),
        cursive=True,
    )
    add("8", "two-loops", _oval(0.3, 0.26, 0.2, 0.23), _oval(0.3, 0.72, 0.26, 0.26))
    add(
        "8",
        "figure-eight",
        _curve(
            (0.5, 0.14),
            (0.32, 0.02),
            (0.1, 0.14),
            (0.13, 0.33),
            (0.3, 0.48),
            (0.52, 0.65),
            (0.55, 0.85),
            (0.3, 0.98),
            (0.06, 0.84),
            (0.1, 0.64),
            (0.3, 0.48),
            (0.47, 0.32),
            (0.5, 0.14),
            (0.42, 0.05),
        ),
        cursive=True,
    )
    add(
        "8",
        "s-and-back",
        _curve((0.52, 0.13), (0.3, 0.02), (0.08, 0.16), (0.3, 0.48), (0.56, 0.76), (0.3, 0.98), (0.05, 0.8)),
        _curve((0.05, 0.8), (0.1, 0.62), (0.3, 0.48), (0.5, 0.32), (0.52, 0.13)),
    )
    # Other digits.
    add("1", "stick", _line((0.32, 0.02), (0.3, 0.98)))
    add("1", "flag", _line((0.14, 0.2), (0.34, 0.02), (0.3, 0.98)))
    add(
        "1", "flag-and-base", _line((0.16, 0.2), (0.36, 0.02), (0.34, 0.98)), _line((0.08, 0.98), (0.6, 0.97))
    )
    add(
        "2",
        "print",
        _curve((0.05, 0.24), (0.24, 0.03), (0.48, 0.1), (0.5, 0.34), (0.3, 0.62), (0.04, 0.97)),
        _line((0.04, 0.97), (0.6, 0.96)),
    )
    add(
        "2",
        "looped",
        _curve(
            (0.05, 0.24),
            (0.24, 0.03),
            (0.48, 0.1),
            (0.5, 0.34),
            (0.3, 0.62),
            (0.1, 0.86),
            (0.08, 0.98),
            (0.2, 0.93),
            (0.18, 0.85),
            (0.34, 0.94),
            (0.62, 0.96),
        ),
        cursive=True,
    )
    add(
        "3",
        "round",
        _curve((0.06, 0.13), (0.3, 0.02), (0.5, 0.14), (0.45, 0.37), (0.22, 0.48)),
        _curve((0.22, 0.48), (0.5, 0.58), (0.55, 0.8), (0.3, 0.98), (0.04, 0.87)),
    )
    add(
        "3",
        "flat-top",
        _line((0.06, 0.04), (0.54, 0.04), (0.24, 0.42)),
        _curve((0.24, 0.42), (0.5, 0.52), (0.57, 0.76), (0.32, 0.98), (0.04, 0.88)),
    )
    add("4", "closed", _line((0.42, 0.02), (0.05, 0.64), (0.62, 0.64)), _line((0.42, 0.02), (0.42, 0.98)))
    add("4", "open", _line((0.1, 0.02), (0.06, 0.56), (0.6, 0.56)), _line((0.46, 0.12), (0.46, 0.98)))
    add(
        "6",
        "round",
        _curve(
            (0.52, 0.07),
            (0.3, 0.02),
            (0.1, 0.25),
            (0.05, 0.62),
            (0.16, 0.92),
            (0.35, 0.98),
            (0.55, 0.8),
            (0.5, 0.56),
            (0.3, 0.5),
            (0.08, 0.62),
        ),
    )
    add(
        "6",
        "straight",
        _curve((0.45, 0.02), (0.2, 0.4), (0.08, 0.72)),
        _oval(0.28, 0.74, 0.22, 0.24, start=180),
    )
    add("7", "plain", _line((0.04, 0.05), (0.58, 0.04), (0.22, 0.98)))
    add("7", "barred", _line((0.04, 0.05), (0.58, 0.04), (0.22, 0.98)), _line((0.16, 0.52), (0.54, 0.5)))
    add("9", "straight", _oval(0.3, 0.27, 0.24, 0.25, start=0), _line((0.54, 0.2), (0.5, 0.98)))
    add(
        "9",
        "curly",
        _oval(0.3, 0.27, 0.24, 0.25, start=0),
        _curve((0.54, 0.22), (0.53, 0.62), (0.42, 0.93), (0.22, 0.97), (0.08, 0.86)),
    )
    # Capital letters.
    add("A", "print", _line((0.02, 0.98), (0.33, 0.02), (0.64, 0.98)), _line((0.15, 0.62), (0.52, 0.62)))
    add(
        "B",
        "print",
        _line((0.08, 0.02), (0.08, 0.98)),
        _curve((0.08, 0.03), (0.36, 0.03), (0.5, 0.14), (0.48, 0.36), (0.3, 0.47), (0.08, 0.48)),
        _curve((0.08, 0.48), (0.4, 0.5), (0.58, 0.64), (0.56, 0.86), (0.38, 0.97), (0.08, 0.97)),
    )
    add(
        "C",
        "print",
        _curve((0.6, 0.15), (0.36, 0.02), (0.1, 0.14), (0.02, 0.5), (0.1, 0.86), (0.36, 0.98), (0.6, 0.86)),
    )
    add(
        "E",
        "print",
        _line((0.55, 0.02), (0.06, 0.02), (0.06, 0.98), (0.57, 0.98)),
        _line((0.06, 0.5), (0.45, 0.5)),
    )
    add(
        "H",
        "print",
        _line((0.06, 0.02), (0.06, 0.98)),
        _line((0.58, 0.02), (0.58, 0.98)),
        _line((0.06, 0.5), (0.58, 0.5)),
    )
    add(
        "K",
        "print",
        _line((0.08, 0.02), (0.08, 0.98)),
        _line((0.56, 0.02), (0.08, 0.56)),
        _line((0.22, 0.42), (0.6, 0.98)),
    )
    add("L", "print", _line((0.08, 0.02), (0.08, 0.98), (0.55, 0.98)))
    add("M", "print", _line((0.04, 0.98), (0.1, 0.02), (0.38, 0.62), (0.66, 0.02), (0.72, 0.98)))
    add("N", "print", _line((0.06, 0.98), (0.06, 0.02), (0.58, 0.98), (0.58, 0.02)))
    add("O", "print", _oval(0.42, 0.5, 0.4, 0.48))
    add(
        "P",
        "print",
        _line((0.08, 0.98), (0.08, 0.02)),
        _curve((0.08, 0.03), (0.38, 0.03), (0.54, 0.16), (0.52, 0.36), (0.34, 0.48), (0.08, 0.5)),
    )
    add(
        "R",
        "print",
        _line((0.08, 0.98), (0.08, 0.02)),
        _curve((0.08, 0.03), (0.38, 0.03), (0.54, 0.16), (0.52, 0.36), (0.34, 0.48), (0.08, 0.5)),
        _line((0.3, 0.5), (0.6, 0.98)),
    )
    add(
        "S",
        "print",
        _curve(
            (0.56, 0.12),
            (0.32, 0.02),
            (0.08, 0.12),
            (0.1, 0.36),
            (0.44, 0.55),
            (0.56, 0.78),
            (0.36, 0.98),
            (0.04, 0.88),
        ),
    )
    add("T", "print", _line((0.02, 0.03), (0.64, 0.03)), _line((0.33, 0.03), (0.33, 0.98)))
    add(
        "U",
        "print",
        _curve((0.06, 0.02), (0.06, 0.4), (0.1, 0.8), (0.32, 0.98), (0.54, 0.8), (0.58, 0.4), (0.58, 0.02)),
    )
    add("X", "print", _line((0.04, 0.02), (0.6, 0.98)), _line((0.6, 0.02), (0.04, 0.98)))
    add("Z", "print", _line((0.04, 0.03), (0.58, 0.03), (0.04, 0.97), (0.6, 0.97)))
    # Small letters, each drawn one unit tall (the preprocessing crops to the ink anyway).
    add("a", "print", _oval(0.32, 0.56, 0.3, 0.4, start=-30), _line((0.64, 0.14), (0.64, 0.98)))
    add(
        "a",
        "cursive",
        _curve((0.6, 0.26), (0.38, 0.08), (0.12, 0.24), (0.05, 0.64), (0.24, 0.95), (0.5, 0.8), (0.64, 0.16)),
        _curve((0.64, 0.16), (0.63, 0.75), (0.72, 0.96), (0.86, 0.88)),
        cursive=True,
    )
    add(
        "b",
        "print",
        _line((0.08, 0.0), (0.08, 0.98)),
        _curve((0.08, 0.6), (0.3, 0.42), (0.52, 0.52), (0.56, 0.78), (0.34, 0.98), (0.08, 0.9)),
    )
    add("d", "print", _oval(0.28, 0.7, 0.26, 0.28, start=-20), _line((0.54, 0.0), (0.54, 0.98)))
    add(
        "e",
        "cursive",
        _curve(
            (0.06, 0.55),
            (0.58, 0.5),
            (0.54, 0.18),
            (0.32, 0.05),
            (0.08, 0.3),
            (0.08, 0.74),
            (0.32, 0.97),
            (0.66, 0.84),
        ),
        cursive=True,
    )
    add(
        "g",
        "looped",
        _oval(0.32, 0.27, 0.26, 0.25, start=0),
        _curve((0.58, 0.1), (0.58, 0.7), (0.44, 0.98), (0.2, 0.9), (0.28, 0.72), (0.66, 0.64)),
        cursive=True,
    )
    add(
        "h",
        "print",
        _line((0.1, 0.0), (0.1, 1.0)),
        _curve((0.1, 0.62), (0.3, 0.42), (0.5, 0.45), (0.56, 0.66), (0.56, 1.0)),
    )
    add(
        "n",
        "print",
        _line((0.08, 0.02), (0.08, 0.98)),
        _curve((0.08, 0.3), (0.34, 0.04), (0.6, 0.2), (0.64, 0.98)),
    )
    add(
        "r",
        "print",
        _line((0.1, 0.02), (0.1, 0.98)),
        _curve((0.1, 0.4), (0.3, 0.08), (0.55, 0.04), (0.64, 0.12)),
    )
    add(
        "t",
        "print",
        _curve((0.3, 0.0), (0.3, 0.84), (0.42, 0.98), (0.62, 0.9)),
        _line((0.05, 0.3), (0.6, 0.3)),
    )
    add("y", "print", _line((0.04, 0.02), (0.36, 0.58)), _line((0.66, 0.02), (0.22, 0.98)))
    return tuple(g)


GLYPHS: tuple[Glyph, ...] = _glyphs()
"""Every glyph the generator draws, in a fixed order (the order of the files in the manifest)."""


@dataclass(frozen=True)
class Sample:
    """One generated image and its label."""

    file: str
    label: str
    kind: str
    styles: dict[str, str]  # glyph, cursive, slant, pen, size, polarity
    drawn: dict[str, float]  # the numbers drawn for it: frame side, glyph height, pen width, shear, rotation
    image: bytes


def _spline(points: np.ndarray, closed: bool, steps: int = 20) -> np.ndarray:
    """Points along a centripetal Catmull-Rom curve through ``points`` (no overshoot, no cusps)."""
    if closed:
        padded = np.vstack([points[-1:], points, points[:2]])
    else:
        padded = np.vstack([2 * points[0] - points[1], points, 2 * points[-1] - points[-2]])
    out = []
    for i in range(len(padded) - 3):
        p0, p1, p2, p3 = padded[i : i + 4]
        t1 = np.linalg.norm(p1 - p0) ** 0.5 + 1e-6
        t2 = t1 + np.linalg.norm(p2 - p1) ** 0.5 + 1e-6
        t3 = t2 + np.linalg.norm(p3 - p2) ** 0.5 + 1e-6
        t = np.linspace(t1, t2, steps, endpoint=False)[:, None]
        a1 = (t1 - t) / t1 * p0 + t / t1 * p1
        a2 = (t2 - t) / (t2 - t1) * p1 + (t - t1) / (t2 - t1) * p2
        a3 = (t3 - t) / (t3 - t2) * p2 + (t - t2) / (t3 - t2) * p3
        b1 = (t2 - t) / t2 * a1 + t / t2 * a2
        b2 = (t3 - t) / (t3 - t1) * a2 + (t - t1) / (t3 - t1) * a3
        out.append((t2 - t) / (t2 - t1) * b1 + (t - t1) / (t2 - t1) * b2)
    out.append(padded[-2 if not closed else 1][None])  # end on the last point (or close the loop)
    return np.vstack(out)


def _polylines(glyph: Glyph, rng: np.random.Generator) -> list[np.ndarray]:
    """The glyph's strokes as dense polylines, with every control point jittered.

    A point shared by two strokes (a corner, or where a bar meets a stem) moves the same way in
    both, so the strokes stay joined as the writer joined them.
    """
    shared: dict[tuple[float, float], np.ndarray] = {}
    lines = []
    for stroke in glyph.strokes:
        points = []
        for p in stroke.points:
            if p not in shared:
                shared[p] = np.asarray(p) + rng.normal(0.0, JITTER, 2)
            points.append(shared[p])
        array = np.array(points)
        if stroke.kind == "line":
            # A pen's straight line is a gentle curve: a bowed midpoint on every segment.
            bowed = [array[0]]
            for a, b in itertools.pairwise(array):
                normal = np.array([a[1] - b[1], b[0] - a[0]])
                bowed += [(a + b) / 2 + normal * rng.normal(0.0, 0.03), b]
            lines += [
                _spline(np.array(bowed[i : i + 3]), closed=False, steps=12)
                for i in range(0, len(bowed) - 2, 2)
            ]
        else:
            lines.append(_spline(array, closed=stroke.kind == "loop"))
    return lines


def _draw(
    glyph: Glyph, rng: np.random.Generator, styles: dict[str, str]
) -> tuple[Image.Image, dict[str, float]]:
    """Render one sample of ``glyph`` with the given style levels; return the image and its numbers."""
    lines = _polylines(glyph, rng)
    aspect = rng.uniform(0.85, 1.15)
    shear = rng.uniform(*SLANTS[styles["slant"]])
    angle = np.radians(rng.uniform(-ROTATION, ROTATION))
    cos, sin = np.cos(angle), np.sin(angle)
    transform = np.array([[cos, -sin], [sin, cos]]) @ np.array([[aspect, -shear], [0.0, 1.0]])
    lines = [line @ transform.T for line in lines]

    side = int(rng.integers(96, 161))
    height = rng.uniform(*SIZES[styles["size"]]) * side  # of the glyph before rotation, in pixels
    pen = rng.uniform(*PENS[styles["pen"]]) * height
    every = np.vstack(lines)
    low, high = every.min(0), every.max(0)
    scale = height / max(high[1] - low[1], 1e-6)
    extent = (high - low) * scale + pen
    if extent.max() > side * 0.9:  # wide glyphs at a large size: shrink to fit the frame
        shrink = side * 0.9 / extent.max()
        scale, pen = scale * shrink, pen * shrink
        extent = (high - low) * scale + pen
    margin = 0.04 * side  # a little paper all round, as on any photo or scan
    offset = margin + rng.uniform(0.0, np.maximum(side - 2 * margin - extent, 0.0)) + pen / 2

    big = side * SUPERSAMPLE
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    pressure_phase, pressure_speed = rng.uniform(0, 2 * np.pi), rng.uniform(2.0, 5.0)
    for line in lines:
        xy = ((line - low) * scale + offset) * SUPERSAMPLE
        # Pressure: the width swells and thins along the stroke, drawn in short runs with round joins.
        runs = np.array_split(np.arange(len(xy)), max(1, len(xy) // 6))
        for k, run in enumerate(runs):
            segment = xy[max(run[0] - 1, 0) : run[-1] + 1]
            width = (
                pen
                * SUPERSAMPLE
                * (1.0 + 0.18 * np.sin(pressure_phase + pressure_speed * k / len(runs) * np.pi))
            )
            points = [tuple(p) for p in segment]
            if len(points) > 1:
                draw.line(points, fill=255, width=max(1, round(width)), joint="curve")
            for x, y in (points[0], points[-1]):
                r = width / 2
                draw.ellipse((x - r, y - r, x + r, y + r), fill=255)
    coverage = np.asarray(canvas.resize((side, side), Image.Resampling.BOX), dtype=np.float32) / 255.0
    image = _on_paper(coverage, styles["polarity"], rng)
    numbers = {
        "side_px": side,
        "height_px": round(float(height), 1),
        "pen_px": round(float(pen), 2),
        "shear": round(float(shear), 3),
        "rotation_deg": round(float(np.degrees(angle)), 2),
    }
    return image, numbers


def _on_paper(coverage: np.ndarray, polarity: str, rng: np.random.Generator) -> Image.Image:
    """Lay ink of the given coverage (0-1 per pixel) on paper with grain and uneven light."""
    side = coverage.shape[0]
    ys, xs = np.mgrid[0:side, 0:side] / side
    light = 1.0 + rng.uniform(-0.08, 0.08) * (xs - 0.5) + rng.uniform(-0.08, 0.08) * (ys - 0.5)
    grain = rng.normal(0.0, rng.uniform(0.005, 0.03), (side, side))
    if polarity == "dark-on-light":
        paper = np.array(rng.choice([(0.97, 0.96, 0.93), (0.92, 0.92, 0.9), (0.99, 0.99, 0.99)]))
        ink = np.array(rng.choice([(0.08, 0.08, 0.1), (0.1, 0.15, 0.45), (0.25, 0.25, 0.27)]))
    else:  # chalk or white ink on a dark board
        paper = np.array(rng.choice([(0.1, 0.1, 0.1), (0.13, 0.2, 0.16), (0.02, 0.02, 0.02)]))
        ink = np.array(rng.choice([(0.95, 0.95, 0.95), (0.85, 0.85, 0.8)]))
    strength = rng.uniform(0.8, 1.0)  # ink never quite covers the paper
    alpha = (coverage * strength)[..., None]
    rgb = (paper * light[..., None] + grain[..., None]) * (1.0 - alpha) + ink * alpha
    image = Image.fromarray(np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8), "RGB")
    if rng.random() < 0.3:  # out of focus
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.2)))
    if rng.random() < 0.5:  # a gray scan rather than a colour photo
        image = image.convert("L")
    return image


def _level(axis: str, seed: int, glyph: int, i: int) -> str:
    """The level of ``axis`` for sample ``i`` of a glyph: every run of as many samples as there are
    levels uses each level once, in its own shuffled order; so any count is balanced to within
    one, and the first samples do not depend on how many are asked for."""
    levels = AXES[axis]
    block, position = divmod(i, len(levels))
    order = np.random.default_rng([seed, glyph, list(AXES).index(axis), block]).permutation(len(levels))
    return levels[order[position]]


def generate(per_style: int = DEFAULT_PER_STYLE, seed: int = DEFAULT_SEED) -> list[Sample]:
    """Draw ``per_style`` samples of every glyph in :data:`GLYPHS`; return them in glyph order.

    Within each glyph, every level of every axis (slant, pen, size, polarity) is used equally
    often, to within one. About a quarter of the files are JPEG, the rest PNG.
    """
    check_int("per_style", per_style, 1, 10_000)
    check_int("seed", seed, 0, 2**32 - 1)
    samples = []
    for g, glyph in enumerate(GLYPHS):
        for i in range(per_style):
            rng = np.random.default_rng([seed, g, i, len(AXES)])
            styles = {"glyph": glyph.name, "cursive": "cursive" if glyph.cursive else "print"}
            styles |= {axis: _level(axis, seed, g, i) for axis in AXES}
            image, drawn = _draw(glyph, rng, styles)
            buffer = io.BytesIO()
            if rng.random() < 0.25:
                image.save(buffer, format="JPEG", quality=int(rng.integers(75, 95)))
                suffix = "jpg"
            else:
                image.save(buffer, format="PNG")
                suffix = "png"
            name = f"{glyph.key}-{i:03d}.{suffix}"
            samples.append(Sample(name, glyph.label, glyph.kind, styles, drawn, buffer.getvalue()))
    return samples


STEP = "digits-data handwriting"


def write(
    output_dir: str | os.PathLike, per_style: int = DEFAULT_PER_STYLE, seed: int = DEFAULT_SEED
) -> dict:
    """Generate the set into ``output_dir``: image files, ``sheet.png`` and ``manifest.json``.

    The files are written to a scratch folder that then replaces ``output_dir`` whole, so the
    folder holds one complete set or the previous one. A folder that the generator did not write
    (see :func:`digits_data.atomic.atomic_dir`) is refused rather than replaced. Returns the manifest.
    """
    samples = generate(per_style, seed)
    entries = []
    with atomic.atomic_dir(output_dir, STEP, legacy=_listed) as scratch:
        for sample in samples:
            (scratch / sample.file).write_bytes(sample.image)
            entry = {"file": sample.file, "label": sample.label, "kind": sample.kind, "styles": sample.styles}
            entries.append(entry | {"drawn": sample.drawn, "sha256": sha256_file(scratch / sample.file)})
        _contact_sheet(samples).save(scratch / SHEET_NAME, format="PNG")
        manifest = {
            "format": FORMAT,
            "seed": seed,
            "per_style": per_style,
            "counts": {kind: sum(s.kind == kind for s in samples) for kind in KINDS},
            "axes": {axis: list(levels) for axis, levels in AXES.items()},
            "sheet": SHEET_NAME,
            "samples": entries,
        }
        (scratch / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def _listed(folder: Path) -> set[str]:
    """What the manifest of a set (written before folders had records) accounts for."""
    manifest = _read_manifest(folder / MANIFEST_NAME)
    try:
        return {MANIFEST_NAME, SHEET_NAME, *(entry["file"] for entry in manifest["samples"])}
    except (TypeError, KeyError):
        return set()


def _read_manifest(path: Path) -> dict | None:
    """The manifest of a generated set at ``path``; None if it is missing, not JSON or of another format."""
    manifest = atomic.read_json(path)
    return manifest if isinstance(manifest, dict) and manifest.get("format") == FORMAT else None


HANDWRITING_HINT = "run `make handwriting` (or `digits-data handwriting`) to create it"


def load_manifest(directory: str | os.PathLike) -> dict:
    """Read a generated set's ``manifest.json``; raise :class:`DigitsError` naming what to run.

    Checks that the manifest is whole (every sample with a plain file name, a label that is one
    digit or letter, the kind that label is, and every style tag) and that every listed file
    exists with its recorded sha256: whoever reads the set can then rely on each field.
    """
    directory = Path(directory)
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise DigitsError(f"{path} does not exist: {HANDWRITING_HINT}")
    manifest = _read_manifest(path)
    if manifest is None:
        raise DigitsError(f"{path} is not the manifest of a generated handwriting set: {HANDWRITING_HINT}")
    edited = f"it was edited; delete {directory} and run `make handwriting` (or `digits-data handwriting`)"
    problem = _manifest_problem(manifest)
    if problem:
        raise DigitsError(f"{path} {problem}: {edited}")
    for entry in manifest["samples"]:
        file = directory / entry["file"]
        if not file.is_file():
            raise DigitsError(f"{file} is listed in {path} but missing: {HANDWRITING_HINT}")
        if sha256_file(file) != entry["sha256"]:
            raise DigitsError(f"{file} does not match its sha256 in {path}: {HANDWRITING_HINT}")
    return manifest


STYLE_TAGS = ("glyph", "cursive", *AXES)
"""The style tags every sample carries: its glyph, print or cursive, and its level of each axis."""


def _manifest_problem(manifest: dict) -> str | None:
    """What is wrong with a handwriting manifest's fields (None: nothing), as the end of a sentence."""
    for key, kind in (("seed", int), ("per_style", int), ("sheet", str), ("samples", list)):
        if not isinstance(manifest.get(key), kind):
            return f"has no {key!r} {kind.__name__}"
    if not _plain_name(manifest["sheet"]):
        return f"names the sheet {manifest['sheet']!r}, not a file of the set"
    if not manifest["samples"]:
        return "lists no samples"
    for n, entry in enumerate(manifest["samples"]):
        if not isinstance(entry, dict):
            return f"has sample {n} that is not an object: {entry!r}"
        file, label, styles = entry.get("file"), entry.get("label"), entry.get("styles")
        where = f"has sample {n} ({file!r})"
        if not _plain_name(file) or not isinstance(entry.get("sha256"), str):
            return f"{where} without a plain file name and its sha256"
        if not isinstance(label, str) or len(label) != 1 or not label.isascii() or not label.isalnum():
            return f"{where} labelled {label!r}, not one digit or letter"
        if entry.get("kind") != kind_of(label):
            return f"{where} of kind {entry.get('kind')!r} where its label {label!r} is {kind_of(label)!r}"
        if not isinstance(styles, dict) or not all(isinstance(styles.get(tag), str) for tag in STYLE_TAGS):
            return f"{where} without every style tag ({', '.join(STYLE_TAGS)})"
    return None


def _plain_name(name: object) -> bool:
    """True for a file name inside the set's folder (no folder part, not hidden)."""
    return isinstance(name, str) and bool(name) and Path(name).name == name and not name.startswith(".")


SHEET_COLUMNS = 16
SHEET_CELL = 64  # pixels per sample on the contact sheet
SHEET_PER_GLYPH = {"known": 4, "other_digit": 2, "letter": 1}  # samples shown of each glyph


def _contact_sheet(samples: Sequence[Sample]) -> Image.Image:
    """A grid of samples as the files look, a band per kind: the model's digits, other digits, letters."""
    from PIL import ImageFont

    font = ImageFont.load_default(size=14)
    bands = []
    for kind in KINDS:
        shown: dict[str, int] = {}
        tiles = []
        for sample in samples:
            key = sample.file.rsplit("-", 1)[0]
            if sample.kind == kind and shown.get(key, 0) < SHEET_PER_GLYPH[kind]:
                shown[key] = shown.get(key, 0) + 1
                tiles.append(sample)
        bands.append((kind, tiles))
    header = 22
    height = sum(header + -(-len(tiles) // SHEET_COLUMNS) * SHEET_CELL for _, tiles in bands)
    sheet = Image.new("RGB", (SHEET_COLUMNS * SHEET_CELL, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    y = 0
    titles = {"known": "0, 5 and 8", "other_digit": "other digits", "letter": "letters"}
    for kind, tiles in bands:
        draw.text((4, y + 3), titles[kind], fill=(0, 0, 0), font=font)
        y += header
        for n, sample in enumerate(tiles):
            with Image.open(io.BytesIO(sample.image)) as image:
                tile = image.convert("RGB").resize((SHEET_CELL - 2, SHEET_CELL - 2), Image.Resampling.LANCZOS)
            row, col = divmod(n, SHEET_COLUMNS)
            sheet.paste(tile, (col * SHEET_CELL + 1, y + row * SHEET_CELL + 1))
        y += -(-len(tiles) // SHEET_COLUMNS) * SHEET_CELL
    return sheet
