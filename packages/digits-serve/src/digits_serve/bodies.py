"""Reading the request bodies of `digits serve`: the body itself, refused as soon as it is too large,
the memory all bodies held at once may take (per worker and per client), and a multipart body's
files, as in-memory files named by their file names.
"""

import io
from pathlib import PurePosixPath
from typing import Any

from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request

import digits_serve.connections as connections
from digits_serve.errors import ApiError
from digits_serve.limits import CLIENT_BODY_SHARE, MAX_FILES

RAW_BODY_NAME = "request body"  # how error messages name an image sent as the raw body
HOW = " (e.g. curl --data-binary @photo.png URL/predict, or curl -F file=@a.png -F file=@b.png URL/predict)"


class BodyBudget:
    """The bytes of request bodies a worker holds, in all and per client (see
    :data:`~digits_serve.limits.MAX_BODIES_BYTES`)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self.clients: dict[str, int] = {}

    def take(self, client: str, size: int) -> None:
        """Count ``size`` more bytes held for ``client``, or refuse them with 503."""
        held = self.clients.get(client, 0)
        if held + size > self.total // CLIENT_BODY_SHARE:
            raise ApiError(
                503,
                "client_busy",
                f"this client is sending over {self.total // CLIENT_BODY_SHARE / 2**20:.0f} MB of request "
                "bodies at once, the most one client may: wait for their answers",
                headers={"Retry-After": "1"},
            )
        if self.used + size > self.total:
            raise ApiError(
                503,
                "server_busy",
                f"the server holds {self.total / 2**20:.0f} MB of request bodies, its most: "
                "try again shortly",
                headers={"Retry-After": "1"},
            )
        self.used += size
        self.clients[client] = held + size

    def give_back(self, client: str, size: int) -> None:
        self.used -= size
        left = self.clients[client] - size
        if left:
            self.clients[client] = left
        else:
            del self.clients[client]


class Reservation:
    """What one request holds of the :class:`BodyBudget`."""

    def __init__(self, budget: BodyBudget, client: str) -> None:
        self.budget, self.client, self.size = budget, client, 0

    def grow(self, size: int) -> None:
        self.budget.take(self.client, size)
        self.size += size

    def release(self) -> None:
        if self.size:
            self.budget.give_back(self.client, self.size)
            self.size = 0


async def read_body(request: Request, limit: int, held: Reservation) -> io.BytesIO:
    """The request body, refused with 413 as soon as it is known to be over ``limit`` bytes, and with
    503 when the worker, or this client, holds too many bodies already (``held`` counts it).

    The connection reads and drops the rest of a refused body (up to ``connections.MAX_DRAIN_BYTES``),
    so that a client that sends its whole body before it reads gets the answer; a body declared
    larger than that is not worth reading, and the connection ends after the answer.
    """
    declared = request.headers.get("content-length", "")
    hopeless = declared.isdigit() and int(declared) > connections.MAX_DRAIN_BYTES
    too_large = ApiError(
        413,
        "body_too_large",
        f"the request body is over the limit of {limit:,} bytes: send smaller or fewer images",
        headers={"Connection": "close"} if hopeless else None,
    )
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    if declared.isdigit():
        held.grow(int(declared))  # before a byte is read: a refused body is dropped as it comes
    # Written into one buffer as it comes: a body is held once, not as pieces and then joined.
    body, size = io.BytesIO(), 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            if size > held.size:  # a chunked body, counted as it grows
                held.grow(size - held.size)
            body.write(chunk)
    except ClientDisconnect:
        raise ApiError(400, "incomplete_body", "the client went away before the body was complete") from None
    body.seek(0)
    return body


async def uploaded_files(headers: Headers, body: bytes, limit: int) -> list[io.BytesIO]:
    """The file parts of a multipart body, in order, as in-memory files named by their filenames."""

    async def whole() -> Any:
        yield body

    parser = MultiPartParser(headers, whole(), max_files=MAX_FILES, max_fields=MAX_FILES, max_part_size=limit)
    parser.spool_max_size = limit  # keep every part in memory: uploads never touch the disk
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise ApiError(400, "bad_multipart", f"the multipart body could not be read: {exc.message}") from None
    files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
    if not files:
        raise ApiError(
            400, "no_files", f"the multipart body holds no files: send each image as a file part{HOW}"
        )
    sources = [named_bytes(await f.read(), f.filename) for f in files]
    await form.close()
    return sources


def named_bytes(data: bytes | io.BytesIO, filename: str | None) -> io.BytesIO:
    """An in-memory file (``data``, or one holding it) named by the last part of ``filename``
    (never opened as a path).

    Its ``filename`` is what answers echo (None for an image sent as the raw body); its ``name``
    is how error messages call it.
    """
    buffer = data if isinstance(data, io.BytesIO) else io.BytesIO(data)
    if filename is None:
        buffer.filename, buffer.name = None, RAW_BODY_NAME  # type: ignore[attr-defined]
        return buffer
    base = PurePosixPath(filename.replace("\\", "/")).name
    buffer.name = buffer.filename = "".join(c for c in base if c.isprintable())[:100] or "upload"  # type: ignore[attr-defined]
    return buffer
