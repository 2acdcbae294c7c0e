"""A PNG contact sheet of curated images: a row of samples per split and digit."""

import io
import os
from pathlib import Path

import numpy as np

from digits_core import atomic
from digits_core.contract import IMAGE_SIZE, SPLITS
from digits_data import dataset

SHEET_SAMPLES = 12  # images per (split, digit) row of the contact sheet
SHEET_SCALE = 2  # each image drawn at twice its size


def write_contact_sheet(curated_dir: str | os.PathLike, output: str | os.PathLike) -> Path:
    """Draw SHEET_SAMPLES images per (split, digit) row, labelled, into a PNG at ``output``."""
    atomic.write_bytes(output, contact_sheet_png(curated_dir))
    return Path(output)


def contact_sheet_png(curated_dir: str | os.PathLike) -> bytes:
    """The PNG bytes of the contact sheet of ``curated_dir``: the same data always gives the same bytes."""
    from PIL import Image, ImageDraw, ImageFont

    manifest = dataset.load_manifest(curated_dir, verify=False)
    classes = manifest["classes"]
    cell = IMAGE_SIZE * SHEET_SCALE
    margin = 110
    font = ImageFont.load_default(size=15)
    rows = [(split, digit) for split in SPLITS for digit in classes]
    sheet = Image.new("L", (margin + SHEET_SAMPLES * (cell + 2), len(rows) * (cell + 2)), 255)
    draw = ImageDraw.Draw(sheet)
    for r, (split_name, digit) in enumerate(rows):
        split = dataset.load_split(curated_dir, split_name, verify=False)
        picks = np.flatnonzero(split.labels == digit)[:SHEET_SAMPLES]
        y = r * (cell + 2)
        draw.text((6, y + cell // 2 - 9), f"{split_name}  digit {digit}", fill=0, font=font)
        for c, i in enumerate(picks):
            tile = Image.fromarray(split.images[i]).resize((cell, cell), Image.Resampling.NEAREST)
            sheet.paste(tile, (margin + c * (cell + 2), y))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()
