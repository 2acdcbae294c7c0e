"""The connection limits `digits serve` needs and uvicorn's httptools protocol lacks.

uvicorn closes a keep-alive connection that stays idle after a response, and nothing more: a
connection that never sends a byte, or half a request, stays open for ever; the head of a request
is read whatever its size (httptools has no limit, unlike h11, which is several times slower);
connections are accepted until the process runs out of file descriptors; and the part of a body
left unread after the answer is discarded without bound. :class:`Protocol` adds each of these
and nothing else; uvicorn still parses HTTP, runs the application and writes its answers.

What uvicorn's Config offers is used where it fits (``timeout_keep_alive`` is the idle timeout).
Its ``limit_concurrency`` does not fit: it still accepts every connection, and once that many are
open, idle ones included, it answers 503 to every request, so idle sockets would lock real
clients out; ``h11_max_incomplete_event_size`` limits heads for h11 only.
"""

import asyncio
import json
import resource
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

MAX_HEADER_BYTES = 64 * 1024
"""Largest request head (request line and headers); a larger one gets 431 and the connection ends."""
IDLE_TIMEOUT = 5
"""Seconds a connection may stay open without a request: after connecting, or after an answer."""
REQUEST_TIMEOUT = 30
"""Seconds from a request's first byte to its last; a slower request gets 408 and the connection ends."""
MAX_CONNECTIONS = 1000
"""Open connections per worker process, at most (fewer when the file-descriptor limit is lower)."""
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


def error_response(status: int, message: str) -> bytes:
    """A complete HTTP response that ends the connection, with the server's JSON error body."""
    body = json.dumps({"error": message}).encode()
    head = f"content-type: application/json\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
    return STATUS_LINE[status] + head.encode() + body


class Protocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head-size limit, timeouts, a connection limit and a bounded drain.

    Built on uvicorn's internals (the request cycle and the parser callbacks), which is why
    constraints.txt pins uvicorn.
    """

    limit = connection_limit()
    # The open connections with no request in progress, longest idle first (a dict keeps the
    # order of insertion): the next to close when the limit is reached. One server per process.
    idle: ClassVar[dict["Protocol", None]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_bytes = 0  # bytes of the current request head read so far
        self.in_head = True  # between requests or inside a head, as opposed to inside a body
        self.heads = 0  # request heads completed on this connection
        self.drained = 0  # bytes of the current body dropped after the answer was sent
        self.request_timer: asyncio.TimerHandle | None = None
        self.lingering = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limit and not self.close_longest_idle():
            # Every connection is busy with a request: refuse this one at once, so that the file
            # descriptors the process needs for its work are never used up.
            self.transport = transport  # connection_lost closes it again
            transport.write(
                error_response(503, f"the server has {self.limit:,} connections busy: try again shortly")
            )
            transport.close()
            return
        super().connection_made(transport)
        self.idle[self] = None
        # uvicorn arms its keep-alive timeout only after an answer; a client that connects and
        # says nothing is idle too.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def close_longest_idle(self) -> bool:
        """Close the connection idle for longest (no request in progress) to make room; False if none is."""
        if not self.idle:
            return False
        longest = next(iter(self.idle))
        del self.idle[longest]
        longest.transport.close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.idle.pop(self, None)
        self.cancel_request_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.lingering or self.transport.is_closing():
            return  # the answer is sent; what the client still sends is dropped
        if self.in_head:
            room = MAX_HEADER_BYTES - self.head_bytes
            if len(data) > room:
                # Feed only what the limit allows: if the head does not end within it, refuse it
                # before httptools buffers more. (Bytes of a pipelined request's head that arrive
                # together with the end of the previous body are not counted: at most one read.)
                heads = self.heads
                super().data_received(data[:room])
                if self.heads == heads:
                    self.refuse_head()
                    return
                data = data[room:]
            else:
                self.head_bytes += len(data)
        super().data_received(data)

    def refuse_head(self) -> None:
        """Answer 431 to a head over the limit; drop what follows for a moment so the client reads it."""
        if self.transport.is_closing():
            return
        self.cancel_request_timer()
        self.transport.write(
            error_response(
                431,
                f"the request headers are over the limit of {MAX_HEADER_BYTES:,} bytes: "
                "send fewer or shorter headers",
            )
        )
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
        self.idle.pop(self, None)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
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
        timeout = error_response(408, f"the request did not arrive whole within {REQUEST_TIMEOUT} seconds")
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
