"""Sign-in and registration as a client sees them: through the real auth gateway (KrakenD) in front
of the three LiteFS auth nodes, with the abuse limits at their defaults (5 failed sign-ins per
username and 20 per address in 15 minutes, 10 self-registrations an hour per address).

- a client cannot choose the address its failures are counted under (X-Forwarded-For);
- forty students behind one address sign in at once; parallel guesses at one account stay bounded;
- a user who registers signs in on the very next request, on every node;
- a replica killed during sign-ins, and the primary down during registrations.
"""

import asyncio
import itertools
import os
import secrets
import signal
import sqlite3
import threading
import time
from collections import Counter

import httpx
import pytest

from app.auth.settings import Settings as AuthSettings
from harness import http
from harness.auth_cluster import has_user, wait_for
from harness.cluster import Cluster
from harness.loadclient import burst

pytestmark = pytest.mark.e2e

PASSWORD = "correct-horse-battery"
WRONG = "not-the-password"
PER_USERNAME = AuthSettings.model_fields["login_failures_per_username"].default
PER_ADDRESS = AuthSettings.model_fields["login_failures_per_address"].default
_serial = itertools.count(1)


@pytest.fixture(scope="module")
def cluster_env() -> dict[str, str]:
    return {}  # the abuse limits as they ship


@pytest.fixture(autouse=True)
def forget_attempts(cluster: Cluster) -> None:
    """Every test starts with no recent attempt counted: they all come from 127.0.0.1."""
    conn = sqlite3.connect(cluster.var / "auth" / "throttle.db")
    try:
        with conn:
            conn.execute("DELETE FROM attempts")
    finally:
        conn.close()


def login(cluster: Cluster, username: str, password: str = PASSWORD, **headers) -> httpx.Response:
    return http.post(
        cluster.auth_gateway.url + "/auth_api/login",
        json={"username": username, "password": password},
        headers=headers,
        timeout=30,
    )


def register(cluster: Cluster, username: str | None = None, token: str | None = None):
    body = {
        "username": username or f"gw{next(_serial)}-{secrets.token_hex(3)}",
        "password": PASSWORD,
        "first_name": "Through",
        "last_name": "Gateway",
    }
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return http.post(
        cluster.auth_gateway.url + "/auth_api/register", json=body, headers=headers, timeout=30
    )


def test_a_client_cannot_choose_the_address_its_failures_are_counted_under(cluster: Cluster):
    answers = [
        login(cluster, f"nobody-{n}", WRONG, **{"X-Forwarded-For": f"198.51.100.{n}"})
        for n in range(PER_ADDRESS + 5)
    ]

    statuses = [a.status_code for a in answers]
    assert statuses == [401] * PER_ADDRESS + [429] * 5
    assert "from this address" in answers[-1].json()["detail"]
    assert int(answers[-1].headers["Retry-After"]) > 0


def test_forty_students_behind_one_address_sign_in_at_once(cluster: Cluster):
    registrar = cluster.token(1, "rhenderson", "registrar")  # not limited per address
    usernames = []
    for _ in range(40):
        reply = register(cluster, token=registrar)
        assert reply.status_code == 201, reply.text
        usernames.append(reply.json()["username"])
    url = cluster.auth_gateway.url + "/auth_api/login"
    requests = [("POST", url, {}, {"username": u, "password": PASSWORD}) for u in usernames]

    replies = asyncio.run(burst(requests))

    assert Counter(r.status for r in replies) == {200: 40}


def test_parallel_guesses_at_one_account_are_bounded(cluster: Cluster):
    username = register(cluster).json()["username"]
    url = cluster.auth_gateway.url + "/auth_api/login"
    guesses = [
        ("POST", url, {}, {"username": username, "password": f"guess-{n}"}) for n in range(12)
    ]

    replies = asyncio.run(burst(guesses))

    assert Counter(r.status for r in replies) == {401: PER_USERNAME, 429: 12 - PER_USERNAME}
    assert login(cluster, username).status_code == 429  # the owner too, until the window passes


def test_a_new_user_signs_in_on_the_very_next_request_on_every_node(cluster: Cluster):
    for _ in range(3):
        created = register(cluster)
        assert created.status_code == 201, created.text
        username = created.json()["username"]

        through_gateway = login(cluster, username)
        on_each_node = [
            http.post(node.url + "/login", json={"username": username, "password": PASSWORD})
            for node in cluster.auth.nodes.values()
        ]

        assert through_gateway.status_code == 200, through_gateway.text
        assert [r.status_code for r in on_each_node] == [200, 200, 200]
    # and the token it gives is good at the enroll gateway at once
    token = through_gateway.json()["access_token"]
    me = created.json()["id"]
    mine = http.get(
        f"{cluster.enroll_gateway.url}/enroll_api/users/{me}/enrollments",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert (mine.status_code, mine.json()) == (200, [])


def test_sign_ins_go_on_while_a_replica_is_killed(cluster: Cluster):
    username = register(cluster).json()["username"]
    victim = cluster.auth.nodes["secondary-2"]
    assert wait_for(lambda: has_user(victim, username), timeout=1.0)
    results: list[tuple[str, int, float]] = []  # (phase, status, seconds)
    phase = ["before"]
    stop = threading.Event()

    def keep_signing_in() -> None:
        while not stop.is_set():
            started = time.monotonic()
            status = login(cluster, username).status_code
            results.append((phase[0], status, time.monotonic() - started))

    worker = threading.Thread(target=keep_signing_in)
    worker.start()
    try:
        time.sleep(0.5)
        phase[0] = "down"
        cluster.auth.kill(victim.name)
        time.sleep(1.5)
        phase[0] = "restarting"
        seconds = cluster.auth.start(victim.name)
        phase[0] = "after"
        time.sleep(1.0)
    finally:
        stop.set()
        worker.join()

    by_phase = Counter((p, s) for p, s, _ in results)
    print(f"sign-ins through the gateway around a replica kill -9: {dict(by_phase)}")
    print(f"replica back in {seconds:.2f} s")
    assert {s for p, s, _ in results if p in ("before", "after")} == {200}
    # KrakenD has no health checks: a sign-in it sends to the dead node is its bare 500 (issue
    # 12 removes those); never a hang, never a wrong answer.
    assert {s for p, s, _ in results} <= {200, 500}
    assert max((t for _, s, t in results if s == 500), default=0.0) < 1.0, "a failure hung"
    # The bound: sign-ins go one at a time and the gateway takes the two replicas in turn (round
    # robin: bin/gateway runs KrakenD on one thread), so only the dead node's turns fail: at most
    # every other sign-in sent while it was down or starting, never two in a row (a client that
    # tries once more gets in).
    outage = [s for p, s, _ in results if p in ("down", "restarting")]
    assert len(outage) >= 6, f"only {len(outage)} sign-ins while the replica was down"
    in_a_row = [i for i in range(1, len(outage)) if outage[i - 1] == outage[i] == 500]
    assert not in_a_row, f"{outage.count(500)} of {len(outage)} failed, two in a row: {outage}"


def test_sign_ins_wait_out_a_crash_of_a_replicas_auth_instance(cluster: Cluster):
    """kill -9 of the auth instance on a replica: LiteFS exits with it, and bin/auth-node starts
    both again on the listening socket it holds; sign-ins sent there meanwhile wait and succeed,
    and only the one the killed process was answering can fail."""
    username = register(cluster).json()["username"]
    victim = cluster.auth.nodes["secondary-1"]
    assert wait_for(lambda: has_user(victim, username), timeout=1.0)
    first = cluster.auth.serving_pid(victim.name)
    assert first is not None
    statuses: list[int] = []
    stop = threading.Event()

    def keep_signing_in() -> None:
        while not stop.is_set():
            statuses.append(login(cluster, username).status_code)

    worker = threading.Thread(target=keep_signing_in)
    worker.start()
    try:
        time.sleep(0.3)
        os.kill(first, signal.SIGKILL)
        back = wait_for(lambda: cluster.auth.serving_pid(victim.name) not in (None, first), 20.0)
        direct = http.post(victim.url + "/login", json={"username": username, "password": PASSWORD})
        time.sleep(0.5)
    finally:
        stop.set()
        worker.join()

    print(f"sign-ins around an auth instance's kill -9: {Counter(statuses)}")
    assert back, f"the auth instance of {victim.name} was not started again\n{victim.log_tail()}"
    assert direct.status_code == 200
    # Sign-ins go one at a time: at most the one in flight on the killed process is lost (KrakenD's
    # bare 500); every one sent while the node restarts waits and succeeds (before the node held
    # its socket, those were refused: about half of them, the ones sent to this node).
    assert set(statuses) <= {200, 500} and statuses.count(500) <= 1 and len(statuses) > 5


def test_registration_with_the_primary_down_is_a_clear_503_and_nothing_is_lost(cluster: Cluster):
    before = [register(cluster).json()["username"] for _ in range(2)]
    cluster.auth.kill("primary")
    try:
        started = time.monotonic()
        refused = register(cluster)
        took = time.monotonic() - started
        signed_in = [login(cluster, before[0]).status_code for _ in range(6)]
    finally:
        cluster.auth.start("primary")

    assert refused.status_code == 503
    assert refused.json()["code"] == "primary_unavailable"
    assert took < 2.0
    assert signed_in == [200] * 6  # the replicas go on signing people in, none refused
    after = register(cluster)
    assert after.status_code == 201, after.text
    for username in [*before, after.json()["username"]]:
        assert has_user(cluster.auth.primary, username)
        assert login(cluster, username).status_code == 200
