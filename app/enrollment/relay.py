"""An enrollment instance whose database is a LiteFS read replica (bin/multihost's hosts h2 and
h3) answers reads from its own copy and has the primary's instances make every write: the rule
the auth service follows (app/auth/primary.py), for the same reasons.

- A LiteFS replica cannot write (EACCES; SQLite's "disk I/O error"), and a gateway cannot know
  every write in advance: a GET writes when its caller makes a first request here (the caller's
  record, app/enrollment/deps.py `identify`) or when the registrar names an account this service
  has not recorded yet (app/enrollment/people/directory.py).
- So `ReplicaRelay` sends every request of a writing method (POST, PUT, PATCH, DELETE) to the
  primary's instances as the gateway sent it (its identity headers, gateway secret and
  Idempotency-Key included, all checked again there), and runs a GET here; a GET that reaches a
  write (`Database` raises WriteOnReplica before it changes anything) is sent there whole. The
  primary's answer, whatever it is, is this instance's answer; when no primary instance can be
  reached it is 503 `primary_unavailable`, nothing changed, so that the client may try again.
- Read your writes: the primary's instance puts its LiteFS position after the write
  (`POSITION_HEADER`, the database's `-pos` file) on a relayed answer, and the replica answers
  once its own copy holds that transaction (at most `CATCH_UP_SECONDS`), so the next page the
  client loads from this host shows what it has just done.

Relayed requests carry RELAYED_HEADER; a replica that receives one answers 503 rather than relay
it on (a primary URL that names a replica would otherwise loop). The gateway passes no such
header from a client (it passes only the headers of each route's input_headers).
"""

import asyncio
import logging
import time
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path
from types import SimpleNamespace

import httpx
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.common.db import WriteOnReplica
from app.common.errors import error_body
from app.common.observe import ASYNC_PASS_ON_ID, note_error

log = logging.getLogger("enrollment.relay")

RELAYED_HEADER = "x-enroll-relayed"
POSITION_HEADER = "x-enroll-position"
READING_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The instance's own endpoints, never relayed: each host's /health and /metrics are its own.
OWN_PATHS = frozenset({"/health", "/metrics"})
# Hop-by-hop headers and those the replica sets itself (Observed adds its own X-Request-Id).
NOT_PASSED_ON = frozenset(
    {b"host", b"content-length", b"connection", b"transfer-encoding", b"keep-alive"}
)
NOT_PASSED_BACK = frozenset(
    {"content-length", "connection", "transfer-encoding", "date", "server", "x-request-id"}
)
# A write waits for the writer queue on the primary like any other (the gateway allows 35 s).
PRIMARY_TIMEOUT = httpx.Timeout(30.0, connect=1.0)
CATCH_UP_SECONDS = 1.0
# Relayed requests are counted under this route in the replica's metrics.
RELAYED_ROUTE = SimpleNamespace(path="relayed to the primary")


def position_file(database: Path) -> Path:
    """LiteFS's `-pos` file of `database`: "TXID/CHECKSUM" (16 hex digits each) of its last
    transaction on this node."""
    return database.with_name(database.name + "-pos")


def read_txid(database: Path) -> int | None:
    """The id of the last transaction this node's copy of `database` holds, or None off LiteFS."""
    try:
        text = position_file(database).read_text()
    except OSError:
        return None
    txid, _, _ = text.strip().partition("/")
    try:
        return int(txid, 16)
    except ValueError:
        return None


class ReplicaRelay:
    """ASGI middleware of an instance on a read replica: see the module's docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        primary_urls: Iterable[str],
        database: Path,
        transport: httpx.AsyncBaseTransport | None = None,  # tests: the primary in process
    ) -> None:
        self.app = app
        self.primary_urls = tuple(primary_urls)
        self.database = database
        self.transport = transport
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        self._next = 0  # the primary instance tried first, in turn

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._closing_at_shutdown(receive), send)
            return
        if scope["type"] != "http" or scope["path"] in OWN_PATHS:
            await self.app(scope, receive, send)
            return
        if _header(scope, RELAYED_HEADER.encode()) is not None:
            await self._refuse(scope, receive, send, "this instance is a read replica itself")
            return
        if scope["method"] not in READING_METHODS:
            await self._relay(scope, await _body(receive), send)
            return
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except WriteOnReplica:
            if started:  # not reached: a route writes before it answers
                raise
            await self._relay(scope, b"", send)

    async def _relay(self, scope: Scope, body: bytes, send: Send) -> None:
        """`scope`'s request made by an instance of the primary; its answer sent as this one's."""
        scope["route"] = RELAYED_ROUTE
        reply = await self._ask_primary(scope, body)
        if reply is None:
            detail = (
                "this is unavailable right now: the enrollment primary, which makes every change,"
                " cannot be reached; nothing was changed, so try again in a few seconds"
            )
            await self._answer(scope, send, _unavailable(detail))
            return
        position = reply.headers.get(POSITION_HEADER)
        if position is not None:
            await self._catch_up(position)
        if reply.status_code >= 400:  # the primary's code, in this instance's log line too
            with suppress(ValueError, KeyError, TypeError):
                note_error(str(reply.json()["code"]))
        headers = {k: v for k, v in reply.headers.items() if k.lower() not in NOT_PASSED_BACK}
        headers.pop(POSITION_HEADER, None)
        await self._answer(
            scope, send, Response(reply.content, status_code=reply.status_code, headers=headers)
        )

    async def _ask_primary(self, scope: Scope, body: bytes) -> httpx.Response | None:
        """The answer of the first primary instance that takes the request; None if none does.
        A write is sent to a second instance only if the first refused the connection (it was
        never sent); a read, whatever failed."""
        client = self._client()
        query = scope["query_string"].decode()
        path = scope["path"] + (f"?{query}" if query else "")
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in NOT_PASSED_ON]
        headers.append((RELAYED_HEADER.encode(), b"1"))
        first = self._next
        self._next = (self._next + 1) % len(self.primary_urls)
        for i in range(len(self.primary_urls)):
            base = self.primary_urls[(first + i) % len(self.primary_urls)]
            try:
                return await client.request(
                    scope["method"], base + path, content=body, headers=headers
                )
            except httpx.ConnectError as exc:
                log.warning("enrollment primary %s cannot be reached: %s", base, exc)
            except httpx.HTTPError as exc:
                log.warning("enrollment primary %s failed %s: %s", base, path, exc)
                if scope["method"] not in READING_METHODS:
                    return None  # it may have been made: never twice
        return None

    async def _catch_up(self, position: str) -> None:
        """Wait until this node's copy holds the primary's transaction `position` (its TXID in
        hex), for at most CATCH_UP_SECONDS."""
        try:
            wanted = int(position.partition("/")[0], 16)
        except ValueError:
            return
        deadline = time.monotonic() + CATCH_UP_SECONDS
        pause = 0.001
        while (held := read_txid(self.database)) is not None and held < wanted:
            if time.monotonic() > deadline:
                log.warning("replica at transaction %d, relayed write at %d", held, wanted)
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.02)

    def _client(self) -> httpx.AsyncClient:
        """One client per event loop (a process runs one), made at the first relay."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            for old in [known for known in self._clients if known.is_closed()]:
                del self._clients[old]
            client = self._clients[loop] = httpx.AsyncClient(
                trust_env=False,
                timeout=PRIMARY_TIMEOUT,
                event_hooks=ASYNC_PASS_ON_ID,
                transport=self.transport,
            )
        return client

    def _closing_at_shutdown(self, receive: Receive) -> Receive:
        """`receive` of the app's lifespan, closing this loop's client when the app stops (its
        connections to the primary end with the app, not when the garbage collector finds
        them)."""

        async def receive_closing() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                client = self._clients.pop(asyncio.get_running_loop(), None)
                if client is not None:
                    await client.aclose()
            return message

        return receive_closing

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, why: str) -> None:
        detail = f"{why}: ENROLL_PRIMARY_URLS must name the primary's instances"
        await self._answer(scope, send, _unavailable(detail), receive)

    @staticmethod
    async def _answer(
        scope: Scope, send: Send, response: Response, receive: Receive | None = None
    ) -> None:
        async def nothing() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, receive or nothing, send)


class PrimaryPosition:
    """ASGI middleware of an instance on the LiteFS primary: a relayed request's answer carries
    the database's position once the request is done (its write committed), for the replica to
    wait for (`ReplicaRelay._catch_up`)."""

    def __init__(self, app: ASGIApp, *, database: Path) -> None:
        self.app = app
        self.position = position_file(database)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _header(scope, RELAYED_HEADER.encode()) is None:
            await self.app(scope, receive, send)
            return

        async def send_with_position(message: Message) -> None:
            if message["type"] == "http.response.start":
                try:
                    position = self.position.read_bytes().strip()
                except OSError:
                    position = b""
                if position:
                    headers = [*message.get("headers", []), (POSITION_HEADER.encode(), position)]
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_position)


def _unavailable(detail: str) -> JSONResponse:
    return JSONResponse(
        error_body(detail, "primary_unavailable"), status_code=503, headers={"Retry-After": "2"}
    )


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return bytes(value)
    return None


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
