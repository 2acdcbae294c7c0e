"""Printed characters: the typefaces that ship with matplotlib, rendered as a scan of print would be.

Digits set in type differ from handwriting in ways MNIST never shows: serifs, even strokes,
italics, outlined letters. Training sees the DejaVu and STIX faces (:data:`TRAINING_FACES`);
the degradation suite measures the Computer Modern faces (:data:`HELD_OUT_FACES`), plain and
outlined, which training never sees. The font files are read from matplotlib's installed data,
found without importing matplotlib.
"""

import importlib.util
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from digits_core.errors import DigitsError

TRAINING_FACES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSerif-Italic.ttf",
    "STIXGeneral.ttf",
    "STIXGeneralBol.ttf",
    "STIXGeneralItalic.ttf",
)
HELD_OUT_FACES = ("cmr10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmb10.ttf", "cmti10.ttf")
SIZE = 72  # font size in pixels; the preprocessing scales each character to fit 20x20 anyway


def font_dir() -> Path:
    """matplotlib's folder of TrueType fonts; raises :class:`DigitsError` when it is not installed."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise DigitsError("typefaces come from matplotlib's fonts: pip install matplotlib")
    return Path(spec.submodule_search_locations[0]) / "mpl-data" / "fonts" / "ttf"


def render(face: str, character: str, rng: np.random.Generator, outlined: bool = False) -> Image.Image:
    """``character`` in ``face`` on a grey-level page: random size, position, small rotation, pen
    weight and polarity. ``outlined`` draws only the outline of each stroke, as outlined type."""
    font = ImageFont.truetype(str(font_dir() / face), round(SIZE * rng.uniform(0.8, 1.2)))
    side = 2 * SIZE
    canvas = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(canvas)
    centre = (side / 2 + rng.uniform(-8, 8), side / 2 + rng.uniform(-8, 8))
    if outlined:
        draw.text(centre, character, fill=255, font=font, anchor="mm", stroke_width=3, stroke_fill=255)
        draw.text(centre, character, fill=0, font=font, anchor="mm", stroke_width=1, stroke_fill=0)
    else:
        pen = int(rng.integers(0, 3))
        draw.text(centre, character, fill=255, font=font, anchor="mm", stroke_width=pen, stroke_fill=255)
    canvas = canvas.rotate(rng.uniform(-6, 6), resample=Image.Resampling.BILINEAR)
    if rng.random() < 0.5:  # print is usually dark on light paper
        canvas = Image.eval(canvas, lambda v: 255 - v)
    return canvas
