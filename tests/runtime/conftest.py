"""The runtime's own fixtures: archives of images for `digits batch`, and the tiny model that refuses."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digits_data import dataset

from helpers import SLOW_IMAGES


def _archive(folder: Path, curated: Path, count: int) -> tuple[Path, dict[str, int]]:
    """``count`` PNGs of 120x120 in ``folder`` (16 distinct digits, repeated), and which digit each holds."""
    images = dataset.load_split(curated, "eval").images[:16]
    encoded = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).resize((120, 120)).save(buffer, "PNG")
        encoded.append(buffer.getvalue())
    source = {}
    for i in range(count):
        path = folder / f"{i:04d}.png"
        path.write_bytes(encoded[i % 16])
        source[str(path)] = i % 16
    return folder, source


@pytest.fixture(scope="session")
def slow_archive(small_curated, tmp_path_factory) -> tuple[Path, dict[str, int]]:
    """1024 PNGs of 120x120 (16 distinct digits, repeated), and which digit each file holds.

    Four parts of 256 that take a worker about half a second each to score: long enough that a
    test sees a job mid-way (a part written, the next ones not), short enough that the jobs run
    to the end cost little.
    """
    return _archive(tmp_path_factory.mktemp("slow"), small_curated, SLOW_IMAGES)


@pytest.fixture(scope="session")
def long_archive(small_curated, tmp_path_factory) -> tuple[Path, dict[str, int]]:
    """The slow archive twice over: eight parts of 256, so that a worker that a busy machine
    starts late still finds parts left to score."""
    return _archive(tmp_path_factory.mktemp("long"), small_curated, 2 * SLOW_IMAGES)


@pytest.fixture(scope="session")
def archive(small_curated, tmp_path_factory) -> Path:
    """600 MNIST-style PNGs in two subfolders, a photo, and a corrupt, an empty and a non-image file."""
    folder = tmp_path_factory.mktemp("archive")
    images = np.concatenate([dataset.load_split(small_curated, s).images for s in ("train", "val", "eval")])
    for sub in ("a", "b"):
        (folder / sub).mkdir()
    for i in range(600):
        Image.fromarray(images[i % len(images)]).save(folder / ("a" if i < 300 else "b") / f"{i:04d}.png")
    photo = Image.fromarray(255 - images[0]).resize((640, 480)).convert("RGB")
    photo.save(folder / "a" / "photo.jpg", quality=90)
    whole = (folder / "a" / "0000.png").read_bytes()
    (folder / "b" / "corrupt.png").write_bytes(whole[: len(whole) // 2])
    (folder / "b" / "empty.png").write_bytes(b"")
    (folder / "b" / "notes.png").write_text("not an image")
    (folder / "readme.txt").write_text("not listed: not an image suffix")
    return folder


@pytest.fixture(scope="module")
def model(refusing_model) -> Path:
    """The tiny model that refuses, as a path."""
    return refusing_model[0]
