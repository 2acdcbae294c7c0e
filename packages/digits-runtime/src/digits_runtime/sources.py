"""What a Predictor reads: a file path, image bytes, a binary file object, a PIL image or an image
array, turned into one (28, 28) float32 image, or a one-line error saying why not."""

import io
import os
import reprlib
import stat
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from digits_core.errors import DigitsError
from digits_core.images import from_array, load_image

Source = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | Image.Image | np.ndarray
"""What :meth:`Predictor.predict` takes: a file path (a pipe or device such as ``/dev/stdin`` is
read to its end), the bytes of an image file (bytes, bytearray, or a memoryview of one dimension,
in any stride), a binary file object (``open(path, "rb")``, ``io.BytesIO``), a PIL image, or an
image array ((H, W), (H, W, 3) or (H, W, 4), as OpenCV and imageio give them, or a memoryview of
one; whole numbers 0-255 of any integer type, or floats in [0, 1]). Arrays are preprocessed like
files; to give pixels already in MNIST form untouched, use :meth:`Predictor.classify`."""


MAX_STREAM_BYTES = 256 * 1024 * 1024
"""A pipe or device is read whole into memory up to this size (``/dev/zero`` never ends)."""


def read_pixels(source: Source) -> np.ndarray:
    """One image as float32 MNIST-style pixels (28, 28), or a :class:`DigitsError` saying why not."""
    if isinstance(source, memoryview):
        source = _view(source)
        if isinstance(source, np.ndarray):
            return from_array(source)
    if isinstance(source, bytes | bytearray | memoryview):
        return load_image(io.BytesIO(source))
    if isinstance(source, str | os.PathLike):
        try:
            name = os.fsdecode(source)  # a path of bytes, too
        except TypeError as exc:  # an os.PathLike that gives neither str nor bytes
            raise DigitsError(f"cannot read an image from {reprlib.repr(source)}: {exc}") from None
        if "\0" in name:
            raise DigitsError(f"{name!r} holds a NUL character: no file has such a name")
        if _is_stream(name):  # /dev/stdin, a named pipe: its size says nothing, read it to its end
            return _read_stream(name)
        return load_image(name)
    if isinstance(source, io.TextIOBase):
        name = getattr(source, "name", None)
        raise DigitsError(
            f"cannot read an image from a text stream{f' ({name})' if name else ''}: "
            "open image files in binary mode, open(path, 'rb')"
        )
    if hasattr(source, "read") and not _seekable(source):  # a pipe or socket: read it once, whole
        name = getattr(source, "name", None)
        name = name if isinstance(name, str) else "image"  # a pipe's name is its descriptor number
        return load_image(_whole(source, name))
    if isinstance(source, Image.Image) or hasattr(source, "read"):
        return load_image(source)
    if not isinstance(source, np.ndarray):
        raise DigitsError(
            f"cannot read an image from {reprlib.repr(source)} (of type {type(source).__name__}): give a "
            "file path, image bytes, a binary file object, a PIL image or an image array"
        )
    return from_array(source)


def _view(view: memoryview) -> bytes | memoryview | np.ndarray:
    """A memoryview as what it holds: the bytes of an image file (one dimension of bytes, in any
    stride) or, with more dimensions, an image array."""
    try:
        if view.ndim > 1:
            return np.array(view)
        if view.itemsize == 1:
            return view if view.c_contiguous else view.tobytes()
        shape = view.shape
    except (ValueError, TypeError) as exc:  # released, or of a format numpy cannot read
        raise DigitsError(f"cannot read an image from this memoryview: {exc}") from None
    raise DigitsError(
        f"a memoryview of {shape[0]} items of {view.itemsize} bytes is neither an image file's bytes "
        "(one dimension of bytes) nor an image array (two or three dimensions)"
    )


def _is_stream(path: str) -> bool:
    """True for a pipe, socket or device (``/dev/stdin``): a file whose size is not its content's."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # load_image says what is wrong with it
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)


def _read_stream(name: str) -> np.ndarray:
    try:
        # Not blocking in open(): a named pipe that nobody writes to is then empty, not a hang.
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise DigitsError(f"{name} cannot be read: {exc.strerror}") from None
    with open(fd, "rb") as stream:
        if stream.isatty():
            raise DigitsError(f"{name} is a terminal: pipe or redirect an image file into it")
        os.set_blocking(fd, True)
        return load_image(_whole(stream, name))


def _whole(stream: Any, name: str) -> io.BytesIO:
    """Everything ``stream`` gives, up to :data:`MAX_STREAM_BYTES`, as a file named ``name``."""
    data = bytearray()
    while len(data) <= MAX_STREAM_BYTES:  # in pieces: a raw stream may give less than asked
        try:
            piece = stream.read(MAX_STREAM_BYTES + 1 - len(data))
        except (OSError, ValueError) as exc:  # closed, or not open for reading
            raise DigitsError(f"{name} cannot be read: {exc}") from None
        if not isinstance(piece, bytes | bytearray):
            raise DigitsError(f"{name} gives {type(piece).__name__}, not bytes: open it in binary mode")
        if not piece:
            break
        data += piece
    if len(data) > MAX_STREAM_BYTES:
        raise DigitsError(f"{name} gives more than {MAX_STREAM_BYTES:,} bytes: not an image file read here")
    whole = io.BytesIO(data)
    whole.name = name
    return whole


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
