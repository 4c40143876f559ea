"""Abuse limits of the auth service: failed sign-ins per username and per client address, and
self-registrations per client address. Over a limit, the answer is 429 with Retry-After, decided
before any password is hashed, so a refusal costs next to nothing.

Where the counts live. The users database is on LiteFS and read-only on the two replicas, so the
counts cannot go there. All three auth nodes run on this one host, so they share one plain SQLite
file outside LiteFS (AUTH_THROTTLE_DATABASE; var/auth/throttle.db in the cluster), which each of
them opens read-write: WAL, a busy timeout, and BEGIN IMMEDIATE around each check-and-record, so a
username blocked on one node is blocked on all three and no rotation over the nodes escapes it.
On a deployment over several hosts a local file is not shared: it would be replaced by a store
every node reaches (Redis, say), behind the same three methods of `Throttle`.

The rules:
- Sign-in, per username: an attempt is recorded against its username, in the same transaction
  that checks the counts, before the password is checked, so parallel guesses at one account
  cannot all pass a count that none of them has added to yet: at most the limit's worth of
  unverified attempts per username are ever in flight. A success withdraws it.
- Sign-in, per address: only real failures count, recorded once the password has been checked
  and found wrong. Many people behind one address (a campus NAT at 8:00 on registration day)
  signing in at once with the right passwords are never refused for each other's attempts in
  flight; guessing over many usernames from one address is stopped once its failures reach the
  limit (overshot at most by the guesses already in flight, each of which is bounded per
  username as above).
- Over either limit, 429 `too_many_attempts`; the refused attempt is not recorded, so the block
  lifts when the oldest failure leaves the window.
- Unknown usernames are counted exactly as known ones, and the check comes before the user is
  looked up: a 429 says nothing about whether an account exists.
- A success clears its username's failures: the owner who mistyped four times and then got in is
  not one typo away from a block. It does not clear the address's: many accounts guessed from one
  address, with a success among them, stay counted.
- Registration: each self-registration that reaches the password hash counts, created or not (a
  409 costs a hash too, and tells whether a username is taken); over the limit, 429
  `registration_rate_limited`. Registrations made with a registrar's token are not limited.
- A login a replica forwards to the primary (app/auth/primary.py) is counted once, by the replica
  the client asked; the primary recognises the replica's mark and counts nothing.
"""

import hashlib
import math
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from pathlib import Path

from app.auth import metrics
from app.auth.settings import Settings
from app.common.db import ConnectionPool, apply_schema, connect, immediate
from app.common.errors import TooManyRequests

SCHEMA = Path(__file__).resolve().parents[2] / "share" / "auth" / "throttle.sql"

LOGIN_USERNAME = "login_username"
LOGIN_ADDRESS = "login_address"
REGISTRATION_ADDRESS = "registration_address"

# (detail, code) of each refusal; the detail ends with the seconds to wait.
REFUSALS = {
    LOGIN_USERNAME: ("too many failed sign-ins for this username", "too_many_attempts"),
    LOGIN_ADDRESS: ("too many failed sign-ins from this address", "too_many_attempts"),
    REGISTRATION_ADDRESS: ("too many registrations from this address", "registration_rate_limited"),
}

# Rows older than the longest window are deleted at most this often by each node, inside a
# transaction that writes anyway: the table holds about one window's attempts, never more.
PRUNE_EVERY_SECONDS = 60.0


@dataclass(frozen=True)
class Limit:
    attempts: int
    window_seconds: int


@dataclass(frozen=True)
class Origin:
    """Who sent a request, as far as the limits are concerned."""

    address: str  # the client address the attempts are counted under (see client_address)
    forwarded_by_replica: bool = False  # a login a replica forwards, and has counted already


@dataclass(frozen=True)
class LoginAttempt:
    """A sign-in attempt, counted against its username until `Throttle.login_succeeded`."""

    username_key: str
    address_key: str


class TooManyAttempts(TooManyRequests):
    """Over an abuse limit: 429, with the seconds until the next attempt can count."""

    def __init__(self, detail: str, *, code: str, retry_after: int) -> None:
        super().__init__(detail, code=code, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class Throttle:
    """The counts of recent attempts in the shared SQLite file at `path`."""

    def __init__(
        self,
        path: Path,
        *,
        login_per_username: Limit,
        login_per_address: Limit,
        registrations_per_address: Limit,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.limits = {
            LOGIN_USERNAME: login_per_username,
            LOGIN_ADDRESS: login_per_address,
            REGISTRATION_ADDRESS: registrations_per_address,
        }
        self.clock = clock  # Unix seconds; the tests move it forward instead of sleeping
        self._pool = ConnectionPool(path)
        self._next_prune = 0.0

    @classmethod
    def open(cls, settings: Settings) -> "Throttle":
        """The throttle of these settings; its file and table are created if missing."""
        path = settings.throttle_path
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = connect(path)
        try:
            apply_schema(conn, SCHEMA.read_text())
        finally:
            conn.close()
        return cls(
            path,
            login_per_username=Limit(
                settings.login_failures_per_username, settings.login_window_seconds
            ),
            login_per_address=Limit(
                settings.login_failures_per_address, settings.login_window_seconds
            ),
            registrations_per_address=Limit(
                settings.registrations_per_address, settings.registration_window_seconds
            ),
        )

    def start_login(self, *, username: str, address: str) -> LoginAttempt:
        """Refuse a sign-in whose username or address is over its limit of failures (429);
        otherwise count it against the username until `login_succeeded` says otherwise."""
        username_key, address_key = _key(username), _key(address)
        with self._transaction() as (conn, now):
            refusal = self._refusal(conn, now, LOGIN_USERNAME, username_key) or self._refusal(
                conn, now, LOGIN_ADDRESS, address_key
            )
            if refusal is None:
                _record(conn, LOGIN_USERNAME, username_key, now)
        # Raised once the transaction has committed, so the pruning it may have done stays done.
        if refusal is not None:
            raise refusal
        return LoginAttempt(username_key=username_key, address_key=address_key)

    def login_succeeded(self, attempt: LoginAttempt) -> None:
        """The password was right: clear the username's failures (this attempt among them)."""
        with self._transaction() as (conn, _):
            conn.execute(
                "DELETE FROM attempts WHERE scope = ? AND key = ?",
                (LOGIN_USERNAME, attempt.username_key),
            )

    def login_failed(self, attempt: LoginAttempt) -> None:
        """The password was wrong (or the user unknown): count a failure against the address."""
        with self._transaction() as (conn, now):
            _record(conn, LOGIN_ADDRESS, attempt.address_key, now)

    def start_registration(self, *, address: str) -> None:
        """Refuse a self-registration from an address over its limit (429); otherwise count it."""
        address_key = _key(address)
        with self._transaction() as (conn, now):
            refusal = self._refusal(conn, now, REGISTRATION_ADDRESS, address_key)
            if refusal is None:
                _record(conn, REGISTRATION_ADDRESS, address_key, now)
        if refusal is not None:
            raise refusal

    @contextmanager
    def _transaction(self) -> Iterator[tuple[sqlite3.Connection, float]]:
        with self._pool.connection() as conn, immediate(conn):
            now = self.clock()
            if now >= self._next_prune:  # under immediate's lock: one thread of a node at a time
                longest = max(limit.window_seconds for limit in self.limits.values())
                conn.execute("DELETE FROM attempts WHERE at <= ?", (now - longest,))
                self._next_prune = now + PRUNE_EVERY_SECONDS
            yield conn, now

    def _refusal(
        self, conn: sqlite3.Connection, now: float, scope: str, key: str
    ) -> TooManyAttempts | None:
        """The 429 if `key` has its limit's worth of attempts within the window, else None."""
        limit = self.limits[scope]
        # The limit-th most recent attempt in the window: while it is in there, so is the whole
        # limit; when it leaves, one more attempt may count.
        row = conn.execute(
            "SELECT at FROM attempts WHERE scope = ? AND key = ? AND at > ?"
            " ORDER BY at DESC LIMIT 1 OFFSET ?",
            (scope, key, now - limit.window_seconds, limit.attempts - 1),
        ).fetchone()
        if row is None:
            return None
        metrics.THROTTLE_REFUSALS.labels(scope).inc()
        retry_after = max(1, math.ceil(row["at"] + limit.window_seconds - now))
        reason, code = REFUSALS[scope]
        return TooManyAttempts(
            f"{reason}; try again in {retry_after} seconds", code=code, retry_after=retry_after
        )


def _key(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _record(conn: sqlite3.Connection, scope: str, key: str, now: float) -> None:
    conn.execute("INSERT INTO attempts (scope, key, at) VALUES (?, ?, ?)", (scope, key, now))


Network = IPv4Network | IPv6Network


def client_address(peer: str | None, forwarded_for: list[str], trusted: Iterable[Network]) -> str:
    """The address a client's attempts are counted under.

    The peer's own address, unless the peer is a trusted proxy (AUTH_TRUSTED_PROXIES): then the
    LAST entry of X-Forwarded-For, the one that proxy wrote itself. Entries before it are what the
    client sent, so they are never believed; neither is the header from any other peer. KrakenD
    replaces X-Forwarded-For with the one address it was called from, so behind it the last entry
    is the client's. An IPv6 client counts per /64, the block one subscriber usually holds.
    """
    address = _ip(peer)
    if address is not None and forwarded_for and any(address in net for net in trusted):
        forwarded = _ip(",".join(forwarded_for).rsplit(",", 1)[-1])
        if forwarded is not None:
            address = forwarded
    if address is None:
        return peer or "unknown"  # not an IP address (TestClient's peer is "testclient")
    if address.version == 6:
        return str(ip_network(f"{address}/64", strict=False))
    return str(address)


def _ip(text: str | None) -> IPv4Address | IPv6Address | None:
    if text is None:
        return None
    try:
        address = ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
