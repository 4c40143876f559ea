"""Abuse limits of the auth service: failed sign-ins per username from one client address, per
username from all addresses together, and per address; self-registrations per address. Over a
limit, the answer is 429 with Retry-After, decided before any password is hashed, so a refusal
costs next to nothing.

Where the counts live. The users database is on LiteFS and read-only on the two replicas, so the
counts cannot go there. All three auth nodes run on this one host, so they share one plain SQLite
file outside LiteFS (AUTH_THROTTLE_DATABASE; var/auth/throttle.db in the cluster), which each of
them opens read-write: WAL, a busy timeout, and BEGIN IMMEDIATE around each check-and-record, so a
refusal on one node holds on all three and no rotation over the nodes escapes it. On a deployment
over several hosts a local file is not shared: it would be replaced by a store every node reaches
(Redis, say), behind the same methods of `Throttle`.

Why not a limit per username alone: then anyone who knows a username can lock its owner out by
failing on purpose (issue 24: five wrong passwords from anywhere made the owner's right one 429
for 15 minutes). OWASP's authentication cheat sheet (Account Lockout) asks for two things that
pull apart: a failure count kept with the account, not the source address, so that many
addresses do not multiply the guesses; and care that the lock-out cannot be used to lock other
users out. So the first count is per (username, client address), which a stranger elsewhere
cannot touch, and the count per username over all addresses, higher, does not lock the account
when it is reached: it takes away the guesses of every address that has failed at it.

The rules (P, A and G are the settings login_failures_per_username, login_failures_per_address
and login_failures_per_username_all_addresses of app/auth/settings.py; one window for all three):
1. Per username from one address (P, default 5): an attempt is recorded against its (username,
   address) in the same transaction that checks the counts, before the password is checked, so
   parallel guesses from one address cannot all pass a count that none of them has added to
   yet: at most P unverified attempts at one account from one address are ever in flight. A
   success deletes that pair's attempts, and only that pair's: the owner who mistyped four times
   and then got in is not one typo away from a refusal, and attackers elsewhere stay counted.
2. Per address (A, default 20): only real failures count, once the password has been checked
   and found wrong; a failure its own (username, address) later succeeds at is forgiven with it
   (rule 1's deletion), as a typo its owner corrects is no guessing. Many people behind one
   address (a campus NAT at 8:00 on registration day) signing in at once with the right
   passwords, some after a typo, are never refused for each other; guessing over many usernames
   from one address is stopped once its unforgiven failures reach A (overshot at most by the
   guesses already in flight, each bounded by rule 1).
3. Per username over all addresses (G, default 4 * P = 20): the attempts of rule 1 at one
   username, from every address together (a success still clears only its own address's). Once
   G are in the window, only an address with none of them may try, once: a botnet of N addresses
   gets at most G + N guesses at an account per window, not P * N, while the owner, from any
   address that has not failed at their username lately, still gets their attempt. The owner who
   mistypes from the one address they have while strangers keep their username over G waits
   there, like any guesser, until that typo or enough of the strangers' failures leave the
   window (Retry-After: the sooner): the price of bounding a botnet without a lock-out.
4. Over any limit, 429 `too_many_attempts`; the refused attempt is not recorded, so a refusal
   lifts when the attempt that caused it leaves the window (`Retry-After` says when).
5. Unknown usernames are counted exactly as known ones, and the check comes before the user is
   looked up: a 429 says nothing about whether an account exists.
6. Registration: each self-registration that reaches the password hash counts, created or not (a
   409 costs a hash too, and tells whether a username is taken); over the limit, 429
   `registration_rate_limited`. Registrations made with a registrar's token are not limited.
7. A login a replica forwards to the primary (app/auth/primary.py) is counted once, by the replica
   the client asked; the primary recognises the replica's mark and counts nothing.

The file is disposable (deleting it only forgets recent attempts): one of an older layout (PRAGMA
user_version other than SCHEMA_VERSION) is emptied and recreated when a node opens it.
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
from app.common.db import ConnectionPool, connect, immediate
from app.common.errors import TooManyRequests

SCHEMA = Path(__file__).resolve().parents[2] / "share" / "auth" / "throttle.sql"
SCHEMA_VERSION = 2  # share/auth/throttle.sql sets it; version 0 was the (scope, key) layout

# The limits, as metrics.THROTTLE_REFUSALS labels their refusals.
LOGIN_USERNAME_ADDRESS = "login_username_address"  # rule 1
LOGIN_ADDRESS = "login_address"  # rule 2
LOGIN_USERNAME = "login_username"  # rule 3
REGISTRATION_ADDRESS = "registration_address"  # rule 6

# The words of each limit's refusal; its answer adds the seconds to wait. Its code is named where
# it is raised (`start_login`, `start_registration`), a literal tests/test_error_codes.py reads.
REASONS = {
    LOGIN_USERNAME_ADDRESS: "too many failed sign-ins for this username from this address",
    LOGIN_ADDRESS: "too many failed sign-ins from this address",
    LOGIN_USERNAME: "too many failed sign-ins for this username: while it is under attack, only an"
    " address with no recent failure for it may try",
    REGISTRATION_ADDRESS: "too many registrations from this address",
}

# Rule 3's limit when AUTH_LOGIN_FAILURES_PER_USERNAME_ALL_ADDRESSES is not set: this many times
# rule 1's, so that a few places of the owner's own, each with a typo or two, stay well under it.
ALL_ADDRESSES_FACTOR = 4

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
    """A sign-in attempt, counted against its username and address until
    `Throttle.login_succeeded`; `Throttle.login_failed` makes it a failure of the address too."""

    username_key: str
    address_key: str
    row: int  # its row in the attempts table


@dataclass(frozen=True)
class Over:
    """An attempt over a limit: which one (its scope), and the seconds until one more counts."""

    limit: str
    retry_after: int


class TooManyAttempts(TooManyRequests):
    """Over an abuse limit: 429 in the limit's words, with the seconds until the next attempt can
    count."""

    def __init__(self, over: Over, *, code: str) -> None:
        detail = f"{REASONS[over.limit]}; try again in {over.retry_after} seconds"
        super().__init__(detail, code=code, headers={"Retry-After": str(over.retry_after)})
        self.retry_after = over.retry_after


class Throttle:
    """The counts of recent attempts in the shared SQLite file at `path`."""

    def __init__(
        self,
        path: Path,
        *,
        login_per_username: Limit,
        login_per_username_all_addresses: Limit,
        login_per_address: Limit,
        registrations_per_address: Limit,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.limits = {
            LOGIN_USERNAME_ADDRESS: login_per_username,
            LOGIN_USERNAME: login_per_username_all_addresses,
            LOGIN_ADDRESS: login_per_address,
            REGISTRATION_ADDRESS: registrations_per_address,
        }
        self.clock = clock  # Unix seconds; the tests move it forward instead of sleeping
        self._pool = ConnectionPool(path)
        self._next_prune = 0.0

    @classmethod
    def open(cls, settings: Settings) -> "Throttle":
        """The throttle of these settings; its file and table are created if missing, and made
        anew if they are of an older layout."""
        path = settings.throttle_path
        path.parent.mkdir(parents=True, exist_ok=True)
        create_schema(path)
        window = settings.login_window_seconds
        per_username = settings.login_failures_per_username
        all_addresses = (
            settings.login_failures_per_username_all_addresses
            or ALL_ADDRESSES_FACTOR * per_username
        )
        return cls(
            path,
            login_per_username=Limit(per_username, window),
            login_per_username_all_addresses=Limit(all_addresses, window),
            login_per_address=Limit(settings.login_failures_per_address, window),
            registrations_per_address=Limit(
                settings.registrations_per_address, settings.registration_window_seconds
            ),
        )

    def start_login(self, *, username: str, address: str) -> LoginAttempt:
        """Refuse a sign-in over any of the limits of rules 1-3 (429); otherwise count it against
        its username and address until `login_succeeded` says otherwise."""
        username_key, address_key = _key(username), _key(address)
        with self._transaction() as (conn, now):
            over = self._login_over(conn, now, username_key, address_key)
            row = None
            if over is None:
                row = conn.execute(
                    "INSERT INTO attempts (scope, address, username, at) VALUES ('login', ?, ?, ?)",
                    (address_key, username_key, now),
                ).lastrowid
        # Raised once the transaction has committed, so the pruning it may have done stays done.
        if over is not None:
            raise TooManyAttempts(over, code="too_many_attempts")
        assert row is not None
        return LoginAttempt(username_key=username_key, address_key=address_key, row=row)

    def login_succeeded(self, attempt: LoginAttempt) -> None:
        """The password was right: clear the attempts and failures of this username from this
        address (this attempt among them), and no others."""
        with self._transaction() as (conn, _):
            conn.execute(
                "DELETE FROM attempts WHERE scope = 'login' AND username = ? AND address = ?",
                (attempt.username_key, attempt.address_key),
            )

    def login_failed(self, attempt: LoginAttempt) -> None:
        """The password was wrong (or the user unknown): the attempt counts against the address
        too. If a success of the same username and address has cleared it meanwhile, the
        failure, which came after, is counted anew."""
        with self._transaction() as (conn, now):
            marked = conn.execute(
                "UPDATE attempts SET failed = 1 WHERE id = ? AND scope = 'login'", (attempt.row,)
            ).rowcount
            if not marked:
                conn.execute(
                    "INSERT INTO attempts (scope, address, username, failed, at)"
                    " VALUES ('login', ?, ?, 1, ?)",
                    (attempt.address_key, attempt.username_key, now),
                )

    def start_registration(self, *, address: str) -> None:
        """Refuse a self-registration from an address over its limit (429); otherwise count it."""
        address_key = _key(address)
        with self._transaction() as (conn, now):
            over = self._over_limit(
                conn,
                now,
                REGISTRATION_ADDRESS,
                "scope = 'registration' AND address = ?",
                (address_key,),
            )
            if over is None:
                conn.execute(
                    "INSERT INTO attempts (scope, address, at) VALUES ('registration', ?, ?)",
                    (address_key, now),
                )
        if over is not None:
            raise TooManyAttempts(over, code="registration_rate_limited")

    def _login_over(
        self, conn: sqlite3.Connection, now: float, username_key: str, address_key: str
    ) -> Over | None:
        """The first of rules 1, 2 and 3 that refuses this sign-in, or None."""
        pair = "scope = 'login' AND username = ? AND address = ?"
        pair_args = (username_key, address_key)
        over = self._over_limit(conn, now, LOGIN_USERNAME_ADDRESS, pair, pair_args)
        if over is None:
            failures_here = "scope = 'login' AND address = ? AND failed = 1"
            over = self._over_limit(conn, now, LOGIN_ADDRESS, failures_here, (address_key,))
        if over is not None:
            return over

        limit = self.limits[LOGIN_USERNAME]
        since = now - limit.window_seconds
        username = "scope = 'login' AND username = ?"
        full = _nth_newest(conn, username, (username_key,), since=since, nth=limit.attempts)
        if full is None:
            return None
        latest_here = _nth_newest(conn, pair, pair_args, since=since, nth=1)
        if latest_here is None:
            return None  # under attack, but not from here: this address may try
        # Lifted when this address's last attempt leaves the window, or the attack's count drops.
        return _over(LOGIN_USERNAME, min(latest_here, full) + limit.window_seconds - now)

    def _over_limit(
        self, conn: sqlite3.Connection, now: float, scope: str, where: str, args: tuple[str, ...]
    ) -> Over | None:
        """Over, if the attempts matching `where` have reached the limit of `scope` within its
        window, else None. It finds the limit-th most recent of them: while that one is in the
        window, so is the whole limit; when it leaves, one more attempt may count."""
        limit = self.limits[scope]
        full = _nth_newest(conn, where, args, since=now - limit.window_seconds, nth=limit.attempts)
        if full is None:
            return None
        return _over(scope, full + limit.window_seconds - now)

    @contextmanager
    def _transaction(self) -> Iterator[tuple[sqlite3.Connection, float]]:
        with self._pool.connection() as conn, immediate(conn):
            now = self.clock()
            if now >= self._next_prune:  # under immediate's lock: one thread of a node at a time
                longest = max(limit.window_seconds for limit in self.limits.values())
                conn.execute("DELETE FROM attempts WHERE at <= ?", (now - longest,))
                self._next_prune = now + PRUNE_EVERY_SECONDS
            yield conn, now


def create_schema(path: Path) -> None:
    """Create the attempts table in the file at `path`; a table of another layout (another
    user_version) is dropped first, with the attempts it held. One transaction, so nodes starting
    together never see it half made."""
    conn = connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                conn.execute("DROP TABLE IF EXISTS attempts")
                for statement in _statements(SCHEMA.read_text()):
                    conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back by itself (a full disk, say)
                conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()


def _statements(script: str) -> Iterator[str]:
    """The statements of an SQL script, one at a time (executescript would commit first)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            yield statement
            statement = ""


def _nth_newest(
    conn: sqlite3.Connection, where: str, args: tuple[str, ...], *, since: float, nth: int
) -> float | None:
    """The time of the `nth` most recent attempt matching `where` after `since`, if there are
    that many."""
    row = conn.execute(
        f"SELECT at FROM attempts WHERE {where} AND at > ? ORDER BY at DESC LIMIT 1 OFFSET ?",
        (*args, since, nth - 1),
    ).fetchone()
    return None if row is None else row["at"]


def _over(scope: str, seconds: float) -> Over:
    """An attempt over the limit of `scope` for `seconds` more, counted as a refusal."""
    metrics.THROTTLE_REFUSALS.labels(scope).inc()
    return Over(limit=scope, retry_after=max(1, math.ceil(seconds)))


def _key(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


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
