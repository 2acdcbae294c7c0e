"""digits-serve: the model behind HTTP, and a page to draw a digit on, run by `digits serve`.

``POST /predict`` classifies one image (the raw body) or several (multipart files), answered as
one list of results in order; ``GET /`` is the drawing page; ``/docs`` and ``/openapi.json``
describe the API; ``/healthz``, ``/readyz``, ``/model`` and ``/metrics`` describe the running
server. Each worker process loads the model once, before it accepts connections. Decoding and
inference run in worker threads, and requests with costly images take a lane of their own, so
that they never hold up small ones. The package holds :mod:`~digits_serve.app` (routes,
limits, batching), :mod:`~digits_serve.bodies` (reading request bodies and their files),
:mod:`~digits_serve.errors` (the JSON error answers),
:mod:`~digits_serve.admission` (what images cost before they are read),
:mod:`~digits_serve.limits` (what a request may cost),
:mod:`~digits_serve.server` (processes and signals), :mod:`~digits_serve.connections`
(the connection limits uvicorn lacks), :mod:`~digits_serve.observe` (metrics and access
log), :mod:`~digits_serve.openapi` (the API's description) and
:mod:`~digits_serve.page` (the drawing page).
"""

from digits_serve.app import create_app, model_info
from digits_serve.limits import MAX_BODY_BYTES, MAX_FILES, MAX_REQUEST_PIXELS
from digits_serve.server import listen, run

__all__ = ["MAX_BODY_BYTES", "MAX_FILES", "MAX_REQUEST_PIXELS", "create_app", "listen", "model_info", "run"]
