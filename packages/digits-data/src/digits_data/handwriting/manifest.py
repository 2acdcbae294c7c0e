"""The manifest of a generated set: what it lists, and the checks a reader relies on."""

import os
from dataclasses import dataclass
from pathlib import Path

from digits_core import ownership
from digits_core.contract import MANIFEST_NAME
from digits_core.errors import DigitsError
from digits_data.dataset import sha256_file
from digits_data.handwriting.glyphs import kind_of
from digits_data.handwriting.rendering import AXES

FORMAT = "digits-handwriting/1"  # the manifest's "format"
SHEET_NAME = "sheet.png"


def _read_manifest(path: Path) -> dict | None:
    """The manifest of a generated set at ``path``; None if it is missing, not JSON or of another format."""
    manifest = ownership.read_json(path)
    return manifest if isinstance(manifest, dict) and manifest.get("format") == FORMAT else None


HANDWRITING_HINT = "run `make handwriting` (or `digits-data handwriting`) to create it"


def load_manifest(directory: str | os.PathLike) -> dict:
    """Read a generated set's ``manifest.json``; raise :class:`DigitsError` naming what to run.

    Checks that the manifest is whole (every sample with a plain file name, a label that is one
    digit or letter, the kind that label is, and every style tag) and that every listed file
    exists with its recorded sha256: whoever reads the set can then rely on each field.
    """
    directory = Path(directory)
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise DigitsError(f"{path} does not exist: {HANDWRITING_HINT}")
    manifest = _read_manifest(path)
    if manifest is None:
        raise DigitsError(f"{path} is not the manifest of a generated handwriting set: {HANDWRITING_HINT}")
    edited = f"it was edited; delete {directory} and run `make handwriting` (or `digits-data handwriting`)"
    problem = _manifest_problem(manifest)
    if problem:
        raise DigitsError(f"{path} {problem}: {edited}")
    for entry in manifest["samples"]:
        file = directory / entry["file"]
        if not file.is_file():
            raise DigitsError(f"{file} is listed in {path} but missing: {HANDWRITING_HINT}")
        if sha256_file(file) != entry["sha256"]:
            raise DigitsError(f"{file} does not match its sha256 in {path}: {HANDWRITING_HINT}")
    return manifest


STYLE_TAGS = ("glyph", "cursive", *AXES)
"""The style tags every sample carries: its glyph, print or cursive, and its level of each axis."""


def _manifest_problem(manifest: dict) -> str | None:
    """What is wrong with a handwriting manifest's fields (None: nothing), as the end of a sentence."""
    for key, kind in (("seed", int), ("per_style", int), ("sheet", str), ("samples", list)):
        if not isinstance(manifest.get(key), kind):
            return f"has no {key!r} {kind.__name__}"
    if not _plain_name(manifest["sheet"]):
        return f"names the sheet {manifest['sheet']!r}, not a file of the set"
    if not manifest["samples"]:
        return "lists no samples"
    seen: set[str] = set()
    for n, entry in enumerate(manifest["samples"]):
        if not isinstance(entry, dict):
            return f"has sample {n} that is not an object: {entry!r}"
        file, label, styles = entry.get("file"), entry.get("label"), entry.get("styles")
        where = f"has sample {n} ({file!r})"
        if not _plain_name(file) or not isinstance(entry.get("sha256"), str):
            return f"{where} without a plain file name and its sha256"
        if file in seen or file == manifest["sheet"]:
            return f"{where} that is listed twice (each file is one sample)"
        seen.add(file)
        if not isinstance(label, str) or len(label) != 1 or not label.isascii() or not label.isalnum():
            return f"{where} labelled {label!r}, not one digit or letter"
        if entry.get("kind") != kind_of(label):
            return f"{where} of kind {entry.get('kind')!r} where its label {label!r} is {kind_of(label)!r}"
        if not isinstance(styles, dict) or not all(isinstance(styles.get(tag), str) for tag in STYLE_TAGS):
            return f"{where} without every style tag ({', '.join(STYLE_TAGS)})"
    return None


def _plain_name(name: object) -> bool:
    """True for a file name inside the set's folder (no folder part, not hidden)."""
    return isinstance(name, str) and bool(name) and Path(name).name == name and not name.startswith(".")


@dataclass(frozen=True)
class Sample:
    """One generated image and its label."""

    file: str
    label: str
    kind: str
    styles: dict[str, str]  # glyph, cursive, slant, pen, size, polarity
    drawn: dict[str, float]  # the numbers drawn for it: frame side, glyph height, pen width, shear, rotation
    image: bytes
