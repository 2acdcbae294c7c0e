"""The degradation suite: digits degraded by every family of digits_data.degrade, written as one file.

The suite takes a seeded, stratified draw of the MNIST test set's 0/5/8 (never used for training
or for choosing anything) and the generated handwriting's 0/5/8, and degrades each of them once
by every family, and once not at all (``clean``). Each (family, image) pair draws from its own
generator, seeded by (seed, family number, image number), so the same seed gives the same bytes.

``suite.npz`` holds ``images`` uint8 (M, SIDE, SIDE) as a scanner would see them, ``labels``
(M,), ``family`` (M,) positions in the manifest's ``families``, ``source`` (M,) positions in its
``sources``, and ``index`` (M,), each image's index in its source. ``manifest.json`` records the
seed, the families, the counts and the sha256 of ``suite.npz``; ``sheet.png`` shows one row of
examples per family.
"""

import functools
import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from digits_core import atomic, ownership
from digits_core.contract import CLASSES, MANIFEST_NAME
from digits_core.errors import DigitsError
from digits_core.images import load_image
from digits_data import dataset, degrade, handwriting, parallel, typefaces

FORMAT = "digits-degradation-suite/1"
DEFAULT_SEED = 20251203
DEFAULT_PER_FAMILY = 1000  # MNIST test images per family (of 2,846): a share of 0.001 is one image
FAMILIES: tuple[str, ...] = ("clean", *degrade.FAMILIES)
SOURCES = ("mnist-test", "handwriting", "typeface")
TYPEFACE_SAMPLES = 8  # renderings of each digit in each held-out face, plain and outlined
SUITE_FILE = "suite.npz"
SHEET_NAME = "sheet.png"
STEP = "digits-data degrade"
SUITE_HINT = "run `make suite` (or `digits-data degrade`) to create it"


def _stratified(labels: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``count`` images drawn so that each label keeps its share."""
    if count >= len(labels):
        return np.arange(len(labels))
    classes, sizes = np.unique(labels, return_counts=True)
    shares = count * sizes // len(labels)
    shares[np.argmax(sizes)] += count - shares.sum()  # what rounding down left goes to the largest
    chosen = [
        rng.choice(np.flatnonzero(labels == c), size=k, replace=False)
        for c, k in zip(classes, shares, strict=True)
    ]
    return np.sort(np.concatenate(chosen))


# Below this many images, the work is done in this process: a spawned process takes about as long
# to start (importing NumPy, Pillow and this package) as a thousand images take to preprocess.
ONE_PROCESS_IMAGES = 1000


def _degrade_family(images: np.ndarray, seed: int, family: tuple[int, str]) -> np.ndarray:
    f, name = family
    return np.stack(
        [degrade.degrade(image, name, np.random.default_rng([seed, f, i])) for i, image in enumerate(images)]
    )


def degrade_all(
    images: np.ndarray, seed: int, families: tuple[str, ...] = FAMILIES, workers: int = 1
) -> np.ndarray:
    """Every image (N, 28, 28) uint8 degraded by every family: uint8 (len(families), N, SIDE, SIDE).

    Each image draws from its own generator, so ``workers`` processes give the same bytes as one.
    """
    if len(images) == 0:
        return np.empty((len(families), 0, degrade.SIDE, degrade.SIDE), dtype=np.uint8)
    work = functools.partial(_degrade_family, images, seed)
    workers = workers if len(images) * len(families) >= ONE_PROCESS_IMAGES else 1
    return np.stack(parallel.on_processes(work, list(enumerate(families)), workers)).astype(np.uint8)


def build(
    curated_dir: str | os.PathLike,
    handwriting_dir: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    per_family: int = DEFAULT_PER_FAMILY,
    seed: int = DEFAULT_SEED,
    per_typeface: int = TYPEFACE_SAMPLES,
    workers: int = 1,
) -> dict[str, np.ndarray]:
    """The suite's arrays (see the module's doc): ``per_family`` MNIST test digits, the handwriting
    set's 0/5/8, and ``per_typeface`` renderings of each digit in each held-out face, plain and
    outlined; degraded on ``workers`` processes."""
    test = dataset.load_test_split(curated_dir, data_dir=data_dir)
    pick = _stratified(test.labels, per_family, np.random.default_rng(seed))
    manifest = handwriting.load_manifest(handwriting_dir)
    known = [e for e in manifest["samples"] if e["kind"] == "known"]
    drawn = [np.uint8(np.rint(load_image(Path(handwriting_dir) / e["file"]) * 255)) for e in known]
    printed, printed_labels = [], []
    rng = np.random.default_rng(seed)
    for face in typefaces.HELD_OUT_FACES:
        for outlined in (False, True):
            for digit in CLASSES:
                for _ in range(per_typeface):
                    image = typefaces.render(face, str(digit), rng, outlined)
                    printed.append(np.uint8(np.rint(load_image(image) * 255)))
                    printed_labels.append(digit)
    parts = [
        (test.images[pick], test.labels[pick], test.indices[pick]),
        (np.stack(drawn), np.array([int(e["label"]) for e in known]), np.arange(len(known))),
        (np.stack(printed), np.array(printed_labels), np.arange(len(printed))),
    ]
    arrays: dict[str, list] = {"images": [], "labels": [], "family": [], "source": [], "index": []}
    for source, (images, labels, index) in enumerate(parts):
        degraded = degrade_all(images, seed + source, workers=workers)
        for f in range(len(FAMILIES)):
            arrays["images"].append(degraded[f])
            arrays["labels"].append(labels)
            arrays["family"].append(np.full(len(images), f))
            arrays["source"].append(np.full(len(images), source))
            arrays["index"].append(index)
    return {
        key: np.concatenate(value).astype(np.uint8 if key == "images" else np.int64)
        for key, value in arrays.items()
    }


def write(output_dir: str | os.PathLike, arrays: dict[str, np.ndarray], seed: int, per_family: int) -> dict:
    """Write ``suite.npz``, ``sheet.png`` and ``manifest.json`` into ``output_dir``, replaced whole."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    with atomic.atomic_dir(output_dir, STEP, legacy=_vouched) as scratch:
        (scratch / SUITE_FILE).write_bytes(buffer.getvalue())
        (scratch / SHEET_NAME).write_bytes(_png(sheet(arrays)))
        counts = {
            source: int(((arrays["source"] == s) & (arrays["family"] == 0)).sum())
            for s, source in enumerate(SOURCES)
        }
        manifest = {
            "format": FORMAT,
            "seed": seed,
            "per_family": per_family,
            "families": list(FAMILIES),
            "groups": {group: [f.__name__ for f in members] for group, members in degrade.GROUPS.items()},
            "sources": list(SOURCES),
            "images_per_family": counts,
            "sha256": {SUITE_FILE: dataset.sha256_file(scratch / SUITE_FILE)},
        }
        (scratch / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return manifest


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _vouched(folder: Path) -> dict[str, str]:
    """The sha256 of the files a suite folder's own manifest proves (for a folder an older version
    wrote, whose record lists names only): the arrays, checked against the manifest; the manifest;
    and a sheet that drawing it again from those arrays gives byte for byte. Empty when unproven."""
    manifest_sha256 = ownership.file_sha256(folder / MANIFEST_NAME)  # never a link or a pipe
    if manifest_sha256 is None:
        return {}
    try:
        _, arrays = load(folder)  # checks the arrays against the manifest's sha256
        proof = {SUITE_FILE: dataset.sha256_file(folder / SUITE_FILE), MANIFEST_NAME: manifest_sha256}
        if ownership.file_sha256(folder / SHEET_NAME) is not None:
            proof[SHEET_NAME] = hashlib.sha256(_png(sheet(arrays))).hexdigest()
    except (DigitsError, TypeError, KeyError, ValueError, OSError):
        return {}
    return proof


def sheet(arrays: dict[str, np.ndarray], columns: int = 12) -> Image.Image:
    """One row per family: the first ``columns`` MNIST test images of the suite, degraded."""
    rows = []
    for f in range(len(FAMILIES)):
        images = arrays["images"][(arrays["family"] == f) & (arrays["source"] == 0)][:columns]
        rows.append(np.concatenate(list(images), axis=1))
    return Image.fromarray(np.concatenate(rows, axis=0))


def preprocess(images: np.ndarray, workers: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Suite images (N, H, W) uint8 read as image files are: MNIST-form pixels (N, 28, 28) and
    which were readable (N,); an image the preprocessing finds no digit in is left blank.
    ``workers`` processes share the work, in order."""
    if workers > 1 and len(images) >= ONE_PROCESS_IMAGES:
        parts = parallel.on_processes(_preprocess, np.array_split(images, 8 * workers), workers)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    return _preprocess(images)


def _preprocess(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pixels = np.zeros((len(images), 28, 28), dtype=np.float32)
    readable = np.ones(len(images), dtype=bool)
    for i, image in enumerate(images):
        try:
            pixels[i] = load_image(Image.fromarray(image))
        except DigitsError:
            readable[i] = False
    return pixels, readable


def degraded_split(
    split: dataset.Split,
    per_family: int,
    seed: int,
    workers: int = 1,
    families: tuple[str, ...] = FAMILIES[1:],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A stratified draw of ``per_family`` images of ``split``, degraded by each of ``families``
    (every family but ``clean``) and preprocessed: pixels (M, 28, 28), labels (M,) and which were
    readable (M,).

    Choosing anything on degraded images takes them from the MNIST training set this way (the
    val split), never from the suite's MNIST test images.
    """
    pick = _stratified(split.labels, per_family, np.random.default_rng(seed))
    degraded = degrade_all(split.images[pick], seed, families, workers)
    pixels, readable = preprocess(degraded.reshape(-1, *degraded.shape[2:]), workers)
    return pixels, np.tile(split.labels[pick], len(families)), readable


def load(directory: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray]]:
    """The manifest and arrays of the suite in ``directory``, checked against the manifest's sha256.

    Raises :class:`DigitsError` naming the file and what to run when the suite is missing,
    written by something else, or changed since it was written.
    """
    folder = Path(directory)
    manifest = ownership.read_json(folder / MANIFEST_NAME)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DigitsError(f"{folder / MANIFEST_NAME} is missing or not a degradation suite's: {SUITE_HINT}")
    path = folder / SUITE_FILE
    if not path.is_file() or dataset.sha256_file(path) != manifest.get("sha256", {}).get(SUITE_FILE):
        raise DigitsError(f"{path} is missing or was changed after it was written: {SUITE_HINT}")
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in ("images", "labels", "family", "source", "index")}
    return manifest, arrays
