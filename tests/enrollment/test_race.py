"""The registration-day race: three real uvicorn processes writing one SQLite file."""

import asyncio
import sqlite3
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from harness.enroll_cluster import EnrollmentCluster
from harness.loadclient import Reply, burst
from tests.enrollment.helpers import assert_rush_outcome, identity_headers, make_secret_file

STUDENTS = 330
CAPACITY, WAITLIST = 30, 15


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Three enrollment instances on free ports sharing one database file (harness), each
    started as the Procfile starts it."""
    var: Path = tmp_path_factory.mktemp("race")
    instances = EnrollmentCluster(var, make_secret_file(var))
    try:
        instances.start()
        yield {
            "urls": instances.urls,
            "secret": instances.secret,
            "db": instances.db,
            "logs": [instances.log(i) for i in range(3)],
        }
    finally:
        instances.stop()


def registrar(secret: str) -> dict[str, str]:
    return identity_headers(secret, 1, "rhenderson", "registrar")


def student(secret: str, user_id: int) -> dict[str, str]:
    return identity_headers(secret, user_id, f"racer{user_id}", "student")


def new_section(cluster, number: int) -> int:
    body = {
        "course_id": 4,
        "section_number": number,
        "instructor_id": 3,
        "capacity": CAPACITY,
        "waitlist_capacity": WAITLIST,
    }
    response = httpx.post(
        cluster["urls"][0] + "/sections", json=body, headers=registrar(cluster["secret"])
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def fire(requests: list[tuple[str, str, dict, dict | None]]) -> tuple[list[Reply], float]:
    """Send every request at the same moment, each on its own connection; return the replies
    and the wall time from the start signal to the last reply."""
    started = time.monotonic()
    replies = asyncio.run(burst([(m, url, headers, body) for m, url, headers, body in requests]))
    return replies, time.monotonic() - started


def report(line: str) -> None:
    """Figures for the closing note, shown in the test summary (pytest -rA) and saved."""
    print(line)


def section_state(db_path: Path, section_id: int) -> dict:
    conn = sqlite3.connect(db_path)
    try:
        rows = conn.execute(
            "SELECT user_id, status FROM enrollments WHERE section_id = ? ORDER BY id",
            (section_id,),
        ).fetchall()
        capacity, frozen = conn.execute(
            "SELECT capacity, frozen FROM sections WHERE id = ?", (section_id,)
        ).fetchone()
    finally:
        conn.close()
    return {
        "enrolled": [u for u, s in rows if s == "enrolled"],
        "waitlisted": [u for u, s in rows if s == "waitlisted"],
        "capacity": capacity,
        "frozen": frozen,
    }


def assert_no_server_errors(cluster, responses) -> None:
    assert not [r for r in responses if r.status >= 500], "a request failed with a 5xx"
    for log in cluster["logs"]:
        text = log.read_text()
        assert "database is locked" not in text
        assert "Traceback" not in text


def test_rush_of_330_students_on_one_section_over_three_instances(cluster):
    section = new_section(cluster, 71)
    urls, secret = cluster["urls"], cluster["secret"]
    students = range(5000, 5000 + STUDENTS)
    requests = [
        (
            "POST",
            f"{urls[i % 3]}/users/{s}/enrollments",
            student(secret, s),
            {"section_id": section},
        )
        for i, s in enumerate(students)
    ]
    responses, wall = fire(requests)

    assert_no_server_errors(cluster, responses)
    waitlist = httpx.get(f"{urls[1]}/sections/{section}/waitlist", headers=registrar(secret)).json()
    outcomes = assert_rush_outcome(responses, waitlist, seats=CAPACITY, places=WAITLIST)
    report(f"rush: {STUDENTS} enrolls at once over 3 instances in {wall:.2f} s -> {outcomes}")

    state = section_state(cluster["db"], section)
    assert len(state["enrolled"]) == CAPACITY
    assert len(state["waitlisted"]) == WAITLIST


def test_concurrent_drops_leaves_and_enrolls_keep_every_invariant(cluster):
    section = new_section(cluster, 72)
    urls, secret = cluster["urls"], cluster["secret"]
    first = range(6000, 6000 + CAPACITY + WAITLIST)
    for s in first:  # fill seats and waitlist one by one
        r = httpx.post(
            f"{urls[s % 3]}/users/{s}/enrollments",
            json={"section_id": section},
            headers=student(secret, s),
        )
        assert r.status_code == 201
    seated, waiting = list(first)[:CAPACITY], list(first)[CAPACITY:]
    newcomers = range(7000, 7060)
    # 5 seated students drop (each promotes the waitlist head), the last 5 on the waitlist
    # leave, and 60 newcomers try to enroll, all at the same moment.
    requests = (
        [("DELETE", f"{urls[s % 3]}/users/{s}/enrollments/{section}", student(secret, s), None)
         for s in seated[:5]]
        + [("DELETE", f"{urls[s % 3]}/users/{s}/waitlist/{section}", student(secret, s), None)
           for s in waiting[10:]]
        + [("POST", f"{urls[s % 3]}/users/{s}/enrollments", student(secret, s),
            {"section_id": section}) for s in newcomers]
    )  # fmt: skip
    responses, wall = fire(requests)
    report(f"drop/leave/enroll race: {len(requests)} requests at once in {wall:.2f} s")

    assert_no_server_errors(cluster, responses)
    assert [r.status for r in responses[:10]] == [200] * 10
    promoted = [p["user_id"] for r in responses[:5] for p in r.json()["promoted"]]
    assert sorted(promoted) == waiting[:5]  # each drop seated the head, in arrival order
    enrolls = responses[10:]
    assert Counter(r.json()["status"] if r.status == 201 else r.status for r in enrolls) == {
        "waitlisted": 10,  # the 5 places left by leavers and the 5 by promotions
        409: 50,
    }
    assert all(r.json()["code"] == "waitlist_full" for r in enrolls if r.status == 409)

    state = section_state(cluster["db"], section)
    assert sorted(state["enrolled"]) == sorted(seated[5:] + waiting[:5])
    assert len(state["waitlisted"]) == WAITLIST
    assert state["waitlisted"][:5] == waiting[5:10]  # earlier arrivals stay ahead
    waitlist = httpx.get(f"{urls[2]}/sections/{section}/waitlist", headers=registrar(secret)).json()
    assert [e["position"] for e in waitlist] == list(range(1, WAITLIST + 1))
    assert [e["user_id"] for e in waitlist] == state["waitlisted"]
