"""Limits on a request before it reaches FastAPI: a cap on the body's size.

The largest legitimate body of either service is a few hundred bytes (a section, a registration),
so 64 KiB is generous, and a megabyte or an endless chunked stream is refused before anything
buffers, parses or validates it. FastAPI's own `max_body_size` acts only on what a route reads,
and its 413 is not our error shape; this one guards every route and answers in that shape.
"""

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.common.errors import error_body

MAX_BODY_BYTES = 64 * 1024


class BodySizeLimit:
    """Refuse a request whose body is over `max_bytes` with 413: at once when Content-Length says
    so, else as soon as the bytes actually streamed in (chunked, or a lying Content-Length) pass
    the limit. The body is read in full before the app runs, so the app never acts on part of an
    oversized one."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        try:
            declared = _content_length(scope)
        except ValueError:
            return await _refuse(send, 400, "Content-Length is not a byte count", "bad_request")
        if declared is not None and declared > self.max_bytes:
            return await self._too_large(send)

        chunks, size, more_body = [], 0, True
        while more_body:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: nobody to answer
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await self._too_large(send)
            chunks.append(chunk)
            more_body = message.get("more_body", False)

        body, replayed = b"".join(chunks), False

        async def receive_buffered() -> Message:
            nonlocal replayed
            if replayed:  # after the body, the app waits for http.disconnect as usual
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, receive_buffered, send)

    async def _too_large(self, send: Send) -> None:
        limit = self.max_bytes
        size = f"{limit // 1024} KiB ({limit} bytes)" if limit % 1024 == 0 else f"{limit} bytes"
        await _refuse(send, 413, f"request body is over the limit of {size}", "body_too_large")


def _content_length(scope: Scope) -> int | None:
    """The body size the client declared, if it did (ValueError if it is not one number)."""
    values = {v for k, v in scope["headers"] if k == b"content-length"}
    if not values:
        return None
    if len(values) > 1 or not (value := values.pop()).isdigit():
        raise ValueError("Content-Length is not a byte count")
    return int(value)


async def _refuse(send: Send, status: int, detail: str, code: str) -> None:
    # Connection: close, because the rest of the body may still be on its way and is never read.
    payload = json.dumps(error_body(detail, code)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
