"""What a service process does once, when uvicorn starts it (the `serve` factories)."""

import asyncio
import gc
from typing import TYPE_CHECKING, Any, TypeVar

from uvicorn.protocols.http import httptools_impl

if TYPE_CHECKING:
    from uvicorn._types import ASGISendEvent  # the type uvicorn's own `send` takes

App = TypeVar("App")


def long_lived(app: App) -> App:
    """Take the objects that live as long as the process (modules, the app, its routes and
    models: about 50,000) out of the garbage collector's sight with `gc.freeze`.

    Every full collection walks every tracked object. Under a rush, each enrollment instance ran
    one every 20-30 s, and it held that instance's event loop for 86-258 ms (measured with a
    gc.callbacks probe during ./bin/bench), the largest part of the open-loop p99. Frozen, those
    objects are never walked again, and they would never have been garbage anyway."""
    gc.collect()
    gc.freeze()
    return app


class _HeadWithBody:
    """The transport of one response, as its RequestResponseCycle sees it once the response has
    started: the first write (status line and headers) is held and goes out with the next (the
    body, or its first chunk), in one send."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head: bytes | None = None
        self._held = False

    def write(self, data: bytes) -> None:
        if not self._held:
            self._held, self._head = True, data
            return
        if self._head is not None:
            data, self._head = self._head + data, None
        self._transport.write(data)

    def flush(self) -> None:
        """Send a head still held: an answer that ended without writing a body (HEAD)."""
        if self._head is not None:
            head, self._head = self._head, None
            self._transport.write(head)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _OneWriteCycle(httptools_impl.RequestResponseCycle):
    async def send(self, message: "ASGISendEvent") -> None:
        if message["type"] == "http.response.start" and not self.response_started:
            # A stand-in, not an asyncio.Transport: it holds `write`, passes the rest on.
            self.transport = _HeadWithBody(self.transport)  # type: ignore[assignment]
        await super().send(message)
        if self.response_complete and isinstance(self.transport, _HeadWithBody):
            self.transport.flush()


class OneWriteHttp(httptools_impl.HttpToolsProtocol):
    """uvicorn's httptools protocol (`--http app.common.server:OneWriteHttp`), sending each
    response's headers and body in one write rather than two.

    uvicorn writes the headers when the app starts its response and the body when it sends it:
    two send() calls, two TCP segments, and two reads for the gateway at the other end, for
    answers of a few hundred bytes. With wrk straight to one instance, alternating, a student's
    section list went from 1,176-1,289 to 1,321-1,488 answers a second (a section's page showed
    no difference). Under the rush the one send() costs nearly what the two did (py-spy --gil:
    11.6% of an instance's samples before, 10.8% after): there the cost is the loopback
    delivery to the gateway, not the call."""

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.cycle is not None and type(self.cycle) is httptools_impl.RequestResponseCycle:
            self.cycle.__class__ = _OneWriteCycle
