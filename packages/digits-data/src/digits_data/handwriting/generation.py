"""Generating the set: every glyph drawn at every level of every style axis, from one seed."""

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np

from digits_core import atomic, ownership
from digits_core.checks import check_int
from digits_core.contract import MANIFEST_NAME
from digits_core.errors import DigitsError
from digits_data.dataset import sha256_file
from digits_data.handwriting.glyphs import GLYPHS, KINDS
from digits_data.handwriting.manifest import FORMAT, SHEET_NAME, Sample, load_manifest
from digits_data.handwriting.rendering import AXES, draw
from digits_data.handwriting.sheet import contact_sheet

DEFAULT_SEED = 20251125


DEFAULT_PER_STYLE = 24


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
            image, drawn = draw(glyph, rng, styles)
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
    (see :func:`digits_core.atomic.atomic_dir`) is refused rather than replaced. Returns the manifest.
    """
    samples = generate(per_style, seed)
    entries = []
    with atomic.atomic_dir(output_dir, STEP, legacy=_vouched) as scratch:
        for sample in samples:
            (scratch / sample.file).write_bytes(sample.image)
            entry = {"file": sample.file, "label": sample.label, "kind": sample.kind, "styles": sample.styles}
            entries.append(entry | {"drawn": sample.drawn, "sha256": sha256_file(scratch / sample.file)})
        contact_sheet(samples).save(scratch / SHEET_NAME, format="PNG")
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


def _vouched(folder: Path) -> dict[str, str]:
    """The sha256 of the files a set's own manifest proves to be the generator's (for a folder without
    a record): every sample, checked against the manifest; the manifest; and a sheet that drawing it
    again from those samples gives byte for byte. Empty when the manifest does not hold or match.
    """
    manifest_sha256 = ownership.file_sha256(folder / MANIFEST_NAME)  # never a link or a pipe
    if manifest_sha256 is None:
        return {}
    try:
        manifest = load_manifest(folder)  # checks every sample file against its sha256
    except DigitsError:
        return {}
    entries = manifest["samples"]
    proof = {entry["file"]: entry["sha256"] for entry in entries} | {MANIFEST_NAME: manifest_sha256}
    if ownership.file_sha256(folder / SHEET_NAME) is not None:
        samples = [
            Sample(e["file"], e["label"], e["kind"], e["styles"], {}, (folder / e["file"]).read_bytes())
            for e in entries
        ]
        buffer = io.BytesIO()
        contact_sheet(samples).save(buffer, format="PNG")
        proof[SHEET_NAME] = hashlib.sha256(buffer.getvalue()).hexdigest()
    return proof
