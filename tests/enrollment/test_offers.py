"""Seat offers with a claim window (issue 27): a section in `offer` mode holds a freed seat for
the head of its waitlist, who accepts or declines it; unanswered, it expires by itself and the
next in line is offered the seat."""

import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.common.db import connect, immediate
from app.enrollment.init_db import init_db
from app.enrollment.main import create_app
from app.enrollment.offers.service import expire_due
from app.enrollment.settings import Settings
from harness.invariants import violations
from tests.enrollment.helpers import KAVERY, REGISTRAR, Api, make_secret_file, person
from tests.enrollment.test_rules import enroll, enrolled, fill, new_section, waitlist


@pytest.fixture
def slow_clock(tmp_path: Path) -> Iterator[Api]:
    """`api` whose offer sweeper ticks once a minute: the test expires offers itself."""
    db_path = tmp_path / "enroll.db"
    init_db(db_path)
    secret_file = make_secret_file(tmp_path)
    settings = Settings(
        database=db_path, gateway_secret_file=secret_file, instance="t", offer_sweep_seconds=60
    )
    with TestClient(create_app(settings)) as client:
        yield Api(client, secret_file.read_text(), db_path)


def offer_section(api, *, capacity: int = 1, claim_seconds: int = 600, **more) -> int:
    section = new_section(api, capacity=capacity)
    change = {"waitlist_mode": "offer", "claim_seconds": claim_seconds, **more}
    reply = api.as_(REGISTRAR).patch(f"/sections/{section}", json=change)
    assert reply.status_code == 200, reply.text
    assert reply.json()["section"]["waitlist_mode"] == "offer"
    return section


def drop(api, user_id: int, section: int):
    reply = api.as_(person(user_id)).delete(f"/users/{user_id}/enrollments/{section}")
    assert reply.status_code == 200, reply.text
    return reply.json()


def offers(api, user_id: int, status: str | None = None) -> list[dict]:
    query = f"?status={status}" if status else ""
    reply = api.as_(person(user_id)).get(f"/users/{user_id}/offers{query}")
    assert reply.status_code == 200, reply.text
    return reply.json()


def answer(api, user_id: int, offer_id: int, verb: str):
    return api.as_(person(user_id)).post(f"/users/{user_id}/offers/{offer_id}/{verb}")


def section(api, section_id: int) -> dict:
    return api.as_(REGISTRAR).get(f"/sections/{section_id}").json()


def kinds(api, user_id: int) -> list[str]:
    return [
        n["kind"] for n in api.as_(person(user_id)).get(f"/users/{user_id}/notifications").json()
    ]


def expire_now(api, offer_id: int) -> None:
    """Move an offer's deadline into the past (as if its window had run out)."""
    with api.db() as conn:
        past = (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        conn.execute("UPDATE seat_offers SET expires_at = ? WHERE id = ?", (past, offer_id))


def run_sweep(api) -> int:
    conn = connect(api.db_path)
    try:
        with immediate(conn) as tx:
            return expire_due(tx)
    finally:
        conn.close()


def test_a_freed_seat_is_held_for_the_head_who_is_told_the_deadline(api):
    s = offer_section(api, claim_seconds=3600)
    fill(api, s, [9, 10, 11])  # 9 enrolled, 10 and 11 waiting
    before = datetime.now(UTC)
    reply = drop(api, 9, s)
    assert reply["promoted"] == []  # nobody enrolled: the seat is offered instead
    (offer,) = offers(api, 10)
    assert offer["status"] == "open" and offer["section_id"] == s
    deadline = datetime.strptime(offer["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert timedelta(seconds=3590) < deadline - before < timedelta(seconds=3610)
    assert waitlist(api, s) == [(1, 10), (2, 11)]  # still first in line while it is open
    held = section(api, s)
    assert (held["enrolled"], held["offered"], held["seats_available"]) == (0, 1, 0)
    # The held seat is in use: a newcomer waits behind, rather than taking it.
    assert enroll(api, 12, s).json()["status"] == "waitlisted"
    mail = api.as_(person(10)).get("/users/10/notifications").json()[0]
    assert mail["kind"] == "offered" and offer["expires_at"] in mail["subject"]
    assert offers(api, 11) == []
    assert violations(api.db_path) == []


def test_accepting_enrolls_and_an_offer_is_answered_once(api):
    s = offer_section(api)
    fill(api, s, [9, 10])
    drop(api, 9, s)
    (offer,) = offers(api, 10)
    reply = answer(api, 10, offer["id"], "accept")
    assert reply.status_code == 200, reply.text
    assert (reply.json()["status"], reply.json()["user_id"]) == ("enrolled", 10)
    assert enrolled(api, s) == [10] and waitlist(api, s) == []
    assert offers(api, 10)[0]["status"] == "accepted"
    assert kinds(api, 10)[:2] == ["enrolled", "offered"]
    again = answer(api, 10, offer["id"], "accept")
    assert (again.status_code, again.json()["code"]) == (409, "offer_closed")
    assert "accepted" in again.json()["detail"]
    late = answer(api, 10, offer["id"], "decline")
    assert (late.status_code, late.json()["code"]) == (409, "offer_closed")
    assert violations(api.db_path) == []


def test_declining_leaves_the_waitlist_and_the_next_is_offered_the_seat(api):
    s = offer_section(api)
    fill(api, s, [9, 10, 11])
    drop(api, 9, s)
    (offer,) = offers(api, 10)
    reply = answer(api, 10, offer["id"], "decline")
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "declined"
    assert waitlist(api, s) == [(1, 11)]
    (next_offer,) = offers(api, 11, "open")
    assert next_offer["section_id"] == s
    rows = api.as_(REGISTRAR).get(f"/sections/{s}/enrollments?status=dropped").json()
    assert [(r["user_id"], r["drop_reason"]) for r in rows] == [
        (9, "dropped"),
        (10, "offer_declined"),
    ]
    assert violations(api.db_path) == []


def test_an_unanswered_offer_expires_by_itself_and_passes_to_the_next(api):
    """No request after the drop: the instance's sweeper closes the offer after its window."""
    s = offer_section(api, claim_seconds=1)
    fill(api, s, [9, 10, 11])
    drop(api, 9, s)
    deadline = time.monotonic() + 10
    conn = sqlite3.connect(api.db_path)
    try:
        while time.monotonic() < deadline:
            found = conn.execute(
                "SELECT user_id, status FROM seat_offers WHERE section_id = ? ORDER BY id", (s,)
            ).fetchall()
            if len(found) == 2:
                break
            time.sleep(0.1)
    finally:
        conn.close()
    assert found[0] == (10, "expired") and found[1][0] == 11, found
    assert waitlist(api, s) == [(1, 11)]
    rows = api.as_(REGISTRAR).get(f"/sections/{s}/enrollments?status=dropped").json()
    assert (10, "offer_expired") in [(r["user_id"], r["drop_reason"]) for r in rows]
    assert "offer_expired" in kinds(api, 10)
    audit = api.as_(REGISTRAR).get(f"/audit?section_id={s}").json()
    assert "offer.expire" in [a["action"] for a in audit]


def test_an_offer_past_its_deadline_is_refused_before_the_sweeper_closes_it(slow_clock):
    api = slow_clock
    s = offer_section(api)
    fill(api, s, [9, 10, 11])
    drop(api, 9, s)
    (offer,) = offers(api, 10)
    expire_now(api, offer["id"])
    reply = answer(api, 10, offer["id"], "accept")
    assert (reply.status_code, reply.json()["code"]) == (409, "offer_expired")
    assert enrolled(api, s) == []
    assert run_sweep(api) == 1
    assert offers(api, 10)[0]["status"] == "expired"
    assert offers(api, 11, "open")[0]["section_id"] == s
    assert run_sweep(api) == 0  # nothing twice
    assert violations(api.db_path) == []


def test_freeze_stops_offers_and_unfreeze_offers_every_free_seat_in_order(api):
    s = offer_section(api, capacity=2)
    fill(api, s, [9, 10, 11, 12, 13])
    api.as_(REGISTRAR).patch(f"/sections/{s}", json={"freeze": True})
    drop(api, 9, s)
    drop(api, 10, s)
    assert [offers(api, u) for u in (11, 12, 13)] == [[], [], []]
    reply = api.as_(REGISTRAR).patch(f"/sections/{s}", json={"freeze": False})
    assert reply.json()["section"]["offered"] == 2
    assert [len(offers(api, u, "open")) for u in (11, 12, 13)] == [1, 1, 0]
    assert violations(api.db_path) == []


def test_a_student_the_rules_refuse_is_passed_over_for_the_offer(api):
    s = offer_section(api)
    fill(api, s, [9, 10, 11])
    api.as_(REGISTRAR).post("/users/10/holds", json={"reason": "unpaid fees"})
    drop(api, 9, s)
    assert offers(api, 10) == []
    assert len(offers(api, 11, "open")) == 1
    audit = api.as_(REGISTRAR).get(f"/audit?section_id={s}").json()
    assert [a["user_id"] for a in audit if a["action"] == "waitlist.skip"] == [10]


def test_a_rule_that_now_refuses_the_seat_keeps_the_offer_open(api):
    s = offer_section(api)
    fill(api, s, [9, 10])
    drop(api, 9, s)
    (offer,) = offers(api, 10)
    hold = api.as_(REGISTRAR).post("/users/10/holds", json={"reason": "library fine"}).json()
    reply = answer(api, 10, offer["id"], "accept")
    assert (reply.status_code, reply.json()["code"]) == (409, "hold")
    assert offers(api, 10)[0]["status"] == "open"
    api.as_(REGISTRAR).delete(f"/users/10/holds/{hold['id']}")
    assert answer(api, 10, offer["id"], "accept").status_code == 200


@pytest.mark.parametrize("how", ["leave", "administrative", "section_deleted"])
def test_a_place_that_ends_otherwise_withdraws_its_offer(api, how):
    s = offer_section(api)
    fill(api, s, [9, 10, 11])
    drop(api, 9, s)
    (offer,) = offers(api, 10)
    if how == "leave":
        reply = api.as_(person(10)).delete(f"/users/10/waitlist/{s}")
    elif how == "administrative":
        reply = api.as_(KAVERY).delete(f"/sections/{s}/enrollments/10")
    else:
        reply = api.as_(REGISTRAR).delete(f"/sections/{s}")
    assert reply.status_code in (200, 204), reply.text
    assert offers(api, 10)[0]["status"] == "withdrawn"
    refused = answer(api, 10, offer["id"], "accept")
    assert (refused.status_code, refused.json()["code"]) == (409, "offer_closed")
    if how != "section_deleted":  # the held seat goes on to the next in line
        assert len(offers(api, 11, "open")) == 1
    else:
        assert offers(api, 11) == []
    assert violations(api.db_path) == []


def test_capacity_may_not_shrink_below_the_seats_taken_and_held(api):
    s = offer_section(api, capacity=2)
    fill(api, s, [9, 10, 11])
    drop(api, 9, s)  # 10 enrolled, 11 holds an offer
    reply = api.as_(REGISTRAR).patch(f"/sections/{s}", json={"capacity": 1})
    assert (reply.status_code, reply.json()["code"]) == (409, "capacity_below_enrollment")
    assert "holding offers" in reply.json()["detail"]


def test_switching_back_to_auto_enrolls_from_the_waitlist_again(api):
    s = offer_section(api, capacity=2)
    fill(api, s, [9, 10, 11, 12])
    api.as_(REGISTRAR).patch(f"/sections/{s}", json={"waitlist_mode": "auto"})
    reply = drop(api, 9, s)
    assert [p["user_id"] for p in reply["promoted"]] == [11]
    assert offers(api, 11) == []


def test_an_offer_is_its_owners_and_the_registrars(api):
    s = offer_section(api)
    fill(api, s, [9, 10])
    drop(api, 9, s)
    (offer,) = offers(api, 10)
    other = api.as_(person(11)).post(f"/users/10/offers/{offer['id']}/accept")
    assert (other.status_code, other.json()["code"]) == (403, "forbidden")
    not_theirs = api.as_(person(11)).post(f"/users/11/offers/{offer['id']}/accept")
    assert (not_theirs.status_code, not_theirs.json()["code"]) == (404, "not_found")
    assert api.as_(person(11)).get("/users/10/offers").status_code == 403
    assert api.as_(REGISTRAR).get("/users/10/offers").json()[0]["id"] == offer["id"]
    by_registrar = api.as_(REGISTRAR).post(f"/users/10/offers/{offer['id']}/accept")
    assert by_registrar.status_code == 200 and by_registrar.json()["status"] == "enrolled"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"waitlist_mode": "sometimes"}, "waitlist_mode"),
        ({"waitlist_mode": 1}, "waitlist_mode"),
        ({"claim_seconds": 0}, "claim_seconds"),
        ({"claim_seconds": 14 * 86400 + 1}, "claim_seconds"),
        ({"claim_seconds": "soon"}, "claim_seconds"),
        ({"claim_seconds": 1.5}, "claim_seconds"),
    ],
)
def test_a_bad_waitlist_mode_or_claim_window_is_422_naming_the_field(api, change, field):
    s = new_section(api, capacity=1)
    before = api.dump()
    reply = api.as_(REGISTRAR).patch(f"/sections/{s}", json=change)
    assert reply.status_code == 422, reply.text
    assert field in str(reply.json()["detail"])
    assert api.dump() == before


def test_a_section_can_be_created_in_offer_mode(api):
    body = {
        "course_id": 5,
        "section_number": 60,
        "capacity": 1,
        "waitlist_mode": "offer",
        "claim_seconds": 7200,
    }
    reply = api.as_(REGISTRAR).post("/sections", json=body)
    assert reply.status_code == 201, reply.text
    assert (reply.json()["waitlist_mode"], reply.json()["claim_seconds"]) == ("offer", 7200)
    bad = api.as_(REGISTRAR).post(
        "/sections", json={**body, "section_number": 61, "claim_seconds": -5}
    )
    assert bad.status_code == 422 and "claim_seconds" in str(bad.json()["detail"])


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/users/10/offers/0/accept", "offer_id"),
        ("/users/10/offers/abc/decline", "offer_id"),
        ("/users/0/offers/1/accept", "user_id"),
        ("/users/10/offers?status=pending", "status"),
        ("/users/10/offers?limit=0", "limit"),
    ],
)
def test_bad_offer_paths_and_queries_are_422_naming_the_field(api, url, field):
    method = "GET" if "?" in url else "POST"
    reply = api.as_(person(10)).request(method, url)
    assert reply.status_code == 422, reply.text
    assert field in str(reply.json()["detail"])
