"""What the images of a request will cost to read, known before any of them is decoded.

Pixels are not the whole cost. Opening a PNG inflates its compressed text and colour-profile
chunks (zTXt, iTXt, iCCP: up to 1 MB each, 64 MB per image in Pillow), and walks its chunks one
by one in Python: a 74 KB 28x28 PNG can cost a second, and a 10 MB one of 800,000 empty chunks
several. So the cost of an image is counted from the bytes alone, without Pillow for PNGs:

- ``pixels``: what decoding makes (from the PNG header, or Pillow's header read for other formats);
- ``inflated``: an upper bound of the bytes its compressed ancillary chunks inflate to (zlib
  inflates a byte to at most 1032, and Pillow stops a chunk at ``MAX_TEXT_CHUNK``);
- ``size``: its bytes, which any parser walks;
- ``chunks``: for a PNG, its chunks beyond the few every PNG has: each is a step in Python for Pillow.

A PNG of more than ``MAX_PNG_CHUNKS`` chunks is refused outright: no encoder writes that many in
the bytes a request may carry, and walking them is the cost. The server refuses a request whose
images add up to too many pixels or too much inflation, and sends one whose cost is more than a
few digits' to the lane of large requests, so that it never holds up small ones.
"""

import io
import struct
from dataclasses import dataclass

from PIL import Image, PngImagePlugin

from digits_core.images import MAX_PIXELS, ImageError, decoded_pixels

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PNG_CHUNKS = 4096
"""Most chunks a PNG may hold (a 10 MB PNG written with libpng's 8 KB data chunks has 1,280)."""
INFLATION = 1032  # zlib's largest ratio of inflated to deflated bytes
CHUNK_WORK = 1000  # a chunk costs Pillow about a microsecond: a thousand bytes' or pixels' worth
FREE_CHUNKS = 8  # chunks of a PNG not counted (header, palette, data, end, and a few more)
COMPRESSED_CHUNKS = (b"zTXt", b"iTXt", b"iCCP")  # the ancillary chunks Pillow inflates when it opens a PNG


@dataclass(frozen=True)
class Cost:
    """The work one image will cost to read, in bytes or pixels (about a nanosecond each)."""

    pixels: int
    inflated: int
    size: int
    chunks: int = 0

    @property
    def work(self) -> int:
        return self.pixels + self.inflated + self.size + CHUNK_WORK * max(0, self.chunks - FREE_CHUNKS)


class TooComplex(ImageError):
    """An image whose structure alone costs too much to walk."""


def image_cost(source: io.BytesIO) -> Cost:
    """The :class:`Cost` of reading ``source`` (an in-memory image file), without decoding it.

    Raises :class:`TooComplex` for a PNG of more than ``MAX_PNG_CHUNKS`` chunks. What is not an
    image costs its bytes only: reading it fails at once.
    """
    with source.getbuffer() as data:  # a view of its bytes (a copy only if they are shared)
        size = len(data)
        if data[:8] == PNG_SIGNATURE:
            pixels, inflated, chunks = _png_cost(data, getattr(source, "name", "image"))
            return Cost(pixels, inflated, size, chunks)
    return Cost(decoded_pixels(source), 0, size)


def _png_cost(data: memoryview, name: str) -> tuple[int, int, int]:
    """(pixels, inflation bound, chunks) of a PNG, from its chunk headers alone."""
    end, position, chunks = len(data), 8, 0
    pixels = inflated = 0
    while position + 8 <= end:
        length, kind = struct.unpack_from(">I4s", data, position)
        chunks += 1
        if chunks > MAX_PNG_CHUNKS:
            raise TooComplex(
                f"{name} is a PNG of over {MAX_PNG_CHUNKS:,} chunks, more than any image needs: "
                "save it again with an ordinary image editor"
            )
        if kind == b"IHDR" and length >= 8:
            width, height = struct.unpack_from(">II", data, position + 8)
            pixels = width * height
        elif kind in COMPRESSED_CHUNKS and not _uncompressed_itxt(kind, data, position + 8, length):
            inflated += min(length * INFLATION, PngImagePlugin.MAX_TEXT_CHUNK)
        elif kind == b"IEND":
            break
        position += 12 + length
    # Pillow gives up on an image's text once it has inflated MAX_TEXT_MEMORY bytes of it.
    inflated = min(inflated, PngImagePlugin.MAX_TEXT_MEMORY + PngImagePlugin.MAX_TEXT_CHUNK)
    # Images over the limits are refused from their header without decoding: they cost nothing.
    return (pixels if pixels <= min(MAX_PIXELS, Image.MAX_IMAGE_PIXELS) else 0), inflated, chunks


def _uncompressed_itxt(kind: bytes, data: memoryview, start: int, length: int) -> bool:
    """Whether an iTXt chunk holds its text as is (its compression flag, after the keyword, is 0)."""
    if kind != b"iTXt":
        return False
    keyword_end = bytes(data[start : start + min(length, 80)]).find(b"\0")
    return keyword_end >= 0 and keyword_end + 1 < length and data[start + keyword_end + 1] == 0
