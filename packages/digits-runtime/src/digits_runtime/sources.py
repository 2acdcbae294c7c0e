"""What a Predictor reads: a file path, image bytes, a binary file object, a PIL image or an image
array, turned into one (28, 28) float32 image, or a one-line error saying why not."""

import io
import os
import reprlib
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from digits_core.errors import DigitsError
from digits_core.images import from_array, load_image

Source = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | Image.Image | np.ndarray
"""What :meth:`Predictor.predict` takes: a file path, the bytes of an image file, a binary file object
(``open(path, "rb")``, ``io.BytesIO``), a PIL image, or an image array ((H, W), (H, W, 3) or
(H, W, 4); whole numbers 0-255 or floats in [0, 1]). Arrays are preprocessed like files; to give
pixels already in MNIST form untouched, use :meth:`Predictor.classify`."""


def read_pixels(source: Source) -> np.ndarray:
    """One image as float32 MNIST-style pixels (28, 28), or a :class:`DigitsError` saying why not."""
    if isinstance(source, bytes | bytearray | memoryview):
        return load_image(io.BytesIO(source))
    if isinstance(source, io.TextIOBase):
        name = getattr(source, "name", None)
        raise DigitsError(
            f"cannot read an image from a text stream{f' ({name})' if name else ''}: "
            "open image files in binary mode, open(path, 'rb')"
        )
    if hasattr(source, "read") and not _seekable(source):  # a pipe or socket: read it once, whole
        name = getattr(source, "name", None)
        name = name if isinstance(name, str) else "image"  # a pipe's name is its descriptor number
        try:
            data = source.read()
        except (OSError, ValueError) as exc:  # closed, or not open for reading
            raise DigitsError(f"{name} cannot be read: {exc}") from None
        if not isinstance(data, bytes | bytearray):
            raise DigitsError(f"{name} gives {type(data).__name__}, not bytes: open it in binary mode")
        stream = io.BytesIO(data)
        stream.name = name
        return load_image(stream)
    if isinstance(source, str | os.PathLike | Image.Image) or hasattr(source, "read"):
        return load_image(source)
    if not isinstance(source, np.ndarray):
        raise DigitsError(
            f"cannot read an image from {reprlib.repr(source)} (of type {type(source).__name__}): give a "
            "file path, image bytes, a binary file object, a PIL image or an image array"
        )
    return from_array(source)


def _seekable(stream: Any) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def check_range(pixels: np.ndarray) -> None:
    """Refuse pixels outside [0, 1], and NaN: NaN would come out as a confident "0"."""
    if not np.isfinite(pixels).all():
        raise DigitsError("pixels must be numbers, not NaN or infinity")
    if pixels.size and (pixels.min() < 0.0 or pixels.max() > 1.0):
        raise DigitsError("float pixels must lie in [0, 1] (white ink on black)")
