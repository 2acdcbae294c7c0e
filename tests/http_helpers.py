"""HTTP requests and image bodies for the tests of `digits serve`."""

import http.client
import io
import json
import socket
import struct
import sys
import threading
import zlib
from typing import IO
from urllib.parse import urlsplit

import numpy as np
from PIL import Image

# `digits serve` with short timeouts and a low file-descriptor limit (so a connection limit of
# FDS - RESERVED_FDS), to see the limits act within a test's time.
FDS = 200
LIMITED = [
    sys.executable,
    "-c",
    "import resource, sys; "
    f"resource.setrlimit(resource.RLIMIT_NOFILE, ({FDS}, resource.getrlimit(resource.RLIMIT_NOFILE)[1])); "
    "import digits_serve.connections as connections; "
    "connections.IDLE_TIMEOUT = 1; connections.REQUEST_TIMEOUT = 2; "
    "from digits_runtime.cli import main; main()",
]

SERVE = [sys.executable, "-m", "digits_runtime", "serve"]
NOT_AN_IMAGE = "is not an image file that can be read (PNG, JPEG, GIF, BMP, TIFF, WebP)"
ACCESS_LOGS: dict[str, list[str]] = {}
"""The access-log lines of each server the tests run, by its URL."""


def read_lines(stream: IO[str]) -> list[str]:
    """The lines ``stream`` gives, read in a thread as they come (so that a server never blocks on them)."""
    lines: list[str] = []

    def read() -> None:
        with stream:
            lines.extend(stream)

    threading.Thread(target=read, daemon=True).start()
    return lines


def results(*items: dict) -> dict:
    """The answer of /predict when at least one image is classified."""
    return {"results": list(items)}


def failed(code: str, error: str, file: str | None = None) -> dict:
    """One image's failure: its result, and the whole answer's when it is the only image."""
    return {"file": file, "code": code, "error": error}


def refused(item: dict) -> dict:
    """The 422 answer to a request of one image that could not be classified."""
    return {"code": item["code"], "error": item["error"], "results": [item]}


def call(url: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """One HTTP request on its own connection: (status, headers, parsed JSON or raw bytes)."""
    address = urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    is_json = response.headers.get("content-type", "").startswith("application/json")
    return response.status, response.headers, json.loads(data) if is_json else data


def post(url: str, body: bytes, content_type: str = "image/png"):
    return call(url, "POST", "/predict", body, {"Content-Type": content_type})


def multipart(files: list[tuple[str, bytes]], boundary: str = "digits-test-boundary") -> tuple[bytes, str]:
    """A multipart/form-data body with one file part per (filename, bytes)."""
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode()
        + data
        + b"\r\n"
        for name, data in files
    ]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def png(image: Image.Image | np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    (Image.fromarray(image) if isinstance(image, np.ndarray) else image).save(buffer, format=fmt)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def raw(url: str, data: bytes, timeout: float = 20) -> bytes:
    """Send ``data`` on a new connection and read until the server closes it: everything it answered."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def json_answer(reply: bytes) -> tuple[int, dict]:
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)
