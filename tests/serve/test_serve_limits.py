"""`digits serve` under load and abuse: large images beside small ones, oversized heads, idle, slow
and surplus connections, over real HTTP to real server processes."""

import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
from PIL import Image

from digits_serve import MAX_REQUEST_PIXELS
from digits_serve.connections import CLIENT_SHARE, MAX_HEADER_BYTES, RESERVED_FDS

from http_helpers import FDS, LIMITED, json_answer, multipart, png, post, raw, results


@pytest.fixture(scope="module")
def large_png() -> bytes:
    """A 7000x7000 PNG of a digit-like stroke: under the per-image limit, a second or so to read."""
    image = Image.new("L", (7000, 7000), 235)
    image.paste(30, (2500, 1500, 4500, 5500))
    image.paste(235, (3000, 2000, 4000, 5000))
    return png(image)


@pytest.mark.slow
def test_a_digit_is_answered_while_a_large_request_runs(server, large_png, eval_pngs, expected):
    """Digits sent one after another while two 49-megapixel images are read are answered first."""
    body, content_type = multipart([("a.png", large_png), ("b.png", large_png)])
    heavy: dict = {}

    def send_heavy() -> None:
        heavy["answer"] = post(server, body, content_type)

    thread = threading.Thread(target=send_heavy)
    thread.start()
    answered_meanwhile = 0
    try:
        for i in range(500):
            if not thread.is_alive():
                break
            data = eval_pngs[i % len(eval_pngs)]
            assert post(server, data)[::2] == (200, results(expected(data)))
            answered_meanwhile += thread.is_alive()
    finally:
        thread.join()
    status, _, answer = heavy["answer"]
    assert status == 200
    answers = [{k: v for k, v in item.items() if k != "file"} for item in answer["results"]]
    assert len(answers) == 2
    assert answers[0] == answers[1]
    assert "prediction" in answers[0]
    # Behind the large request, at most the one or two digits that got in before it would be answered.
    assert answered_meanwhile >= 20


def test_a_request_over_the_pixel_budget_gets_413(server, large_png):
    body, content_type = multipart([("a.png", large_png)] * 3)
    assert post(server, body, content_type)[::2] == (
        413,
        {
            "code": "too_many_pixels",
            "error": f"the images of this request add up to 147 megapixels, over the limit of "
            f"{MAX_REQUEST_PIXELS // 10**6} per request: send fewer or smaller images",
        },
    )


def test_a_head_over_the_limit_gets_431_and_the_server_keeps_serving(server, eval_pngs, expected):
    start = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
    # Just under the limit: answered.
    head = start + b"X-Pad: " + b"a" * (MAX_HEADER_BYTES - 1000) + b"\r\n"
    data = eval_pngs[0]
    reply = raw(server, head + f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
    assert json_answer(reply) == (200, results(expected(data)))
    # Over it (the head never ends): 431 at once, without waiting for the rest.
    reply = raw(server, start + b"X-Pad: " + b"a" * (2 * MAX_HEADER_BYTES))
    assert reply.startswith(b"HTTP/1.1 431 ")
    assert json_answer(reply) == (
        431,
        {
            "code": "headers_too_large",
            "error": f"the request headers are over the limit of {MAX_HEADER_BYTES:,} bytes: "
            "send fewer or shorter headers",
        },
    )
    assert post(server, data)[::2] == (200, results(expected(data)))


@pytest.mark.slow
def test_idle_and_slow_connections_are_closed(serving, model_path, eval_pngs, expected):
    timeout = {"code": "request_timeout", "error": "the request did not arrive whole within 2 seconds"}
    half_body = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"\0" * 10
    sent = [b"", b"POST /predict HTTP/1.1\r\nHost: x\r\n", half_body]
    with serving(model_path, LIMITED) as url:
        # Three connections from one client (its share is CLIENT_SHARE), waiting out their timeouts together.
        with ThreadPoolExecutor(len(sent)) as pool:
            idle, head_only, half = pool.map(lambda data: raw(url, data), sent)
        assert idle == b""  # idle: closed without a word
        assert json_answer(head_only) == (408, timeout)
        assert json_answer(half) == (408, timeout)
        assert post(url, eval_pngs[0])[::2] == (200, results(expected(eval_pngs[0])))


@pytest.mark.slow
def test_idle_connections_cannot_keep_a_client_out(serving, model_path, eval_pngs, expected):
    """More idle connections than the server allows, then a real request: the longest idle makes room."""
    with serving(model_path, LIMITED) as url:
        address = urlsplit(url)
        idle = [socket.create_connection((address.hostname, address.port)) for _ in range(FDS + 100)]
        try:
            assert post(url, eval_pngs[0])[::2] == (200, results(expected(eval_pngs[0])))
        finally:
            for sock in idle:
                sock.close()


@pytest.mark.slow
def test_connections_beyond_the_limit_get_503_when_all_are_busy(serving, model_path, eval_pngs, expected):
    limit = FDS - RESERVED_FDS
    half_body = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    with serving(model_path, LIMITED) as url:
        address = urlsplit(url)
        busy = []
        try:
            # From several clients (loopback addresses), each within its share.
            for i in range(limit):
                source = (f"127.0.0.{2 + i // (limit // CLIENT_SHARE)}", 0)
                busy.append(socket.create_connection((address.hostname, address.port), source_address=source))
                busy[-1].sendall(half_body)
            # Once every connection holds a request being read, a new one is refused with 503.
            for _ in range(20):
                reply = raw(url, b"")
                if reply:
                    break
            assert json_answer(reply) == (
                503,
                {
                    "code": "server_busy",
                    "error": f"the server has {limit:,} connections busy: try again shortly",
                },
            )
        finally:
            for sock in busy:
                sock.close()
        assert post(url, eval_pngs[0])[::2] == (200, results(expected(eval_pngs[0])))
