"""The contact sheet of a generated set: a grid of samples as the files look, a band per kind."""

import io
from collections.abc import Sequence

from PIL import Image, ImageDraw

from digits_data.handwriting.glyphs import KINDS
from digits_data.handwriting.manifest import Sample

SHEET_COLUMNS = 16


SHEET_CELL = 64  # pixels per sample on the contact sheet


SHEET_PER_GLYPH = {"known": 4, "other_digit": 2, "letter": 1}  # samples shown of each glyph


def contact_sheet(samples: Sequence[Sample]) -> Image.Image:
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
