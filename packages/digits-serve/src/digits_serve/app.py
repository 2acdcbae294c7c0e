"""The HTTP application of `digits serve`: its routes, limits and the batching of waiting requests.
Request bodies are read by :mod:`~digits_serve.bodies`, error answers written by
:mod:`~digits_serve.errors`.

``POST /predict`` classifies one image (the raw body) or several (multipart files) and answers
``{"results": [...]}``, one result per image in order, whatever their number: its file name,
``probs``, ``prediction``, ``accepted`` and refusal ``score``, or its ``code`` and ``error``. Every
error answer is ``{"code": ..., "error": ...}``. ``GET /`` is the drawing page, ``/docs`` and
``/openapi.json`` describe the API, ``/healthz`` and ``/readyz`` are the probes, ``/model``
describes the model and ``/metrics`` counts requests (:mod:`~digits_serve.observe`).

What the images of a request will cost is counted from their bytes before any is decoded
(:mod:`~digits_serve.admission`), off the event loop unless the body is tiny. Decoding and
inference run in worker threads: they are CPU-bound, and Pillow and onnxruntime release the GIL,
so the event loop keeps accepting while they work. The images of requests that wait meanwhile are
classified together, in one call (see :class:`Batcher`), and costly requests take a lane of their
own, so that they never hold up small ones.
"""

import asyncio
import hashlib
import io
import json
from collections.abc import Sequence
from typing import Any

import anyio.to_thread
from PIL import Image, ImageDraw
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

import digits_serve.connections as connections
import digits_serve.openapi as openapi
from digits_core import contract
from digits_core.errors import DigitsError
from digits_runtime.predictor import Prediction, Predictor
from digits_serve.admission import Cost, TooComplex, image_cost
from digits_serve.bodies import HOW, BodyBudget, Reservation, named_bytes, read_body, uploaded_files
from digits_serve.errors import ApiError, http_error, internal_error
from digits_serve.limits import (
    ERROR_CODES,
    INLINE_BYTES,
    MAX_BODIES_BYTES,
    MAX_BODY_BYTES,
    MAX_REQUEST_INFLATION,
    MAX_REQUEST_PIXELS,
    SMALL_REQUEST_WORK,
)
from digits_serve.observe import Metrics, Recorder
from digits_serve.page import PAGE_HEADERS, page_html

Classified = tuple[Prediction, float]  # an image's prediction and its refusal score


def create_app(
    predictor: Predictor,
    *,
    max_body: int = MAX_BODY_BYTES,
    access_log: bool = True,
    cors_origins: Sequence[str] = (),
    workers: int = 1,
) -> Starlette:
    """The ASGI application answering with ``predictor``, in one of ``workers`` processes.

    ``access_log`` writes one line per request on standard output; ``cors_origins`` lists the
    origins (or ``*``) whose pages may call the API from a browser.
    """
    page = page_html()
    model = JSONResponse(model_info(predictor)).body
    spec = openapi.spec(predictor)
    spec_body = JSONResponse(spec).body
    docs = openapi.html(spec)
    meter = Metrics()
    connections.on_refusal = meter.refused
    # Two lanes, each one worker thread at a time: a 7000x7000 image costs a second to decode, a
    # 28x28 digit half a millisecond, and a digit must not wait behind the large images.
    small, large = Batcher(predictor), Batcher(predictor)
    probe = named_bytes(probe_png(), "readiness probe")
    bodies = BodyBudget(MAX_BODIES_BYTES // workers)

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers=PAGE_HEADERS)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(request: Request) -> Response:
        # The model answers a digit through the same lane as the small requests: it can serve.
        outcome = (await small.classify([probe]))[0]
        if isinstance(outcome, DigitsError):
            raise ApiError(503, "not_ready", f"the model cannot answer: {outcome}")
        return JSONResponse({"status": "ready"})

    async def describe(request: Request) -> Response:
        return Response(model, media_type="application/json")

    async def openapi_json(request: Request) -> Response:
        return Response(spec_body, media_type="application/json")

    async def docs_page(request: Request) -> Response:
        return HTMLResponse(docs, headers=PAGE_HEADERS)

    async def metrics(request: Request) -> Response:
        return Response(meter.exposition(), media_type=meter.CONTENT_TYPE)

    async def predict(request: Request) -> Response:
        held = Reservation(bodies, request.client.host if request.client else "")
        try:
            return await answer(request, held)
        finally:
            held.release()  # the body and its images are dropped with the answer

    async def answer(request: Request, held: "Reservation") -> Response:
        body = await read_body(request, max_body, held)
        size = len(body.getbuffer())
        # Any other content type is the image itself (curl --data-binary sends form-urlencoded).
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type == "multipart/form-data":
            sources = await uploaded_files(request.headers, body.getvalue(), max_body)
            del body  # its files are copies
        elif not size:
            raise ApiError(400, "empty_body", f"the request body is empty: send an image{HOW}")
        else:
            sources = [named_bytes(body, None)]
        # What the images will cost, from their bytes and headers: off the event loop unless tiny.
        if size <= INLINE_BYTES:
            costs = admit(sources)
        else:
            costs = await anyio.to_thread.run_sync(admit, sources)
        readable = [(i, cost) for i, cost in enumerate(costs) if isinstance(cost, Cost)]
        pixels = sum(cost.pixels for _, cost in readable)
        if pixels > MAX_REQUEST_PIXELS:
            raise ApiError(
                413,
                "too_many_pixels",
                f"the images of this request add up to {pixels / 1e6:.0f} megapixels, over the limit of "
                f"{MAX_REQUEST_PIXELS / 1e6:.0f} per request: send fewer or smaller images",
            )
        inflated = sum(cost.inflated for _, cost in readable)
        if inflated > MAX_REQUEST_INFLATION:
            raise ApiError(
                413,
                "too_much_metadata",
                f"the images of this request carry compressed text or colour profiles that may inflate "
                f"to {inflated / 2**20:,.0f} MB, over the limit of {MAX_REQUEST_INFLATION / 2**20:.0f} MB "
                "per request: strip their metadata, or send fewer images",
            )
        work = sum(cost.work for _, cost in readable)
        lane = small if work <= SMALL_REQUEST_WORK else large
        outcomes: list[Classified | DigitsError] = list(costs)  # type: ignore[arg-type]
        if readable:
            answered = await lane.classify([sources[i] for i, _ in readable])
            for (i, _), outcome in zip(readable, answered, strict=True):
                outcomes[i] = outcome
        results = [result_item(source, outcome) for source, outcome in zip(sources, outcomes, strict=True)]
        meter.images(results)
        failed = [item for item in results if "error" in item]
        if len(failed) < len(results):
            return JSONResponse({"results": results})
        # Not one image could be classified: the request failed, and says why for each.
        if len(results) == 1:
            code, message = failed[0]["code"], failed[0]["error"]
        else:
            code = "no_image_classified"
            message = f"none of the {len(results)} images could be classified: see each result's error"
        return JSONResponse({"code": code, "error": message, "results": results}, status_code=422)

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/docs", docs_page, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/readyz", ready, methods=["GET"]),
        Route("/model", describe, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/predict", predict, methods=["POST"]),
    ]
    middleware = [Middleware(Recorder, metrics=meter, access_log=access_log, routes={r.path for r in routes})]
    if cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["Content-Type"],
                max_age=600,
            )
        )
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: http_error, Exception: internal_error},
    )
    app.state.metrics = meter
    return app


def probe_png() -> bytes:
    """A 28x28 PNG of a drawn 0: what /readyz asks the model to classify."""
    image = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(image).ellipse((8, 5, 20, 23), outline=255, width=2)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def admit(sources: list[io.BytesIO]) -> list[Cost | DigitsError]:
    """Each source's :class:`Cost`, or the error that refuses it without reading it further."""
    costs: list[Cost | DigitsError] = []
    for source in sources:
        try:
            costs.append(image_cost(source))
        except TooComplex as exc:
            costs.append(detached(exc))
    return costs


def detached(error: DigitsError) -> DigitsError:
    """``error`` without its traceback and the exception it was raised from.

    An error kept with them keeps the frames that raised it, which may keep it in turn: a cycle,
    freed only when the garbage collector runs, that holds a request's body (10 MB) until then.
    """
    error.__traceback__ = error.__context__ = error.__cause__ = None
    return error


def result_item(source: io.BytesIO, outcome: "Classified | DigitsError") -> dict[str, Any]:
    """One image's entry in an answer: its file name, then its answer and score, or its error and code."""
    name = getattr(source, "filename", None)
    if isinstance(outcome, DigitsError):
        return {"file": name, "code": error_code(outcome), "error": str(outcome)}
    prediction, score = outcome
    return {"file": name, **prediction.to_json(), "score": round(score, 6)}


def error_code(error: DigitsError) -> str:
    """The stable code of an image's error (the kind of :class:`ImageError` is told by its message)."""
    if isinstance(error, TooComplex):
        return "image_too_complex"
    message = str(error)
    return next((code for words, code in ERROR_CODES.items() if words in message), "unreadable_image")


class Batcher:
    """Classify the images of all waiting requests together, in one worker-thread call at a time.

    Under load, requests that arrive while a batch runs form the next batch: one thread hand-off
    and one onnxruntime call serve them all, instead of one each.
    """

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.waiting: list[tuple[list[Any], asyncio.Future]] = []
        self.running: asyncio.Task | None = None

    async def classify(self, sources: list[Any]) -> list["Classified | DigitsError"]:
        """Each source's prediction and refusal score, or its error: batched with the others waiting."""
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
                    outcomes = await anyio.to_thread.run_sync(self.classify_now, flat)
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

    def classify_now(self, sources: list[Any]) -> list["Classified | DigitsError"]:
        """``Predictor.predict_each`` with each prediction's refusal score, in this thread."""
        classified, errors = self.predictor.classify_each(sources)
        errors = [error and detached(error) for error in errors]
        predictions = self.predictor.to_predictions(classified)
        answers = iter(zip(predictions, classified.scores.tolist(), strict=True))
        return [error or next(answers) for error in errors]


def model_info(predictor: Predictor) -> dict[str, Any]:
    """What the model says about itself: labels, data fingerprint, validation metrics, versions,
    the CPU kernels and threads that trained it, refusal."""

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
        "trained_on": parsed(contract.META_TRAINED_ON),
        "refusal": parsed(contract.META_REFUSAL),
    }
