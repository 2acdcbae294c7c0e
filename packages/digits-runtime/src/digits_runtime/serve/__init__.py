"""`digits serve`: the model behind HTTP, and a page to draw a digit on (the ``serve`` extra).

``POST /predict`` classifies one image (the raw body, or one multipart file) or several (multipart
files, answered as a list in order); ``GET /`` is the drawing page; ``GET /health`` and
``GET /model`` describe the running model. Each worker process loads the model once, before it
accepts connections. Decoding and inference run in worker threads: they are CPU-bound, and
Pillow and onnxruntime release the GIL, so the event loop keeps accepting while they work. The
images of requests that wait meanwhile are classified together, in one call (see :class:`Batcher`),
and requests with large images take a lane of their own, so that they never hold up small ones.
The folder holds :mod:`~digits_runtime.serve.app` (routes, limits, batching),
:mod:`~digits_runtime.serve.server` (processes and signals), :mod:`~digits_runtime.serve.connections`
(the connection limits uvicorn lacks) and :mod:`~digits_runtime.serve.page` (the drawing page).
"""

from digits_runtime.serve.app import MAX_BODY_BYTES, MAX_FILES, MAX_REQUEST_PIXELS, create_app, model_info
from digits_runtime.serve.server import listen, run

__all__ = ["MAX_BODY_BYTES", "MAX_FILES", "MAX_REQUEST_PIXELS", "create_app", "listen", "model_info", "run"]
