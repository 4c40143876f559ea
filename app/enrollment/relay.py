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

- What the old primary acknowledged: a replica's instance keeps, in `acked_position_file`, the
  highest primary position it has passed on to a client, for `bin/multihost promote` to refuse a
  replica behind it.
- Acknowledged means kept (ENROLL_ACK=replica): `PrimaryPosition` holds a write's answer until a
  replica's LiteFS node holds its transaction (`ReplicaPositions`, from each replica's
  `GET /events`), or answers 503 `not_replicated` after `ack_seconds`.

Relayed requests carry RELAYED_HEADER; a replica that receives one answers 503 rather than relay
it on (a primary URL that names a replica would otherwise loop). The gateway passes no such
header from a client (it passes only the headers of each route's input_headers).
"""

import asyncio
import json
import logging
import os
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
from app.common.observe import ASYNC_PASS_ON_ID, KEEP_ALIVE, note_error

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
        acked_position_file: Path | None = None,
        transport: httpx.AsyncBaseTransport | None = None,  # tests: the primary in process
    ) -> None:
        self.app = app
        self.primary_urls = tuple(primary_urls)
        self.database = database
        self.acked_position_file = acked_position_file
        self._acked = 0  # the highest primary TXID passed on to a client, kept in that file
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
            self._record_acked(position)
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

    def _record_acked(self, position: str) -> None:
        """Keep `position`'s TXID in `acked_position_file` if it is the highest passed on yet
        (written whole by a rename: a reader never sees half of it)."""
        txid = _txid(position)
        if self.acked_position_file is None or txid is None or txid <= self._acked:
            return
        self._acked = txid
        partial = self.acked_position_file.with_name(self.acked_position_file.name + ".new")
        try:
            partial.write_text(f"{txid}\n")
            os.replace(partial, self.acked_position_file)
        except OSError as exc:
            log.warning("cannot record the acknowledged position: %s", exc)

    async def _catch_up(self, position: str) -> None:
        """Wait until this node's copy holds the primary's transaction `position` (its TXID in
        hex), for at most CATCH_UP_SECONDS."""
        wanted = _txid(position)
        if wanted is None:
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
                limits=KEEP_ALIVE,
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
    wait for (`ReplicaRelay._catch_up`). Given `replicas` (ENROLL_ACK=replica), the answer to
    every write (a writing method, or any request a replica relayed: a GET is relayed only when
    it writes) waits until one of them holds that position, or becomes 503 `not_replicated`
    after `ack_seconds`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        database: Path,
        replicas: "ReplicaPositions | None" = None,
        ack_seconds: float = 2.0,
    ) -> None:
        self.app = app
        self.position = position_file(database)
        self.replicas = replicas
        self.ack_seconds = ack_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        relayed = _header(scope, RELAYED_HEADER.encode()) is not None
        acked = self.replicas is not None and (relayed or scope["method"] not in READING_METHODS)
        if not relayed and not acked:
            await self.app(scope, receive, send)
            return
        replaced = False

        async def send_with_position(message: Message) -> None:
            nonlocal replaced
            if replaced:  # the app's answer is dropped: ours was sent instead
                return
            if message["type"] == "http.response.start":
                try:
                    position = self.position.read_bytes().strip()
                except OSError:
                    position = b""
                txid = _txid(position.decode())
                if acked and not await self._kept(txid):
                    replaced = True
                    await _not_replicated(txid)(scope, _disconnected, send)
                    return
                if position and relayed:
                    headers = [*message.get("headers", []), (POSITION_HEADER.encode(), position)]
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_position)

    async def _kept(self, txid: int | None) -> bool:
        """Whether a replica holds transaction `txid` within `ack_seconds`."""
        if self.replicas is None or txid is None:
            return True
        return await self.replicas.wait_for(txid, self.ack_seconds)


class ReplicaPositions:
    """The position (TXID) each replica's LiteFS node of one database holds, followed from its
    `GET /events` (a `tx` event per transaction it applies; its `litefs_db_txid` gauge at each
    (re)connection), for `PrimaryPosition` to answer a write once one of them holds it."""

    RECONNECT_SECONDS = 0.2

    def __init__(self, litefs_urls: Iterable[str], *, database: str) -> None:
        self.urls = tuple(litefs_urls)
        self.database = database
        self.held: dict[str, int] = {}
        self._changed: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def _start(self) -> asyncio.Event:
        if self._changed is None or any(task.done() for task in self._tasks):
            for task in self._tasks:
                task.cancel()
            self._changed = asyncio.Event()
            self._tasks = [asyncio.create_task(self._follow(url)) for url in self.urls]
        return self._changed

    async def wait_for(self, txid: int, seconds: float) -> bool:
        """Whether a replica holds transaction `txid` within `seconds`."""
        deadline = time.monotonic() + seconds
        while max(self.held.values(), default=0) < txid:
            changed = self._start()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            changed.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), left)
        return True

    def _note(self, url: str, txid: int) -> None:
        if txid > self.held.get(url, 0):
            self.held[url] = txid
            if self._changed is not None:
                self._changed.set()

    async def _follow(self, url: str) -> None:
        gauge = f'litefs_db_txid{{db="{self.database}"}} '
        async with httpx.AsyncClient(trust_env=False, timeout=httpx.Timeout(2.0, read=None)) as c:
            while True:
                try:
                    async with c.stream("GET", url + "/events") as events:
                        metrics = await c.get(url + "/metrics")
                        for line in metrics.text.splitlines():
                            if line.startswith(gauge):
                                self._note(url, int(float(line[len(gauge) :])))
                        async for line in events.aiter_lines():
                            with suppress(ValueError, KeyError, TypeError, AttributeError):
                                event = json.loads(line)
                                if event["type"] == "tx" and event["db"] == self.database:
                                    self._note(url, _event_txid(event["data"]["txID"]))
                except httpx.HTTPError as exc:
                    log.debug("replica %s events: %s", url, exc)
                await asyncio.sleep(self.RECONNECT_SECONDS)


def _unavailable(detail: str) -> JSONResponse:
    return JSONResponse(
        error_body(detail, "primary_unavailable"), status_code=503, headers={"Retry-After": "2"}
    )


def _not_replicated(txid: int | None) -> JSONResponse:
    detail = (
        f"the change was made on the primary (transaction {txid}) but no replica confirmed "
        "holding it in time, so it is not yet safe from the primary's loss; retry with the same "
        "Idempotency-Key to learn its outcome"
    )
    return JSONResponse(
        error_body(detail, "not_replicated"), status_code=503, headers={"Retry-After": "2"}
    )


async def _disconnected() -> Message:
    return {"type": "http.disconnect"}


def _event_txid(value: str | int) -> int:
    """A `tx` event's txID: hex text as LiteFS writes it (a number is taken as it is)."""
    return int(value, 16) if isinstance(value, str) else int(value)


def _txid(position: str) -> int | None:
    """The TXID of a LiteFS position "TXID/CHECKSUM" (hex), or None."""
    try:
        return int(position.partition("/")[0], 16)
    except ValueError:
        return None


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
