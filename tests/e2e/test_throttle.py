"""The abuse limits on a real LiteFS cluster: the three auth nodes share their counts (one SQLite
file outside LiteFS, var/auth/throttle.db in the cluster), so failed sign-ins spread round robin
over the nodes are counted together, each once, and the block holds on every node.

The nodes trust 127.0.0.1 as a proxy here, as the cluster trusts its gateway, so each test plays
a client of its own through X-Forwarded-For, as KrakenD would send it."""

import hashlib
import sqlite3
import time

import httpx
import pytest

from harness.auth_cluster import AuthCluster, AuthNode, has_user, wait_for

pytestmark = pytest.mark.e2e

PER_USERNAME, PER_ADDRESS, REGISTRATIONS = 3, 6, 2
PASSWORD = "correct-horse-battery"
WRONG = "not-the-password"


@pytest.fixture(scope="module")
def auth_cluster_env() -> dict[str, str]:
    return {
        "AUTH_LOGIN_FAILURES_PER_USERNAME": str(PER_USERNAME),
        "AUTH_LOGIN_FAILURES_PER_ADDRESS": str(PER_ADDRESS),
        "AUTH_REGISTRATIONS_PER_ADDRESS": str(REGISTRATIONS),
        "AUTH_TRUSTED_PROXIES": "127.0.0.1",
    }


def login(node: AuthNode, username: str, password: str, client: str) -> httpx.Response:
    return httpx.post(
        node.url + "/login",
        json={"username": username, "password": password},
        headers={"X-Forwarded-For": client},
        timeout=10,
    )


def register(node: AuthNode, username: str, client: str) -> httpx.Response:
    body = {"username": username, "password": PASSWORD, "first_name": "Rate", "last_name": "Lim"}
    return httpx.post(
        node.url + "/register", json=body, headers={"X-Forwarded-For": client}, timeout=10
    )


def recorded_failures(cluster: AuthCluster, username: str) -> int:
    """The rows counting `username`'s failures in the file the three nodes share."""
    conn = sqlite3.connect(cluster.dir / "auth" / "throttle.db")
    try:
        query = "SELECT count(*) FROM attempts WHERE scope = 'login_username' AND key = ?"
        key = hashlib.sha256(username.encode()).hexdigest()
        return conn.execute(query, (key,)).fetchone()[0]
    finally:
        conn.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{time.monotonic_ns() % 10**9}"


def test_failures_round_robin_over_the_nodes_block_a_username_on_every_node(auth_cluster):
    nodes = list(auth_cluster.nodes.values())
    username = unique("target")
    assert register(auth_cluster.primary, username, "203.0.113.9").status_code == 201
    assert wait_for(lambda: all(has_user(r, username) for r in auth_cluster.replicas), 1.0)

    # One failure on each node: the replicas also ask the primary, which must not count again.
    failures = [login(node, username, WRONG, "203.0.113.10").status_code for node in nodes]
    counted = recorded_failures(auth_cluster, username)
    # Now the right password, on every node and from another address: the username is blocked.
    blocked = [login(node, username, PASSWORD, "203.0.113.11") for node in nodes]

    assert failures == [401] * PER_USERNAME
    assert counted == PER_USERNAME
    for node, reply in zip(nodes, blocked, strict=True):
        assert reply.status_code == 429, (node.name, reply.text)
        assert reply.json()["code"] == "too_many_attempts"
        assert "username" in reply.json()["detail"]
        assert 0 < int(reply.headers["Retry-After"]) <= 15 * 60


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
