"""The LiteFS primary as this auth node knows it (`Primary`), the one place that does: whether
this node is it, and how a replica reaches it.

Writes: a LiteFS replica cannot write, so every write (a registration, a refresh, a sign-out, an
account change) runs through `Primary.write`, the same call on every node: on the primary, the
rule runs in one BEGIN IMMEDIATE transaction on the node's write connection (with its
Idempotency-Key's record, app/common/idempotency.py); on a replica, the request the client sent
is sent on to the primary as it was, key included, and the primary's answer or refusal passed
on (503 when it cannot be reached). The auth gateway sends registrations to the replicas for
that reason: when the primary is down, they still answer, with a clear 503, where a gateway
sending to the dead primary itself could only give a bare 500.

Reads: replication takes a few milliseconds, but a login may reach a replica before the row of a
user who has just registered. So a replica that must refuse a login asks the primary once and
passes on the primary's tokens; the primary holds every committed user.

Such a login or registration is one attempt, and the replica that the client asked has already
counted it against the abuse limits (app/auth/throttle.py). So the replica marks what it forwards
with REPLICA_HEADER, holding a secret derived from the signing key that every auth node, and
nothing else, reads; the primary leaves what is so marked uncounted. A client cannot forge the
mark without that key (and whoever holds it can sign tokens anyway); the gateway passes no such
header in any case. A mark that does not match (a node still on an older key) only makes the
primary count the attempt too.
"""

import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar, cast

import httpx
from pydantic import BaseModel, ValidationError

from app.auth.settings import Settings
from app.auth.tokens import KeyRing
from app.common import idempotency
from app.common.db import ConnectionPool, immediate
from app.common.errors import Conflict, DomainError, Invalid, Relayed, Unavailable
from app.common.observe import KEEP_ALIVE, PASS_ON_ID

log = logging.getLogger(__name__)

Answer = TypeVar("Answer", bound=BaseModel)
T = TypeVar("T")

# The primary answers a login in one password hash (tens of milliseconds; 0.2 s for a seed user).
# Five seconds covers a queue of hashes there; a primary that is down is refused at once.
PRIMARY_TIMEOUT = httpx.Timeout(5.0, connect=1.0)

REPLICA_HEADER = "X-Auth-Replica"


def replica_secret(keys: KeyRing) -> str:
    """The value of REPLICA_HEADER: the same on every node that holds the signing key."""
    return keys.derive_secret("auth: a request a replica forwards to its primary")


@dataclass(frozen=True)
class WriteRequest:
    """A write request as the client sent it to this node: what a replica sends on to the
    primary, which then checks it all again (the registrar's token included)."""

    method: str
    path: str
    body: bytes  # JSON, as received: the primary validates it as this node did
    authorization: str | None
    idempotency_key: str | None = None  # sent on too: the primary keeps the keys' answers


@dataclass(frozen=True)
class Relay:
    """How a replica answers for a write the primary makes: the primary's refusals it passes on
    as they are, and the words of its 503s (`name` of the write; `unavailable` in full)."""

    name: str | None = None  # None: the request's method and path
    passes_on: frozenset[int] = frozenset(range(400, 500))
    unavailable: str | None = None


class Primary:
    """Whether this node is the LiteFS primary, and a replica's client for it (`client`, while
    the app runs). Built once per app (app/auth/main.py)."""

    def __init__(self, settings: Settings, keys: KeyRing) -> None:
        self.settings = settings
        self.mark = replica_secret(keys)  # how the primary knows a request a replica sent on
        self.client: httpx.Client | None = None
        self._write_pool = ConnectionPool(settings.database)  # used on the primary only
        # The Idempotency-Keys whose writes this node runs now (on the primary), and the secret
        # of the keys' records: the HMAC of a request's body, the salt of a sealed answer.
        self.in_flight = idempotency.InFlight()
        self.idempotency_secret = keys.derive_secret("auth: idempotency records").encode()

    @contextmanager
    def reachable(self) -> Iterator[None]:
        """Keep `client` open for the app's life, on a node given AUTH_PRIMARY_URL. Every
        request it sends carries the replica's mark."""
        if self.settings.primary_url is None:
            yield
            return
        with httpx.Client(
            base_url=str(self.settings.primary_url),
            timeout=PRIMARY_TIMEOUT,
            headers={REPLICA_HEADER: self.mark},
            event_hooks=PASS_ON_ID,
            limits=KEEP_ALIVE,
        ) as client:
            self.client = client
            try:
                yield
            finally:
                self.client = None

    def replica_reason(self) -> str | None:
        """Why this node must not write (it is a read replica), or None on the primary."""
        # LiteFS puts `.primary` (holding the primary's name) in the mount on replicas only, and
        # only while connected to the primary; replicas therefore also set AUTH_READ_ONLY. Looked
        # at on every write: the file comes and goes with the connection.
        # Read, not tested and then read: the file goes the moment the primary does (a replica
        # asked just then raised FileNotFoundError, a 500 where a 503 was due).
        try:
            primary = (self.settings.database.parent / ".primary").read_text().strip()
        except OSError:  # no file: the primary, or a replica just cut off from it
            primary = None
        if primary is not None:
            return f"this node is a read replica (primary: {primary or 'unknown'})"
        if self.settings.read_only:
            return "this node is a read replica (AUTH_READ_ONLY)"
        return None

    def write(
        self,
        request: WriteRequest,
        on_primary: Callable[[sqlite3.Connection, dict[str, Any]], T | DomainError],
        *,
        answer: type[BaseModel] | None,
        relay: Relay,
        before: Callable[[sqlite3.Connection], dict[str, Any]] | None = None,
        keyed: idempotency.Keyed | None = None,
    ) -> T:
        """On the primary, `on_primary(tx, prepared)` as one BEGIN IMMEDIATE transaction on
        this node's write connection, `prepared` being what `before(conn)` made first, outside
        the transaction (a password's hash, which the write lock must not wait for). A result
        that is a DomainError is a refusal whose change stands (a reused refresh token ends its
        session): it is raised once committed. On a replica, `request` made by the primary: its
        answer (as `answer`; None without one), its refusal passed on (`relay.passes_on`), or
        503 `primary_unavailable`, nothing changed.

        With an Idempotency-Key (`keyed`) the primary answers once per key (`_keyed_write`) and
        this raises `idempotency.Answered` with the answer recorded, which a replica passes on
        as the primary made it."""
        what = relay.name or f"{request.method} {request.path}"
        reason = self.replica_reason()
        if reason is not None:
            return cast(T, self._relay(request, what, reason, answer=answer, relay=relay))
        with self._write_pool.connection() as conn:
            try:
                if keyed is not None:
                    self._keyed_write(conn, keyed, on_primary, before)
                prepared = before(conn) if before is not None else {}
                with immediate(conn) as tx:
                    result = on_primary(tx, prepared)
                if isinstance(result, DomainError):
                    raise result
                return result
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorname", "").startswith("SQLITE_READONLY"):
                    # The database refused the write although nothing told us this is a replica.
                    raise Unavailable(
                        f"this node's database is read-only (a read replica); {what} goes to the"
                        " primary",
                        code="read_replica",
                    ) from exc
                raise

    def _keyed_write(
        self,
        conn: sqlite3.Connection,
        keyed: idempotency.Keyed,
        on_primary: Callable[[sqlite3.Connection, dict[str, Any]], Any],
        before: Callable[[sqlite3.Connection], dict[str, Any]] | None,
    ) -> NoReturn:
        """`write` under an Idempotency-Key, on the primary: the answer recorded for the key if
        there is one, before any work (a retry costs no password hash); else the write, its
        answer recorded in its transaction (idempotency.once). While it runs, from before
        `before` to its commit, this process holds the key (`in_flight`): a retry meanwhile,
        relayed by either replica, is 409 `request_in_progress` rather than a second hash, and
        asks again for the answer. Every write of the service is made in this one process, so
        that claim is exact, and it dies with the process, never held by one that is gone."""
        with self.in_flight.claim(keyed) as ours:
            if not ours:
                raise Conflict(
                    "a request with this Idempotency-Key is still being answered: send it again"
                    " in a moment for its answer",
                    code="request_in_progress",
                )
            if idempotency.lookup(conn, keyed) is None and keyed.reused_for is None:
                prepared = before(conn) if before is not None else {}
                with immediate(conn) as tx:
                    idempotency.once(tx, keyed, on_primary, prepared)
        if keyed.reused_for is not None:
            raise Invalid(
                f"this Idempotency-Key was given to another request ({keyed.reused_for}) in the"
                f" last {self.settings.idempotency_ttl_seconds} s: use a new key for a new"
                " request",
                code="idempotency_key_reused",
            )
        raise idempotency.Answered.of(keyed)

    def _relay(
        self,
        request: WriteRequest,
        what: str,
        reason: str,
        *,
        answer: type[BaseModel] | None,
        relay: Relay,
    ) -> BaseModel | None:
        """`request` made by the primary, from this replica: see `write`."""
        if self.client is None:  # a read-only node that knows no primary
            raise Unavailable(f"{reason}; {what} goes to the primary", code="read_replica")
        reply = forward(self.client, request)
        if request.idempotency_key is not None and reply is not None and reply.status_code < 500:
            # The answer the primary recorded for the key (or its 409/422 about the key), sent
            # on as it was made, so the client's first answer and its replays are the same bytes.
            raise idempotency.Answered(
                idempotency.Answer(
                    reply.status_code,
                    reply.content,
                    {k: v for k, v in reply.headers.items() if k.lower() == "retry-after"},
                ),
                replayed=reply.headers.get(idempotency.REPLAYED_HEADER) == "true",
            )
        if reply is not None and reply.is_success:
            return None if answer is None else answer.model_validate(reply.json())
        if reply is not None and reply.status_code in relay.passes_on:
            refusal = reply.json()
            raise Relayed(refusal["detail"], code=refusal["code"], status=reply.status_code)
        raise Unavailable(
            relay.unavailable
            or f"this is unavailable right now ({what}): the auth primary, which makes the change,"
            " cannot be reached; nothing was changed, so try again in a few seconds",
            code="primary_unavailable",
        )

    def ask(self, path: str, body: dict[str, Any], answer: type[Answer]) -> Answer | None:
        """On a replica, the primary's 200 answer to `body` at `path`; None when the primary
        refuses too or cannot be asked, and always on the primary, whose own refusal is final
        (so two nodes never ask each other in a loop)."""
        if self.client is None or self.replica_reason() is None:
            return None
        return ask_primary(self.client, path, body, answer)


def forward(primary: httpx.Client, request: WriteRequest) -> httpx.Response | None:
    """Send `request` to the primary and return its answer, whatever the status; None when the
    primary cannot be reached or does not answer in time (logged)."""
    headers = {"Content-Type": "application/json"}
    if request.authorization:
        headers["Authorization"] = request.authorization
    if request.idempotency_key is not None:
        headers[idempotency.HEADER] = request.idempotency_key
    try:
        return primary.request(request.method, request.path, content=request.body, headers=headers)
    except httpx.HTTPError as exc:
        log.warning("could not reach the primary for %s: %s", request.path, exc)
        return None


def ask_primary(
    primary: httpx.Client, path: str, body: dict[str, Any], answer: type[Answer]
) -> Answer | None:
    """POST `body` to the primary; its 200 answer as `answer`, or None if it refused too (or could
    not be asked, which is logged: the caller then gives its own refusal)."""
    try:
        reply = primary.post(path, json=body)
    except httpx.HTTPError as exc:
        log.warning("could not ask the primary about %s: %s", path, exc)
        return None
    if reply.status_code != 200:
        if reply.status_code != 401:
            log.warning("the primary answered %s with %s", path, reply.status_code)
        return None
    try:
        return answer.model_validate(reply.json())
    except (ValueError, ValidationError) as exc:
        log.warning("the primary's answer to %s is not a %s: %s", path, answer.__name__, exc)
        return None
