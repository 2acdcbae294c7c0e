"""Characters typeset in Pillow's own font and the training typefaces: outliers that are not MNIST.

The curated outliers are other MNIST digits, so a model trained on them alone has never seen a
letter and reads many as a 0 or an 8. These letters and other digits, brought to MNIST form by the
product's own preprocessing and then augmented like every training image (slant, rotation, pen,
warp), show it such shapes. Letters that people write exactly like a 0, 5 or 8 (O, o, S, s, B)
are left out: refusing them would teach the model to refuse its own digits.
"""

import string

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from digits_core.contract import CLASSES, IMAGE_SIZE
from digits_core.images import to_mnist
from digits_data import typefaces

LOOK_LIKE_CLASSES = "OoSsB"  # letters written like a 0, 5 or 8
CHARACTERS = "".join(str(d) for d in range(10) if d not in CLASSES) + "".join(
    c for c in string.ascii_letters if c not in LOOK_LIKE_CLASSES
)
PENS = (0, 1, 3)  # extra stroke width in pixels at SIZE: a thin, a medium and a bold pen
SIZE = 64  # font size in pixels; to_mnist scales each letter to fit 20x20 anyway


def typeset(count: int) -> np.ndarray:
    """``count`` character images (count, 28, 28) in [0, 1]: every character in every pen, first in
    Pillow's own font, then in each training typeface, cycling when ``count`` exceeds them.

    One face teaches the shape of one alphabet; letters in serif, sans, mono, bold and italic
    faces teach that a letter is refused whatever its style. The images depend on the Pillow (and
    FreeType) and matplotlib versions only, which constraints.txt pins.
    """
    if count == 0:
        return np.zeros((0, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    fonts = [ImageFont.load_default(SIZE)]
    variants: list[np.ndarray] = []
    for f in range(1 + len(typefaces.TRAINING_FACES)):
        if f == len(fonts):  # opened only when needed: a small count reads no font file
            fonts.append(
                ImageFont.truetype(str(typefaces.font_dir() / typefaces.TRAINING_FACES[f - 1]), SIZE)
            )
        for pen in PENS:
            for character in CHARACTERS:
                canvas = Image.new("L", (2 * SIZE, 2 * SIZE), 0)
                ImageDraw.Draw(canvas).text(
                    (SIZE, SIZE),
                    character,
                    fill=255,
                    font=fonts[f],
                    anchor="mm",
                    stroke_width=pen,
                    stroke_fill=255,
                )
                variants.append(to_mnist(canvas, f"character {character}"))
                if len(variants) == count:
                    return np.stack(variants).astype(np.float32)
    return np.stack([variants[i % len(variants)] for i in range(count)]).astype(np.float32)


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
