"""The abuse limits on a real LiteFS cluster: the three auth nodes share their counts (one SQLite
file outside LiteFS, var/auth/throttle.db in the cluster), so failed sign-ins spread round robin
over the nodes are counted together, each once, and a refusal holds on every node.

The nodes trust 127.0.0.1 as a proxy, as the cluster trusts its gateway (etc/cluster.env). The
first tests play clients of their own by sending X-Forwarded-For to the nodes from there, as
KrakenD would; the last ones go through the real auth gateway (KrakenD), from clients bound to
loopback addresses of their own (127.0.x.y), which KrakenD passes on as the connection's peer:
strangers guessing a student's password from several addresses, parallel guesses from one, and
forty students behind one NAT address."""

import asyncio
import hashlib
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from harness import http
from harness.auth_cluster import AuthCluster, AuthNode, has_user, wait_for
from harness.cluster import cluster_env
from harness.enroll_cluster import write_secret
from harness.gateway import KRAKEND, Gateway
from harness.procs import free_port

pytestmark = pytest.mark.e2e

# Failed sign-ins for one username from one address; for one username from all addresses
# together, past which only addresses with no recent failure for it get an attempt; from one
# address over all usernames. Self-registrations per address.
PER_USERNAME, ALL_ADDRESSES, PER_ADDRESS, REGISTRATIONS = 3, 6, 6, 2
PASSWORD = "correct-horse-battery"
WRONG = "not-the-password"


@pytest.fixture(scope="module")
def auth_cluster_env() -> dict[str, str]:
    return {
        "AUTH_LOGIN_FAILURES_PER_USERNAME": str(PER_USERNAME),
        "AUTH_LOGIN_FAILURES_PER_USERNAME_ALL_ADDRESSES": str(ALL_ADDRESSES),
        "AUTH_LOGIN_FAILURES_PER_ADDRESS": str(PER_ADDRESS),
        "AUTH_REGISTRATIONS_PER_ADDRESS": str(REGISTRATIONS),
        "AUTH_TRUSTED_PROXIES": cluster_env("AUTH_TRUSTED_PROXIES"),  # the gateway's 127.0.0.1
    }


def login(node: AuthNode, username: str, password: str, client: str) -> httpx.Response:
    return http.post(
        node.url + "/login",
        json={"username": username, "password": password},
        headers={"X-Forwarded-For": client},
        timeout=10,
    )


def register(node: AuthNode, username: str, client: str) -> httpx.Response:
    body = {"username": username, "password": PASSWORD, "first_name": "Rate", "last_name": "Lim"}
    return http.post(
        node.url + "/register", json=body, headers={"X-Forwarded-For": client}, timeout=10
    )


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def recorded_attempts(cluster: AuthCluster, username: str) -> Counter[str]:
    """The sign-ins counted against `username` in the file the three nodes share, by the SHA-256
    of the client address they came from."""
    conn = sqlite3.connect(cluster.dir / "auth" / "throttle.db")
    try:
        query = "SELECT address FROM attempts WHERE scope = 'login' AND username = ?"
        return Counter(row[0] for row in conn.execute(query, (_key(username),)))
    finally:
        conn.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{time.monotonic_ns() % 10**9}"


def test_failures_round_robin_over_the_nodes_block_that_address_on_every_node(auth_cluster):
    nodes = list(auth_cluster.nodes.values())
    username = unique("target")
    assert register(auth_cluster.primary, username, "203.0.113.9").status_code == 201
    assert wait_for(lambda: all(has_user(r, username) for r in auth_cluster.replicas), 1.0)

    # One failure on each node: the replicas also ask the primary, which must not count again.
    failures = [login(node, username, WRONG, "203.0.113.10").status_code for node in nodes]
    counted = recorded_attempts(auth_cluster, username)
    # Now the right password, on every node, from the address that failed: refused everywhere.
    blocked = [login(node, username, PASSWORD, "203.0.113.10") for node in nodes]
    # From another address the owner still signs in, on any node.
    elsewhere = [login(node, username, PASSWORD, "203.0.113.11").status_code for node in nodes]

    assert failures == [401] * PER_USERNAME
    assert counted == {_key("203.0.113.10"): PER_USERNAME}
    for node, reply in zip(nodes, blocked, strict=True):
        assert reply.status_code == 429, (node.name, reply.text)
        assert reply.json()["code"] == "too_many_attempts"
        assert "for this username from this address" in reply.json()["detail"]
        assert 0 < int(reply.headers["Retry-After"]) <= 15 * 60
    assert elsewhere == [200] * 3


def test_failures_from_one_address_over_the_nodes_block_it_on_every_node(auth_cluster):
    nodes = list(auth_cluster.nodes.values())
    client = "203.0.113.20"

    failures = [
        login(nodes[n % 3], unique(f"nobody{n}"), WRONG, client).status_code
        for n in range(PER_ADDRESS)
    ]
    blocked = [login(node, unique("nobody"), WRONG, client) for node in nodes]
    elsewhere = login(auth_cluster.replicas[0], unique("nobody"), WRONG, "203.0.113.21")

    assert failures == [401] * PER_ADDRESS
    for node, reply in zip(nodes, blocked, strict=True):
        assert reply.status_code == 429, (node.name, reply.text)
        assert "from this address" in reply.json()["detail"]
        assert "Retry-After" in reply.headers
    assert elsewhere.status_code == 401


def test_a_registration_flood_from_one_address_is_refused(auth_cluster):
    client = "203.0.113.30"
    answers = [
        register(auth_cluster.primary, unique(f"flood{n}"), client).status_code
        for n in range(REGISTRATIONS + 1)
    ]

    assert answers == [201] * REGISTRATIONS + [429]
    assert register(auth_cluster.primary, unique("calm"), "203.0.113.31").status_code == 201
    for node in auth_cluster.nodes.values():
        text = node.log.read_text(errors="replace")
        for sign in ("Traceback", "database is locked", "readonly database"):
            assert sign not in text, f"{sign!r} in {node.log.name}\n{node.log_tail()}"


# Through the real auth gateway, from clients on loopback addresses of their own.


@pytest.fixture(scope="module")
def auth_gateway(auth_cluster: AuthCluster) -> Iterator[Gateway]:
    """The auth gateway (bin/gateway auth, as the Procfile runs it) in front of the three nodes:
    /login and /register go round robin to the two replicas."""
    if not KRAKEND.exists():
        pytest.fail(f"{KRAKEND} is missing: run ./bin/test or ./bin/start, which build KrakenD")
    write_secret(auth_cluster.dir / "gateway.secret")
    gateway = Gateway(
        "auth",
        auth_cluster.dir,
        free_port(),
        {
            "GATEWAY_AUTH_PRIMARY": auth_cluster.primary.url,
            "GATEWAY_AUTH_REPLICAS": ",".join(node.url for node in auth_cluster.replicas),
            "GATEWAY_JWKS_FILE": str(auth_cluster.dir / "gateway" / "jwks.json"),
            "GATEWAY_METRICS_PORT": str(free_port()),
        },
    )
    gateway.env["GATEWAY_AUTH_PORT"] = str(gateway.port)
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


def client_at(address: str) -> httpx.Client:
    """An HTTP client whose connections come from `address` (a loopback address: all of
    127.0.0.0/8 is this host's)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30)


def gateway_login(gateway: Gateway, address: str, username: str, password: str) -> httpx.Response:
    with client_at(address) as client:
        body = {"username": username, "password": password}
        return client.post(gateway.url + "/auth_api/login", json=body)


def gateway_register(gateway: Gateway, address: str, prefix: str) -> str:
    """A new student, self-registered through the gateway from `address`; their username."""
    username = unique(prefix)
    body = {"username": username, "password": PASSWORD, "first_name": "Ada", "last_name": "Gw"}
    with client_at(address) as client:
        reply = client.post(gateway.url + "/auth_api/register", json=body)
    assert reply.status_code == 201, reply.text
    return username


async def _at_once(gateway: Gateway, address: str, bodies: list[dict]) -> list[httpx.Response]:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(transport=transport, timeout=60) as client:
        url = gateway.url + "/auth_api/login"
        return await asyncio.gather(*(client.post(url, json=body) for body in bodies))


def logins_at_once(gateway: Gateway, address: str, bodies: list[dict]) -> list[httpx.Response]:
    """The sign-ins of `bodies`, all sent together, each on a connection of its own."""
    return asyncio.run(_at_once(gateway, address, bodies))


def test_strangers_failing_from_many_addresses_do_not_lock_the_owner_out(
    auth_cluster, auth_gateway
):
    """The lock-out attack of issue 24: more wrong passwords for a student than the old limit per
    username (3 here), from four addresses. The owner, from an address of their own, signs in;
    each attacker address is bounded, and once the username's failures over all addresses reach
    their limit (6 here), a fresh address gets one guess, no more."""
    victim = gateway_register(auth_gateway, "127.0.1.1", "victim")
    attackers = [f"127.0.1.{n}" for n in range(11, 15)]

    attack = [
        [gateway_login(auth_gateway, a, victim, f"guess-{n}").status_code for n in range(4)]
        for a in attackers
    ]
    owner = gateway_login(auth_gateway, "127.0.1.2", victim, PASSWORD)
    again = [gateway_login(auth_gateway, a, victim, "guess-9") for a in attackers]

    assert owner.status_code == 200, owner.text
    assert attack == [
        [401, 401, 401, 429],  # its limit for this username from one address
        [401, 401, 401, 429],  # now 6 failures over all addresses
        [401, 429, 429, 429],  # a fresh address: one guess
        [401, 429, 429, 429],
    ]
    assert [reply.status_code for reply in again] == [429] * 4  # the owner cleared only theirs
    assert "for this username from this address" in again[0].json()["detail"]
    assert "under attack" not in again[0].json()["detail"]
    assert "under attack" in again[-1].json()["detail"]
    # Counted under each attacker's own address, as KrakenD passed it on: the failures checked.
    counted = recorded_attempts(auth_cluster, victim)
    assert counted == {_key(a): n for a, n in zip(attackers, (3, 3, 1, 1), strict=True)}


def test_parallel_guesses_at_one_account_from_one_address_are_bounded(auth_gateway):
    """Twelve wrong passwords at once from one address: at most the limit (3) reach a password
    check, the rest are 429 before it. Only that address is refused: the owner elsewhere is not."""
    victim = gateway_register(auth_gateway, "127.0.2.1", "parallel")
    guesses = [{"username": victim, "password": f"guess-{n}"} for n in range(12)]

    replies = logins_at_once(auth_gateway, "127.0.2.11", guesses)
    from_there = gateway_login(auth_gateway, "127.0.2.11", victim, PASSWORD)
    owner = gateway_login(auth_gateway, "127.0.2.2", victim, PASSWORD)

    assert Counter(r.status_code for r in replies) == {401: PER_USERNAME, 429: 12 - PER_USERNAME}
    assert from_there.status_code == 429  # even the right password, from the guessing address
    assert owner.status_code == 200, owner.text


def test_forty_students_behind_one_nat_address_sign_in(auth_gateway):
    """Registration morning on campus: forty students, one NAT address. Twice the address's
    limit of failures (6) sign in one after another after a typo each, then all forty at once:
    every right password gets in. A typo its owner then corrects is not held against the
    address; failures on accounts never signed in are (the test above on one address)."""
    students = [gateway_register(auth_gateway, f"127.0.3.{n}", "student") for n in range(1, 41)]
    nat = "127.0.4.1"

    after_a_typo = [
        (
            gateway_login(auth_gateway, nat, student, PASSWORD + "x").status_code,
            gateway_login(auth_gateway, nat, student, PASSWORD).status_code,
        )
        for student in students[: 2 * PER_ADDRESS]
    ]
    together = logins_at_once(
        auth_gateway, nat, [{"username": s, "password": PASSWORD} for s in students]
    )

    assert after_a_typo == [(401, 200)] * (2 * PER_ADDRESS)
    assert Counter(r.status_code for r in together) == {200: 40}
