"""Exactly once, as the student sees it (issue 26): writes carry an Idempotency-Key through the real
gateways, and a client that retries with it after a 5xx or a cut connection always ends with the
definitive answer, never with the change made twice.

- the burst: 300 students pressing enroll at the same instant through the enroll gateway, kill -9
  of one enrollment instance 50 ms in, each retrying with its key: every one ends with a 201 or a
  409 that is the truth (whoever holds a seat or a waitlist place was answered 201, nobody else),
  and each 5xx before a retry was the gateway's JSON with a code;
- a registration through the auth gateway whose relaying replica is killed while the primary
  makes it: retried with its key, one account, and the retry gets the same 201;
- the replay rules through both gateways: same key and body, same key and another body, same key
  and another user, the same key at once, an expired key.

Every process killed here is started again by its supervisor, and each test waits for it, so the
cluster is whole when the test ends.
"""

import asyncio
import json
import os
import secrets
import signal
import sqlite3
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx
import pytest

from app.common import idempotency
from harness import http
from harness.auth_cluster import has_user, wait_for
from harness.cluster import Cluster
from harness.invariants import violations
from harness.loadclient import Connection, Reply, burst, fetch

pytestmark = pytest.mark.e2e

STUDENTS, SEATS, PLACES = 300, 30, 15
PASSWORD = "correct-horse-battery"
REPLAYED = idempotency.REPLAYED_HEADER.lower()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_section(cluster: Cluster, number: int, seats: int = SEATS, places: int = PLACES) -> int:
    body = {"course_id": 4, "section_number": number, "instructor_id": 3, "capacity": seats,
            "waitlist_capacity": places}  # fmt: skip
    registrar = bearer(cluster.token(1, "rhenderson", "registrar"))
    reply = http.post(
        cluster.enroll_gateway.url + "/enroll_api/sections", json=body, headers=registrar
    )
    assert reply.status_code == 201, reply.text
    return reply.json()["id"]


# the burst


@dataclass
class Student:
    """One student's client: their key, every answer or cut before their last, and the last."""

    user_id: int
    key: str = field(default_factory=lambda: str(uuid.uuid4()))
    failures: list[Reply | None] = field(default_factory=list)  # 5xx answers; None: a cut
    last: Reply | None = None


RETRIES = 8  # with a backoff from 0.1 s, doubling: 25 s in all, ample for an instance's restart
DEFINITIVE = (201, 409)


async def press_enroll(cluster: Cluster, section: int, students: list[Student], kill) -> None:
    """Every student presses enroll at the same instant, each on a connection of their own opened
    beforehand; `kill` runs 50 ms after they leave. A student whose answer is a 5xx or whose
    connection is cut retries with the same key and body, after 0.1 s, 0.2 s, ..."""
    url = cluster.enroll_gateway.url
    conns = [Connection(url) for _ in students]
    await asyncio.gather(*(c._open() for c in conns))
    go = asyncio.Event()

    def request(student: Student) -> tuple[str, dict[str, str], dict[str, int]]:
        token = cluster.token(student.user_id, f"x{student.user_id}", "student")
        headers = {**bearer(token), idempotency.HEADER: student.key}
        return f"/enroll_api/users/{student.user_id}/enrollments", headers, {"section_id": section}

    async def one(student: Student, conn: Connection) -> None:
        path, headers, body = request(student)
        await go.wait()
        try:
            reply: Reply | None = await conn.request("POST", path, headers, body)
        except (OSError, asyncio.IncompleteReadError):
            reply = None
        finally:
            await conn.close()
        for attempt in range(RETRIES):
            if reply is not None and reply.status < 500:
                break
            student.failures.append(reply)
            await asyncio.sleep(0.1 * 2**attempt)
            try:
                reply = await fetch("POST", url + path, headers, body)
            except (OSError, asyncio.IncompleteReadError):
                reply = None
        student.last = reply

    async def trigger() -> None:
        await go.wait()
        await asyncio.sleep(0.050)
        kill()

    tasks = [asyncio.create_task(one(s, c)) for s, c in zip(students, conns, strict=True)]
    killer = asyncio.create_task(trigger())
    await asyncio.sleep(0.05)
    go.set()
    await asyncio.gather(killer, *tasks)


def places_held(cluster: Cluster, section: int) -> dict[int, str]:
    with sqlite3.connect(cluster.enrollment.db) as conn:
        rows = conn.execute(
            "SELECT user_id, status FROM enrollments WHERE section_id = ?"
            " AND status IN ('enrolled', 'waitlisted')",
            (section,),
        ).fetchall()
    return dict(rows)


def test_a_burst_under_a_kill_ends_with_every_student_told_the_truth(cluster: Cluster):
    section = new_section(cluster, 91)
    students = [Student(user_id) for user_id in range(9000, 9000 + STUDENTS)]
    victim = cluster.enrollment.serving_pid(1)
    assert victim is not None

    asyncio.run(press_enroll(cluster, section, students, lambda: os.kill(victim, signal.SIGKILL)))
    back = wait_for(lambda: cluster.enrollment.serving_pid(1) not in (None, victim), 20.0)

    failures = [f for s in students for f in s.failures]
    cut = sum(f is None for f in failures)
    finals = Counter("failed" if s.last is None else s.last.status for s in students)
    replayed = sum(1 for s in students if s.failures and s.last and REPLAYED in s.last.headers)
    print(
        f"{STUDENTS} enrolls at once through the gateway, kill -9 of one instance 50 ms in:"
        f" {len(failures) - cut} 5xx and {cut} cut connections before a retry, from"
        f" {sum(bool(s.failures) for s in students)} students; after retries with their keys:"
        f" {dict(finals)}, {replayed} of the retried answered with the first answer replayed"
    )
    assert back, "the killed instance was not started again"
    # Every one of the 300 ends with a definitive answer: none failed after its retries.
    assert set(finals) <= set(DEFINITIVE), finals
    # Every 5xx a client saw before retrying said so in the one error shape, with a code.
    for failure in failures:
        if failure is not None:
            body = json.loads(failure.body)
            assert failure.headers["content-type"].startswith("application/json")
            assert body["code"] in ("backend_failed", "backend_timeout", "unavailable"), body
    # Whoever holds a seat or a waitlist place was answered 201 saying which, and nobody else
    # was: the 409s are all the full waitlist's.
    told = {s.user_id: s.last.json()["status"] for s in students if s.last and s.last.status == 201}
    assert places_held(cluster, section) == told
    assert Counter(told.values()) == {"enrolled": SEATS, "waitlisted": PLACES}
    refusals = {s.last.json()["code"] for s in students if s.last and s.last.status == 409}
    assert refusals == {"waitlist_full"}
    acknowledged = [s.last.json() for s in students if s.last and s.last.status == 201]
    assert not violations(cluster.enrollment.db, acknowledged)


# a registration whose relaying replica is killed


def registration(username: str) -> dict[str, str]:
    return {"username": username, "password": PASSWORD, "first_name": "Kept",
            "last_name": "Once"}  # fmt: skip


def test_a_registration_whose_relaying_replica_is_killed_is_one_account_and_the_same_201(
    cluster: Cluster,
):
    """The primary is kept busy hashing seed users' sign-ins (0.2 s each, one hash per core
    host-wide), so the registration waits there, relayed and unanswered, when the auth instance
    of the replica relaying it is killed (once a replica has counted it against the abuse limits,
    which it does just before it relays). Which replica the gateway chose is not told, so both
    replicas' instances are killed: the relaying one among them. The gateway answers 500, the
    primary makes the account all the same, and the client's retry with its key, relayed by a
    replica back up (bin/auth-node starts it again; connections wait on its socket meanwhile),
    gets the primary's 201 for it, or 409 `request_in_progress` while it is still being made."""
    url = cluster.auth_gateway.url + "/auth_api"
    victims: dict[str, int] = {}
    for node in cluster.auth.replicas:
        pid = cluster.auth.serving_pid(node.name)
        assert pid is not None
        victims[node.name] = pid
    username = f"kept{secrets.token_hex(3)}"
    key = {idempotency.HEADER: str(uuid.uuid4())}

    def busy_primary() -> None:
        body = {"username": "ajohnson", "password": "registrar-day-2026"}
        http.post(cluster.auth.primary.url + "/login", json=body, timeout=30)

    def registrations_counted() -> int:
        """Self-registrations the replicas have counted (throttle.py), each just before it is
        relayed to the primary: the sign that a replica holds the request."""
        with sqlite3.connect(cluster.auth.throttle_database) as conn:
            query = "SELECT count(*) FROM attempts WHERE scope = 'registration'"
            count: int = conn.execute(query).fetchone()[0]
        return count

    hashing = [threading.Thread(target=busy_primary) for _ in range(4)]
    for thread in hashing:
        thread.start()
    counted = registrations_counted()
    time.sleep(0.05)
    first: list[httpx.Response] = []
    sender = threading.Thread(
        target=lambda: first.append(
            http.post(url + "/register", json=registration(username), headers=key, timeout=30)
        )
    )
    sender.start()
    assert wait_for(lambda: registrations_counted() > counted, 10.0) is not None
    time.sleep(0.15)  # sent on to the primary, which is hashing others' passwords for 0.5 s
    for pid in victims.values():
        os.kill(pid, signal.SIGKILL)
    sender.join()
    for thread in hashing:
        thread.join()
    seen = [(first[0].status_code, first[0].json().get("code", ""))]

    retried = None
    for attempt in range(10):
        retried = http.post(url + "/register", json=registration(username), headers=key, timeout=30)
        if retried.status_code < 500 and retried.status_code != 409:
            break
        seen.append((retried.status_code, retried.json().get("code", "")))
        time.sleep(0.1 * 2**attempt)
    back = [
        wait_for(lambda name=name, pid=pid: cluster.auth.serving_pid(name) not in (None, pid), 20)
        for name, pid in victims.items()
    ]
    print(f"registration under a kill of its relaying replica: {seen}, then {retried}")

    assert all(back), "a replica's auth instance was not started again"
    assert seen[0] == (500, "backend_failed")  # the gateway's JSON: it may have been applied
    assert retried is not None and retried.status_code == 201, retried.text
    assert retried.headers.get(idempotency.REPLAYED_HEADER) == "true"  # made by the first
    account = retried.json()
    assert account["username"] == username
    with sqlite3.connect(cluster.auth.primary.database) as conn:
        rows = conn.execute("SELECT id FROM users WHERE username = ?", (username,)).fetchall()
    assert rows == [(account["id"],)]
    again = http.post(url + "/register", json=registration(username), headers=key)
    assert (again.status_code, again.content) == (201, retried.content)
    assert all(wait_for(lambda n=node: has_user(n, username), 10) for node in cluster.auth.replicas)


# the replay rules, through the gateways


def enroll(cluster: Cluster, user_id: int, section: int, key: str, **extra) -> httpx.Response:
    token = cluster.token(user_id, f"x{user_id}", "student")
    return http.post(
        f"{cluster.enroll_gateway.url}/enroll_api/users/{user_id}/enrollments",
        json={"section_id": section, **extra},
        headers={**bearer(token), idempotency.HEADER: key},
    )


def test_the_same_key_and_body_is_the_first_answer_replayed(cluster: Cluster):
    section = new_section(cluster, 92)
    first = enroll(cluster, 9400, section, "same")
    again = enroll(cluster, 9400, section, "same")
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers[idempotency.REPLAYED_HEADER] == "true"
    assert REPLAYED not in first.headers
    # The replay is the service's answer, passed through: it has its own request id.
    assert again.headers["x-request-id"] != first.headers["x-request-id"]


def test_the_same_key_with_another_body_is_422(cluster: Cluster):
    section, other = new_section(cluster, 93), new_section(cluster, 94)
    assert enroll(cluster, 9401, section, "mine").status_code == 201
    refused = enroll(cluster, 9401, other, "mine")
    assert refused.status_code == 422
    assert refused.json()["code"] == "idempotency_key_reused"
    assert 9401 not in places_held(cluster, other)


def test_the_same_key_for_another_user_is_their_own(cluster: Cluster):
    section = new_section(cluster, 95)
    first = enroll(cluster, 9402, section, "shared-key")
    other = enroll(cluster, 9403, section, "shared-key")
    assert first.status_code == other.status_code == 201
    assert REPLAYED not in other.headers
    assert (first.json()["user_id"], other.json()["user_id"]) == (9402, 9403)


def test_the_same_key_at_once_is_one_enrollment(cluster: Cluster):
    """Twenty copies of one keyed enroll leave together, spread by the gateway over the three
    instances: one is made, nineteen wait for the write lock and replay it."""
    section = new_section(cluster, 96)
    token = cluster.token(9404, "x9404", "student")
    headers = {**bearer(token), idempotency.HEADER: "at-once"}
    url = f"{cluster.enroll_gateway.url}/enroll_api/users/9404/enrollments"
    replies = asyncio.run(burst([("POST", url, headers, {"section_id": section})] * 20))
    assert Counter(r.status for r in replies) == {201: 20}
    assert len({r.body for r in replies}) == 1
    assert Counter(r.headers.get(REPLAYED) for r in replies) == {"true": 19, None: 1}
    assert places_held(cluster, section) == {9404: "enrolled"}


def test_the_same_registration_at_once_is_one_account(cluster: Cluster):
    """At the auth gateway the same keyed registration sent five times at once: the primary
    makes it once; a copy that arrives while it hashes the password is 409
    `request_in_progress`, one that arrives after is the 201 replayed; asked again, each gets
    the 201."""
    username = f"once{secrets.token_hex(3)}"
    headers = {idempotency.HEADER: str(uuid.uuid4())}
    url = cluster.auth_gateway.url + "/auth_api/register"
    replies = asyncio.run(burst([("POST", url, headers, registration(username))] * 5))
    outcomes = Counter(
        (r.status, r.json().get("code") or ("replayed" if REPLAYED in r.headers else "made"))
        for r in replies
    )
    print(f"five copies of one keyed registration at once: {dict(outcomes)}")
    assert outcomes[(201, "made")] == 1
    assert set(outcomes) <= {(201, "made"), (201, "replayed"), (409, "request_in_progress")}
    made = next(r for r in replies if r.status == 201 and REPLAYED not in r.headers)
    again = http.post(url, json=registration(username), headers=headers)
    assert (again.status_code, again.content) == (201, made.body)
    with sqlite3.connect(cluster.auth.primary.database) as conn:
        count = conn.execute("SELECT count(*) FROM users WHERE username = ?", (username,))
        assert count.fetchone()[0] == 1


def test_an_expired_key_is_a_new_key(cluster: Cluster):
    """A record older than 24 hours (made so here by moving its time back) is no record: the same
    request is made anew. Before that, the retry after a drop still says what the key did."""
    section = new_section(cluster, 97)
    first = enroll(cluster, 9405, section, "a-day-old")
    token = bearer(cluster.token(9405, "x9405", "student"))
    drop = http.delete(
        f"{cluster.enroll_gateway.url}/enroll_api/users/9405/enrollments/{section}", headers=token
    )
    assert drop.status_code == 200
    replay = enroll(cluster, 9405, section, "a-day-old")
    assert (replay.status_code, replay.content) == (201, first.content)
    assert places_held(cluster, section) == {}
    with sqlite3.connect(cluster.enrollment.db) as conn:
        conn.execute(
            "UPDATE idempotency_keys SET created_at = created_at - 86401"
            " WHERE caller = 'user:9405' AND key = 'a-day-old'"
        )
    anew = enroll(cluster, 9405, section, "a-day-old")
    assert anew.status_code == 201 and REPLAYED not in anew.headers
    assert anew.json()["id"] != first.json()["id"]
    assert places_held(cluster, section) == {9405: "enrolled"}
