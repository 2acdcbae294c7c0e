"""What `digits serve` records of each request: Prometheus metrics and the access log.

The metrics are prometheus_client's, in its multiprocess mode when ``PROMETHEUS_MULTIPROC_DIR`` is
set (the server sets it to a folder of its own before any worker starts): each worker writes its
counts to files there, and ``GET /metrics``, whichever worker answers it, sums them all. So
prometheus_client is imported only once that variable is settled, when :class:`Metrics` is made.

The access log is written in batches, as web servers do (nginx's ``buffer=``, ``flush=``): one
write of a few dozen lines at most every ``LOG_FLUSH_SECONDS``, instead of a write per request,
which would cost a third of the server's throughput. Each write is at most ``PIPE_BUF`` bytes and
whole lines, so the lines of several workers sharing a pipe never interleave.
"""

import asyncio
import atexit
import glob
import os
import select
import time
from collections.abc import Iterable
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LOG_FLUSH_SECONDS = 0.5
"""Longest a line of the access log waits before it is written."""
LOG_WRITE_BYTES = select.PIPE_BUF  # written at once as soon as this much is waiting


class Metrics:
    """The server's counters, histogram and gauge, and their exposition in the text format."""

    CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self) -> None:
        import prometheus_client as prom

        self.prom = prom
        self.registry = prom.CollectorRegistry(auto_describe=True)
        self.requests = prom.Counter(
            "digits_http_requests",
            "HTTP requests answered, by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = prom.Histogram(
            "digits_http_request_duration_seconds",
            "Seconds from a request's head to the end of its answer, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = prom.Gauge(
            "digits_http_requests_in_flight",
            "Requests being answered now.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.outcomes = prom.Counter(
            "digits_images",
            "Images posted to /predict, by outcome: accepted, refused (not a known digit) or error.",
            ["outcome"],
            registry=self.registry,
        )
        self.errors = prom.Counter(
            "digits_errors",
            "Error answers by code: of requests, of single images, and of the connection limits.",
            ["code"],
            registry=self.registry,
        )
        # Each label's child, looked up once (a lookup costs as much as the count itself).
        self.outcome = {
            outcome: self.outcomes.labels(outcome) for outcome in ("accepted", "refused", "error")
        }
        self.by_request: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and its time."""
        key = (route, method, status)
        children = self.by_request.get(key)
        if children is None:
            children = (self.requests.labels(route, method, str(status)), self.latency.labels(route))
            self.by_request[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def images(self, results: Iterable[dict[str, Any]]) -> None:
        """Count the outcome of each image of an answer, and the code of each failure."""
        for item in results:
            if "error" in item:
                self.outcome["error"].inc()
                self.errors.labels(item["code"]).inc()
            else:
                self.outcome["accepted" if item["accepted"] else "refused"].inc()

    def refused(self, status: int, code: str) -> None:
        """Count an error answer given outside the application (by the connection limits)."""
        self.errors.labels(code).inc()

    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format, summed over the worker processes (if several)."""
        folder = os.environ.get(MULTIPROC_ENV)
        if folder:
            registry = self.prom.CollectorRegistry()
            registry.register(_SizedFiles(folder))
            return self.prom.generate_latest(registry)
        return self.prom.generate_latest(self.registry)


class _SizedFiles:
    """prometheus_client's multiprocess collector, over the workers' files that have a header.

    prometheus_client makes a worker's file before it sizes it and writes its header. Reading a file
    in between fails the whole collection, so a request for /metrics at that moment would fail, and
    every one after it if the worker was killed then (the empty file stays). Such a file holds no
    count yet: it is left out.
    """

    HEADER_BYTES = 8

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def collect(self) -> Iterable[Any]:
        from prometheus_client.multiprocess import MultiProcessCollector

        files = [path for path in glob.glob(os.path.join(self.folder, "*.db")) if self._sized(path)]
        return MultiProcessCollector.merge(files, accumulate=True)

    def _sized(self, path: str) -> bool:
        try:
            return os.stat(path).st_size >= self.HEADER_BYTES
        except FileNotFoundError:  # a live gauge's file, removed when its worker ended
            return False


class Recorder:
    """ASGI middleware: count and time each request, and write its access-log line.

    Requests to paths that are no route count as route ``other``, so that a scan of random URLs
    cannot make a metric per path.
    """

    def __init__(self, app: Any, metrics: Metrics, access_log: bool, routes: set[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        self.routes = routes
        self.clock = (0, "")  # the last second for which the log's timestamp was formatted, and it
        self.pending: list[bytes] = []  # log lines not yet written
        self.pending_bytes = 0
        self.flush_timer: asyncio.TimerHandle | None = None
        atexit.register(self.flush)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        answer = {"status": 500, "size": 0, "recorded": False}

        def record() -> None:
            answer["recorded"] = True
            seconds = time.perf_counter() - start
            self.metrics.in_flight.dec()
            route = scope["path"] if scope["path"] in self.routes else "other"
            self.metrics.request(route, scope["method"], answer["status"], seconds)
            if self.access_log:
                self.log(scope, answer["status"], answer["size"], seconds)

        async def sending(message: dict) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
            elif message["type"] == "http.response.body":
                answer["size"] += len(message.get("body", b""))
                if not message.get("more_body"):
                    # Counted before the answer's last bytes go out: a client that has its answer
                    # finds it counted in /metrics, whichever worker answers that.
                    record()
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, sending)
        finally:
            if not answer["recorded"]:  # no answer went out whole (a bug, or the client went away)
                record()

    def log(self, scope: dict, status: int, size: int, seconds: float) -> None:
        """One line for standard output, the Common Log Format with the seconds taken at its end."""
        now = int(time.time())
        if now != self.clock[0]:
            self.clock = (now, time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)))
        client = scope.get("client")
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        # Escaped, so that a crafted URL cannot forge a line of the log.
        target_text = target.decode("ascii", "backslashreplace").replace('"', "%22")
        line = (
            f'{client[0] if client else "-"} - - [{self.clock[1]}] "{scope["method"]} {target_text} '
            f'HTTP/{scope["http_version"]}" {status} {size} {seconds:.4f}\n'
        ).encode()
        if self.pending_bytes + len(line) > LOG_WRITE_BYTES:
            self.flush()
        self.pending.append(line)
        self.pending_bytes += len(line)
        if self.flush_timer is None:
            self.flush_timer = asyncio.get_running_loop().call_later(LOG_FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        """Write the waiting lines of the access log, in one write."""
        if self.flush_timer is not None:
            self.flush_timer.cancel()
            self.flush_timer = None
        if self.pending:
            data = b"".join(self.pending)
            self.pending, self.pending_bytes = [], 0
            while data:  # a pipe takes PIPE_BUF bytes whole; a file may take fewer at a time
                data = data[os.write(1, data) :]
