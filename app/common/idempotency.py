"""Idempotency-Key on every write of both services (IETF httpapi draft "The Idempotency-Key HTTP
Header Field"; Stripe's API): a client that lost an answer (a cut connection, the gateway's 500
`backend_failed` when an instance died) retries with the same key and gets the first answer
again, never the change twice.

What is kept, per key: the caller it belongs to, the method and path, a digest of the body, and
the answer (status, headers, body bytes), in the table `idempotency_keys` of the service's own
database, written in the SAME transaction as the change (`once`, run inside the write's BEGIN
IMMEDIATE). So a change and its record commit together or not at all: a process killed after the
commit leaves a record the retry replays; one killed before leaves neither, and the retry makes
the change. A record kept anywhere else (a second transaction, another store) would leave a
moment in which the change is made and unrecorded, and its retry would make it again or answer
409 `already_enrolled`: the question "did I get the seat?" the key exists to answer.

The rules, for a request with a key (a request without one is answered as it always was):
- same caller, same key, same method, path and body: the first answer again, byte for byte,
  with `Idempotent-Replayed: true` (Stripe's header name; the draft names none);
- same caller and key, another method, path or body: 422 `idempotency_key_reused`, nothing done;
- another caller's key is another key: callers never see each other's answers. The caller is
  the signed-in user (`user:<id>`); a request that has no signed-in caller (registration, a
  refresh, whose refresh token is its credential) is its own caller (`request:<digest>`, see
  `request_caller`), so only someone who sends the very same body, password or token included,
  can get its answer back;
- a refusal the change itself decided (a 4xx the rule raised inside the transaction: the
  section full, the username taken) is recorded too, its change rolled back to a savepoint and
  the record kept, as Stripe does: a retry replays the same refusal rather than trying again and
  perhaps succeeding, so one key is one attempt with one outcome. What is refused before the
  write starts (a bad body, no such route, the caller's role) records nothing, and neither does
  a 5xx (the database busy: nothing was decided, so a retry should run);
- a retry while the first is still running: in the enrollment service the whole decision is
  the transaction, so the retry waits for the write lock like any writer and then finds the
  record (a replay, better than a refusal). Where work happens before the transaction (the auth
  service's password hash, a replica's relay to the primary), the primary holds the key for the
  request's whole run (`InFlight`) and a retry meanwhile is 409 `request_in_progress`;
- records live `ttl` seconds (24 hours by default, a setting of each service): an older one is
  as good as none, and a keyed write deletes the oldest expired ones, a bounded number at most
  once a second (`purge`), so the table holds about a day of keyed writes without a sweeper.

The body's digest is of its canonical form (JSON re-serialised with sorted keys, no spaces), so a
client that re-encodes the same body is not told it sent another one. A body that may hold a
secret (a password, a refresh token) is digested with an HMAC under a secret of the service
(`secret`): the table never holds a plain hash that a password could be guessed against.
Answers that hold bearer tokens are stored sealed (`Keyed.seal_material`): AES-GCM under a key
derived (HKDF-SHA256) from the request's own body, which holds the password or refresh token,
salted with the service's secret. Only a retrier who sends that body again can open it, and the
database alone (a backup, a replica's copy) opens nothing.
"""

import hashlib
import hmac
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError, ResponseValidationError
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response

from app.common.errors import DomainError, MadeAnswer, error_body
from app.common.observe import note_error

SCHEMA = Path(__file__).resolve().parents[2] / "share" / "common" / "idempotency.sql"
HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
TTL_SECONDS = 24 * 60 * 60  # the default of each service's setting
MAX_KEY_LENGTH = 255
# Expired records are deleted by a keyed write, at most once a second in each process and at
# most 500 at a time: far more than the keyed writes of a second add, so the table shrinks back
# after a busy day, and few enough that no write waits long on a sweep. Once a second rather
# than a few rows on every write: the sweep's statement cost a keyed enroll 5% of its CPU.
PURGE_EVERY_SECONDS = 1.0
PURGE_LIMIT = 500
# How a write route declares the header in its OpenAPI schema (`parameters`).
OPENAPI_PARAMETER: dict[str, Any] = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "description": "A key of your own (1-255 printable ASCII characters, a UUID say) for this"
    " one request: a retry with the same key gets the first answer again, with"
    f" `{REPLAYED_HEADER}: true`, and never makes the change twice; the same key for another"
    " request is 422 `idempotency_key_reused`. Kept 24 hours.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
}

P = ParamSpec("P")
T = TypeVar("T")


def create_table(conn: sqlite3.Connection) -> None:
    """Make the table of the keys' answers in a service's database, if it is not there
    (share/common/idempotency.sql; each service's init_db, after its schema)."""
    conn.executescript(SCHEMA.read_text())


def now() -> float:
    """The clock records are stamped and expired by (tests replace it)."""
    return time.time()


def key_of(headers: Headers) -> str | None:
    """The request's Idempotency-Key, or None without one; a malformed one is a 422 naming the
    header. The draft makes the value a Structured Field string (`"..."`); a bare value, as
    Stripe takes it, is the same key."""
    values = headers.getlist(HEADER)
    if not values:
        return None
    if len(values) > 1:
        _refuse_key("give one Idempotency-Key header, not several")
    key = values[0]
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        _refuse_key(f"must be 1 to {MAX_KEY_LENGTH} characters long")
    if not (key.isascii() and key.isprintable()):  # U+0020-U+007E
        _refuse_key("must be printable ASCII (no control characters or other letters)")
    return key


def _refuse_key(message: str) -> None:
    raise RequestValidationError(
        [{"type": "value_error", "loc": ("header", HEADER), "msg": message, "input": None}]
    )


def canonical(body: bytes) -> bytes:
    """The body as its digest sees it: JSON with sorted keys and no spaces, or the bytes as they
    came when they are not JSON (the CSV import)."""
    if not body:
        return b""
    try:
        parsed = json.loads(body)
    except ValueError:
        return body
    return json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def body_digest(body: bytes, *, secret: bytes | None = None) -> bytes:
    """SHA-256 of the canonical body, or its HMAC under `secret` for a body that may hold a
    password or a token."""
    text = canonical(body)
    if secret is None:
        return hashlib.sha256(text).digest()
    return hmac.new(secret, text, hashlib.sha256).digest()


def request_caller(method: str, path: str, body: bytes, *, secret: bytes) -> str:
    """The caller of a request that has no signed-in caller: the request itself (an HMAC of its
    method, path and canonical body), so that its answer is only for whoever sends it again."""
    mac = hmac.new(secret, f"{method} {path}\n".encode() + canonical(body), hashlib.sha256)
    return "request:" + mac.hexdigest()


@dataclass(frozen=True)
class Answer:
    """An answer as it was sent: status, headers of its own (Retry-After), body bytes (JSON, or
    none)."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def response(self, *, replayed: bool = False) -> Response:
        headers = dict(self.headers)
        if replayed:
            headers[REPLAYED_HEADER] = "true"
            if self.status >= 400:  # the refusal's code, for this request's log line too
                note_error(json.loads(self.body).get("code", ""))
        media = "application/json" if self.body else None
        return Response(self.body, status_code=self.status, headers=headers, media_type=media)


def answer_maker(route: APIRoute) -> Callable[[Any], Answer]:
    """How `route` makes its answer from what its write returns, as FastAPI would (its response
    model, serialised by pydantic; no body for a 204), so that a keyed write can record it inside
    its transaction. Made once per route (kept on it)."""
    made: Callable[[Any], Answer] | None = getattr(route, "idempotent_answer", None)
    if made is not None:
        return made
    status = route.status_code or 200
    field = route.response_field

    def answer_of(result: Any) -> Answer:
        if status == 204:
            return Answer(204, b"")
        if field is None:
            return Answer(status, bytes(JSONResponse(jsonable_encoder(result)).body))
        value, errors = field.validate(result, {}, loc=("response",))
        if errors:
            raise ResponseValidationError(errors=errors, body=result)
        body = field.serialize_json(
            value,
            include=route.response_model_include,
            exclude=route.response_model_exclude,
            by_alias=route.response_model_by_alias,
            exclude_unset=route.response_model_exclude_unset,
            exclude_defaults=route.response_model_exclude_defaults,
            exclude_none=route.response_model_exclude_none,
        )
        return Answer(status, body)

    route.idempotent_answer = answer_of  # type: ignore[attr-defined]  # cached on the route
    return answer_of


def refusal_answer(refusal: DomainError) -> Answer:
    """A refusal as the error handler would send it (app/common/errors.py)."""
    rendered = JSONResponse(error_body(refusal.detail, refusal.code))
    return Answer(refusal.status, bytes(rendered.body), dict(refusal.headers or {}))


@dataclass
class Keyed:
    """One request with an Idempotency-Key, as the write that answers it needs it: who, which
    key, what request (its digest), how its result becomes its answer; and, once the write has
    run, what came of it (`answer`, `replayed`, or `reused_for`: the key belongs to another
    request, nothing done)."""

    caller: str
    key: str
    method: str
    path: str
    body_digest: bytes
    ttl_seconds: float
    answer_of: Callable[[Any], Answer]
    # Set for an answer that holds bearer tokens: the request's own secret material (its
    # canonical body), with the service's `salt`, makes the key the answer is sealed with.
    seal_material: bytes | None = None
    salt: bytes = b""
    answer: Answer | None = None
    replayed: bool = False
    reused_for: str | None = None
    taken: bool = False

    def outcome(self) -> Response:
        """The answer to send, once the write has run (a replay says so)."""
        return Answered.of(self).response()

    def _sealing_key(self) -> bytes:
        assert self.seal_material is not None
        return HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=self.salt or None,
            info=b"idempotency answer\x00" + self.caller.encode() + b"\x00" + self.key.encode(),
        ).derive(self.seal_material)

    def seal(self, body: bytes) -> bytes:
        if self.seal_material is None or not body:
            return body
        nonce = os.urandom(12)
        return nonce + AESGCM(self._sealing_key()).encrypt(nonce, body, None)

    def unseal(self, stored: bytes) -> bytes | None:
        """The body of a stored answer; None if this request cannot open it (not its sender)."""
        if self.seal_material is None or not stored:
            return stored
        try:
            return AESGCM(self._sealing_key()).decrypt(stored[:12], stored[12:], None)
        except (InvalidTag, ValueError):
            return None


class Answered(MadeAnswer):
    """A keyed request is answered: `answer` as recorded (a replay if `replayed`). Raised once a
    keyed write has run or found its record, and by a replica passing on its primary's answer
    to a keyed write, so that nothing after it adds to or re-serialises that answer; the error
    handlers send it (app/common/errors.py)."""

    def __init__(self, answer: Answer, *, replayed: bool) -> None:
        super().__init__(answer.status)
        self.answer = answer
        self.replayed = replayed

    def response(self) -> Response:
        return self.answer.response(replayed=self.replayed)

    @classmethod
    def of(cls, keyed: "Keyed") -> "Answered":
        """The answer a keyed write has come to."""
        assert keyed.answer is not None, "the keyed write has not run"
        return cls(keyed.answer, replayed=keyed.replayed)


class Ran(Exception):
    """A keyed write has run: `keyed` says what came of it (its answer, or the key found given
    to another request). Raised by `Database.write` (app/common/db.py) once committed, in place
    of the write's result, for the route to answer (app/enrollment/deps.py `KeyedWrite`)."""

    def __init__(self, keyed: "Keyed") -> None:
        super().__init__(keyed.key)
        self.keyed = keyed


_pending: ContextVar[Keyed | None] = ContextVar("idempotency_pending", default=None)


@contextmanager
def pending(keyed: Keyed) -> Iterator[Keyed]:
    """Make `keyed` the current request's: its next write (`take`) runs under it."""
    token = _pending.set(keyed)
    try:
        yield keyed
    finally:
        _pending.reset(token)


def take() -> Keyed | None:
    """The current request's keyed write, for the one write that answers it (None if the request
    has no key, or its write has run)."""
    keyed = _pending.get()
    if keyed is None or keyed.taken:
        return None
    keyed.taken = True
    return keyed


def once(
    tx: sqlite3.Connection,
    keyed: Keyed,
    fn: Callable[Concatenate[sqlite3.Connection, P], T],
    /,
    *args: P.args,
    **kwargs: P.kwargs,
) -> T | None:
    """Inside the write's transaction: `fn(tx, ...)` and its answer recorded, or the recorded
    answer found (`keyed.replayed`) or the key found taken by another request (`keyed.reused_for`)
    and nothing run. A refusal `fn` raises (below 500) is undone to a savepoint and recorded as
    the answer, and the transaction commits the record alone. `fn` may return a DomainError
    instead of raising it: the refusal is the answer, and what `fn` changed commits with it."""
    if lookup(tx, keyed) is not None or keyed.reused_for is not None:
        return None
    actions: list[Callable[[], None]] | None = getattr(tx, "committed_actions", None)
    kept = len(actions) if actions is not None else 0
    tx.execute("SAVEPOINT keyed_write")
    try:
        result = fn(tx, *args, **kwargs)
        if isinstance(result, DomainError):
            answer = refusal_answer(result)
        else:
            answer = keyed.answer_of(result)
    except DomainError as refusal:
        if refusal.status >= 500:
            raise
        tx.execute("ROLLBACK TO keyed_write")
        if actions is not None:
            del actions[kept:]  # what would have run on commit counted a change undone
        answer, result = refusal_answer(refusal), None
    tx.execute("RELEASE keyed_write")
    record(tx, keyed, answer)
    return result


def lookup(conn: sqlite3.Connection, keyed: Keyed) -> Answer | None:
    """The unexpired record of this caller's key, if any, and what it makes of this request:
    `keyed.answer` and `replayed` when it is the same request, `reused_for` when not."""
    row = conn.execute(
        "SELECT method, path, body_digest, status, headers, body FROM idempotency_keys"
        " WHERE caller = ? AND key = ? AND created_at > ?",
        (keyed.caller, keyed.key, now() - keyed.ttl_seconds),
    ).fetchone()
    if row is None:
        return None
    method, path, digest, status, headers, stored = row
    body = keyed.unseal(stored)
    if (method, path) != (keyed.method, keyed.path) or digest != keyed.body_digest or body is None:
        keyed.reused_for = f"{method} {path}"
        return None
    keyed.answer = Answer(status, body, json.loads(headers) if headers else {})
    keyed.replayed = True
    return keyed.answer


def record(conn: sqlite3.Connection, keyed: Keyed, answer: Answer) -> None:
    """Keep `answer` as the answer to this caller's key (in the change's transaction), replacing
    an expired record of the same key; then purge a few expired records."""
    stamp = now()
    conn.execute(
        "INSERT OR REPLACE INTO idempotency_keys"
        " (caller, key, method, path, body_digest, status, headers, body, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            keyed.caller,
            keyed.key,
            keyed.method,
            keyed.path,
            keyed.body_digest,
            answer.status,
            json.dumps(dict(answer.headers)) if answer.headers else None,
            keyed.seal(answer.body),
            stamp,
        ),
    )
    keyed.answer = answer
    global _next_purge
    if stamp >= _next_purge:  # a race between two threads only purges twice
        _next_purge = stamp + PURGE_EVERY_SECONDS
        purge(conn, before=stamp - keyed.ttl_seconds)


_next_purge = 0.0  # when this process's keyed writes purge next (`record`)


def purge(conn: sqlite3.Connection, *, before: float, limit: int | None = None) -> None:
    """Delete up to `limit` (PURGE_LIMIT) records made before `before`. Ids grow with time, so
    the oldest are the first rows of the table: the sweep reads no more than `limit` rows,
    whatever the table's size."""
    conn.execute(
        "DELETE FROM idempotency_keys WHERE id IN"
        " (SELECT id FROM idempotency_keys ORDER BY id LIMIT ?) AND created_at < ?",
        (PURGE_LIMIT if limit is None else limit, before),
    )


class InFlight:
    """The keys whose requests this process is running now (caller, key), for the writes that
    do work before their transaction (a password hash, a relay): a second request with the same
    key meanwhile is told so (`claim` yields False) instead of doing that work again. Held in
    memory: the auth primary is the one process that makes its service's writes, and a key it
    held dies with it, so nothing is ever left claimed by a process that is gone."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[tuple[str, str]] = set()

    @contextmanager
    def claim(self, keyed: Keyed) -> Iterator[bool]:
        """True while this request holds its key; False if another request holds it."""
        held = (keyed.caller, keyed.key)
        with self._lock:
            if held in self._running:
                taken = False
            else:
                self._running.add(held)
                taken = True
        try:
            yield taken
        finally:
            if taken:
                with self._lock:
                    self._running.discard(held)
