"""What one request to `digits serve` may cost, and what each kind of image error is called.

The app enforces these; the OpenAPI description quotes them, so both say the same.
"""

MAX_BODY_BYTES = 10 * 1024 * 1024
"""Largest request body accepted; larger ones get 413 as soon as their size is known."""
MAX_FILES = 64
"""Most image files one multipart request may carry."""
MAX_REQUEST_PIXELS = 100_000_000
"""Most pixels the images of one request may decode to in all (two of the largest images read); more: 413."""
SMALL_REQUEST_WORK = 100_000
"""Requests whose images cost at most this much work to read in all (see
:class:`~digits_serve.admission.Cost`: a 280x280 drawing, or 64 MNIST digits) are batched
in the small lane; costlier ones queue in the large lane."""
MAX_BODIES_BYTES = 96 * 1024 * 1024
"""Most bytes of request bodies the server holds at once (being read, or until answered), shared
evenly by its workers: a body of 10 MB costs several times that in memory while it is read and
its images are read, so this bounds the memory they take. A body over the budget gets 503 before
it is read."""
CLIENT_BODY_SHARE = 2  # one client (an IP address) may hold at most this share (1/2) of it
INLINE_BYTES = 8 * 1024
"""Bodies up to this size have their images' cost counted on the event loop (a few microseconds, at
most a millisecond); larger ones in a worker thread, since walking them may take longer."""
MAX_REQUEST_INFLATION = 256 * 1024 * 1024
"""Most bytes the compressed metadata (text, colour profiles) of one request's images may inflate to."""
ERROR_CODES = {
    # What each kind of image error is called in answers, by the words of its message.
    "is empty (0 bytes)": "empty_image",
    "is not an image file": "not_an_image",
    "could not be decoded": "corrupt_image",
    "too large to decode safely": "image_too_large",
    "megapixels read here": "image_too_large",
    "too small to hold a digit": "image_too_small",
    "no digit found": "no_digit",
    "cannot be read as a digit image": "unsupported_image",
    "gives NaN or infinity": "model_failure",
}
