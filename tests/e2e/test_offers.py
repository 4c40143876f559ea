"""Seat offers end to end (issue 27), through the enroll gateway and its three enrollment
instances on one database: an offer accepted, declined, and left to expire with no request after
it (each instance's sweeper closes it and offers the seat to the next); accepts racing their
deadline and drops racing accepts, with every SPEC §2 invariant (harness/invariants.py, which
knows offers) holding afterwards and every answer matching the database."""

import random
import sqlite3
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import pytest

from harness import http
from harness.auth_cluster import wait_for
from harness.cluster import Cluster
from harness.invariants import violations
from tests.enrollment.helpers import PEOPLE

pytestmark = pytest.mark.e2e

REGISTRAR = 1
STUDENTS = list(range(11, 39))  # seed students holding no seat in course 5


@pytest.fixture(autouse=True)
def fresh(cluster: Cluster) -> None:
    cluster.reset()


def headers(cluster: Cluster, user_id: int) -> dict[str, str]:
    person = PEOPLE[user_id]
    return {
        "Authorization": f"Bearer {cluster.token(user_id, person['username'], *person['roles'])}"
    }


def url(cluster: Cluster) -> str:
    return cluster.enroll_gateway.url + "/enroll_api"


def offer_section(cluster: Cluster, *, capacity: int, claim_seconds: int, number: int) -> int:
    body = {
        "course_id": 5,
        "section_number": number,
        "capacity": capacity,
        "waitlist_capacity": 30,
        "waitlist_mode": "offer",
        "claim_seconds": claim_seconds,
    }
    reply = http.post(f"{url(cluster)}/sections", json=body, headers=headers(cluster, REGISTRAR))
    assert reply.status_code == 201, reply.text
    return reply.json()["id"]


def enroll(cluster: Cluster, user_id: int, section: int) -> dict:
    reply = http.post(
        f"{url(cluster)}/users/{user_id}/enrollments",
        json={"section_id": section},
        headers=headers(cluster, user_id),
    )
    assert reply.status_code == 201, reply.text
    return reply.json()


def open_offer(cluster: Cluster, user_id: int) -> dict | None:
    reply = http.get(
        f"{url(cluster)}/users/{user_id}/offers?status=open", headers=headers(cluster, user_id)
    )
    assert reply.status_code == 200, reply.text
    return reply.json()[0] if reply.json() else None


def rows(cluster: Cluster, sql: str, *params) -> list[tuple]:
    conn = sqlite3.connect(cluster.enrollment.db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def offers_in(cluster: Cluster, section: int) -> list[tuple[int, str]]:
    return rows(
        cluster, "SELECT user_id, status FROM seat_offers WHERE section_id = ? ORDER BY id", section
    )


def test_accepted_declined_and_expired_offers_through_the_gateway(cluster: Cluster):
    section = offer_section(cluster, capacity=1, claim_seconds=2, number=71)
    first, a, b, c = STUDENTS[:4]
    for student in (first, a, b, c):
        enroll(cluster, student, section)
    dropped = http.delete(
        f"{url(cluster)}/users/{first}/enrollments/{section}", headers=headers(cluster, first)
    )
    assert dropped.status_code == 200 and dropped.json()["promoted"] == []
    offer = open_offer(cluster, a)
    assert offer is not None and offer["section_id"] == section
    # a declines: b is offered the seat at once.
    declined = http.post(
        f"{url(cluster)}/users/{a}/offers/{offer['id']}/decline", headers=headers(cluster, a)
    )
    assert (declined.status_code, declined.json()["status"]) == (200, "declined")
    assert open_offer(cluster, b) is not None
    # b does nothing: with no request at all, b's offer expires after 2 s and c gets the seat's.
    passed = wait_for(lambda: len(offers_in(cluster, section)) == 3 or None, 10, interval=0.05)
    assert passed is not None, offers_in(cluster, section)
    assert offers_in(cluster, section) == [(a, "declined"), (b, "expired"), (c, "open")]
    offer = open_offer(cluster, c)
    accepted = http.post(
        f"{url(cluster)}/users/{c}/offers/{offer['id']}/accept", headers=headers(cluster, c)
    )
    assert (accepted.status_code, accepted.json()["status"]) == (200, "enrolled")
    assert rows(
        cluster,
        "SELECT user_id, status, drop_reason FROM enrollments WHERE section_id = ? ORDER BY id",
        section,
    ) == [
        (first, "dropped", "dropped"),
        (a, "dropped", "offer_declined"),
        (b, "dropped", "offer_expired"),
        (c, "enrolled", None),
    ]
    kinds = rows(
        cluster, "SELECT user_id, kind FROM notifications WHERE section_id = ? ORDER BY id", section
    )
    assert (b, "offered") in kinds and (b, "offer_expired") in kinds and (c, "offered") in kinds
    assert violations(cluster.enrollment.db) == []


def test_accepts_racing_their_deadline_and_drops_racing_accepts_keep_every_invariant(
    cluster: Cluster,
):
    """Ten seats freed at once are offered to the first ten in line, with a 2 s window. Each
    holder answers at a random moment around its deadline, on whichever instance the gateway
    picks, while the sweepers of all three instances expire what is due and offer those seats
    on; meanwhile students who accepted drop again. Every 200 is an enrollment in the database,
    every refusal an offer that had expired or closed, and no invariant breaks."""
    capacity, claim = 10, 2
    section = offer_section(cluster, capacity=capacity, claim_seconds=claim, number=72)
    holders, waiting = STUDENTS[:capacity], STUDENTS[capacity : capacity + 16]
    for student in holders + waiting:
        enroll(cluster, student, section)
    client = httpx.Client(timeout=30)
    answers: dict[int, list[tuple[str, int, str | None]]] = {}
    lock = threading.Lock()

    def note(student: int, what: str, reply: httpx.Response) -> None:
        code = reply.json().get("code") if reply.status_code >= 400 else None
        assert reply.status_code < 500, reply.text
        with lock:
            answers.setdefault(student, []).append((what, reply.status_code, code))

    def drop(student: int) -> None:
        reply = client.delete(
            f"{url(cluster)}/users/{student}/enrollments/{section}",
            headers=headers(cluster, student),
        )
        note(student, "drop", reply)

    def answer_when_offered(student: int, give_up: float) -> None:
        """Wait for an offer, then accept it at a random moment from 1.5 s before its
        deadline to 0.5 s after; one that accepted drops again half the time."""
        rng = random.Random(student)
        while time.monotonic() < give_up:
            offer = open_offer(cluster, student)
            if offer is None:
                time.sleep(0.1)
                continue
            deadline = datetime.strptime(offer["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
            left = deadline.replace(tzinfo=UTC).timestamp() - time.time()
            time.sleep(max(0.0, left + rng.uniform(-1.5, 0.5)))
            reply = client.post(
                f"{url(cluster)}/users/{student}/offers/{offer['id']}/accept",
                headers=headers(cluster, student),
            )
            note(student, "accept", reply)
            if reply.status_code == 200 and rng.random() < 0.5:
                drop(student)
            return

    give_up = time.monotonic() + 25
    with ThreadPoolExecutor(max_workers=len(holders) + len(waiting)) as pool:
        for student in holders:
            pool.submit(drop, student)  # ten seats freed at once: ten offers
        futures = [pool.submit(answer_when_offered, s, give_up) for s in waiting]
        for future in futures:
            future.result()
    client.close()

    # Every answer matches the database.
    final = dict(
        rows(
            cluster,
            "SELECT user_id, status || ':' || COALESCE(drop_reason, '') FROM enrollments"
            " WHERE section_id = ? AND id IN (SELECT MAX(id) FROM enrollments"
            " WHERE section_id = ? GROUP BY user_id)",
            section,
            section,
        )
    )
    outcomes: Counter[str] = Counter()
    for student, said in answers.items():
        accepts = [a for a in said if a[0] == "accept"]
        if not accepts:
            continue
        (_, status, code) = accepts[0]
        dropped_after = ("drop", 200, None) in said[said.index(accepts[0]) :]
        if status == 200:
            outcomes["accepted"] += 1
            assert final[student] == ("dropped:dropped" if dropped_after else "enrolled:"), said
        else:
            outcomes[code] += 1
            assert code in ("offer_expired", "offer_closed"), said
            assert final[student] == "dropped:offer_expired", (student, said, final[student])
    assert outcomes["accepted"] > 0 and sum(outcomes.values()) >= capacity, outcomes
    offer_rows = rows(
        cluster,
        "SELECT status, COUNT(*) FROM seat_offers WHERE section_id = ? GROUP BY status",
        section,
    )
    print(f"\noffers race: answers {dict(outcomes)}; offers by status {dict(offer_rows)}")
    # Whatever was still open when the students stopped answering runs out and is passed on;
    # then the sweepers have nothing left to do.
    settled = wait_for(
        lambda: (
            not rows(
                cluster,
                "SELECT 1 FROM seat_offers WHERE status = 'open' AND expires_at < strftime("
                "'%Y-%m-%dT%H:%M:%fZ', 'now', '-2 seconds')",
            )
            or None
        ),
        10,
        interval=0.1,
    )
    assert settled is not None, "an offer stayed open long past its deadline"
    assert violations(cluster.enrollment.db) == []
