"""Characters drawn with a pen along the strokes of the Hershey vector fonts: outliers.

A typeface fills each letter's outline with ink; a person draws it with a pen, one stroke of even
width. The Hershey fonts (the HersheyFonts package) give every character as the line segments a
plotter's pen follows, so their sans, script, roman and italic faces drawn with a thin, a medium
and a bold pen look like letters printed and joined by hand: shapes the outlier typefaces do not show,
and which a model that never saw them reads as a 0, 5 or 8.
"""

import numpy as np
from HersheyFonts import HersheyFonts
from PIL import Image, ImageDraw

from digits_core.images import to_mnist

FACES = ("futural", "scripts", "timesr", "timesi")  # sans, script, roman and italic, single strokes
WIDTHS = (4, 6, 9)  # pen widths in pixels for a character SIZE pixels tall or wide
SIZE = 48
MARGIN = 12  # paper around the character, so that a wide pen's ends are not cut off


def characters(face: str, text: str) -> np.ndarray:
    """Every character of ``text`` in Hershey face ``face``, drawn with every pen of WIDTHS (pen by
    pen), in MNIST form (len(WIDTHS) * len(text), 28, 28) in [0, 1]."""
    font = HersheyFonts()
    font.load_default_font(face)
    return np.stack([_draw(list(font.lines_for_text(c)), width, c) for width in WIDTHS for c in text])


def _draw(segments: list, width: int, character: str) -> np.ndarray:
    """The segments ((x0, y0), (x1, y1)) of one character, scaled to fit SIZE, drawn ``width``
    pixels wide, white on black, in MNIST form."""
    points = np.array([point for segment in segments for point in segment], dtype=np.float64)
    low = points.min(axis=0)
    scale = SIZE / max(float((points.max(axis=0) - low).max()), 1.0)
    canvas = Image.new("L", (SIZE + 2 * MARGIN, SIZE + 2 * MARGIN), 0)
    draw = ImageDraw.Draw(canvas)
    for start, end in segments:  # Hershey's y already grows downwards, as an image's does
        a, b = ((np.asarray(p) - low) * scale + MARGIN for p in (start, end))
        draw.line([tuple(a), tuple(b)], fill=255, width=width, joint="curve")
        for x, y in (a, b):  # round pen tips, so that joints between segments stay closed
            draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=255)
    return to_mnist(canvas, f"character {character}")
