"""Characters typeset in Pillow's font, the training typefaces and handwriting fonts, and drawn with
a pen along Hershey strokes (digits_train.strokes): outliers.

The curated outliers are other MNIST digits, so a model trained on them alone has never seen a
letter and reads many as a 0 or an 8. These letters and other digits, brought to MNIST form by the
product's own preprocessing and then augmented like every training image (slant, rotation, pen,
warp), show it such shapes. Letters that people write exactly like a 0, 5 or 8 (O, o, S, s, B)
are left out: refusing them would teach the model to refuse its own digits.
"""

import functools
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from digits_core.contract import CLASSES, IMAGE_SIZE, LOOK_LIKE_CLASSES
from digits_core.images import to_mnist
from digits_data import parallel, typefaces
from digits_train import strokes

CHARACTERS = "".join(str(d) for d in range(10) if d not in CLASSES) + "".join(
    c for c in string.ascii_letters if c not in LOOK_LIKE_CLASSES
)
FONTS_DIR = Path(__file__).with_name("fonts")
VALIDATION_FONTS = (  # never trained on: the share of their letters refused is a validation measure
    "BecauseWeOrganize-Regular.otf",
    "ComicNeue-Italic.otf",
    "DancingScript-Bold.otf",
    "Humor-Sans.ttf",
)
# Extra stroke width in pixels at SIZE: a thin, a medium and a bold pen (as many as strokes.WIDTHS).
PENS = (0, 1, 3)
SIZE = 64  # font size in pixels; to_mnist scales each letter to fit 20x20 anyway
# Below this many images, they are rendered in this process: a spawned process takes about as long
# to start as a few hundred characters take to render.
ONE_PROCESS_CHARACTERS = 1000


def typeset(count: int, workers: int = 1) -> np.ndarray:
    """``count`` character images (count, 28, 28) in [0, 1]: every character in every pen, first in
    Pillow's own font, then in each training typeface, then in each handwriting font of ``fonts/``
    but those held out (:func:`handwriting_fonts`), then drawn along each Hershey face's strokes
    (:mod:`digits_train.strokes`), cycling when ``count`` exceeds them.

    One face teaches the shape of one alphabet; letters in serif, sans, mono, bold and italic
    faces teach that a letter is refused whatever its style, handwriting fonts and pen strokes
    that it is refused however it is written. The images depend on the Pillow (and FreeType),
    matplotlib and HersheyFonts versions only, which constraints.txt pins; ``workers`` processes
    render them, a font each at a time, to the same bytes as one.
    """
    return render(count, 0, [], 0, workers)[0]


def render(
    count: int, printed: int, labels: list[int], seed: int, workers: int = 1
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """:func:`typeset` of ``count`` and :func:`printed_digits` of ``printed`` (of ``labels``, drawn
    with ``seed``), rendered side by side on ``workers`` processes: the same images as each gives
    alone, sooner than one after the other. Returns the characters and (printed digits, targets).
    """
    files = [None] + [typefaces.font_dir() / face for face in typefaces.TRAINING_FACES] + handwriting_fonts()
    files += list(strokes.FACES)  # last, so that a count of the fonts' images renders just those
    per_font = len(PENS) * len(CHARACTERS)
    fonts = files[: -(-count // per_font)]  # a small count reads no more font files than it needs
    parts = [functools.partial(printed_digits, printed, labels, seed)]
    parts += [functools.partial(_font_characters, font) for font in fonts]
    workers = workers if count + printed >= ONE_PROCESS_CHARACTERS else 1
    done = parallel.on_processes(_call, parts, workers)
    if count == 0:
        return np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32), done[0]
    variants = np.concatenate(done[1:])
    return variants[np.arange(count) % len(variants)].astype(np.float32), done[0]


def _call(part: Callable[[], Any]) -> Any:
    return part()


def _font_characters(path: Path | str | None) -> np.ndarray:
    """Every character in every pen, in the font file at ``path`` (None: Pillow's own font; a
    string: that Hershey face, drawn by :func:`digits_train.strokes.characters`)."""
    if isinstance(path, str):
        return strokes.characters(path, CHARACTERS)
    font = ImageFont.load_default(SIZE) if path is None else ImageFont.truetype(str(path), SIZE)
    return np.stack([_character(font, character, pen) for pen in PENS for character in CHARACTERS])


def validation_characters() -> np.ndarray:
    """Every character in every pen in the fonts training never sees (VALIDATION_FONTS), in MNIST
    form (N, 28, 28) in [0, 1]: the share a model refuses says how it refuses letters it never saw."""
    fonts = [ImageFont.truetype(str(path), SIZE) for path in handwriting_fonts(validation=True)]
    images = [_character(font, character, pen) for font in fonts for pen in PENS for character in CHARACTERS]
    return np.stack(images).astype(np.float32)


def _character(font: ImageFont.ImageFont | ImageFont.FreeTypeFont, character: str, pen: int) -> np.ndarray:
    """One character in ``font`` with a pen ``pen`` pixels wider, in MNIST form (28, 28)."""
    # Three sizes wide: the swashes of script faces reach far from the centre. Cropped to the ink
    # with a margin of paper before to_mnist, which then has fewer pixels to read.
    canvas = Image.new("L", (3 * SIZE, 3 * SIZE), 0)
    ink = {"fill": 255, "stroke_width": pen, "stroke_fill": 255}
    ImageDraw.Draw(canvas).text((1.5 * SIZE, 1.5 * SIZE), character, font=font, anchor="mm", **ink)
    left, top, right, bottom = canvas.getbbox() or (0, 0, 1, 1)  # blank stays blank: to_mnist says so
    margin = SIZE // 4
    canvas = canvas.crop((left - margin, top - margin, right + margin, bottom + margin))
    return to_mnist(canvas, f"character {character}")


def handwriting_fonts(validation: bool = False) -> list[Path]:
    """The handwriting fonts of ``fonts/`` that training sees, or with ``validation`` those it never
    sees (VALIDATION_FONTS), by file name."""
    every = sorted(p for p in FONTS_DIR.iterdir() if p.suffix in (".otf", ".ttf"))
    return [p for p in every if (p.name in VALIDATION_FONTS) == validation]


OUTLINED = 0.3  # share of printed digits drawn as outlined type


def printed_digits(count: int, labels: list[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` digits of ``labels`` set in the training typefaces (digits_data.typefaces), as
    MNIST-form images (count, 28, 28) in [0, 1] and their targets (count,), positions in ``labels``.

    Every face and digit comes equally often; size, position, rotation, pen and outlining are drawn
    from a generator seeded by ``seed``.
    """
    rng = np.random.default_rng(seed)
    images, targets = [], []
    for i in range(count):
        face = typefaces.TRAINING_FACES[i % len(typefaces.TRAINING_FACES)]
        target = (i // len(typefaces.TRAINING_FACES)) % len(labels)
        image = typefaces.render(face, str(labels[target]), rng, outlined=rng.random() < OUTLINED)
        images.append(to_mnist(image, f"{labels[target]} in {face}"))
        targets.append(target)
    if not images:
        return np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32), np.zeros(0, dtype=np.int64)
    return np.stack(images).astype(np.float32), np.array(targets, dtype=np.int64)
