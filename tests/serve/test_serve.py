"""`digits serve`: every endpoint and every bad input, over real HTTP to a real server process."""

import hashlib
import http.client
import io
import json
import socket
import subprocess
import sys
import threading
from urllib.parse import urlsplit

import numpy as np
import onnx
import pytest
from PIL import Image

from digits_core import contract
from digits_core.cli_support import run_fire
from digits_data import dataset
from digits_runtime import Predictor, cli
from digits_serve import MAX_BODY_BYTES, MAX_FILES, model_info
from digits_serve.connections import MAX_DRAIN_BYTES

from http_helpers import NOT_AN_IMAGE, call, failed, multipart, png, png_claiming, post, refused, results


def test_health_and_model(server, model_path, small_curated):
    assert call(server, "GET", "/healthz")[::2] == (200, {"status": "ok"})
    assert call(server, "GET", "/health")[::2] == (200, {"status": "ok"})  # the older name still answers
    assert call(server, "GET", "/readyz")[::2] == (200, {"status": "ready"})
    status, _, described = call(server, "GET", "/model")
    assert status == 200
    assert described == {
        "file": "model.onnx",
        "sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
        "labels": [0, 5, 8],
        "fingerprint": dataset.fingerprint(small_curated),
        "validation_metrics": None,
        "versions": None,
        "trained_on": None,
        "refusal": None,
    }


def test_model_info_reads_the_metadata(model_path, tmp_path):
    model = onnx.load(model_path)
    refusal = {"score": "max_probability", "threshold": 0.9, "known_accept_rate": 0.99, "chosen_on": "val"}
    extra = {
        contract.META_VAL_METRICS: json.dumps({"val_macro_f1": 0.99}),
        contract.META_VERSIONS: json.dumps({"torch": "2.13.0"}),
        contract.META_TRAINED_ON: json.dumps({"cpu_kernels": "AVX2", "torch_threads": 2}),
        contract.META_REFUSAL: json.dumps(refusal),
    }
    onnx.helper.set_model_props(model, {p.key: p.value for p in model.metadata_props} | extra)
    onnx.save(model, tmp_path / "described.onnx")
    info = model_info(Predictor(tmp_path / "described.onnx"))
    assert info["validation_metrics"] == {"val_macro_f1": 0.99}
    assert info["versions"] == {"torch": "2.13.0"}
    assert info["trained_on"] == {"cpu_kernels": "AVX2", "torch_threads": 2}
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


def test_one_image_as_raw_body_or_one_file_gives_one_result(server, eval_pngs, photo, expected):
    for data in [*eval_pngs[:3], photo]:
        status, headers, answer = post(server, data)
        assert (status, answer) == (200, results(expected(data)))
        # The keys of `digits predict`'s JSON, in its order, between the file name and the score.
        assert list(answer["results"][0]) == ["file", "probs", "prediction", "accepted", "score"]
        assert headers["content-type"] == "application/json"
    body, content_type = multipart([("digit.png", eval_pngs[4])])
    assert post(server, body, content_type)[::2] == (200, results(expected(eval_pngs[4], "digit.png")))
    # curl --data-binary sends form-urlencoded unless told otherwise: the body is still the image.
    assert post(server, eval_pngs[5], "application/x-www-form-urlencoded")[::2] == (
        200,
        results(expected(eval_pngs[5])),
    )


def test_several_files_give_a_list_in_order(server, eval_pngs, photo, expected):
    files = [(f"img{i}.png", data) for i, data in enumerate(eval_pngs)] + [("photo.jpg", photo)]
    status, _, answers = post(server, *multipart(files))
    assert status == 200
    assert answers == results(*(expected(data, name) for name, data in files))


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
    status, _, answer = post(server, *multipart(files))
    assert status == 200
    answers = answer["results"]
    assert len(answers) == len(files)
    assert answers[0] == expected(eval_pngs[0], "a.png")
    assert answers[1] == failed("not_an_image", f"notes.txt {NOT_AN_IMAGE}", "notes.txt")
    assert answers[2] == failed(
        "no_digit", "no digit found in blank.png: the image is blank or uniform", "blank.png"
    )
    assert answers[3] == expected(eval_pngs[1], "passwd")
    assert answers[4]["error"].startswith("cut.jpg could not be decoded, it may be truncated or corrupt (")
    assert (answers[4]["file"], answers[4]["code"]) == ("cut.jpg", "corrupt_image")
    assert answers[5] == failed("empty_image", "empty.png is empty (0 bytes)", "empty.png")
    assert answers[6] == failed("not_an_image", f"b.png {NOT_AN_IMAGE}", "b.png")
    assert answers[7] == expected(eval_pngs[2], "c.png")


def test_when_no_image_is_classified_the_answer_is_422_with_each_reason(server):
    files = [("notes.txt", b"hello"), ("empty.png", b"")]
    assert post(server, *multipart(files))[::2] == (
        422,
        {
            "code": "no_image_classified",
            "error": "none of the 2 images could be classified: see each result's error",
            "results": [
                failed("not_an_image", f"notes.txt {NOT_AN_IMAGE}", "notes.txt"),
                failed("empty_image", "empty.png is empty (0 bytes)", "empty.png"),
            ],
        },
    )


@pytest.mark.parametrize(
    ("body", "code", "error"),
    [
        (b"hello, not an image", "not_an_image", f"request body {NOT_AN_IMAGE}"),
        (
            png(Image.new("L", (64, 64), 0)),
            "no_digit",
            "no digit found in request body: the image is blank or uniform",
        ),
        (
            png(Image.new("L", (4, 4), 0)),
            "image_too_small",
            "request body is 4x4 pixels, too small to hold a digit",
        ),
        (
            png_claiming(20_000, 20_000),
            "image_too_large",
            f"request body is too large to decode safely (over {Image.MAX_IMAGE_PIXELS:,} pixels): "
            "scale it down first",
        ),
    ],
    ids=["not-an-image", "blank", "tiny", "decompression-bomb"],
)
def test_bad_images_get_the_cli_message_and_a_code(server, body, code, error):
    assert post(server, body)[::2] == (422, refused(failed(code, error)))


def test_truncated_image(server, eval_pngs):
    big = png(Image.open(io.BytesIO(eval_pngs[0])).resize((300, 300)))
    status, _, answer = post(server, big[: len(big) // 2])
    assert (status, answer["code"]) == (422, "corrupt_image")
    assert answer["error"].startswith("request body could not be decoded, it may be truncated or corrupt (")
    assert answer["results"] == [failed("corrupt_image", answer["error"])]
    assert "\n" not in answer["error"]


def test_bad_requests(server, eval_pngs):
    how = (
        "(e.g. curl --data-binary @photo.png URL/predict, or curl -F file=@a.png -F file=@b.png URL/predict)"
    )
    assert post(server, b"")[::2] == (
        400,
        {"code": "empty_body", "error": f"the request body is empty: send an image {how}"},
    )
    no_files = b'--b\r\nContent-Disposition: form-data; name="note"\r\n\r\nhi\r\n--b--\r\n'
    assert post(server, no_files, "multipart/form-data; boundary=b")[::2] == (
        400,
        {
            "code": "no_files",
            "error": f"the multipart body holds no files: send each image as a file part {how}",
        },
    )
    assert post(server, b"garbage", "multipart/form-data")[::2] == (
        400,
        {
            "code": "bad_multipart",
            "error": "the multipart body could not be read: Missing boundary in multipart.",
        },
    )
    n = MAX_FILES
    too_many = multipart([("a.png", eval_pngs[0])] * (n + 1))
    assert post(server, *too_many)[::2] == (
        400,
        {
            "code": "bad_multipart",
            "error": f"the multipart body could not be read: Too many files. Maximum number of files is {n}.",
        },
    )
    assert call(server, "GET", "/predict")[::2] == (
        405,
        {"code": "method_not_allowed", "error": "/predict does not take GET"},
    )
    assert call(server, "POST", "/health")[::2] == (
        405,
        {"code": "method_not_allowed", "error": "/health does not take POST"},
    )
    assert call(server, "GET", "/../etc/passwd")[::2] == (
        404,
        {"code": "not_found", "error": "there is no /../etc/passwd here: the routes are listed at /docs"},
    )


def test_bodies_over_the_limit_get_413(server, eval_pngs, expected):
    limit = f"{MAX_BODY_BYTES:,}"
    error = {
        "code": "body_too_large",
        "error": f"the request body is over the limit of {limit} bytes: send smaller or fewer images",
    }
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
    assert post(server, eval_pngs[0])[::2] == (200, results(expected(eval_pngs[0])))  # and it keeps serving


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
    assert (response.status, json.loads(response.read())) == (200, results(expected(eval_pngs[1])))
    connection.close()


@pytest.mark.slow
def test_concurrent_requests_from_threads(server, eval_pngs, photo, expected):
    """Single images and mixed batches at once: every answer lands with its own request, in order."""
    images = [*eval_pngs, photo]
    answers: dict[tuple[int, int], tuple[int, bool]] = {}

    def client(worker: int) -> None:
        for round_ in range(12):
            data = images[(worker + round_) % len(images)]
            if round_ % 3:
                status, _, answer = post(server, data)
                answers[worker, round_] = (status, answer == results(expected(data)))
            else:
                files = [("a.png", data), ("bad.png", b"x" * worker), ("b.png", images[worker])]
                status, _, answer = post(server, *multipart(files))
                error = (
                    failed("not_an_image", f"bad.png {NOT_AN_IMAGE}", "bad.png")
                    if worker
                    else failed("empty_image", "bad.png is empty (0 bytes)", "bad.png")
                )
                answers[worker, round_] = (
                    status,
                    answer == results(expected(data, "a.png"), error, expected(images[worker], "b.png")),
                )

    threads = [threading.Thread(target=client, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 8 * 12
    assert set(answers.values()) == {(200, True)}


@pytest.mark.slow
def test_importing_the_runtime_does_not_import_the_server():
    """digits-serve stands on digits-runtime, never the other way: `digits serve` imports it when run."""
    code = (
        "import sys, digits_runtime, digits_runtime.cli; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'digits_serve', 'starlette', 'uvicorn'}))"
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


@pytest.mark.slow
def test_a_model_answering_with_nan_exits_1_before_the_port_is_bound(
    make_model, class_means, small_curated, tmp_path
):
    means = class_means.copy()
    means[1, 0, 0] = np.nan  # a NaN weight and bias: every logit of a 5 is NaN
    path = tmp_path / "nan.onnx"
    onnx.save(make_model(means, list(contract.CLASSES), dataset.fingerprint(small_curated)), path)
    done = subprocess.run(
        [sys.executable, "-m", "digits_runtime", "serve", "--model", str(path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"digits: error: {path} gives NaN or infinity as 'logits' for a blank image or a drawn digit: "
        "the model is broken (weights that are NaN or overflow); train and export it again\n"
    )


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
