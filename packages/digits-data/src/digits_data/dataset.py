"""The on-disk format of curated data: ``<split>.npz`` files and ``manifest.json``.

The outlier splits (``other_train``, ``other_val``: digits outside the curated classes) use
the same format; the manifest lists them under ``"outliers"``.

Each split file is an uncompressed npz with ``images`` (uint8, N x 28 x 28, white ink on
black), ``labels`` (int64 digits, e.g. 0, 5, 8) and ``indices`` (int64 position of each image
in the MNIST training file). The zip entries carry a fixed timestamp so that the same arrays
always give the same bytes. ``manifest.json`` records how the splits were made and the sha256
of every file; its own sha256 is the curation fingerprint.
"""

import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digits_core import atomic, contract, layout
from digits_core.contract import IMAGE_SIZE, MANIFEST_NAME, OUTLIER_SPLITS, SPLITS
from digits_core.errors import DigitsError, UsageError

_ARRAYS = ("images", "labels", "indices")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
CURATE_HINT = "run `make curate` (or `digits-data curate`) to create it"


@dataclass(frozen=True)
class Split:
    """One split of images with their digit labels and MNIST indices."""

    name: str
    images: np.ndarray  # (N, 28, 28) uint8
    labels: np.ndarray  # (N,) int64 digits
    indices: np.ndarray  # (N,) int64 positions in the source MNIST file

    def __len__(self) -> int:
        return len(self.labels)


def sha256_file(path: str | os.PathLike) -> str:
    """Return the hex sha256 of a file's bytes."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def split_bytes(images: np.ndarray, labels: np.ndarray, indices: np.ndarray) -> bytes:
    """Serialize a split to deterministic npz bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, array in zip(_ARRAYS, (images, labels, indices), strict=True):
            entry = io.BytesIO()
            np.lib.format.write_array(entry, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            zf.writestr(info, entry.getvalue())
    return buffer.getvalue()


def write_split(path: str | os.PathLike, split: Split) -> str:
    """Atomically write ``split`` to ``path``; return the sha256 of the bytes written."""
    data = split_bytes(split.images, split.labels, split.indices)
    atomic.write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def read_split_file(path: str | os.PathLike, name: str) -> Split:
    """Read a split file, checking that it holds the expected, consistent arrays."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in _ARRAYS}
    except FileNotFoundError:
        raise DigitsError(f"missing split file {path}: {CURATE_HINT}") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise DigitsError(f"{path} is not a readable curated split ({exc}): {CURATE_HINT}") from None
    images, labels, indices = (arrays[key] for key in _ARRAYS)
    for key, array in (("labels", labels), ("indices", indices)):
        # Casting 5.5 to a whole number would turn it silently into a 5: refused instead.
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            raise DigitsError(
                f"{path} holds {key} of type {array.dtype} and shape {array.shape}, not a list of whole "
                f"numbers: {edited_hint(Path(path).parent)}"
            )
    n = len(labels)
    shape = (n, IMAGE_SIZE, IMAGE_SIZE)
    if images.dtype != np.uint8 or images.shape != shape or indices.shape != (n,):
        raise DigitsError(f"{path} has inconsistent arrays: {CURATE_HINT}")
    return Split(name, images, labels.astype(np.int64), indices.astype(np.int64))


def manifest_path(curated_dir: str | os.PathLike) -> Path:
    """Return the path of the manifest in ``curated_dir``."""
    return Path(curated_dir) / MANIFEST_NAME


def load_manifest(curated_dir: str | os.PathLike, *, verify: bool = True) -> dict:
    """Load ``manifest.json`` from ``curated_dir``; with ``verify``, check every split's sha256.

    Raises :class:`DigitsError` naming the file and the command to run when the folder,
    the manifest or a split file is missing, unreadable or does not match its checksum.
    """
    curated_dir = Path(curated_dir)
    if not curated_dir.is_dir():
        raise DigitsError(f"curated folder {curated_dir} does not exist: {CURATE_HINT}")
    path = manifest_path(curated_dir)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DigitsError(f"{path} is missing, so {curated_dir} is incomplete: {CURATE_HINT}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DigitsError(f"{path} is not valid JSON ({exc}): {CURATE_HINT}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("splits"), dict):
        raise DigitsError(f"{path} is not a curation manifest: {CURATE_HINT}")
    _check_fields(manifest, path)
    if verify:
        for split in (*SPLITS, *OUTLIER_SPLITS):
            entry = split_entry(manifest, split)
            file = curated_dir / f"{split}.npz"
            if not isinstance(entry, dict) or "sha256" not in entry:
                raise DigitsError(f"{path} has no entry for split {split!r}: {CURATE_HINT}")
            if not file.is_file():
                raise DigitsError(f"missing split file {file}: {CURATE_HINT}")
            if sha256_file(file) != entry["sha256"]:
                raise DigitsError(
                    f"{file} does not match the sha256 in {path}; it changed after curation: {CURATE_HINT}"
                )
    return manifest


MANIFEST_FIELDS = (
    "classes",
    "seed",
    "eval_ratio",
    "val_ratio",
    "class_counts",
    "normalization",
    "source",
    "splits",
)
"""The fields every step reads from a curation manifest (``outliers`` is checked where it is read:
a manifest written before outliers were curated still serves its curated splits)."""


def edited_hint(curated_dir: str | os.PathLike) -> str:
    """What to do about curated data edited after curation (``make curate`` alone would keep it)."""
    return (
        f"it was edited after curation; delete {curated_dir} and run `make curate` (or `digits-data curate`)"
    )


def _check_fields(manifest: dict, path: Path) -> None:
    """Refuse a manifest that lacks a field, or whose classes or normalization are not what they claim."""
    hint = edited_hint(path.parent)
    missing = [name for name in MANIFEST_FIELDS if name not in manifest]
    if missing:
        raise DigitsError(f"{path} lacks {', '.join(repr(m) for m in missing)}: {hint}")
    try:
        contract.check_labels(manifest["classes"])
    except ValueError as exc:
        raise DigitsError(
            f"{path} lists classes {json.dumps(manifest['classes'])} ({exc}), "
            f"not {contract.LABELS_RULE}: {hint}"
        ) from None
    source = manifest["source"]
    if not isinstance(source, dict) or not isinstance(source.get("files"), dict):
        raise DigitsError(
            f"{path} has a 'source' of {json.dumps(source)[:60]}, not an object whose 'files' names "
            f"the MNIST files it was drawn from: {hint}"
        )
    norm = manifest["normalization"]
    values = [norm.get(key) for key in ("mean", "std")] if isinstance(norm, dict) else [None]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and 0 < v <= 1 for v in values):
        raise DigitsError(
            f"{path} has normalization {json.dumps(norm)}, not a pixel mean and std in (0, 1]: {hint}"
        )


def check_contents(curated_dir: str | os.PathLike, manifest: dict) -> None:
    """Check that every split holds what the manifest says: its size, digits and MNIST indices.

    The sha256 checks prove the files unchanged, not the manifest's own numbers: an edited count
    would otherwise be shown and trusted as it stands.
    """
    path = manifest_path(curated_dir)
    totals: dict[str, int] = {}
    for name in (*SPLITS, *OUTLIER_SPLITS):
        entry = split_entry(manifest, name)
        split = read_split_file(Path(curated_dir) / f"{name}.npz", name)
        digits, counts = np.unique(split.labels, return_counts=True)
        actual = {str(d): int(c) for d, c in zip(digits, counts, strict=True)}
        columns = manifest["classes"] if name in SPLITS else manifest["outliers"].get("digits")
        listed = entry.get("counts")
        problems = []
        if (
            not isinstance(listed, dict)
            or not isinstance(columns, list)
            or list(listed) != list(map(str, columns))
        ):
            keys = f"[{', '.join(listed)}]" if isinstance(listed, dict) else json.dumps(listed)
            problems.append(f"counts for the digits {keys} where its digits are {columns}")
            listed = {}
        if entry.get("n") != len(split):
            problems.append(f"{entry.get('n')} images where the file holds {len(split)}")
        claimed = {d: c for d, c in listed.items() if c}
        if listed and claimed != actual:
            problems.append(f"digit counts {claimed} where the file holds {actual}")
        if entry.get("mnist_indices") != split.indices.tolist():
            problems.append("other MNIST indices than the file's")
        if problems:
            raise DigitsError(
                f"{path} says split {name} has {'; '.join(problems)}: {edited_hint(curated_dir)}"
            )
        if name in SPLITS:
            for digit, count in listed.items():
                totals[digit] = totals.get(digit, 0) + count
    if manifest["class_counts"] != totals:
        raise DigitsError(
            f"{path} says the class counts are {manifest['class_counts']} where its splits add up to "
            f"{totals}: {edited_hint(curated_dir)}"
        )


def split_entry(manifest: dict, split: str) -> dict | None:
    """Return the manifest's entry for a curated or outlier split, or None if it has none."""
    if split in OUTLIER_SPLITS:
        outliers = manifest.get("outliers")
        splits = outliers.get("splits") if isinstance(outliers, dict) else None
        return splits.get(split) if isinstance(splits, dict) else None
    return manifest["splits"].get(split)


def fingerprint(curated_dir: str | os.PathLike) -> str:
    """Return the curation fingerprint: the sha256 of ``manifest.json``."""
    return sha256_file(manifest_path(curated_dir))


def load_split(curated_dir: str | os.PathLike, split: str, *, verify: bool = True) -> Split:
    """Load one split, checked against the manifest.

    ``split`` is a curated split (``train``, ``val``, ``eval``) or an outlier split
    (``other_train``, ``other_val``), whose labels are the other digits themselves.
    """
    names = (*SPLITS, *OUTLIER_SPLITS)
    if split not in names:
        raise UsageError(f"unknown split {split!r}: choose one of {', '.join(names)}")
    manifest = load_manifest(curated_dir, verify=False)
    path = Path(curated_dir) / f"{split}.npz"
    if verify:
        entry = split_entry(manifest, split)
        if not isinstance(entry, dict):
            raise DigitsError(f"{manifest_path(curated_dir)} has no entry for split {split!r}: {CURATE_HINT}")
        expected = entry.get("sha256")
        if not path.is_file():
            raise DigitsError(f"missing split file {path}: {CURATE_HINT}")
        if sha256_file(path) != expected:
            raise DigitsError(f"{path} does not match the sha256 in its manifest: {CURATE_HINT}")
    data = read_split_file(path, split)
    classes = manifest["classes"]
    if split in SPLITS:
        if not len(data):
            raise DigitsError(f"{path} holds no images: {edited_hint(curated_dir)}")
        strangers = np.setdiff1d(data.labels, classes)
    else:  # outliers are the digits that are not classes
        strangers = data.labels[np.isin(data.labels, classes) | (data.labels < 0) | (data.labels > 9)]
    if strangers.size:
        raise DigitsError(
            f"{path} holds the label {int(strangers[0])}, which is not a digit of its split "
            f"(classes {classes} in {manifest_path(curated_dir)}): {edited_hint(curated_dir)}"
        )
    return data


def load_test_split(
    curated_dir: str | os.PathLike, *, other: bool = False, data_dir: str | os.PathLike | None = None
) -> Split:
    """Load the MNIST test-set (t10k) images of the manifest's classes as a split named ``test``.

    With ``other``, load the t10k images of every other digit instead, as a split named
    ``other``: the held-out check of refusal. These images are never used for curation,
    training or model selection: they are the held-out check of generalization. They are read
    from the MNIST folder ``data_dir`` (by default :func:`find_data_dir`), verified against the
    canonical md5 first.
    """
    from digits_data import mnist  # only this function needs the raw files

    manifest = load_manifest(curated_dir, verify=False)
    data_dir = Path(data_dir) if data_dir is not None else find_data_dir(curated_dir)
    mnist.verify(data_dir)
    folder = mnist.raw_dir(data_dir)
    images = mnist.read_images(folder / mnist.TEST_IMAGES)
    labels = mnist.read_labels(folder / mnist.TEST_LABELS)
    index = np.flatnonzero(np.isin(labels, manifest["classes"], invert=other))
    return Split("other" if other else "test", images[index], labels[index], index.astype(np.int64))


def find_data_dir(curated_dir: str | os.PathLike) -> Path:
    """Find MNIST where `make` puts it: beside the curated folder, or ``artifacts/mnist`` here.

    The manifest names no folder (the fingerprint must not depend on where things are), so
    a moved curated folder needs the MNIST folder given explicitly when it is elsewhere.
    """
    from digits_data import mnist

    candidates = [Path(curated_dir).parent / "mnist", Path(layout.MNIST_DIR)]
    for candidate in candidates:
        if mnist.raw_dir(candidate).is_dir():
            return candidate
    raise DigitsError(
        f"MNIST is neither in {candidates[0]} nor in {candidates[1]}: pass --data-dir, "
        "the folder `digits-data download` wrote (it holds MNIST/raw/)"
    )
