"""Characters typeset in handwriting fonts: outliers from a source other than MNIST.

The curated outliers are other MNIST digits, so a model trained on them alone has never seen a
letter and reads many as a 0 or an 8. These letters and other digits, in the font Pillow ships
with and in the handwriting typefaces of ``fonts/`` (see its README), brought to MNIST form by the
product's own preprocessing and then augmented like every training image (slant, rotation, pen,
warp), show it such shapes. Letters that people write exactly like a 0, 5 or 8 (O, o, S, s, B)
are left out: refusing them would teach the model to refuse its own digits.
"""

import functools
import string
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from digits_data.contract import CLASSES, IMAGE_SIZE
from digits_data.images import MIN_SIDE, to_mnist

LOOK_LIKE_CLASSES = "OoSsB"  # letters written like a 0, 5 or 8
CHARACTERS = "".join(str(d) for d in range(10) if d not in CLASSES) + "".join(
    c for c in string.ascii_letters if c not in LOOK_LIKE_CLASSES
)
FONTS_DIR = Path(__file__).with_name("fonts")
PENS = (0, 1, 3)  # extra stroke width in pixels at SIZE: a thin, a medium and a bold pen
SIZE = 64  # font size in pixels; to_mnist scales each letter to fit 20x20 anyway
# Background kept around the ink: to_mnist reads the paper from it, and the crop (to_mnist is
# seven times faster on it than on the whole canvas) keeps a size that to_mnist filters.
MARGIN = 3 * MIN_SIDE
ORDER_SEED = 0  # the fixed order the images are dealt in, so that any count samples every font
DEFAULT_FONT = "Aileron"  # the font Pillow ships with (ImageFont.load_default)


def fonts() -> list[str]:
    """Every font the characters are typeset in: Pillow's own, then the handwriting faces by file name."""
    return [DEFAULT_FONT, *sorted(p.name for p in FONTS_DIR.iterdir() if p.suffix in (".otf", ".ttf"))]


def load_font(name: str) -> ImageFont.FreeTypeFont:
    """The font ``name`` (one of ``fonts()``) at SIZE."""
    if name == DEFAULT_FONT:
        return ImageFont.load_default(SIZE)
    return ImageFont.truetype(str(FONTS_DIR / name), SIZE)


def _draw(font: ImageFont.FreeTypeFont, character: str, pen: int) -> Image.Image:
    """The character in white on black, cropped to its ink with a margin."""
    # A canvas three sizes wide holds the swashes of script faces, which reach far from the centre.
    canvas = Image.new("L", (3 * SIZE, 3 * SIZE), 0)
    ink = {"fill": 255, "stroke_width": pen, "stroke_fill": 255}
    ImageDraw.Draw(canvas).text((1.5 * SIZE, 1.5 * SIZE), character, font=font, anchor="mm", **ink)
    box = canvas.getbbox() or (0, 0, 1, 1)  # a blank drawing stays blank: to_mnist says so
    return canvas.crop((box[0] - MARGIN, box[1] - MARGIN, box[2] + MARGIN, box[3] + MARGIN))


def render(font: ImageFont.FreeTypeFont, character: str, pen: int) -> np.ndarray:
    """One character in ``font`` with a pen ``pen`` pixels wider, in MNIST form (28, 28)."""
    return to_mnist(_draw(font, character, pen), f"character {character}")


def variants() -> list[tuple[str, int, str]]:
    """Every (font, pen, character), in the fixed shuffled order ``typeset`` deals them in."""
    keys = [(font, pen, character) for font in fonts() for pen in PENS for character in CHARACTERS]
    return [keys[i] for i in np.random.default_rng(ORDER_SEED).permutation(len(keys))]


@functools.cache
def _images() -> np.ndarray:
    loaded = {name: load_font(name) for name in fonts()}
    images = np.stack([render(loaded[font], character, pen) for font, pen, character in variants()])
    images = images.astype(np.float32)
    images.flags.writeable = False  # cached and shared: no caller may change it
    return images


def typeset(count: int) -> np.ndarray:
    """``count`` character images (count, 28, 28) in [0, 1]: ``variants()`` in order, cycled when
    ``count`` exceeds them, so that every font, pen and character comes about equally often.

    The images depend on the Pillow (and FreeType) version only, which constraints.txt pins.
    """
    if count == 0:
        return np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    images = _images()
    return images[np.arange(count) % len(images)]
