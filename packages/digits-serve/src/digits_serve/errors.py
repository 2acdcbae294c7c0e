"""The error answers of `digits serve`: every one is JSON, ``{"code": "a_stable_code", "error": "one line"}``.

:class:`ApiError` is an answer the server means to send; :func:`http_error` writes it (and
Starlette's own 404 and 405) and :func:`internal_error` answers a bug without its traceback.
"""

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


class ApiError(HTTPException):
    """An error answer: its status, a stable ``code`` for programs, and one line for people."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, message, headers)
        self.code = code


async def http_error(request: Request, exc: Exception) -> Response:
    """Every error the server means to send is JSON: ``{"code": "a_stable_code", "error": "one line"}``."""
    assert isinstance(exc, HTTPException)
    if isinstance(exc, ApiError):
        code, message = exc.code, exc.detail
    elif exc.status_code == 404:
        code, message = "not_found", f"there is no {request.url.path} here: the routes are listed at /docs"
    elif exc.status_code == 405:
        code, message = "method_not_allowed", f"{request.url.path} does not take {request.method}"
    else:
        code, message = f"http_{exc.status_code}", exc.detail
    request.app.state.metrics.errors.labels(code).inc()
    return JSONResponse({"code": code, "error": message}, status_code=exc.status_code, headers=exc.headers)


async def internal_error(request: Request, exc: Exception) -> Response:
    """A bug: the client gets one line, the traceback goes to the server's log only."""
    request.app.state.metrics.errors.labels("internal_error").inc()
    return JSONResponse(
        {"code": "internal_error", "error": "internal error: the server could not answer this request"},
        status_code=500,
    )
