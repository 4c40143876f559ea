"""The platform on three test hosts (issue 29, harness/multihost.py): h1, h2, h3 in network
namespaces on a bridge, each with a LiteFS node of each database, enrollment instances, an auth
instance and both gateways; h1 the primary of both databases. Real processes only; each test
brings the hosts up and takes them down with the code of `bin/multihost up` and `down` (after
which nothing of them is left: no process, mount, namespace or file).

In the default run as root (as CI runs it); alone: `./bin/test -m multihost`."""

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from app.auth.tokens import KeyRing
from bin.lib.litefs import litefs_mounts
from harness import multihost_watch as watch
from harness.auth_cluster import LITEFS, wait_for
from harness.cluster import sign_token
from harness.gateway import KRAKEND
from harness.invariants import table_rows, violations
from harness.loadclient import burst
from harness.multihost import HOSTS, Multihost, namespace_pids, namespaces
from tests.enrollment.helpers import assert_rush_outcome, served

pytestmark = [pytest.mark.multihost, pytest.mark.e2e]

PREFIX = "mht"  # not bin/multihost's "mh": a developer's hosts may be up meanwhile
API = "/enroll_api"
STUDENTS, CAPACITY, WAITLIST = 330, 30, 15
PASSWORD = "multihost test passphrase 7"


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Multihost]:
    yield from hosts_up(tmp_path, PREFIX)


def hosts_up(tmp_path: Path, prefix: str, **settings: Any) -> Iterator[Multihost]:
    """The three hosts, up; afterwards taken down by a Multihost that knows nothing but the
    prefix and the directory (as `bin/multihost down` after a crash of the one that went up),
    twice, and checked gone."""
    if os.geteuid() != 0 or not Path("/dev/fuse").is_char_device():
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: the multihost tests need root and /dev/fuse")
        pytest.skip("network namespaces and LiteFS need root and /dev/fuse")
    for tool in (LITEFS, KRAKEND):
        if not tool.exists():
            pytest.fail(f"{tool} is missing: run ./bin/test or ./bin/start, which build it")
    run_dir = tmp_path / "multihost"
    stale = namespaces(prefix)
    if stale:  # a test run killed before its teardown: its processes and namespaces
        Multihost(run_dir=run_dir, prefix=prefix).down()
    started = Multihost(run_dir=run_dir, prefix=prefix, **settings)
    try:
        seconds = started.up()
        print(f"multihost: 3 hosts up in {seconds:.1f} s")
        yield started
    finally:
        ended = time.monotonic()
        Multihost(run_dir=run_dir, prefix=prefix).down()
        print(f"multihost: down in {time.monotonic() - ended:.1f} s")
        started.down()  # again, from the object that went up: nothing left to do
    assert namespaces(prefix) == []
    assert litefs_mounts(run_dir) == []
    assert not run_dir.exists()


def signer(hosts: Multihost) -> Callable[..., str]:
    """token(user_id, username, *roles): an access token as the auth service issues it, signed
    with the installation's key (read once: loading it costs more than a signature)."""
    return partial(sign_token, KeyRing.from_file(hosts.private_jwks()))


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


def register_and_sign_in(hosts: Multihost, *, registered_on: str, signed_in_on: str):
    """Register a new student through one host's auth gateway and sign in through another's at
    once (from the calling thread's host); the access token and the user's id."""
    username = "mh" + uuid.uuid4().hex[:10]
    registered = httpx.post(
        hosts.auth_gateway(registered_on) + "/auth_api/register",
        json={"username": username, "password": PASSWORD, "first_name": "Multi",
              "last_name": "Host"},
    )  # fmt: skip
    assert registered.status_code == 201, registered.text
    login = httpx.post(
        hosts.auth_gateway(signed_in_on) + "/auth_api/login",
        json={"username": username, "password": PASSWORD},
    )
    assert login.status_code == 200, login.text
    access = login.json()["access_token"]
    user_id = int(jwt.decode(access, options={"verify_signature": False})["sub"])
    assert user_id == registered.json()["id"]
    return access, user_id


def test_rush_of_330_students_over_the_three_hosts_gateways(hosts: Multihost):
    """SPEC §2's race, its students spread over the three hosts' enroll gateways in turn: the
    exact outcome, every replica's copy the primary's, every rule holding on each copy, and the
    replicas' instances relaying their writes to h1's."""
    token = signer(hosts)
    registrar = bearer(token(1, "rhenderson", "registrar"))
    section = {
        "course_id": 4,
        "section_number": 71,
        "instructor_id": 3,
        "capacity": CAPACITY,
        "waitlist_capacity": WAITLIST,
    }
    with hosts.in_host("h1"):  # the test's client sits on h1's network
        created = httpx.post(
            hosts.enroll_gateway("h2") + API + "/sections", headers=registrar, json=section
        )
        assert created.status_code == 201, created.text
        section_id = created.json()["id"]
        students = range(5000, 5000 + STUDENTS)
        requests = [
            (
                "POST",
                f"{hosts.enroll_gateway(HOSTS[i % 3])}{API}/users/{s}/enrollments",
                bearer(token(s, f"racer{s}", "student")),
                {"section_id": section_id},
            )
            for i, s in enumerate(students)
        ]
        started = time.monotonic()
        replies = asyncio.run(burst(requests))
        seconds = time.monotonic() - started
        waitlist_url = f"{hosts.enroll_gateway('h3')}{API}/sections/{section_id}/waitlist"
        # h3 answers from its own copy: read once it holds the primary's last transaction.
        assert wait_for(lambda: hosts.caught_up("enroll.db"), 10, interval=0.05) is not None
        waitlist = httpx.get(waitlist_url, headers=registrar).json()
    outcome = assert_rush_outcome(replies, waitlist, seats=CAPACITY, places=WAITLIST)
    print(f"multihost rush: {STUDENTS} students over 3 hosts in {seconds:.2f} s: {dict(outcome)}")

    enrolled = [r.json() for r in replies if r.status == 201]
    copies = [hosts.database(host, "enroll.db") for host in HOSTS]
    for copy in copies:
        assert violations(copy, enrolled) == [], copy
    primary_rows = table_rows(copies[0])
    assert all(table_rows(copy) == primary_rows for copy in copies[1:])
    route = "relayed to the primary"
    for host in ("h2", "h3"):
        with hosts.in_host(host):
            relayed = served(hosts.enroll_urls(host, local=True), "POST", route)
        assert sum(relayed) >= STUDENTS // 3, (host, relayed)
    status = hosts.status()
    assert status["primary"] == {"enroll.db": "h1", "auth.db": "h1"}
    assert all(
        status["hosts"][host]["nodes"][database]["behind_primary"] == 0
        for host in HOSTS
        for database in ("enroll.db", "auth.db")
    )


def test_register_on_h3_then_sign_in_on_h2_at_once(hosts: Multihost):
    """An account registered through h3's auth gateway signs in through h2's on the very next
    request, whatever the replicas' lag (the auth replica asks the primary); the new student then
    enrolls through h2 and sees it there on the next page (the relay waits for h2's copy).
    Then h2 loses its power: h1 and h3 go on serving, registrations included."""
    sections: list[dict] = []
    for _ in range(3):
        with hosts.in_host("h2"):
            access, user_id = register_and_sign_in(hosts, registered_on="h3", signed_in_on="h2")
            gateway = hosts.enroll_gateway("h2") + API
            if not sections:
                listed = httpx.get(gateway + "/sections", headers=bearer(access))
                assert listed.status_code == 200, listed.text
                sections = [s for s in listed.json() if s["seats_available"] >= 3]
                assert sections, "the seed has no section with three free seats"
            enrolled = httpx.post(
                f"{gateway}/users/{user_id}/enrollments",
                headers=bearer(access),
                json={"section_id": sections[0]["id"]},
            )
            assert enrolled.status_code == 201, enrolled.text
            assert enrolled.json()["status"] == "enrolled"
            mine = httpx.get(f"{gateway}/users/{user_id}/enrollments", headers=bearer(access))
            assert mine.status_code == 200, mine.text
            assert [e["section_id"] for e in mine.json()] == [sections[0]["id"]]

    # The machine's Prometheus scrapes every process of every host: 2 enrollment instances, the
    # auth instance, 2 LiteFS nodes and 2 gateways on each (and itself).
    assert wait_for(lambda: hosts.status()["prometheus"].get("targets_up") == 22, 15.0, 0.5), (
        hosts.status()["prometheus"]
    )
    up = {
        (s["metric"]["job"], s["metric"]["host"])
        for s in watch.query(hosts.bridge_namespace, "up == 1")
        if "host" in s["metric"]
    }
    assert up == {
        (job, host) for job in ("enrollment", "auth", "litefs", "gateway") for host in HOSTS
    }

    killed = hosts.kill("h2")
    assert killed > 0 and namespace_pids(hosts.namespace("h2")) == []
    # ... and sees h2 go: each of its 7 targets down, the other hosts' up.
    assert wait_for(
        lambda: (
            {s["metric"]["host"] for s in watch.query(hosts.bridge_namespace, "up == 0")} == {"h2"}
            and len(watch.query(hosts.bridge_namespace, 'up{host="h2"} == 0')) == 7
        ),
        15.0,
        0.5,
    ), hosts.status()["prometheus"]
    with hosts.in_host("h3"):
        register_and_sign_in(hosts, registered_on="h3", signed_in_on="h1")
    status = hosts.status()
    assert status["hosts"]["h2"]["processes"] == 0
    assert status["hosts"]["h2"]["gateways_healthy"] == {"enroll": False, "auth": False}
    assert status["primary"] == {"enroll.db": "h1", "auth.db": "h1"}
