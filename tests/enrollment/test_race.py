"""The registration-day race: three real uvicorn processes writing one SQLite file."""

import asyncio
import sqlite3
import time
from collections import Counter
from pathlib import Path

import pytest

from harness import http
from harness.enroll_cluster import EnrollmentCluster
from harness.invariants import violations
from harness.loadclient import Reply, burst
from tests.enrollment.helpers import (
    assert_rush_outcome,
    identity_headers,
    make_secret_file,
    served,
)

STUDENTS = 330
CAPACITY, WAITLIST = 30, 15


@pytest.fixture(
    scope="module", params=[False, True], ids=["a transaction a write", "a transaction a turn"]
)
def cluster(request, tmp_path_factory):
    """Three enrollment instances on free ports sharing one database file (harness), each
    started as the Procfile starts it; every race is run twice: each write its own transaction
    (the default), and the writes of a turn in one (ENROLL_ONE_TRANSACTION_A_TURN, each in a
    savepoint of its own: its outcome must be the same)."""
    var: Path = tmp_path_factory.mktemp("race")
    instances = EnrollmentCluster(var, make_secret_file(var))
    instances.env["ENROLL_ONE_TRANSACTION_A_TURN"] = "1" if request.param else "0"
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
    response = http.post(
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
    before = served(urls, "POST", "/users/{user_id}/enrollments")
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
    waitlist = http.get(f"{urls[1]}/sections/{section}/waitlist", headers=registrar(secret)).json()
    outcomes = assert_rush_outcome(responses, waitlist, seats=CAPACITY, places=WAITLIST)
    after = served(urls, "POST", "/users/{user_id}/enrollments")
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)
    report(f"rush: {STUDENTS} enrolls at once over 3 instances in {wall:.2f} s -> {outcomes}")

    state = section_state(cluster["db"], section)
    assert len(state["enrolled"]) == CAPACITY
    assert len(state["waitlisted"]) == WAITLIST


def test_concurrent_drops_leaves_and_enrolls_keep_every_invariant(cluster):
    section = new_section(cluster, 72)
    urls, secret = cluster["urls"], cluster["secret"]
    first = range(6000, 6000 + CAPACITY + WAITLIST)
    for s in first:  # fill seats and waitlist one by one
        r = http.post(
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
    waitlist = http.get(f"{urls[2]}/sections/{section}/waitlist", headers=registrar(secret)).json()
    assert [e["position"] for e in waitlist] == list(range(1, WAITLIST + 1))
    assert [e["user_id"] for e in waitlist] == state["waitlisted"]


def test_a_rush_of_students_of_mixed_eligibility_gets_exactly_what_the_rules_allow(cluster):
    """330 at once on one section whose course needs a prerequisite: a third have a hold, a
    third lack the prerequisite, and of the eligible third, 5 hold a capacity permit."""
    urls, secret = cluster["urls"], cluster["secret"]
    boss = registrar(secret)
    course = http.post(urls[0] + "/courses", headers=boss, json={
        "department_id": 1, "code": "CPSC 491", "title": "Rules Rush", "credits": 3,
    }).json()["id"]  # fmt: skip
    assert http.put(f"{urls[0]}/courses/{course}/prerequisites", headers=boss,
                     json={"course_ids": [1]}).status_code == 200  # fmt: skip
    section = http.post(urls[0] + "/sections", headers=boss, json={
        "course_id": course, "section_number": 1, "capacity": CAPACITY,
        "waitlist_capacity": WAITLIST,
    }).json()["id"]  # fmt: skip
    students = list(range(8000, 8000 + STUDENTS))
    held, unprepared, eligible = students[0::3], students[1::3], students[2::3]
    permitted = eligible[:5]
    # The setup goes at once too (one by one it took 8 of this test's 11 s): every student is
    # known here (as the auth service announces accounts), then the holds and the permits.
    known, _ = fire([
        ("PUT", f"{urls[i % 3]}/internal/users/{s}", {"X-Gateway-Secret": secret}, {
            "username": f"racer{s}", "first_name": "R", "last_name": str(s), "roles": ["student"],
        }) for i, s in enumerate(students)
    ])  # fmt: skip
    assert {r.status for r in known} == {204}, {r.status for r in known}
    csv = "user_id,course_code\n" + "".join(f"{s},CPSC 131\n" for s in held + eligible)
    imported = http.post(urls[0] + "/completed-courses", content=csv,
                          headers={**boss, "Content-Type": "text/csv"})  # fmt: skip
    assert imported.json() == {"imported": len(held) + len(eligible)}
    placed, _ = fire(
        [("POST", f"{urls[i % 3]}/users/{s}/holds", boss, {"reason": "fees"})
         for i, s in enumerate(held)]
        + [("POST", f"{urls[2]}/sections/{section}/permits", boss,
            {"user_id": s, "waives": ["capacity"]}) for s in permitted]
    )  # fmt: skip
    assert {r.status for r in placed} == {201}, [r.body for r in placed if r.status != 201]

    requests = [
        ("POST", f"{urls[i % 3]}/users/{s}/enrollments", student(secret, s),
         {"section_id": section}) for i, s in enumerate(students)
    ]  # fmt: skip
    responses, wall = fire(requests)
    report(f"mixed-eligibility rush: {STUDENTS} enrolls at once in {wall:.2f} s")

    assert_no_server_errors(cluster, responses)
    outcome = {s: r for s, r in zip(students, responses, strict=True)}
    assert {outcome[s].json()["code"] for s in held} == {"hold"}
    assert {outcome[s].json()["code"] for s in unprepared} == {"prerequisite_missing"}
    assert {outcome[s].json()["status"] for s in permitted} == {"enrolled"}
    state = section_state(cluster["db"], section)
    regular_seated = [s for s in state["enrolled"] if s not in permitted]
    assert set(state["enrolled"]) | set(state["waitlisted"]) <= set(eligible)
    assert len(regular_seated) + len([s for s in permitted if s in state["enrolled"]]) >= CAPACITY
    assert len(regular_seated) <= CAPACITY and len(state["waitlisted"]) == WAITLIST
    rest = [s for s in eligible if s not in state["enrolled"] + state["waitlisted"]]
    assert {outcome[s].json()["code"] for s in rest} == {"waitlist_full"}
    assert violations(cluster["db"]) == []


def test_promotion_skips_held_heads_while_drops_race(cluster):
    """10 seated students drop at once; 3 of the 15 waiting have a hold since they joined: the
    10 seats go to the first 10 eligible in arrival order, the held keep their places."""
    urls, secret = cluster["urls"], cluster["secret"]
    section = new_section(cluster, 73)
    seated, waiting = list(range(9000, 9000 + CAPACITY)), list(range(9100, 9100 + WAITLIST))
    for s in seated + waiting:
        r = http.post(f"{urls[s % 3]}/users/{s}/enrollments", json={"section_id": section},
                       headers=student(secret, s))  # fmt: skip
        assert r.status_code == 201
    held = [waiting[0], waiting[2], waiting[4]]
    for s in held:
        http.post(f"{urls[0]}/users/{s}/holds", headers=registrar(secret),
                   json={"reason": "advising"}).raise_for_status()  # fmt: skip

    requests = [("DELETE", f"{urls[s % 3]}/users/{s}/enrollments/{section}", student(secret, s),
                 None) for s in seated[:10]]  # fmt: skip
    responses, _ = fire(requests)

    assert_no_server_errors(cluster, responses)
    promoted = [p["user_id"] for r in responses for p in r.json()["promoted"]]
    eligible = [s for s in waiting if s not in held]
    assert sorted(promoted) == sorted(eligible[:10])
    state = section_state(cluster["db"], section)
    assert state["waitlisted"] == [held[0], held[1], held[2], *eligible[10:]]
    waitlist = http.get(f"{urls[1]}/sections/{section}/waitlist",
                         headers=registrar(secret)).json()  # fmt: skip
    assert [e["position"] for e in waitlist] == list(range(1, len(state["waitlisted"]) + 1))
    assert violations(cluster["db"]) == []
