"""A cap on the bytes a request may send, enforced before anything parses them (pure ASGI middleware).

A ``Content-Length`` over the cap is answered 413 at once, without reading the body. Otherwise the body is read
here, counting the bytes of every ``http.request`` message (chunked bodies included, whatever the header said);
the moment the count passes the cap the request is answered 413 and the rest is never read. A body within the
cap is handed to the app as one message, so routes read it from memory.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("include.serving")


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return -1
    return None


async def _reject(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),  # the unread rest of the body must not become the next request
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """413 for a request body over ``max_bytes``; 400 for a ``Content-Length`` that is not a number."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read and count the body, then call the app with a receive that replays it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared < 0:
            await _reject(send, 400, "Content-Length is not a non-negative integer")
            return
        if declared is not None and declared > self.max_bytes:
            log.warning("refused %s %s: Content-Length %d > %d bytes", scope["method"], scope["path"],
                        declared, self.max_bytes)  # fmt: skip
            await _reject(send, 413, f"request body over the limit of {self.max_bytes} bytes")
            return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away before the body ended: nothing to answer
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                log.warning("refused %s %s: body passed %d bytes", scope["method"], scope["path"],
                            self.max_bytes)  # fmt: skip
                await _reject(send, 413, f"request body over the limit of {self.max_bytes} bytes")
                return
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that yields ``body`` once as the whole request, then defers to the server (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            message: dict[str, Any] = {"type": "http.request", "body": body, "more_body": False}
            return message
        return await receive()

    return replay
