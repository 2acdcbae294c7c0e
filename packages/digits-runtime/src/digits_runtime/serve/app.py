"""The HTTP application of `digits serve`: its routes, limits and the batching of waiting requests.

``POST /predict`` classifies one image (the raw body, or one multipart file) or several (multipart
files, answered as a list in order); ``GET /`` is the drawing page; ``GET /health`` and
``GET /model`` describe the running model. Decoding and inference run in worker threads: they are
CPU-bound, and Pillow and onnxruntime release the GIL, so the event loop keeps accepting while they
work. The images of requests that wait meanwhile are classified together, in one call (see
:class:`Batcher`), and requests with large images take a lane of their own, so that they never hold
up small ones.
"""

import asyncio
import hashlib
import io
import json
from pathlib import PurePosixPath
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.datastructures import Headers, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

import digits_runtime.serve.connections as connections
from digits_core import contract
from digits_core.errors import DigitsError
from digits_core.images import decoded_pixels
from digits_runtime.predictor import Prediction, Predictor
from digits_runtime.serve.page import PAGE_HEADERS, page_html

MAX_BODY_BYTES = 10 * 1024 * 1024
"""Largest request body accepted; larger ones get 413 as soon as their size is known."""
MAX_FILES = 64
"""Most image files one multipart request may carry."""
MAX_REQUEST_PIXELS = 100_000_000
"""Most pixels the images of one request may decode to in all (two of the largest images read); more: 413."""
SMALL_REQUEST_PIXELS = 100_000
"""Requests whose images decode to at most this many pixels in all (a 280x280 drawing, or 64 MNIST
digits) are batched in the small lane; larger ones queue in the large lane."""
RAW_BODY_NAME = "request body"  # how error messages name an image sent as the raw body


def create_app(predictor: Predictor, *, max_body: int = MAX_BODY_BYTES) -> Starlette:
    """The ASGI application answering with ``predictor``."""
    page = page_html()
    model = JSONResponse(model_info(predictor)).body
    # Two lanes, each one worker thread at a time: a 7000x7000 image costs a second to decode, a
    # 28x28 digit half a millisecond, and a digit must not wait behind the large images.
    small, large = Batcher(predictor), Batcher(predictor)

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers=PAGE_HEADERS)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def describe(request: Request) -> Response:
        return Response(model, media_type="application/json")

    async def predict(request: Request) -> Response:
        body = await read_body(request, max_body)
        # Any other content type is the image itself (curl --data-binary sends form-urlencoded).
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type == "multipart/form-data":
            sources = await uploaded_files(request.headers, body, max_body)
        elif not body:
            raise HTTPException(400, f"the request body is empty: send an image{HOW}")
        else:
            sources = [named_bytes(body, RAW_BODY_NAME)]
        pixels = sum(decoded_pixels(source) for source in sources)  # from the headers: microseconds
        if pixels > MAX_REQUEST_PIXELS:
            raise HTTPException(
                413,
                f"the images of this request add up to {pixels / 1e6:.0f} megapixels, over the limit of "
                f"{MAX_REQUEST_PIXELS / 1e6:.0f} per request: send fewer or smaller images",
            )
        lane = small if pixels <= SMALL_REQUEST_PIXELS else large
        outcomes = await lane.predict_each(sources)
        if len(outcomes) == 1:
            if isinstance(outcomes[0], DigitsError):
                raise HTTPException(422, str(outcomes[0]))
            return JSONResponse(outcomes[0].to_json())
        return JSONResponse(
            [o.to_json() if isinstance(o, Prediction) else {"error": str(o)} for o in outcomes]
        )

    return Starlette(
        routes=[
            Route("/", index, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/model", describe, methods=["GET"]),
            Route("/predict", predict, methods=["POST"]),
        ],
        exception_handlers={HTTPException: http_error, Exception: internal_error},
    )


class Batcher:
    """Classify the images of all waiting requests together, in one worker-thread call at a time.

    Under load, requests that arrive while a batch runs form the next batch: one thread hand-off
    and one onnxruntime call serve them all, instead of one each.
    """

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.waiting: list[tuple[list[Any], asyncio.Future]] = []
        self.running: asyncio.Task | None = None

    async def predict_each(self, sources: list[Any]) -> list[Prediction | DigitsError]:
        """``Predictor.predict_each`` for one request's sources, batched with the others waiting."""
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((sources, future))
        if self.running is None:
            self.running = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting, []
                flat = [source for sources, _ in batch for source in sources]
                try:
                    outcomes = await anyio.to_thread.run_sync(self.predictor.predict_each, flat)
                except Exception as exc:  # a bug: each request of the batch answers 500
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                start = 0
                for sources, future in batch:
                    if not future.done():  # a client that went away cancelled its future
                        future.set_result(outcomes[start : start + len(sources)])
                    start += len(sources)
        finally:
            self.running = None


HOW = " (e.g. curl --data-binary @photo.png URL/predict, or curl -F file=@a.png -F file=@b.png URL/predict)"


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to be over ``limit`` bytes.

    The connection reads and drops the rest of a refused body (up to ``connections.MAX_DRAIN_BYTES``),
    so that a client that sends its whole body before it reads gets the answer; a body declared
    larger than that is not worth reading, and the connection ends after the answer.
    """
    declared = request.headers.get("content-length", "")
    hopeless = declared.isdigit() and int(declared) > connections.MAX_DRAIN_BYTES
    too_large = HTTPException(
        413,
        f"the request body is over the limit of {limit:,} bytes: send smaller or fewer images",
        headers={"Connection": "close"} if hopeless else None,
    )
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
    except ClientDisconnect:
        raise HTTPException(400, "the client went away before the body was complete") from None
    return b"".join(chunks)


async def uploaded_files(headers: Headers, body: bytes, limit: int) -> list[io.BytesIO]:
    """The file parts of a multipart body, in order, as in-memory files named by their filenames."""

    async def whole() -> Any:
        yield body

    parser = MultiPartParser(headers, whole(), max_files=MAX_FILES, max_fields=MAX_FILES, max_part_size=limit)
    parser.spool_max_size = limit  # keep every part in memory: uploads never touch the disk
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise HTTPException(400, f"the multipart body could not be read: {exc.message}") from None
    files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
    if not files:
        raise HTTPException(400, f"the multipart body holds no files: send each image as a file part{HOW}")
    sources = [named_bytes(await f.read(), f.filename) for f in files]
    await form.close()
    return sources


def named_bytes(data: bytes, name: str | None) -> io.BytesIO:
    """An in-memory file named for error messages by the last part of ``name`` (never opened as a path)."""
    buffer = io.BytesIO(data)
    base = PurePosixPath((name or "").replace("\\", "/")).name
    buffer.name = "".join(c for c in base if c.isprintable())[:100] or "upload"
    return buffer


def model_info(predictor: Predictor) -> dict[str, Any]:
    """What the model says about itself: labels, data fingerprint, validation metrics, versions, refusal."""

    def parsed(key: str) -> Any:
        value = predictor.metadata.get(key)
        try:
            return None if value is None else json.loads(value)
        except ValueError:
            return value

    with open(predictor.path, "rb") as handle:
        sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
    return {
        "file": predictor.path.name,
        "sha256": sha256,
        "labels": list(predictor.labels),
        "fingerprint": predictor.metadata.get(contract.META_FINGERPRINT),
        "validation_metrics": parsed(contract.META_VAL_METRICS),
        "versions": parsed(contract.META_VERSIONS),
        "refusal": parsed(contract.META_REFUSAL),
    }


async def http_error(request: Request, exc: Exception) -> Response:
    """Every error the server means to send is JSON: ``{"error": "one line"}``."""
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def internal_error(request: Request, exc: Exception) -> Response:
    """A bug: the client gets one line, the traceback goes to the server's log only."""
    return JSONResponse(
        {"error": "internal error: the server could not answer this request"}, status_code=500
    )
