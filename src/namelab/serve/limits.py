"""Refuse oversized request bodies before they are parsed (ASGI middleware)."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
