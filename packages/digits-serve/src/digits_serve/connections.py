"""The connection limits `digits serve` needs and uvicorn's httptools protocol lacks.

uvicorn closes a keep-alive connection that stays idle after a response, and nothing more: a
connection that never sends a byte, or half a request, stays open for ever; the head of a request
is read whatever its size (httptools has no limit, unlike h11, which is several times slower);
connections are accepted until the process runs out of file descriptors, and one client may take
them all; the trailer fields of a chunked body are buffered whatever their size (httptools joins
a field's pieces in memory); and the part of a body left unread after the answer is discarded
without bound. :class:`Protocol` adds each of these and nothing else; uvicorn still parses HTTP,
runs the application and writes its answers.

What uvicorn's Config offers is used where it fits (``timeout_keep_alive`` is the idle timeout).
Its ``limit_concurrency`` does not fit: it still accepts every connection, and once that many are
open, idle ones included, it answers 503 to every request, so idle sockets would lock real
clients out; ``h11_max_incomplete_event_size`` limits heads for h11 only.
"""

import asyncio
import json
import resource
from collections.abc import Callable
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

MAX_HEADER_BYTES = 64 * 1024
"""Largest request head (request line and headers); a larger one gets 431 and the connection ends.
The bytes of a chunked body that are not body (chunk sizes and extensions, trailer fields) are held
to the same limit, plus ``CHUNK_FRAMING_BYTES`` per chunk."""
CHUNK_FRAMING_BYTES = 32  # a chunk's size line and line ends, with room for a short extension
IDLE_TIMEOUT = 5
"""Seconds a connection may stay open without a request: after connecting, or after an answer."""
REQUEST_TIMEOUT = 30
"""Seconds from a request's first byte to its last; a slower request gets 408 and the connection ends."""
MAX_CONNECTIONS = 1000
"""Open connections per worker process, at most (fewer when the file-descriptor limit is lower)."""
CLIENT_SHARE = 4
"""One client (an IP address) may hold at most 1/CLIENT_SHARE of a worker's connections, so that
one client alone cannot keep every other one out (slow bodies, or connections it keeps reopening)."""
RESERVED_FDS = 64  # file descriptors a worker keeps for itself: the model, pipes, the event loop
MAX_DRAIN_BYTES = 100 * 1024 * 1024
"""Bytes of a body read and dropped after it was refused (413), so that its client reads the answer."""
LINGER_SECONDS = 2  # after a 431, how long the rest of the head is read and dropped before closing


def connection_limit() -> int:
    """:data:`MAX_CONNECTIONS`, lowered to what the process's file-descriptor limit (``ulimit -n``) allows."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(1, min(MAX_CONNECTIONS, soft - RESERVED_FDS))


def count_nothing(status: int, code: str) -> None:
    """What :data:`on_refusal` does until the application sets it."""


on_refusal: Callable[[int, str], None] = count_nothing
"""Called with the status and code of every answer this module gives itself (the metrics count them)."""


def error_response(status: int, code: str, message: str) -> bytes:
    """A complete HTTP response that ends the connection, with the server's JSON error body."""
    on_refusal(status, code)
    body = json.dumps({"code": code, "error": message}).encode()
    head = f"content-type: application/json\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
    return STATUS_LINE[status] + head.encode() + body


class Protocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head-size limit, timeouts, a connection limit and a bounded drain.

    Built on uvicorn's internals (the request cycle and the parser callbacks), which is why
    constraints.txt pins uvicorn.
    """

    limit = connection_limit()
    client_limit = max(1, limit // CLIENT_SHARE)
    # The open connections with no request in progress, longest idle first (a dict keeps the
    # order of insertion): the next to close when the limit is reached. One server per process.
    idle: ClassVar[dict["Protocol", None]] = {}
    clients: ClassVar[dict[str, int]] = {}  # open connections per client address

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_bytes = 0  # bytes of the current request head read so far
        self.in_head = True  # between requests or inside a head, as opposed to inside a body
        self.heads = 0  # request heads completed on this connection
        self.drained = 0  # bytes of the current body dropped after the answer was sent
        self.request_timer: asyncio.TimerHandle | None = None
        self.lingering = False
        self.host: str | None = None  # the client's address, once the connection counts against it
        self.body_fed = 0  # bytes fed to the parser since the head ended (body, chunk framing, trailers)
        self.body_bytes = 0  # body bytes among them
        self.chunks = 0  # chunks of a chunked body so far
        self.chunked = False  # whether the current body is chunked (else it has no framing to count)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        refusal = None
        if self.clients.get(host, 0) >= self.client_limit and not self.close_longest_idle(host):
            # This client holds its share, every connection busy (slow bodies, say): it waits,
            # the others do not.
            refusal = error_response(
                503,
                "client_busy",
                f"this client has {self.client_limit:,} connections busy, the most one client may hold: "
                "wait for their answers, or send on fewer connections",
            )
        elif len(self.connections) >= self.limit and not self.close_longest_idle():
            # Every connection is busy with a request: refuse this one at once, so that the file
            # descriptors the process needs for its work are never used up.
            refusal = error_response(
                503, "server_busy", f"the server has {self.limit:,} connections busy: try again shortly"
            )
        if refusal is not None:
            self.transport = transport  # connection_lost closes it again
            transport.write(refusal)
            transport.close()
            return
        super().connection_made(transport)
        self.host = host
        self.clients[host] = self.clients.get(host, 0) + 1
        self.idle[self] = None
        # uvicorn arms its keep-alive timeout only after an answer; a client that connects and
        # says nothing is idle too.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def close_longest_idle(self, host: str | None = None) -> bool:
        """Close the connection idle for longest (of ``host``, if given) to make room; False if none is."""
        longest = next((c for c in self.idle if host is None or c.host == host), None)
        if longest is None:
            return False
        del self.idle[longest]
        longest.transport.close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.idle.pop(self, None)
        if self.host is not None:
            left = self.clients[self.host] - 1
            if left:
                self.clients[self.host] = left
            else:
                del self.clients[self.host]
            self.host = None
        self.cancel_request_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # The parser gets only as many bytes as the limits allow before they are checked again:
        # what it would buffer (a head, a trailer field) never grows past them. (Pieces are views:
        # cutting a read into pieces copies nothing.)
        data = memoryview(data)
        while data and not (self.lingering or self.transport.is_closing()):
            if self.in_head:
                room = MAX_HEADER_BYTES - self.head_bytes
                if len(data) <= room:
                    self.head_bytes += len(data)
                    super().data_received(data)
                    return
                # If the head does not end within the limit, refuse it before httptools buffers
                # more. (Bytes of a pipelined request's head that arrive together with the end of
                # the previous body are not counted: at most one read.)
                heads = self.heads
                piece, data = data[:room], data[room:]
                super().data_received(piece)
                if self.heads == heads:
                    self.refuse(
                        431,
                        "headers_too_large",
                        f"the request headers are over the limit of {MAX_HEADER_BYTES:,} bytes: "
                        "send fewer or shorter headers",
                    )
                    return
            elif not self.chunked:
                super().data_received(data)  # a body of a given length: nothing but body
                return
            else:
                allowed = MAX_HEADER_BYTES + CHUNK_FRAMING_BYTES * self.chunks
                room = allowed - (self.body_fed - self.body_bytes)
                if room <= 0:
                    self.refuse(
                        431,
                        "headers_too_large",
                        f"the chunk framing and trailers of this request are over the limit of "
                        f"{MAX_HEADER_BYTES:,} bytes: send fewer or shorter trailer fields",
                    )
                    return
                piece, data = data[:room], data[room:]
                self.body_fed += len(piece)
                super().data_received(piece)

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to what httptools cannot parse, as JSON with a code like every other error.
        self.transport.write(
            error_response(400, "bad_http", f"the request is not valid HTTP/1.1 ({msg.rstrip('.')})")
        )
        self.transport.close()

    def refuse(self, status: int, code: str, message: str) -> None:
        """Answer ``status`` and end the connection; drop what follows for a moment so the client reads it.

        A request the application is reading is cut off: its read ends and its answer goes nowhere.
        """
        if self.transport.is_closing():
            return
        self.cancel_request_timer()
        if not self.in_head and self.cycle is not None:
            if self.cycle.response_started:
                self.transport.close()  # answered already (413, say): nothing more to say
                return
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.write(error_response(status, code, message))
        # Closing with unread bytes would reset the connection, and a client still sending its
        # head could lose the answer: end our side, drop what follows, close after a moment.
        self.lingering = True
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.drained = 0
        self.cancel_request_timer()
        self.request_timer = self.loop.call_later(REQUEST_TIMEOUT, self.request_timed_out)

    def on_headers_complete(self) -> None:
        self.in_head, self.heads = False, self.heads + 1
        self.body_fed = self.body_bytes = self.chunks = 0
        self.chunked = any(
            name == b"transfer-encoding" and b"chunked" in value.lower() for name, value in self.headers
        )
        self.idle.pop(self, None)
        super().on_headers_complete()

    def on_chunk_header(self) -> None:
        self.chunks += 1

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        if self.cycle.response_complete:
            # The answer went out before the body was read (413): keep reading so that a client
            # that sends its whole body before it reads (Python's http.client, requests) gets the
            # answer rather than a reset connection; give up after MAX_DRAIN_BYTES.
            self.drained += len(body)
            if self.drained > MAX_DRAIN_BYTES:
                self.transport.close()
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        self.in_head, self.head_bytes = True, 0
        self.cancel_request_timer()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self.idle[self] = None  # the newest idle, last in line to be closed
        super().on_response_complete()

    def request_timed_out(self) -> None:
        """A request still incomplete after REQUEST_TIMEOUT s: 408 unless it was answered, and close."""
        self.request_timer = None
        if self.transport.is_closing():
            return
        timeout = error_response(
            408, "request_timeout", f"the request did not arrive whole within {REQUEST_TIMEOUT} seconds"
        )
        if self.in_head:
            self.transport.write(timeout)
        elif not self.cycle.response_started:
            self.cycle.disconnected = True  # the application's read of the body ends; its answer goes nowhere
            self.cycle.message_event.set()
            self.transport.write(timeout)
        self.transport.close()

    def cancel_request_timer(self) -> None:
        if self.request_timer is not None:
            self.request_timer.cancel()
            self.request_timer = None
