"""The IDX format MNIST is stored in: a 16-byte header (magic, big-endian dimensions) and raw bytes."""

import os
from pathlib import Path

import numpy as np

from digits_core.errors import DigitsError

DOWNLOAD_HINT = "run `make data` (or `digits-data download`) to fetch and verify it"


_IDX_DTYPE = 0x08  # unsigned byte: the only element type MNIST uses


def parse_idx(data: bytes, name: str = "IDX data") -> np.ndarray:
    """Parse IDX bytes (magic, big-endian dimensions, unsigned bytes) into a uint8 array.

    Raises :class:`DigitsError` when the header is not IDX or the payload is truncated or too long.
    """
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != _IDX_DTYPE:
        raise DigitsError(f"{name} is not an IDX file of unsigned bytes (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise DigitsError(f"{name} has a truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says"
        raise DigitsError(f"{name} is {state}: {len(data)} bytes, header {shape} needs {expected}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def idx_bytes(array: np.ndarray) -> bytes:
    """Serialize a uint8 array as IDX bytes, the inverse of :func:`parse_idx`."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, _IDX_DTYPE, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file; a missing or malformed file raises :class:`DigitsError` naming it."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DigitsError(f"{path} is missing: {DOWNLOAD_HINT}") from None
    except OSError as exc:
        raise DigitsError(f"cannot read {path}: {exc.strerror}") from None
    return parse_idx(data, str(path))


def read_images(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX image file as uint8 (N, 28, 28)."""
    images = read_idx(path)
    if images.ndim != 3:
        raise DigitsError(f"{path} holds {images.ndim}-d data, expected images (N, rows, cols)")
    return images


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX label file as int64 (N,)."""
    labels = read_idx(path)
    if labels.ndim != 1:
        raise DigitsError(f"{path} holds {labels.ndim}-d data, expected labels (N,)")
    return labels.astype(np.int64)
