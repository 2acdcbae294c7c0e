"""`digits serve` against one client that tries to stall or lock out the others: images that are cheap
in pixels but costly to open, trailers past the head limit, and a flood of slow bodies."""

import gc
import http.client
import json
import socket
import struct
import weakref
import zlib
from urllib.parse import urlsplit

import pytest

from digits_core.errors import DigitsError
from digits_runtime import Predictor
from digits_serve.admission import MAX_PNG_CHUNKS
from digits_serve.app import Batcher, admit
from digits_serve.bodies import named_bytes
from digits_serve.connections import CLIENT_SHARE, MAX_HEADER_BYTES, RESERVED_FDS
from digits_serve.limits import (
    CLIENT_BODY_SHARE,
    MAX_BODIES_BYTES,
    MAX_BODY_BYTES,
    MAX_REQUEST_INFLATION,
)

from http_helpers import FDS, LIMITED, failed, json_answer, multipart, post, raw, refused, results


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def with_chunks(png: bytes, extra: bytes) -> bytes:
    """``png`` with ``extra`` chunks inserted right after its header chunk (IHDR)."""
    return png[:33] + extra + png[33:]


def test_a_png_of_too_many_chunks_is_refused_without_being_opened(server, eval_pngs, expected):
    """Empty ancillary chunks: each costs Pillow a step in Python, and they are refused by count."""
    many = with_chunks(eval_pngs[0], chunk(b"prVt", b"") * (MAX_PNG_CHUNKS + 1))
    error = (
        f"request body is a PNG of over {MAX_PNG_CHUNKS:,} chunks, more than any image needs: "
        "save it again with an ordinary image editor"
    )
    assert post(server, many)[::2] == (422, refused(failed("image_too_complex", error)))
    # Within the limit, the same chunks are read, and change nothing.
    few = with_chunks(eval_pngs[0], chunk(b"prVt", b"") * 100)
    assert post(server, few)[::2] == (200, results(expected(eval_pngs[0])))
    # In a multipart, the file with too many chunks is refused, the others answered.
    files = [("a.png", eval_pngs[1]), ("many.png", many)]
    assert post(server, *multipart(files))[::2] == (
        200,
        results(
            expected(eval_pngs[1], "a.png"),
            failed("image_too_complex", error.replace("request body", "many.png"), "many.png"),
        ),
    )


def test_compressed_metadata_that_would_inflate_too_far_is_refused_before_reading(
    server, eval_pngs, expected
):
    """zTXt chunks of a megabyte of zeros each: a kilobyte to send, a megabyte each to open."""
    text = chunk(b"zTXt", b"comment\0\0" + zlib.compress(b"\0" * 2**20, 9))
    per_image = 60  # each may inflate to 1 MB (Pillow's limit per chunk), 64 MB per image at most
    costly = with_chunks(eval_pngs[0], text * per_image)
    count = MAX_REQUEST_INFLATION // (per_image * 2**20) + 1
    status, _, answer = post(server, *multipart([("z.png", costly)] * count))
    assert (status, answer["code"]) == (413, "too_much_metadata")
    assert answer["error"].startswith("the images of this request carry compressed text or colour profiles")
    assert answer["error"].endswith(
        f"over the limit of {MAX_REQUEST_INFLATION // 2**20} MB per request: strip their metadata, "
        "or send fewer images"
    )
    # One such image alone is within the budget: it is read (in the lane of costly requests).
    assert post(server, with_chunks(eval_pngs[0], text * 3))[::2] == (200, results(expected(eval_pngs[0])))


def test_trailers_are_held_to_the_head_limit(server, eval_pngs, expected):
    data = eval_pngs[0]
    body = f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n"
    head = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    # A short trailer: answered as usual.
    reply = raw(
        server, head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n") + body + b"X-Sum: 1\r\n\r\n"
    )
    assert json_answer(reply) == (200, results(expected(data)))
    # A trailer field of several times the limit: refused once the limit is passed, and the connection ends.
    reply = raw(server, head + body + b"X-Pad: " + b"a" * (4 * MAX_HEADER_BYTES) + b"\r\n\r\n")
    assert json_answer(reply) == (
        431,
        {
            "code": "headers_too_large",
            "error": f"the chunk framing and trailers of this request are over the limit of "
            f"{MAX_HEADER_BYTES:,} bytes: send fewer or shorter trailer fields",
        },
    )
    assert post(server, data)[::2] == (200, results(expected(data)))


@pytest.mark.slow
def test_one_client_of_slow_bodies_cannot_lock_out_another(serving, model_path, eval_pngs, expected):
    """One client opens as many connections as the server keeps, each sending a head and a part of
    its body; another client is still answered, and the first is told it holds its share."""
    limit = FDS - RESERVED_FDS
    share = limit // CLIENT_SHARE
    half_body = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"\0"
    with serving(model_path, LIMITED) as url:
        address = urlsplit(url)
        slow = []
        try:
            for _ in range(limit):
                slow.append(
                    socket.create_connection(
                        (address.hostname, address.port), source_address=("127.0.0.2", 0)
                    )
                )
                slow[-1].sendall(half_body)
            # The other client (127.0.0.1) is answered while all of them wait.
            assert post(url, eval_pngs[0])[::2] == (200, results(expected(eval_pngs[0])))
            # The slow client's connections beyond its share are refused at once.
            with socket.create_connection(
                (address.hostname, address.port), timeout=10, source_address=("127.0.0.2", 0)
            ) as sock:
                reply = sock.makefile("rb").read()
            assert json_answer(reply) == (
                503,
                {
                    "code": "client_busy",
                    "error": f"this client has {share:,} connections busy, the most one client may hold: "
                    "wait for their answers, or send on fewer connections",
                },
            )
        finally:
            for sock in slow:
                sock.close()


def test_one_client_cannot_hold_every_body_the_server_keeps_in_memory(server, eval_pngs, expected):
    """Large bodies sent slowly from one client: those beyond its share of the bodies the server
    holds get 503 at once (and cost no memory), and another client is still answered."""
    address = urlsplit(server)
    size = MAX_BODY_BYTES - 1
    held = (MAX_BODIES_BYTES // CLIENT_BODY_SHARE) // size  # bodies of this size within one client's share
    head = f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode()
    slow = []
    try:
        for _ in range(held):
            slow.append(
                socket.create_connection((address.hostname, address.port), source_address=("127.0.0.2", 0))
            )
            slow[-1].sendall(head + b"\0")
        assert post(server, eval_pngs[0])[::2] == (200, results(expected(eval_pngs[0])))  # some are held now
        with socket.create_connection(
            (address.hostname, address.port), timeout=10, source_address=("127.0.0.2", 0)
        ) as sock:
            sock.sendall(head)
            reply = sock.makefile("rb")  # the answer comes before any of the body is sent
            status, headers = reply.readline(), http.client.parse_headers(reply)
            assert status.startswith(b"HTTP/1.1 503 "), status
            assert headers["retry-after"] == "1"
            assert json.loads(reply.read(int(headers["content-length"]))) == {
                "code": "client_busy",
                "error": f"this client is sending over {MAX_BODIES_BYTES // CLIENT_BODY_SHARE >> 20} MB of "
                "request bodies at once, the most one client may: wait for their answers",
            }
        assert post(server, eval_pngs[1])[::2] == (200, results(expected(eval_pngs[1])))
    finally:
        for sock in slow:
            sock.close()


def test_an_image_that_fails_is_freed_at_once_not_by_the_garbage_collector(model_path, eval_pngs):
    """Its error must not keep the frames that read it (a cycle holding a 10 MB body until the
    collector runs: the server grew by 50 MB a request under a flood of such bodies)."""
    batcher = Batcher(Predictor(model_path, threads=1))
    bodies = {
        "not an image": b"x" * 1000,
        "truncated": eval_pngs[0][:100],
        "too many chunks": with_chunks(eval_pngs[0], chunk(b"prVt", b"") * (MAX_PNG_CHUNKS + 1)),
    }
    gc.disable()
    try:
        for name, data in bodies.items():
            source = named_bytes(data, name)
            freed = weakref.ref(source)
            outcome = admit([source])[0]
            if not isinstance(outcome, DigitsError):
                outcome = batcher.classify_now([source])[0]
            assert isinstance(outcome, DigitsError), name
            del source
            assert freed() is None, name
    finally:
        gc.enable()
