"""Abuse limits (app/auth/throttle.py): failed sign-ins per username from one client address, per
username from all addresses (past which only an address with no recent failure for it may try),
and per address, and self-registrations per address, each a 429 with Retry-After once over its
limit; decided before any password hash; unknown usernames counted exactly like known ones; a
login a replica forwards counted once; strangers' failures never refuse the owner elsewhere.
Small limits and a clock the tests move, so nothing waits for a window to pass.
tests/e2e/test_throttle.py checks the counts are shared by the three nodes of a real cluster, and
the attacks through the real gateway from clients of several addresses."""

import shutil
import sqlite3
import threading
from collections.abc import Iterator
from ipaddress import ip_network

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from app.auth import passwords
from app.auth.main import create_app
from app.auth.primary import REPLICA_HEADER, replica_secret
from app.auth.settings import Settings
from app.auth.throttle import SCHEMA_VERSION, TooManyAttempts, client_address, create_schema
from tests.auth.helpers import (
    GOOD_PASSWORD,
    claims_for,
    login,
    make_settings,
    register,
    sign,
    user_count,
)
from tests.bodies import error_of

WINDOW = 900
LIMITS = {
    "login_failures_per_username": 3,  # from one address
    "login_failures_per_username_all_addresses": 6,
    "login_failures_per_address": 6,
    "login_window_seconds": WINDOW,
    "registrations_per_address": 3,
    "registration_window_seconds": 3600,
}
CLIENT = ("203.0.113.7", 40000)  # TestClient's peer address
WRONG = "not-the-password"


class Clock:
    """Stands in for time.time in the throttle: moved on by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def throttled(settings: Settings, clock: Clock) -> TestClient:
    """A TestClient on a new app of `settings` whose throttle reads `clock`."""
    app = create_app(settings)
    app.state.throttle.clock = clock
    return TestClient(app, client=CLIENT)


@pytest.fixture
def limits(tmp_path) -> Settings:
    return make_settings(tmp_path, **LIMITS)


@pytest.fixture
def client(limits: Settings, clock: Clock) -> Iterator[TestClient]:
    with throttled(limits, clock) as test_client:
        yield test_client


def statuses(client: TestClient, username: str, password: str, times: int) -> list[int]:
    return [login(client, username, password).status_code for _ in range(times)]


def stored_attempts(settings: Settings, scope: str) -> int:
    with sqlite3.connect(settings.throttle_path) as conn:
        query = "SELECT count(*) FROM attempts WHERE scope = ?"
        return conn.execute(query, (scope,)).fetchone()[0]


def from_address(client: TestClient, address: str) -> TestClient:
    """Another client of the same app, hence of the same counts, from `address`."""
    return TestClient(client.app, client=(address, 40000))


def refusals(limit: str) -> float:
    """How many 429s this process has counted for `limit` (metrics.THROTTLE_REFUSALS)."""
    return REGISTRY.get_sample_value("throttle_refusals_total", {"limit": limit}) or 0.0


def test_a_username_is_refused_from_the_address_of_its_failures_even_with_the_right_password(
    client,
):
    assert register(client).status_code == 201
    assert register(client, username="another").status_code == 201

    assert statuses(client, "newstudent", WRONG, 3) == [401, 401, 401]
    refused = login(client, "newstudent", WRONG)
    right_password = login(client, "newstudent", GOOD_PASSWORD)

    assert refused.status_code == right_password.status_code == 429
    assert error_of(refused) == {
        "detail": "too many failed sign-ins for this username from this address;"
        f" try again in {WINDOW} seconds",
        "code": "too_many_attempts",
    }
    assert refused.headers["Retry-After"] == str(WINDOW)
    assert error_of(right_password) == error_of(refused)
    # Only this username from this address: another one from here still signs in, and so does
    # the owner from anywhere else.
    assert login(client, "another", GOOD_PASSWORD).status_code == 200
    assert (
        login(from_address(client, "198.51.100.9"), "newstudent", GOOD_PASSWORD).status_code == 200
    )


def test_strangers_failing_from_many_addresses_never_refuse_the_owner_elsewhere(client):
    """The lock-out attack of issue 24: wrong passwords for one username from four addresses,
    more than its limit per address (3) and over all addresses (6). The owner signs in from an
    address of their own; the attackers stay bounded: 3 guesses from each address until the
    username has 6 failures, then one from each fresh address, and none after the owner's
    success, which clears only the owner's own attempts."""
    assert register(client).status_code == 201
    attackers = [from_address(client, f"192.0.2.{n}") for n in range(1, 5)]
    before = refusals("login_username_address"), refusals("login_username")

    attack = [statuses(attacker, "newstudent", WRONG, 4) for attacker in attackers]
    owner = login(from_address(client, "198.51.100.9"), "newstudent", GOOD_PASSWORD)
    again = [login(attacker, "newstudent", WRONG) for attacker in attackers]
    after = refusals("login_username_address"), refusals("login_username")

    assert owner.status_code == 200
    assert attack == [
        [401, 401, 401, 429],
        [401, 401, 401, 429],  # 6 failures over all addresses now
        [401, 429, 429, 429],  # a fresh address: one guess
        [401, 429, 429, 429],
    ]
    assert [reply.status_code for reply in again] == [429] * 4
    assert "from this address" in again[0].json()["detail"]  # its own 3 failures
    assert error_of(again[3]) == {
        "detail": "too many failed sign-ins for this username: while it is under attack, only an"
        f" address with no recent failure for it may try; try again in {WINDOW} seconds",
        "code": "too_many_attempts",
    }
    assert again[3].headers["Retry-After"] == str(WINDOW)
    # The refusals, by the limit that refused: 2 + 2 per address, 6 + 2 for all addresses.
    assert (after[0] - before[0], after[1] - before[1]) == (4, 8)


def test_under_attack_a_fresh_address_has_one_attempt_in_flight(client):
    """Once the username is over its limit for all addresses, parallel guesses from a fresh
    address are bounded too: the first is counted before its password is checked, so the second
    finds the address no longer fresh."""
    throttle = client.app.state.throttle
    for n in range(1, 3):
        assert statuses(from_address(client, f"192.0.2.{n}"), "newstudent", WRONG, 3) == [401] * 3

    first = throttle.start_login(username="newstudent", address="192.0.2.50")
    with pytest.raises(TooManyAttempts) as second:
        throttle.start_login(username="newstudent", address="192.0.2.50")
    another_fresh_one = throttle.start_login(username="newstudent", address="192.0.2.51")

    assert second.value.retry_after == WINDOW
    assert "under attack" in second.value.detail
    assert another_fresh_one.address_key != first.address_key  # it too gets its one attempt


def test_under_attack_the_owner_who_mistypes_waits_for_the_attack_to_pass_there(client, clock):
    """The price of rule 3: while strangers keep the username over its limit for all addresses,
    an owner whose one address fails too is refused there like a guesser, until the attack's
    failures leave the window (or from any other address at once)."""
    assert register(client).status_code == 201
    start = clock.now
    for n in range(1, 3):
        assert statuses(from_address(client, f"192.0.2.{n}"), "newstudent", WRONG, 3) == [401] * 3
    home = from_address(client, "198.51.100.9")

    clock.now = start + 100
    typo = login(home, "newstudent", WRONG)
    refused = login(home, "newstudent", GOOD_PASSWORD)
    from_the_phone = login(from_address(client, "198.51.100.10"), "newstudent", GOOD_PASSWORD)
    clock.now = start + WINDOW  # the attack's failures leave the window; the typo is still in it
    later = login(home, "newstudent", GOOD_PASSWORD)

    assert typo.status_code == 401
    assert refused.status_code == 429
    assert "under attack" in refused.json()["detail"]
    assert refused.headers["Retry-After"] == str(WINDOW - 100)
    assert from_the_phone.status_code == 200
    assert later.status_code == 200


def test_typos_their_owners_correct_are_not_held_against_a_shared_address(client, limits):
    """Behind one NAT address, twice its failure limit (6) of students sign in one after another,
    each after a typo: each typo is forgiven by its owner's success, so none of them is refused.
    Failures at usernames nobody then signs in to stay counted (the tests above)."""
    with sqlite3.connect(limits.database) as conn:
        query = "SELECT username FROM users WHERE disabled = 0 ORDER BY id LIMIT 12"
        students = [row[0] for row in conn.execute(query)]

    answers = [
        (login(client, student, WRONG).status_code, login(client, student).status_code)
        for student in students
    ]

    assert answers == [(401, 200)] * 12


def test_an_unknown_username_is_refused_exactly_like_a_known_one(tmp_path, clock):
    settings = make_settings(tmp_path, **{**LIMITS, "login_failures_per_address": 100})
    with throttled(settings, clock) as client:
        assert register(client).status_code == 201
        known = [login(client, "newstudent", WRONG) for _ in range(5)]
        unknown = [login(client, "nobody-here", WRONG) for _ in range(5)]

    assert [r.status_code for r in known] == [401, 401, 401, 429, 429]
    assert [r.status_code for r in unknown] == [401, 401, 401, 429, 429]
    assert [error_of(r) for r in known] == [error_of(r) for r in unknown]
    assert [r.headers.get("Retry-After") for r in known] == [
        r.headers.get("Retry-After") for r in unknown
    ]


def test_an_address_is_refused_after_its_failures_over_any_usernames(client):
    assert register(client).status_code == 201

    assert statuses(client, "nobody-1", WRONG, 2) == [401, 401]
    assert [login(client, f"nobody-{n}", WRONG).status_code for n in range(2, 6)] == [401] * 4
    refused = login(client, "nobody-else", WRONG)
    right_password = login(client, "newstudent", GOOD_PASSWORD)

    assert refused.status_code == right_password.status_code == 429
    assert refused.json()["code"] == "too_many_attempts"
    assert "from this address" in refused.json()["detail"]
    assert refused.headers["Retry-After"] == str(WINDOW)
    # Another client, same app and same shared counts: not refused.
    assert (
        login(from_address(client, "198.51.100.9"), "newstudent", GOOD_PASSWORD).status_code == 200
    )


def test_a_success_neither_counts_nor_clears_the_address_failures(tmp_path, clock):
    settings = make_settings(tmp_path, **{**LIMITS, "login_failures_per_address": 3})
    with throttled(settings, clock) as client:
        assert register(client).status_code == 201
        answers = [
            login(client, "nobody-1", WRONG).status_code,
            login(client, "nobody-2", WRONG).status_code,
            login(client, "newstudent", GOOD_PASSWORD).status_code,
            login(client, "nobody-3", WRONG).status_code,  # the third failure: still counted
            login(client, "newstudent", GOOD_PASSWORD).status_code,
        ]

    assert answers == [401, 401, 200, 401, 429]


def test_a_success_clears_the_failures_of_its_username_from_its_address(client):
    assert register(client).status_code == 201

    answers = [
        *statuses(client, "newstudent", WRONG, 2),
        login(client, "newstudent", GOOD_PASSWORD).status_code,
        *statuses(client, "newstudent", WRONG, 4),
    ]

    assert answers == [401, 401, 200, 401, 401, 401, 429]


def test_correct_sign_ins_in_flight_together_from_one_address_are_never_refused(client):
    """A campus NAT at 8:00: more students than the address's failure limit (6 here) are between
    "checked the limits" and "password verified" at the same moment. None of them is a failure."""
    throttle = client.app.state.throttle
    in_flight = [
        throttle.start_login(username=f"student-{n}", address=CLIENT[0]) for n in range(40)
    ]
    for attempt in in_flight:
        throttle.login_succeeded(attempt)

    assert register(client).status_code == 201
    assert login(client, "newstudent", GOOD_PASSWORD).status_code == 200


def test_parallel_guesses_at_one_username_are_bounded_before_any_password_is_checked(client):
    """Unverified attempts count against their username and address at once: at most the
    limit's worth (3 here) of guesses at one account from one address are ever in flight. The
    owner elsewhere is not refused for them."""
    assert register(client).status_code == 201
    throttle = client.app.state.throttle
    in_flight = [throttle.start_login(username="newstudent", address=CLIENT[0]) for _ in range(3)]

    assert login(client, "newstudent", WRONG).status_code == 429
    for attempt in in_flight:
        throttle.login_failed(attempt)
    assert login(client, "newstudent", GOOD_PASSWORD).status_code == 429
    assert (
        login(from_address(client, "198.51.100.9"), "newstudent", GOOD_PASSWORD).status_code == 200
    )


def test_the_block_lifts_as_the_window_slides(client, clock):
    start = clock.now
    for offset in (0, 100, 200):
        clock.now = start + offset
        assert login(client, "nobody-here", WRONG).status_code == 401
    assert login(client, "nobody-here", WRONG).headers["Retry-After"] == str(WINDOW - 200)

    clock.now = start + WINDOW - 1
    still = login(client, "nobody-here", WRONG)
    clock.now = start + WINDOW  # the first failure leaves the window
    counted_again = login(client, "nobody-here", WRONG)
    refused_again = login(client, "nobody-here", WRONG)

    assert (still.status_code, still.headers["Retry-After"]) == (429, "1")
    assert counted_again.status_code == 401
    assert refused_again.status_code == 429
    assert refused_again.headers["Retry-After"] == "100"  # when the failure at +100 leaves


def test_a_refused_login_costs_no_password_check(client, monkeypatch):
    checked: list[str] = []
    real_verify = passwords.verify_password

    def recording_verify(password: str, stored_hash: str) -> bool:
        checked.append(password)
        return real_verify(password, stored_hash)

    monkeypatch.setattr(passwords, "verify_password", recording_verify)

    assert statuses(client, "nobody-here", WRONG, 3) == [401, 401, 401]
    assert statuses(client, "nobody-here", GOOD_PASSWORD, 5) == [429] * 5
    assert checked == [WRONG] * 3


def test_a_registration_flood_is_refused_per_address(client, limits, clock):
    answers = [
        register(client, username="first").status_code,
        register(client, username="first").status_code,  # taken: a hash spent, so it counts
        register(client, username="second").status_code,
    ]
    refused = register(client, username="third")

    assert answers == [201, 409, 201]
    assert refused.status_code == 429
    assert error_of(refused) == {
        "detail": "too many registrations from this address; try again in 3600 seconds",
        "code": "registration_rate_limited",
    }
    assert refused.headers["Retry-After"] == "3600"
    assert user_count(limits) == 38 + 2
    # A registrar creating accounts is not limited; another address is not refused.
    registrar = sign(
        limits,
        claims_for(limits),
    )
    assert register(client, registrar, username="third").status_code == 201
    assert register(client, registrar, username="fourth", roles=["instructor"]).status_code == 201
    elsewhere = TestClient(client.app, client=("198.51.100.9", 40000))
    assert register(elsewhere, username="fifth").status_code == 201
    clock.now += 3600
    assert register(client, username="sixth").status_code == 201


def test_forwarded_for_from_an_untrusted_peer_is_ignored(client):
    spoofed = [
        client.post(
            "/login",
            json={"username": f"nobody-{n}", "password": WRONG},
            headers={"X-Forwarded-For": f"192.0.2.{n}"},
        ).status_code
        for n in range(8)
    ]

    assert spoofed == [401] * 6 + [429] * 2


def test_behind_a_trusted_proxy_the_last_forwarded_for_entry_is_the_client(tmp_path, clock):
    settings = make_settings(tmp_path, **LIMITS, trusted_proxies="127.0.0.1, ::1")
    app = create_app(settings)
    app.state.throttle.clock = clock
    gateway = TestClient(app, client=("127.0.0.1", 50000))

    def attempt(username: str, forwarded_for: str) -> int:
        body = {"username": username, "password": WRONG}
        reply = gateway.post("/login", json=body, headers={"X-Forwarded-For": forwarded_for})
        return reply.status_code

    # The client prepends whatever it likes; the proxy's own entry, the last, is what counts.
    one_client = [attempt(f"nobody-{n}", f"10.0.0.{n}, 203.0.113.50") for n in range(7)]
    other_client = attempt("nobody-else", "203.0.113.51")

    assert one_client == [401] * 6 + [429]
    assert other_client == 401


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        ("203.0.113.7", [], "203.0.113.7"),
        ("203.0.113.7", ["192.0.2.1"], "203.0.113.7"),  # not a trusted proxy
        ("127.0.0.1", ["192.0.2.1"], "192.0.2.1"),
        ("127.0.0.1", ["6.6.6.6, 192.0.2.1"], "192.0.2.1"),
        ("127.0.0.1", ["6.6.6.6", "192.0.2.1"], "192.0.2.1"),  # two header lines
        ("127.0.0.1", ["not-an-address"], "127.0.0.1"),
        ("127.0.0.1", [], "127.0.0.1"),
        ("::ffff:127.0.0.1", ["192.0.2.1"], "192.0.2.1"),
        ("127.0.0.1", ["2001:db8:1:2:3:4:5:6"], "2001:db8:1:2::/64"),
        ("testclient", ["192.0.2.1"], "testclient"),
    ],
)
def test_client_address(peer, forwarded_for, expected):
    trusted = [ip_network("127.0.0.1"), ip_network("::1")]

    assert client_address(peer, forwarded_for, trusted) == expected


@pytest.fixture
def primary(limits: Settings, clock: Clock) -> Iterator[TestClient]:
    with throttled(limits, clock) as client:
        yield client


def test_a_login_a_replica_forwards_is_counted_once_and_blocked_on_every_node(
    primary, limits, tmp_path, clock
):
    # The replica: a copy of the users database, the same key, hence the same throttle.db.
    database = tmp_path / "replica" / "auth.db"
    database.parent.mkdir()
    shutil.copy(limits.database, database)
    replica_settings = limits.model_copy(update={"database": database, "read_only": True})
    assert replica_settings.throttle_path == limits.throttle_path
    keys = primary.app.state.keys
    # As Primary.reachable makes it: every request to the primary carries the replica's mark.
    to_primary = TestClient(primary.app, headers={REPLICA_HEADER: replica_secret(keys)})
    with throttled(replica_settings, clock) as replica:
        replica.app.state.primary.client = to_primary
        forwarded = statuses(replica, "nobody-here", WRONG, 3)
        counted = stored_attempts(limits, "login")
        on_the_replica = login(replica, "nobody-here", WRONG)
    on_the_primary = login(primary, "nobody-here", WRONG)

    assert forwarded == [401, 401, 401]
    assert counted == 3  # each once, by the replica; the primary counted none of them
    assert on_the_replica.status_code == on_the_primary.status_code == 429


def test_a_forged_replica_mark_is_counted_like_any_login(primary, limits):
    forged = {REPLICA_HEADER: "0" * 64}
    answers = [
        primary.post(
            "/login", json={"username": "nobody-here", "password": WRONG}, headers=forged
        ).status_code
        for _ in range(4)
    ]

    assert answers == [401, 401, 401, 429]
    assert stored_attempts(limits, "login") == 3


def test_old_attempts_are_deleted_as_new_ones_come(client, limits, clock):
    assert statuses(client, "nobody-here", WRONG, 3) == [401, 401, 401]
    assert register(client).status_code == 201
    clock.now += 3600 + 60  # past the longest window, and the pause between two prunings

    assert login(client, "nobody-else", WRONG).status_code == 401

    with sqlite3.connect(limits.throttle_path) as conn:
        left = conn.execute("SELECT scope, count(*) FROM attempts GROUP BY scope").fetchall()
    assert dict(left) == {"login": 1}


# The layout of throttle.db before issue 24 (user_version 0): one count per scope and key.
OLD_LAYOUT = """
CREATE TABLE attempts (
    id    INTEGER PRIMARY KEY,
    scope TEXT    NOT NULL
          CHECK (scope IN ('login_username', 'login_address', 'registration_address')),
    key   TEXT    NOT NULL,
    at    REAL    NOT NULL
);
CREATE INDEX attempts_by_key ON attempts (scope, key, at);
CREATE INDEX attempts_by_age ON attempts (at);
INSERT INTO attempts (scope, key, at) VALUES ('login_username', 'k', 1800000000.0);
"""


def test_a_throttle_file_of_the_old_layout_is_made_anew(tmp_path, clock):
    settings = make_settings(tmp_path, **LIMITS)
    with sqlite3.connect(settings.throttle_path) as conn:
        conn.executescript(OLD_LAYOUT)

    with throttled(settings, clock) as client:
        assert register(client).status_code == 201
        assert statuses(client, "newstudent", WRONG, 4) == [401, 401, 401, 429]

    with sqlite3.connect(settings.throttle_path) as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        rows = conn.execute("SELECT scope, failed FROM attempts ORDER BY id").fetchall()
    assert version == SCHEMA_VERSION
    assert rows == [("registration", 0)] + [("login", 1)] * 3  # the old row is gone


def test_a_throttle_file_of_the_current_layout_keeps_its_counts_when_a_node_restarts(
    client, limits, clock
):
    assert statuses(client, "nobody-here", WRONG, 3) == [401, 401, 401]

    with throttled(limits, clock) as restarted:
        assert login(restarted, "nobody-here", WRONG).status_code == 429


def test_nodes_opening_an_old_throttle_file_together_each_find_it_whole(tmp_path):
    path = tmp_path / "throttle.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_LAYOUT)
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            create_schema(path)
            with sqlite3.connect(path) as conn:
                conn.execute("SELECT address, username, failed FROM attempts").fetchall()
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    nodes = [threading.Thread(target=open_it) for _ in range(6)]
    for node in nodes:
        node.start()
    for node in nodes:
        node.join()

    assert errors == []
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("SELECT count(*) FROM attempts").fetchone()[0] == 0


def test_the_limits_come_from_the_environment(tmp_path, monkeypatch):
    base = make_settings(tmp_path)
    monkeypatch.setenv("AUTH_TRUSTED_PROXIES", "127.0.0.1, ::1,10.0.0.0/8")
    monkeypatch.setenv("AUTH_LOGIN_FAILURES_PER_USERNAME", "7")

    settings = Settings(database=base.database, private_jwks=base.private_jwks)
    monkeypatch.setenv("AUTH_LOGIN_FAILURES_PER_USERNAME_ALL_ADDRESSES", "50")
    all_addresses = Settings(database=base.database, private_jwks=base.private_jwks)

    assert settings.trusted_proxies == (
        ip_network("127.0.0.1/32"),
        ip_network("::1/128"),
        ip_network("10.0.0.0/8"),
    )
    assert settings.login_failures_per_username == 7
    assert (settings.login_failures_per_address, settings.registrations_per_address) == (20, 10)
    # For all addresses: 4 times the limit from one address, unless set.
    assert settings.login_failures_per_username_all_addresses is None
    assert create_app(settings).state.throttle.limits["login_username"].attempts == 28
    assert all_addresses.login_failures_per_username_all_addresses == 50
    assert create_app(all_addresses).state.throttle.limits["login_username"].attempts == 50
    # Default: beside the private JWKS, outside LiteFS, where every node on the host finds it.
    assert settings.throttle_path == base.private_jwks.parent / "throttle.db"
    shared = tmp_path / "shared" / "throttle.db"
    monkeypatch.setenv("AUTH_THROTTLE_DATABASE", str(shared))
    assert Settings(database=base.database, private_jwks=base.private_jwks).throttle_path == shared
