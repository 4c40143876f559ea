"""Swap (SPEC §2 rule 11, issue 27) through the real enroll gateway in front of the three
enrollment instances: into an open seat (in B, A's seat to A's waitlist head), into a full section
with a full waitlist (refused, still in A), and 50 students swapping at once from A to a B with
fewer seats: exactly B's seats are swapped, every other student keeps their seat in A, A's
waitlist heads take the seats freed, and every invariant holds. (The route's role matrix is
tests/e2e/test_enroll_gateway.py's, which covers every route.)"""

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest

from app.enrollment.init_db import init_db
from harness.cluster import Cluster
from harness.db import copy_database
from harness.invariants import violations
from harness.loadclient import burst
from tests.enrollment.helpers import served

pytestmark = pytest.mark.e2e

PREFIX = "/enroll_api"
REGISTRAR = 1  # rhenderson, in the seed
SWAPPERS, SEATS_IN_B, WAITING_IN_A = 50, 12, 5


@pytest.fixture(scope="module")
def seed(tmp_path_factory) -> Path:
    """A pristine seeded enrollment database, to put the cluster's back to between cases."""
    path = tmp_path_factory.mktemp("seed") / "enroll.db"
    init_db(path)
    return path


@pytest.fixture
def api(cluster: Cluster, seed: Path):
    """The enroll gateway's API on the seed, as any user: `api(user_id, role).post(...)`."""
    copy_database(seed, cluster.enrollment.db)  # every case starts from the seed
    clients: list[httpx.Client] = []

    def as_(user_id: int, role: str = "student") -> httpx.Client:
        username = "rhenderson" if user_id == REGISTRAR else f"swapper{user_id}"
        token = cluster.token(user_id, username, role)
        client = httpx.Client(
            base_url=cluster.enroll_gateway.url + PREFIX,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        clients.append(client)
        return client

    yield as_
    for client in clients:
        client.close()


def new_section(api, number: int, capacity: int, waitlist_capacity: int) -> int:
    body = {"course_id": 4, "section_number": number, "instructor_id": 3,
            "capacity": capacity, "waitlist_capacity": waitlist_capacity}  # fmt: skip
    reply = api(REGISTRAR, "registrar").post("/sections", json=body)
    assert reply.status_code == 201, reply.text
    return reply.json()["id"]


def join(api, user_id: int, section_id: int) -> str:
    reply = api(user_id).post(f"/users/{user_id}/enrollments", json={"section_id": section_id})
    assert reply.status_code == 201, reply.text
    return reply.json()["status"]


def roster(api, section_id: int, status: str = "enrolled") -> list[int]:
    reply = api(REGISTRAR, "registrar").get(
        f"/sections/{section_id}/enrollments", params={"status": status, "limit": 500}
    )
    assert reply.status_code == 200, reply.text
    return [row["user_id"] for row in reply.json()]


def test_a_swap_into_an_open_seat_moves_the_student_and_promotes_the_head(api, cluster):
    a, b = new_section(api, 81, 1, 5), new_section(api, 82, 5, 5)
    assert [join(api, u, a) for u in (5000, 5001, 5002)] == ["enrolled", "waitlisted", "waitlisted"]
    body = {"drop_section_id": a, "add_section_id": b}
    reply = api(5000).post("/users/5000/swaps", json=body)
    assert reply.status_code == 200, reply.text
    assert reply.json()["dropped"]["drop_reason"] == "swapped"
    assert [p["user_id"] for p in reply.json()["promoted"]] == [5001]
    assert roster(api, b) == [5000] and roster(api, a) == [5001]
    assert roster(api, a, "waitlisted") == [5002]
    assert violations(cluster.enrollment.db) == []


def test_a_swap_into_a_full_section_with_a_full_waitlist_is_refused_and_keeps_the_seat(
    api, cluster
):
    a, full = new_section(api, 83, 5, 5), new_section(api, 84, 1, 1)
    join(api, 5000, a)
    join(api, 5001, full)
    join(api, 5002, full)
    body = {"drop_section_id": a, "add_section_id": full, "waitlist_ok": True}
    reply = api(5000).post("/users/5000/swaps", json=body)
    assert (reply.status_code, reply.json()["code"]) == (409, "waitlist_full"), reply.text
    assert roster(api, a) == [5000] and roster(api, full) == [5001]
    mine = api(5000).get("/users/5000/enrollments").json()
    assert [(e["section_id"], e["status"]) for e in mine] == [(a, "enrolled")]


def test_fifty_students_swapping_at_once_get_exactly_the_seats_there_are(api, cluster):
    a = new_section(api, 85, SWAPPERS, WAITING_IN_A)
    b = new_section(api, 86, SEATS_IN_B, 3)  # room to wait, but the swaps do not accept it
    swappers = list(range(5000, 5000 + SWAPPERS))
    waiting = list(range(5100, 5100 + WAITING_IN_A))
    for user_id in swappers:
        assert join(api, user_id, a) == "enrolled"
    for user_id in waiting:  # in this order: the heads of A's waitlist
        assert join(api, user_id, a) == "waitlisted"
    url = cluster.enroll_gateway.url + PREFIX
    requests = [
        (
            "POST",
            f"{url}/users/{s}/swaps",
            {"Authorization": f"Bearer {cluster.token(s, f'swapper{s}', 'student')}"},
            {"drop_section_id": a, "add_section_id": b},
        )
        for s in swappers
    ]

    before = served(cluster.enrollment.urls, "POST", "/users/{user_id}/swaps")
    replies = asyncio.run(burst(requests))
    after = served(cluster.enrollment.urls, "POST", "/users/{user_id}/swaps")

    assert not [r.status for r in replies if r.status >= 500], "a request failed with a 5xx"
    outcomes = Counter(r.status if r.status != 409 else r.json()["code"] for r in replies)
    assert outcomes == {200: SEATS_IN_B, "no_seat_free": SWAPPERS - SEATS_IN_B}
    swapped = {s for s, r in zip(swappers, replies, strict=True) if r.status == 200}
    stayed = set(swappers) - swapped
    assert set(roster(api, b)) == swapped and roster(api, b, "waitlisted") == []
    # The seats freed in A went to its waitlist in order; those not needed by it stay free.
    promoted = [p["user_id"] for r in replies if r.status == 200 for p in r.json()["promoted"]]
    assert sorted(promoted) == waiting
    in_a = (
        api(REGISTRAR, "registrar")
        .get(f"/sections/{a}/enrollments", params={"status": "enrolled", "limit": 500})
        .json()
    )
    promoted_in_order = [e["user_id"] for e in sorted(in_a, key=lambda e: e["enrolled_at"])]
    assert promoted_in_order[-WAITING_IN_A:] == waiting
    assert set(roster(api, a)) == stayed | set(waiting)
    assert roster(api, a, "waitlisted") == []
    dropped = (
        api(REGISTRAR, "registrar")
        .get(f"/sections/{a}/enrollments", params={"status": "dropped", "limit": 500})
        .json()
    )
    assert {(e["user_id"], e["drop_reason"]) for e in dropped} == {(s, "swapped") for s in swapped}
    assert violations(cluster.enrollment.db) == []
    assert all(x > y for x, y in zip(after, before, strict=True)), (before, after)  # all three
