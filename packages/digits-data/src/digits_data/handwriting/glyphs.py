"""The glyph table: each character's ways of being written, as pen strokes through control points
in a box one unit tall (x to the right, y down)."""

from dataclasses import dataclass

import numpy as np

from digits_core.contract import CLASSES

KINDS = ("known", "other_digit", "letter")
"""What a sample is: one of the model's digits, another digit, or a letter."""


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
