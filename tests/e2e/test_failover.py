"""An enrollment instance killed during a rush, through the real gateway: only the requests that
process was answering at that moment fail; connections made while it restarts wait on the socket
bin/enrollment holds and are answered by its successor; nothing is applied twice; a failed
request retried gets its outcome or a clear 409."""

import asyncio
import os
import signal
from collections import Counter

import httpx
import pytest

from harness.cluster import Cluster
from harness.db import copy_database
from harness.invariants import violations
from harness.loadclient import Reply, fetch

pytestmark = pytest.mark.e2e

STUDENTS, RATE = 300, 300.0  # arriving over one second, as students do, not all in one instant
SEATS, PLACES = 30, 15


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def paced(requests: list[tuple], rate: float, at_ms: float, action) -> list[Reply | None]:
    """Send each (method, url, headers, body) at its own moment, `rate` a second, each on its own
    connection; call `action` `at_ms` milliseconds in. A request whose connection fails is None."""

    async def one(i: int, request: tuple) -> Reply | None:
        await asyncio.sleep(i / rate)
        try:
            return await fetch(*request)
        except (OSError, asyncio.IncompleteReadError):
            return None

    async def trigger() -> None:
        await asyncio.sleep(at_ms / 1000)
        action()

    results = await asyncio.gather(trigger(), *(one(i, r) for i, r in enumerate(requests)))
    return list(results[1:])


def test_an_instance_killed_mid_rush_costs_only_its_requests_in_flight(cluster: Cluster, tmp_path):
    seed = tmp_path / "seed.db"
    copy_database(cluster.enrollment.db, seed)
    url = cluster.enroll_gateway.url + "/enroll_api"
    registrar = bearer(cluster.token(1, "rhenderson", "registrar"))
    body = {"course_id": 4, "section_number": 81, "instructor_id": 3, "capacity": SEATS,
            "waitlist_capacity": PLACES}  # fmt: skip
    section = httpx.post(url + "/sections", json=body, headers=registrar).json()["id"]
    students = range(8000, 8000 + STUDENTS)
    requests = [
        ("POST", f"{url}/users/{s}/enrollments", bearer(cluster.token(s, f"s{s}", "student")),
         {"section_id": section})
        for s in students
    ]  # fmt: skip
    victim = cluster.enrollment.serving_pid(1)
    assert victim is not None

    replies = asyncio.run(
        paced(requests, RATE, at_ms=50, action=lambda: os.kill(victim, signal.SIGKILL))
    )

    failed = [s for s, r in zip(students, replies, strict=True) if r is None or r.status >= 500]
    statuses = Counter("failed" if r is None else r.status for r in replies)
    print(f"kill -9 of one instance 50 ms into {STUDENTS} enrolls at {RATE:.0f}/s: {statuses}")
    assert len(failed) <= 0.02 * STUDENTS, statuses
    assert {r.status for r in replies if r is not None} <= {201, 409, 500}
    assert cluster.enrollment.serving_pid(1) not in (None, victim), "not restarted"
    assert not violations(cluster.enrollment.db)

    # A client retries what failed: each gets its outcome, or a clear 409 if it had been applied.
    retried = [
        httpx.post(f"{url}/users/{s}/enrollments", json={"section_id": section},
                   headers=bearer(cluster.token(s, f"s{s}", "student")), timeout=30)
        for s in failed
    ]  # fmt: skip
    assert all(r.status_code in (201, 409) for r in retried), [r.text for r in retried]
    refusals = {r.json()["code"] for r in retried if r.status_code == 409}
    assert refusals <= {"already_enrolled", "already_waitlisted", "waitlist_full"}
    waitlist = httpx.get(f"{url}/sections/{section}/waitlist", headers=registrar).json()
    seated = httpx.get(f"{url}/sections/{section}", headers=registrar).json()
    assert seated["enrolled"] == SEATS
    assert [e["position"] for e in waitlist] == list(range(1, PLACES + 1))
    assert not violations(cluster.enrollment.db)
    copy_database(seed, cluster.enrollment.db)
