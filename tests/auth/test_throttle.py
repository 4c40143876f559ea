"""Abuse limits (app/auth/throttle.py): failed sign-ins per username and per client address, and
self-registrations per address, each a 429 with Retry-After once over its limit; decided before
any password hash; unknown usernames counted exactly like known ones; a login a replica forwards
counted once. Small limits and a clock the tests move, so nothing waits for a window to pass.
tests/e2e/test_throttle.py checks the counts are shared by the three nodes of a real cluster."""

import shutil
import sqlite3
from collections.abc import Iterator
from ipaddress import ip_network

import pytest
from fastapi.testclient import TestClient

from app.auth import passwords
from app.auth.main import create_app
from app.auth.primary import REPLICA_HEADER, replica_secret
from app.auth.settings import Settings
from app.auth.throttle import client_address
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
    "login_failures_per_username": 3,
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


def test_a_username_is_refused_with_429_after_its_failures_even_with_the_right_password(client):
    assert register(client).status_code == 201
    assert register(client, username="another").status_code == 201

    assert statuses(client, "newstudent", WRONG, 3) == [401, 401, 401]
    refused = login(client, "newstudent", WRONG)
    right_password = login(client, "newstudent", GOOD_PASSWORD)

    assert refused.status_code == right_password.status_code == 429
    assert error_of(refused) == {
        "detail": f"too many failed sign-ins for this username; try again in {WINDOW} seconds",
        "code": "too_many_attempts",
    }
    assert refused.headers["Retry-After"] == str(WINDOW)
    assert error_of(right_password) == error_of(refused)
    # Only this username: another one from the same address still signs in.
    assert login(client, "another", GOOD_PASSWORD).status_code == 200


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
    elsewhere = TestClient(client.app, client=("198.51.100.9", 40000))
    assert login(elsewhere, "newstudent", GOOD_PASSWORD).status_code == 200


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


def test_a_success_clears_the_failures_of_its_username(client):
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
    """Unverified attempts count against their username at once: at most the limit's worth (3
    here) of guesses at one account are ever in flight."""
    throttle = client.app.state.throttle
    in_flight = [throttle.start_login(username="newstudent", address=CLIENT[0]) for _ in range(3)]

    assert login(client, "newstudent", WRONG).status_code == 429
    for attempt in in_flight:
        throttle.login_failed(attempt)
    assert login(client, "newstudent", GOOD_PASSWORD).status_code == 429


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
    # As primary_client makes it: every request to the primary carries the replica's mark.
    to_primary = TestClient(primary.app, headers={REPLICA_HEADER: replica_secret(keys)})
    with throttled(replica_settings, clock) as replica:
        replica.app.state.primary = to_primary
        forwarded = statuses(replica, "nobody-here", WRONG, 3)
        counted = stored_attempts(limits, "login_username")
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
    assert stored_attempts(limits, "login_username") == 3


def test_old_attempts_are_deleted_as_new_ones_come(client, limits, clock):
    assert statuses(client, "nobody-here", WRONG, 3) == [401, 401, 401]
    assert register(client).status_code == 201
    clock.now += 3600 + 60  # past the longest window, and the pause between two prunings

    assert login(client, "nobody-else", WRONG).status_code == 401

    with sqlite3.connect(limits.throttle_path) as conn:
        left = conn.execute("SELECT scope, count(*) FROM attempts GROUP BY scope").fetchall()
    assert dict(left) == {"login_username": 1, "login_address": 1}


def test_the_limits_come_from_the_environment(tmp_path, monkeypatch):
    base = make_settings(tmp_path)
    monkeypatch.setenv("AUTH_TRUSTED_PROXIES", "127.0.0.1, ::1,10.0.0.0/8")
    monkeypatch.setenv("AUTH_LOGIN_FAILURES_PER_USERNAME", "7")

    settings = Settings(database=base.database, private_jwks=base.private_jwks)

    assert settings.trusted_proxies == (
        ip_network("127.0.0.1/32"),
        ip_network("::1/128"),
        ip_network("10.0.0.0/8"),
    )
    assert settings.login_failures_per_username == 7
    assert (settings.login_failures_per_address, settings.registrations_per_address) == (20, 10)
    # Default: beside the private JWKS, outside LiteFS, where every node on the host finds it.
    assert settings.throttle_path == base.private_jwks.parent / "throttle.db"
    shared = tmp_path / "shared" / "throttle.db"
    monkeypatch.setenv("AUTH_THROTTLE_DATABASE", str(shared))
    assert Settings(database=base.database, private_jwks=base.private_jwks).throttle_path == shared
