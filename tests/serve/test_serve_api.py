"""`digits serve`'s usual HTTP parts: its OpenAPI description and the page showing it, the metrics
(summed over worker processes), the access log and CORS, over real HTTP to real server processes."""

import re
import time

import pytest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

from digits_core.cli_support import run_fire
from digits_runtime import Predictor, cli
from digits_serve import create_app
from digits_serve.observe import MULTIPROC_ENV, Metrics

from http_helpers import ACCESS_LOGS, NOT_AN_IMAGE, call, multipart, post

ROUTES = {"/", "/docs", "/openapi.json", "/healthz", "/health", "/readyz", "/model", "/metrics", "/predict"}
ORIGIN = "https://digits.example"


def test_openapi_describes_every_route_and_is_valid(server, model_path):
    from openapi_spec_validator import validate  # here: it takes a third of a second to import

    status, _, spec = call(server, "GET", "/openapi.json")
    assert status == 200
    validate(spec)  # raises on any error
    assert set(spec["paths"]) == ROUTES
    assert {route.path for route in create_app(Predictor(model_path)).routes} == ROUTES
    for path, methods in spec["paths"].items():
        if "get" in methods:
            assert call(server, "GET", path)[0] == 200, path
    prediction = spec["components"]["schemas"]["Prediction"]
    assert prediction["required"] == ["file", "probs", "prediction", "accepted", "score"]
    assert prediction["properties"]["prediction"]["enum"] == [0, 5, 8]


def test_the_docs_page_shows_each_route_and_loads_nothing_from_elsewhere(server):
    status, headers, page = call(server, "GET", "/docs")
    text = page.decode()
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["content-security-policy"].startswith("default-src 'none';")
    for path in ROUTES:
        assert f"<code>{path}</code>" in text
    assert "<script" not in text
    for external in ("http://", "https://", 'src="//', 'href="//'):
        assert external not in text


def samples(url: str) -> dict[tuple[str, tuple], float]:
    """GET /metrics, parsed by prometheus_client's own parser: {(sample name, sorted labels): value}."""
    status, headers, text = call(url, "GET", "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_metrics_count_every_request_across_workers_and_each_is_logged(
    serving, model_path, eval_pngs, workers
):
    with serving(model_path, flags=["--workers", str(workers)]) as url:
        for data in eval_pngs:
            assert post(url, data)[0] == 200
        assert post(url, b"not an image")[0] == 422
        body, content_type = multipart([("a.png", eval_pngs[0]), ("b.txt", b"text")])
        assert post(url, body, content_type)[0] == 200
        assert call(url, "GET", "/nowhere")[0] == 404
        found = samples(url)
        log = ACCESS_LOGS[url]
        for _ in range(100):  # the log's lines are read by a thread: let it catch up
            if len(log) >= len(eval_pngs) + 4:
                break
            time.sleep(0.05)

    def value(name: str, **labels: str) -> float:
        return found.get((name, tuple(sorted(labels.items()))), 0.0)

    n = len(eval_pngs)
    assert value("digits_http_requests_total", route="/predict", method="POST", status="200") == n + 1
    assert value("digits_http_requests_total", route="/predict", method="POST", status="422") == 1
    assert value("digits_http_requests_total", route="other", method="GET", status="404") == 1
    assert value("digits_http_request_duration_seconds_count", route="/predict") == n + 2
    assert value("digits_http_request_duration_seconds_bucket", route="/predict", le="+Inf") == n + 2
    assert (
        value("digits_images_total", outcome="accepted") + value("digits_images_total", outcome="refused")
        == n + 1
    )
    assert value("digits_images_total", outcome="error") == 2
    assert value("digits_errors_total", code="not_an_image") == 2
    assert value("digits_errors_total", code="not_found") == 1
    assert value("digits_http_requests_in_flight") == 1  # the request for the metrics themselves
    # One access-log line per request, in the Common Log Format with the seconds at the end.
    line = re.compile(
        r'127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] "(GET|POST) (/\S*) HTTP/1\.1" '
        r"(\d{3}) (\d+) \d+\.\d{4}\n"
    )
    parsed = [line.fullmatch(entry).groups() for entry in log]
    assert sorted((method, path, status) for method, path, status, _ in parsed) == sorted(
        [("POST", "/predict", "200")] * (n + 1)
        + [("POST", "/predict", "422"), ("GET", "/nowhere", "404"), ("GET", "/metrics", "200")]
    )


def test_metrics_leave_out_a_file_a_worker_has_made_but_not_yet_sized(tmp_path, monkeypatch):
    """prometheus_client makes a worker's file before it writes the file's header; a file read at
    that moment, or left so by a worker killed then, must not fail every request for /metrics."""
    written = MmapedDict(str(tmp_path / "counter_101.db"))
    key = mmap_key("digits_images", "digits_images_total", ["outcome"], ["accepted"], "Images.")
    written.write_value(key, 3.0, 0.0)
    written.close()
    (tmp_path / "counter_102.db").touch()  # made, not yet sized
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    text = Metrics().exposition().decode()
    assert 'digits_images_total{outcome="accepted"} 3.0' in text.splitlines()


def test_cors_is_off_unless_asked(server):
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    status, headers, _ = call(server, "OPTIONS", "/predict", headers=preflight)
    assert status == 405
    assert "access-control-allow-origin" not in headers
    assert "access-control-allow-origin" not in call(server, "GET", "/model", headers={"Origin": ORIGIN})[1]


@pytest.mark.slow
def test_cors_for_the_origins_given_and_no_access_log_when_off(serving, model_path, eval_pngs):
    with serving(model_path, flags=["--cors-origin", ORIGIN, "--access-log", "off"]) as url:
        preflight = {
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        }
        status, headers, _ = call(url, "OPTIONS", "/predict", headers=preflight)
        assert status == 200
        assert headers["access-control-allow-origin"] == ORIGIN
        assert "POST" in headers["access-control-allow-methods"]
        status, headers, _ = call(url, "POST", "/predict", eval_pngs[0], {"Origin": ORIGIN})
        assert (status, headers["access-control-allow-origin"]) == (200, ORIGIN)
        other = {"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"}
        assert call(url, "OPTIONS", "/predict", headers=other)[0] == 400
        assert "access-control-allow-origin" not in call(url, "GET", "/model", headers=other)[1]
        log = ACCESS_LOGS[url]
    assert log == []  # the server has ended: everything it wrote has been read


def serve_cli(capsys, *argv):
    code = run_fire(cli.COMMANDS, "digits", ["serve", *map(str, argv)])
    return code, capsys.readouterr().err


def test_bad_access_log_and_cors_flags_are_usage_errors(capsys, model_path):
    assert serve_cli(capsys, "--model", model_path, "--access-log", "maybe") == (
        2,
        "digits: error: --access-log must be on or off, got 'maybe'\n",
    )
    assert serve_cli(capsys, "--model", model_path, "--cors-origin", "ftp://x") == (
        2,
        "digits: error: --cors-origin takes origins such as https://app.example.com (or *), got 'ftp://x'\n",
    )


def test_a_result_names_its_file_and_gives_its_error_code(server, eval_pngs):
    status, _, answer = post(server, *multipart([("b.txt", b"text")]))
    assert (status, answer["code"], answer["results"][0]["file"]) == (422, "not_an_image", "b.txt")
    assert answer["error"] == f"b.txt {NOT_AN_IMAGE}"
