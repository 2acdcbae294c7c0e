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

The modules: :mod:`.glyphs` (the glyph table), :mod:`.rendering` (strokes to pixels),
:mod:`.generation` (the samples and the folder), :mod:`.manifest` (what a set lists, and its
checks) and :mod:`.sheet` (the contact sheet).
"""

from digits_data.handwriting.generation import DEFAULT_PER_STYLE, DEFAULT_SEED, STEP, generate, write
from digits_data.handwriting.glyphs import GLYPHS, KINDS, Glyph, Stroke, kind_of
from digits_data.handwriting.manifest import (
    FORMAT,
    HANDWRITING_HINT,
    SHEET_NAME,
    STYLE_TAGS,
    Sample,
    load_manifest,
)
from digits_data.handwriting.rendering import AXES, PENS, POLARITIES, SIZES, SLANTS

__all__ = [
    "AXES",
    "DEFAULT_PER_STYLE",
    "DEFAULT_SEED",
    "FORMAT",
    "GLYPHS",
    "HANDWRITING_HINT",
    "KINDS",
    "PENS",
    "POLARITIES",
    "SHEET_NAME",
    "SIZES",
    "SLANTS",
    "STEP",
    "STYLE_TAGS",
    "Glyph",
    "Sample",
    "Stroke",
    "generate",
    "kind_of",
    "load_manifest",
    "write",
]
