"""What clients may hold: a request body's size and the requests in progress (ASGI middleware), and
the time to send a request.

    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(RequestLimit, slots=Slots(MAX_REQUESTS))
    uvicorn.Config(app, http=ReadTimeoutProtocol)
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# 1,000 names of 64 ASCII characters take about 68 KB of JSON: the limit lets every valid request
# through while a runaway body is refused before it is parsed.
MAX_BODY_BYTES = 128 * 1024


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413, before the app parses them.

    The declared Content-Length is checked first; the bytes actually received are counted
    too, since a chunked body declares no length. Bodies within the limit are buffered
    (they are small) and replayed to the app.
    """

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, send: Send, size: str) -> None:
        response = JSONResponse(
            {
                "detail": f"the request body is {size}; the limit is {self.max_bytes} bytes: "
                "send fewer names per request"
            },
            status_code=413,
        )
        await response({"type": "http"}, _no_receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(send, f"{int(value)} bytes (Content-Length)")
                return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._refuse(send, f"over {self.max_bytes} bytes")
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


# Requests one worker process works on at once: reading the body, waiting for the model, answering.
# Past it, a request gets 503 with Retry-After. Requests, not connections: an idle keep-alive
# connection costs a socket and a few kilobytes, not model time, so it holds no slot.
MAX_REQUESTS = 1000
# Answered whatever the load: a full server is busy, not dead, and a health check must tell the two apart.
UNLIMITED_PATHS = ("/healthz",)


class Slots:
    """A count of the requests in progress (``held``), at most ``size``."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"the request limit must be at least 1, got {size}")
        self.size = size
        self.held = 0
        self._lock = threading.Lock()  # an app may be driven from several event loops (test clients)

    def take(self) -> bool:
        """Hold one slot; False (and nothing held) when all are taken."""
        with self._lock:
            if self.held >= self.size:
                return False
            self.held += 1
            return True

    def give_back(self) -> None:
        with self._lock:
            self.held -= 1


class RequestLimit:
    """Answer 503 with ``Retry-After`` to a request while every slot is held; ``exempt`` paths hold none.

    Added last (outermost), so that a refused request costs no body read. uvicorn's own ``limit_concurrency``
    is not used: it counts open connections, idle ones included, and refuses every request
    past it, ``/healthz`` too.
    """

    def __init__(self, app: ASGIApp, slots: Slots, exempt: Sequence[str] = UNLIMITED_PATHS):
        self.app = app
        self.slots = slots
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        if not self.slots.take():
            detail = f"the server has {self.slots.size} requests in progress, its limit; retry in a moment"
            response = JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "1"})
            await response(scope, _no_receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.slots.give_back()


# A request must arrive whole, promptly: its headers within HEADER_TIMEOUT of its first byte
# (or of the connection opening), then its body within BODY_TIMEOUT. uvicorn itself only times
# out idle keep-alive connections, so a client that sends half a request would hold a connection
# (and its memory) for as long as it likes.
HEADER_TIMEOUT = 5.0
BODY_TIMEOUT = 10.0  # 128 KiB in 10 s: a 13 kB/s link still gets through


class ReadTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol (httptools) with deadlines for reading each request.

    When a deadline passes, the server answers 408 (if no answer has started on the
    connection) and closes it; the app sees the client disconnect. Between requests,
    uvicorn's keep-alive timeout applies as usual.
    """

    header_timeout: float = HEADER_TIMEOUT
    body_timeout: float = BODY_TIMEOUT

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self._read_timer: asyncio.TimerHandle | None = None
        self._phase = "headers"  # "headers", "body", or "" between requests
        super().connection_made(transport)
        self._arm(self.header_timeout)  # a connection that never sends a byte is a half-sent request too

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(seconds, self._read_timed_out)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = "headers"
        self._arm(self.header_timeout)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._phase = "body"
        self._arm(self.body_timeout)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._phase = ""
        self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing() or not self._phase:
            return
        cycle = self.cycle
        # Answer only where no other answer is being written on this connection: before the
        # first request, after the previous answer, or in place of this request's answer.
        if cycle is None or cycle.response_complete or (self._phase == "body" and not cycle.response_started):
            what = "headers" if self._phase == "headers" else "body"
            seconds = self.header_timeout if self._phase == "headers" else self.body_timeout
            message = f"the request {what} did not arrive within {seconds:g} seconds; send the whole request at once"
            body = json.dumps({"detail": message}).encode("utf-8")
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
            )
        self.transport.close()
