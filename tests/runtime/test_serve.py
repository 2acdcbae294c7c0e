"""`digits serve`: every endpoint and every bad input, over real HTTP to a real server process."""

import contextlib
import hashlib
import http.client
import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from urllib.parse import urlsplit

import numpy as np
import onnx
import psutil
import pytest
from PIL import Image

from digits_core import contract
from digits_core.cli_support import run_fire
from digits_data import dataset
from digits_runtime import Predictor, cli
from digits_runtime.serve import MAX_BODY_BYTES, MAX_FILES, MAX_REQUEST_PIXELS, model_info
from digits_runtime.serve.connections import MAX_DRAIN_BYTES, MAX_HEADER_BYTES, RESERVED_FDS

SERVE = [sys.executable, "-m", "digits_runtime", "serve"]
NOT_AN_IMAGE = "is not an image file that can be read (PNG, JPEG, GIF, BMP, TIFF, WebP)"


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


@pytest.fixture(scope="module")
def eval_pngs(small_curated) -> list[bytes]:
    """Ten eval images as PNG files in MNIST form."""
    split = dataset.load_split(small_curated, "eval")
    return [png(split.images[i]) for i in range(10)]


@pytest.fixture(scope="module")
def photo(small_curated) -> bytes:
    """A 640x480 JPEG "photo": an eval digit as dark ink on grey paper, 12x larger, off center."""
    digit = dataset.load_split(small_curated, "eval").images[3]
    ink = Image.fromarray(255 - digit).resize((336, 336), Image.Resampling.BILINEAR)
    paper = Image.new("L", (640, 480), 200)
    paper.paste(ink.point(lambda v: min(v, 200)), (200, 80))
    return png(paper.convert("RGB"), "JPEG")


@pytest.fixture(scope="module")
def expected(model_path):
    """What the Predictor itself answers for image bytes: the server must give exactly this."""
    predictor = Predictor(model_path, threads=1)
    return lambda data: predictor.predict(io.BytesIO(data)).to_json()


def test_health_and_model(server, model_path, small_curated):
    assert call(server, "GET", "/health")[::2] == (200, {"status": "ok"})
    status, _, described = call(server, "GET", "/model")
    assert status == 200
    assert described == {
        "file": "model.onnx",
        "sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
        "labels": [0, 5, 8],
        "fingerprint": dataset.fingerprint(small_curated),
        "validation_metrics": None,
        "versions": None,
        "refusal": None,
    }


def test_model_info_reads_the_metadata(model_path, tmp_path):
    model = onnx.load(model_path)
    refusal = {"score": "max_probability", "threshold": 0.9, "known_accept_rate": 0.99, "chosen_on": "val"}
    extra = {
        contract.META_VAL_METRICS: json.dumps({"val_macro_f1": 0.99}),
        contract.META_VERSIONS: json.dumps({"torch": "2.13.0"}),
        contract.META_REFUSAL: json.dumps(refusal),
    }
    onnx.helper.set_model_props(model, {p.key: p.value for p in model.metadata_props} | extra)
    onnx.save(model, tmp_path / "described.onnx")
    info = model_info(Predictor(tmp_path / "described.onnx"))
    assert info["validation_metrics"] == {"val_macro_f1": 0.99}
    assert info["versions"] == {"torch": "2.13.0"}
    assert info["refusal"] == refusal
    assert info["file"] == "described.onnx"


def test_page_is_self_contained(server):
    status, headers, page = call(server, "GET", "/")
    text = page.decode()
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["content-security-policy"].startswith("default-src 'none';")
    assert '<canvas id="pad"' in text
    assert "not a 0, 5 or 8" in text
    for external in ("http://", "https://", 'src="//', 'href="//'):
        assert external not in text


def test_one_image_as_raw_body_or_one_file_gives_the_predict_json(server, eval_pngs, photo, expected):
    for data in [*eval_pngs[:3], photo]:
        status, headers, answer = post(server, data)
        assert (status, answer) == (200, expected(data))
        assert list(answer) == list(expected(data))  # same keys in the same order as `digits predict`
        assert headers["content-type"] == "application/json"
    body, content_type = multipart([("digit.png", eval_pngs[4])])
    assert post(server, body, content_type)[::2] == (200, expected(eval_pngs[4]))
    # curl --data-binary sends form-urlencoded unless told otherwise: the body is still the image.
    assert post(server, eval_pngs[5], "application/x-www-form-urlencoded")[::2] == (
        200,
        expected(eval_pngs[5]),
    )


def test_several_files_give_a_list_in_order(server, eval_pngs, photo, expected):
    files = [(f"img{i}.png", data) for i, data in enumerate(eval_pngs)] + [("photo.jpg", photo)]
    status, _, answers = post(server, *multipart(files))
    assert status == 200
    assert answers == [expected(data) for _, data in files]


def test_mixed_batch_answers_the_good_files_and_names_the_bad(server, eval_pngs, expected):
    blank = png(Image.new("L", (64, 64), 255))
    truncated = png(Image.fromarray(np.full((200, 200), 128, np.uint8)).convert("RGB"), "JPEG")[:300]
    files = [
        ("a.png", eval_pngs[0]),
        ("notes.txt", b"hello"),
        ("blank.png", blank),
        ("../../etc/passwd", eval_pngs[1]),  # a name only: nothing is read from or written to disk
        ("cut.jpg", truncated),
        ("empty.png", b""),
        ("C:\\scans\\b.png", b"GIF89a"),
        ("c.png", eval_pngs[2]),
    ]
    status, _, answers = post(server, *multipart(files))
    assert status == 200
    assert len(answers) == len(files)
    assert answers[0] == expected(eval_pngs[0])
    assert answers[1] == {"error": f"notes.txt {NOT_AN_IMAGE}"}
    assert answers[2] == {"error": "no digit found in blank.png: the image is blank or uniform"}
    assert answers[3] == expected(eval_pngs[1])
    assert answers[4]["error"].startswith("cut.jpg could not be decoded, it may be truncated or corrupt (")
    assert answers[5] == {"error": "empty.png is empty (0 bytes)"}
    assert answers[6] == {"error": f"b.png {NOT_AN_IMAGE}"}
    assert answers[7] == expected(eval_pngs[2])


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"hello, not an image", 422, f"request body {NOT_AN_IMAGE}"),
        (
            png(Image.new("L", (64, 64), 0)),
            422,
            "no digit found in request body: the image is blank or uniform",
        ),
        (png(Image.new("L", (4, 4), 0)), 422, "request body is 4x4 pixels, too small to hold a digit"),
        (
            png_claiming(20_000, 20_000),
            422,
            f"request body is too large to decode safely (over {Image.MAX_IMAGE_PIXELS:,} pixels): "
            "scale it down first",
        ),
    ],
    ids=["not-an-image", "blank", "tiny", "decompression-bomb"],
)
def test_bad_images_get_the_cli_message(server, body, status, error):
    assert post(server, body)[::2] == (status, {"error": error})


def test_truncated_image(server, eval_pngs):
    big = png(Image.open(io.BytesIO(eval_pngs[0])).resize((300, 300)))
    status, _, answer = post(server, big[: len(big) // 2])
    assert status == 422
    assert answer["error"].startswith("request body could not be decoded, it may be truncated or corrupt (")
    assert "\n" not in answer["error"]


def test_bad_requests(server, eval_pngs):
    how = (
        "(e.g. curl --data-binary @photo.png URL/predict, or curl -F file=@a.png -F file=@b.png URL/predict)"
    )
    assert post(server, b"")[::2] == (400, {"error": f"the request body is empty: send an image {how}"})
    no_files = b'--b\r\nContent-Disposition: form-data; name="note"\r\n\r\nhi\r\n--b--\r\n'
    assert post(server, no_files, "multipart/form-data; boundary=b")[::2] == (
        400,
        {"error": f"the multipart body holds no files: send each image as a file part {how}"},
    )
    assert post(server, b"garbage", "multipart/form-data")[::2] == (
        400,
        {"error": "the multipart body could not be read: Missing boundary in multipart."},
    )
    n = MAX_FILES
    too_many = multipart([("a.png", eval_pngs[0])] * (n + 1))
    assert post(server, *too_many)[::2] == (
        400,
        {"error": f"the multipart body could not be read: Too many files. Maximum number of files is {n}."},
    )
    assert call(server, "GET", "/predict")[::2] == (405, {"error": "Method Not Allowed"})
    assert call(server, "POST", "/health")[::2] == (405, {"error": "Method Not Allowed"})
    assert call(server, "GET", "/../etc/passwd")[::2] == (404, {"error": "Not Found"})


def test_bodies_over_the_limit_get_413(server, eval_pngs, expected):
    limit = f"{MAX_BODY_BYTES:,}"
    error = {"error": f"the request body is over the limit of {limit} bytes: send smaller or fewer images"}
    # Declared larger than the server would ever drain: refused from the header, and the connection ends.
    address = urlsplit(server)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(
            f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_DRAIN_BYTES + 1}\r\n\r\n".encode()
        )
        reply = sock.makefile("rb").read()
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert json.loads(body) == error
    assert b"\r\nconnection: close\r\n" in head.lower()
    # Chunked, with no length given: refused once the count passes the limit.
    chunks = [b"\0" * (1 << 20)] * (MAX_BODY_BYTES >> 20) + [b"\0"]
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    connection.request("POST", "/predict", body=iter(chunks), encode_chunked=True)
    response = connection.getresponse()
    assert (response.status, json.loads(response.read())) == (413, error)
    connection.close()
    assert post(server, eval_pngs[0])[::2] == (200, expected(eval_pngs[0]))  # and it keeps serving


def test_a_body_over_the_limit_sent_whole_still_reads_413(server, eval_pngs, expected):
    """http.client (like requests) sends the whole body before it reads: the answer must survive that."""
    address = urlsplit(server)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    connection.request(
        "POST", "/predict", body=b"\0" * (MAX_BODY_BYTES + 1), headers={"Content-Type": "image/png"}
    )
    response = connection.getresponse()
    assert response.status == 413
    assert json.loads(response.read())["error"].startswith("the request body is over the limit of ")
    # The refused body was read and dropped, so the same connection serves the next request.
    connection.request("POST", "/predict", body=eval_pngs[1], headers={"Content-Type": "image/png"})
    response = connection.getresponse()
    assert (response.status, json.loads(response.read())) == (200, expected(eval_pngs[1]))
    connection.close()


def test_concurrent_requests_from_threads(server, eval_pngs, photo, expected):
    """Single images and mixed batches at once: every answer lands with its own request, in order."""
    images = [*eval_pngs, photo]
    answers: dict[tuple[int, int], tuple[int, bool]] = {}

    def client(worker: int) -> None:
        for round_ in range(12):
            data = images[(worker + round_) % len(images)]
            if round_ % 3:
                status, _, answer = post(server, data)
                answers[worker, round_] = (status, answer == expected(data))
            else:
                files = [("a.png", data), ("bad.png", b"x" * worker), ("b.png", images[worker])]
                status, _, answer = post(server, *multipart(files))
                error = {"error": f"bad.png {NOT_AN_IMAGE}" if worker else "bad.png is empty (0 bytes)"}
                answers[worker, round_] = (
                    status,
                    answer == [expected(data), error, expected(images[worker])],
                )

    threads = [threading.Thread(target=client, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 8 * 12
    assert set(answers.values()) == {(200, True)}


def test_importing_the_runtime_does_not_import_the_server():
    code = (
        "import sys, digits_runtime; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'starlette', 'uvicorn'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == "[]\n"


def serve_cli(capsys, *argv):
    code = run_fire(cli.COMMANDS, "digits", ["serve", *map(str, argv)])
    return code, capsys.readouterr().err


def test_flags_are_checked_before_anything_is_bound(capsys, model_path, tmp_path):
    assert serve_cli(capsys, "--model", model_path, "--port", 70000) == (
        2,
        "digits: error: --port must be between 0 and 65535, got 70000\n",
    )
    assert serve_cli(capsys, "--model", model_path, "--port", "http") == (
        2,
        "digits: error: --port must be a whole number, got 'http'\n",
    )
    assert serve_cli(capsys, "--model", model_path, "--workers", 0)[0] == 2
    code, err = serve_cli(capsys, "--model", model_path, "--workers", 10_000)
    assert code == 2
    assert err.startswith("digits: error: --workers must be between 1 and ")
    assert serve_cli(capsys, "--model", tmp_path / "none.onnx") == (
        1,
        f"digits: error: model {tmp_path / 'none.onnx'} does not exist: run `make train` to create it\n",
    )
    (tmp_path / "text.onnx").write_text("not a model")
    code, err = serve_cli(capsys, "--model", tmp_path / "text.onnx")
    assert code == 1
    assert err.startswith(f"digits: error: {tmp_path / 'text.onnx'} is not a usable ONNX model: ")
    assert err.count("\n") == 1


def test_taken_port_and_unknown_host_are_one_line_errors(capsys, model_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert serve_cli(capsys, "--model", model_path, "--port", port) == (
            1,
            f"digits: error: cannot listen on 127.0.0.1 port {port}: Address already in use "
            "(choose another --port or --host)\n",
        )
    code, err = serve_cli(capsys, "--model", model_path, "--host", "no-such-host.invalid")
    assert code == 1
    assert err.startswith(
        "digits: error: --host no-such-host.invalid is not an address this machine can listen on ("
    )


# --- One client must not stall the server -------------------------------------------------------

# `digits serve` with short timeouts and a low file-descriptor limit (so a connection limit of
# FDS - RESERVED_FDS), to see the limits act within a test's time.
FDS = 200
LIMITED = [
    sys.executable,
    "-c",
    "import resource, sys; "
    f"resource.setrlimit(resource.RLIMIT_NOFILE, ({FDS}, resource.getrlimit(resource.RLIMIT_NOFILE)[1])); "
    "import digits_runtime.serve.connections as connections; "
    "connections.IDLE_TIMEOUT = 1; connections.REQUEST_TIMEOUT = 2; "
    "from digits_runtime.cli import main; main()",
]


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


@pytest.fixture(scope="module")
def large_png() -> bytes:
    """A 7000x7000 PNG of a digit-like stroke: under the per-image limit, a second or so to read."""
    image = Image.new("L", (7000, 7000), 235)
    image.paste(30, (2500, 1500, 4500, 5500))
    image.paste(235, (3000, 2000, 4000, 5000))
    return png(image)


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
            assert post(server, data)[::2] == (200, expected(data))
            answered_meanwhile += thread.is_alive()
    finally:
        thread.join()
    status, _, answers = heavy["answer"]
    assert status == 200
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
            "error": f"the images of this request add up to 147 megapixels, over the limit of "
            f"{MAX_REQUEST_PIXELS // 10**6} per request: send fewer or smaller images"
        },
    )


def test_a_head_over_the_limit_gets_431_and_the_server_keeps_serving(server, eval_pngs, expected):
    start = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
    # Just under the limit: answered.
    head = start + b"X-Pad: " + b"a" * (MAX_HEADER_BYTES - 1000) + b"\r\n"
    data = eval_pngs[0]
    reply = raw(server, head + f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
    assert json_answer(reply) == (200, expected(data))
    # Over it (the head never ends): 431 at once, without waiting for the rest.
    reply = raw(server, start + b"X-Pad: " + b"a" * (2 * MAX_HEADER_BYTES))
    assert reply.startswith(b"HTTP/1.1 431 ")
    assert json_answer(reply) == (
        431,
        {
            "error": f"the request headers are over the limit of {MAX_HEADER_BYTES:,} bytes: "
            "send fewer or shorter headers"
        },
    )
    assert post(server, data)[::2] == (200, expected(data))


def test_idle_and_slow_connections_are_closed(serving, model_path, eval_pngs, expected):
    timeout = {"error": "the request did not arrive whole within 2 seconds"}
    with serving(model_path, LIMITED) as url:
        assert raw(url, b"") == b""  # idle: closed without a word
        assert json_answer(raw(url, b"POST /predict HTTP/1.1\r\nHost: x\r\n")) == (408, timeout)
        half_body = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"\0" * 10
        assert json_answer(raw(url, half_body)) == (408, timeout)
        assert post(url, eval_pngs[0])[::2] == (200, expected(eval_pngs[0]))


def test_idle_connections_cannot_keep_a_client_out(serving, model_path, eval_pngs, expected):
    """More idle connections than the server allows, then a real request: the longest idle makes room."""
    with serving(model_path, LIMITED) as url:
        address = urlsplit(url)
        idle = [socket.create_connection((address.hostname, address.port)) for _ in range(FDS + 100)]
        try:
            assert post(url, eval_pngs[0])[::2] == (200, expected(eval_pngs[0]))
        finally:
            for sock in idle:
                sock.close()


def test_connections_beyond_the_limit_get_503_when_all_are_busy(serving, model_path, eval_pngs, expected):
    limit = FDS - RESERVED_FDS
    half_body = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
    with serving(model_path, LIMITED) as url:
        address = urlsplit(url)
        busy = []
        try:
            for _ in range(limit):
                busy.append(socket.create_connection((address.hostname, address.port)))
                busy[-1].sendall(half_body)
            # Once every connection holds a request being read, a new one is refused with 503.
            for _ in range(20):
                reply = raw(url, b"")
                if reply:
                    break
            assert json_answer(reply) == (
                503,
                {"error": f"the server has {limit:,} connections busy: try again shortly"},
            )
        finally:
            for sock in busy:
                sock.close()
        assert post(url, eval_pngs[0])[::2] == (200, expected(eval_pngs[0]))


@contextlib.contextmanager
def serve_process(model_path, *flags: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """`digits serve` in a session of its own, so that Ctrl-C reaches all its processes, as in a terminal;
    killed by its pid at the end if it is still running."""
    process = subprocess.Popen(
        [*SERVE, "--model", model_path, "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    line = process.stdout.readline()
    assert " at http://127.0.0.1:" in line, line + process.stderr.read()
    url = line.split(" at ")[1].split()[0]
    try:
        assert call(url, "GET", "/health")[0] == 200  # serving, its signal handlers in place
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def half_sent(url: str, body: bytes) -> socket.socket:
    """A connection the server holds, with a request whose body is all sent but its last byte."""
    address = urlsplit(url)
    sock = socket.create_connection((address.hostname, address.port), timeout=30)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")  # answered: the server has the connection
    reply = b""
    while not reply.endswith(b'{"status":"ok"}'):
        chunk = sock.recv(4096)
        assert chunk, reply
        reply += chunk
    sock.sendall(
        b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body[:-1]
    )
    return sock


def test_sigterm_stops_one_worker_with_exit_0(model_path, eval_pngs, expected):
    with serve_process(model_path) as (process, url):
        assert post(url, eval_pngs[0])[::2] == (200, expected(eval_pngs[0]))
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert (process.returncode, err) == (0, "")


def test_a_second_ctrl_c_ends_at_once_without_a_traceback(model_path, eval_pngs):
    with serve_process(model_path) as (process, url):
        in_flight = half_sent(url, eval_pngs[0])
        os.killpg(process.pid, signal.SIGINT)
        address = urlsplit(url)
        for _ in range(200):  # the first Ctrl-C has begun the shutdown once the port stops listening
            try:
                socket.create_connection((address.hostname, address.port), timeout=1).close()
            except (ConnectionRefusedError, ConnectionResetError):
                break
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=30)
        try:
            reply = in_flight.recv(65536)
        except ConnectionResetError:
            reply = b""
        in_flight.close()
    assert (process.returncode, err) == (130, "digits: interrupted\n")
    assert reply == b""  # the request in flight was cut off, not answered 500


def listens(process: psutil.Process) -> bool:
    try:
        return any(c.status == psutil.CONN_LISTEN for c in process.net_connections())
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
def test_several_workers_serve_and_stop_like_one(model_path, eval_pngs, expected):
    """Ctrl-C: in-flight requests finish, then exit 130; a second Ctrl-C ends at once; SIGTERM: exit 0."""
    with serve_process(model_path, "--workers", "2") as (process, url):
        for data in eval_pngs[:4]:
            assert post(url, data)[::2] == (200, expected(data))
        in_flight = half_sent(url, eval_pngs[1])
        os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C in a terminal: every process of the group
        in_flight.sendall(eval_pngs[1][-1:])
        assert json_answer(in_flight.makefile("rb").read()) == (200, expected(eval_pngs[1]))
        in_flight.close()
        _, err = process.communicate(timeout=30)
        assert (process.returncode, err) == (130, "digits: interrupted\n")

    with serve_process(model_path, "--workers", "2") as (process, url):
        in_flight = half_sent(url, eval_pngs[2])
        os.killpg(process.pid, signal.SIGINT)
        workers = psutil.Process(process.pid).children()
        for _ in range(200):  # the workers are shutting down once they no longer listen (or have ended)
            if not any(listens(worker) for worker in workers):
                break
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=30)
        assert (process.returncode, err) == (130, "digits: interrupted\n")
        in_flight.close()

    with serve_process(model_path, "--workers", "2") as (process, url):
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert (process.returncode, err) == (0, "")
