"""Swap, a conditional drop and add (SPEC §2 rule 11, issue 27): the add and the drop in one
transaction, or neither; the answer is the add's outcome or its refusal. The eligibility rules
see the section given up as dropped; its seat goes to its waitlist as a drop's does."""

import pytest

from tests.enrollment.helpers import KAVERY, REGISTRAR, person
from tests.enrollment.test_eligibility import moment, new_term
from tests.enrollment.test_rules import enrolled, fill, waitlist

MEETS = [{"days": "MW", "start": "10:00", "end": "11:15"}]


def section(api, number: int, capacity: int, waitlist_capacity: int = 15, **extra) -> int:
    """A new section of CPSC 474 (course 5, 3 credits) taught by kavery."""
    body = {"course_id": 5, "section_number": number, "instructor_id": 3,
            "capacity": capacity, "waitlist_capacity": waitlist_capacity, **extra}  # fmt: skip
    reply = api.as_(REGISTRAR).post("/sections", json=body)
    assert reply.status_code == 201, reply.text
    return reply.json()["id"]


def swap(api, user_id: int, drop: int, add: int, who: tuple | None = None, **extra):
    body = {"drop_section_id": drop, "add_section_id": add, **extra}
    return api.as_(who or person(user_id)).post(f"/users/{user_id}/swaps", json=body)


def refused(reply, status: int, code: str) -> str:
    assert (reply.status_code, reply.json()["code"]) == (status, code), reply.text
    return reply.json()["detail"]


def notifications(api, user_id: int) -> list[tuple[str, int]]:
    """(kind, section_id) of a user's notifications, oldest first."""
    reply = api.as_(REGISTRAR).get(f"/users/{user_id}/notifications")
    return [(n["kind"], n["section_id"]) for n in reversed(reply.json())]


@pytest.fixture
def old_and_new(api) -> tuple[int, int]:
    """Section A (one seat, student 30's, students 31 and 32 waiting) and section B (open)."""
    a, b = section(api, 71, capacity=1), section(api, 72, capacity=5)
    fill(api, a, [30, 31, 32])
    return a, b


# the swap made


def test_a_swap_into_an_open_seat_moves_the_student_and_the_old_seat_to_its_waitlist(
    api, old_and_new
):
    a, b = old_and_new
    reply = swap(api, 30, a, b)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert (answer["dropped"]["section_id"], answer["dropped"]["status"]) == (a, "dropped")
    assert answer["dropped"]["drop_reason"] == "swapped"
    assert (answer["added"]["section_id"], answer["added"]["status"]) == (b, "enrolled")
    assert [p["user_id"] for p in answer["promoted"]] == [31]
    assert enrolled(api, a) == [31] and waitlist(api, a) == [(1, 32)]
    assert enrolled(api, b) == [30]
    # One notification of the swap, not an enroll's and a drop's; the promoted head's as usual.
    assert notifications(api, 30)[-1] == ("swapped", b)
    assert [kind for kind, _ in notifications(api, 30)].count("enrolled") == 1  # A's, earlier
    assert notifications(api, 31)[-1] == ("promoted", a)


def test_a_swap_with_waitlist_ok_into_a_full_section_waits_there_and_gives_up_the_seat(
    api, old_and_new
):
    a, _ = old_and_new
    full = section(api, 73, capacity=1)
    fill(api, full, [33, 34])
    reply = swap(api, 30, a, full, waitlist_ok=True)
    assert reply.status_code == 200, reply.text
    added = reply.json()["added"]
    assert (added["status"], added["position"]) == ("waitlisted", 2)
    assert waitlist(api, full) == [(1, 34), (2, 30)]
    assert enrolled(api, a) == [31]
    [note] = api.as_(person(30)).get("/users/30/notifications", params={"limit": 1}).json()
    assert note["kind"] == "swapped" and "position 2" in note["subject"]


def test_a_swap_out_of_a_frozen_section_promotes_nobody(api, old_and_new):
    a, b = old_and_new
    api.as_(REGISTRAR).patch(f"/sections/{a}", json={"freeze": True})
    reply = swap(api, 30, a, b)
    assert reply.status_code == 200 and reply.json()["promoted"] == []
    assert enrolled(api, a) == [] and waitlist(api, a) == [(1, 31), (2, 32)]


def test_a_time_conflict_only_with_the_section_given_up_does_not_refuse_the_swap(api):
    a = section(api, 74, capacity=5, meetings=MEETS)
    b = section(api, 75, capacity=5, meetings=[{"days": "W", "start": "11:00", "end": "12:00"}])
    fill(api, a, [33])
    refused(api.as_(person(33)).post("/users/33/enrollments", json={"section_id": b}), 409,
            "time_conflict")  # fmt: skip
    assert swap(api, 33, a, b).status_code == 200
    assert enrolled(api, b) == [33]


def test_the_credit_limit_counts_the_section_given_up_as_dropped(api):
    a, b = section(api, 76, capacity=5), section(api, 77, capacity=5)
    api.as_(REGISTRAR).put("/users/34/credit-limit", json={"credit_limit": 3})
    fill(api, a, [34])
    refused(api.as_(person(34)).post("/users/34/enrollments", json={"section_id": b}), 409,
            "credit_limit")  # fmt: skip
    assert swap(api, 34, a, b).status_code == 200


def test_the_registrar_swaps_on_a_student_s_behalf_and_it_is_audited(api, old_and_new):
    a, b = old_and_new
    assert swap(api, 30, a, b, who=REGISTRAR).status_code == 200
    [entry] = api.as_(REGISTRAR).get("/audit", params={"action": "enrollment.swap"}).json()
    assert (entry["actor_id"], entry["section_id"], entry["user_id"]) == (1, b, 30)
    assert entry["details"] == {
        "dropped_section_id": a,
        "added_section_id": b,
        "outcome": "enrolled",
        "promoted": [31],
    }
    # The swap is the one record and the one notification: no enroll's, no staff drop's.
    actions = [e["action"] for e in api.as_(REGISTRAR).get("/audit", params={"user_id": 30}).json()]
    assert actions == ["enrollment.swap"]
    assert notifications(api, 30)[-1] == ("swapped", b)
    assert "dropped_by_staff" not in [kind for kind, _ in notifications(api, 30)]


# refused: nothing changes, and the answer is the add's refusal


def test_a_swap_into_a_full_section_with_a_full_waitlist_is_refused_and_changes_nothing(
    api, old_and_new
):
    a, _ = old_and_new
    full = section(api, 78, capacity=1, waitlist_capacity=1)
    fill(api, full, [33, 34])
    before = api.dump()
    for waitlist_ok in (False, True):
        reply = swap(api, 30, a, full, waitlist_ok=waitlist_ok)
        assert "waitlist is full" in refused(reply, 409, "waitlist_full")
    assert api.dump() == before
    assert enrolled(api, a) == [30]


def test_a_full_section_with_waitlist_room_is_refused_unless_waitlist_ok(api, old_and_new):
    a, _ = old_and_new
    full = section(api, 79, capacity=1)
    fill(api, full, [33])
    before = api.dump()
    detail = refused(swap(api, 30, a, full), 409, "no_seat_free")
    assert f"section {full} (CPSC 474-79) is full, with 0 waiting" in detail
    assert "changed nothing" in detail and f"keeps their seat in section {a}" in detail
    assert api.dump() == before


def test_a_refusal_of_the_add_undoes_the_drop_under_an_idempotency_key_too(api, old_and_new):
    a, _ = old_and_new
    full = section(api, 80, capacity=1, waitlist_capacity=0)
    fill(api, full, [33])
    before = api.dump()
    key = {"Idempotency-Key": "swap-1"}
    body = {"drop_section_id": a, "add_section_id": full}
    first = api.as_(person(30)).post("/users/30/swaps", json=body, headers=key)
    again = api.as_(person(30)).post("/users/30/swaps", json=body, headers=key)
    refused(first, 409, "waitlist_full")
    assert (again.content, again.headers["Idempotent-Replayed"]) == (first.content, "true")
    # Only the key's record of the refusal was kept.
    assert {row for row in api.dump() if row[0] != "idempotency_keys"} == set(before)
    assert enrolled(api, a) == [30] and waitlist(api, a) == [(1, 31), (2, 32)]


@pytest.mark.parametrize(
    ("add", "code"),
    [("already_enrolled", "already_enrolled"), ("already_waitlisted", "already_waitlisted")],
)
def test_a_section_the_student_is_in_already_is_refused(api, old_and_new, add, code):
    a, b = old_and_new
    if add == "already_waitlisted":
        full = section(api, 81, capacity=0)
        fill(api, full, [30])
        b = full
    else:
        fill(api, b, [30])
    before = api.dump()
    refused(swap(api, 30, a, b, waitlist_ok=True), 409, code)
    assert api.dump() == before


def test_a_section_not_held_or_not_there_is_404_naming_it(api, old_and_new):
    a, b = old_and_new
    before = api.dump()
    assert str(a) in refused(swap(api, 33, a, b), 404, "not_found")  # not in A
    assert str(a) in refused(swap(api, 31, a, b), 404, "not_found")  # only waiting for A
    assert "section 9999" in refused(swap(api, 30, a, 9999), 404, "not_found")
    assert "section 9999" in refused(swap(api, 30, 9999, b), 404, "not_found")
    assert api.dump() == before


def test_after_the_drop_deadline_only_the_registrar_swaps(api):
    term = new_term(api, "T-SWAP")
    a = section(api, 82, capacity=5, term_id=term["id"])
    b = section(api, 83, capacity=5, term_id=term["id"])
    fill(api, a, [35])
    api.as_(REGISTRAR).patch(f"/terms/{term['id']}", json={"drop_deadline": moment(-1)})
    before = api.dump()
    refused(swap(api, 35, a, b), 409, "drop_deadline_passed")
    assert api.dump() == before
    assert swap(api, 35, a, b, who=REGISTRAR).status_code == 200


def test_only_the_student_and_the_registrar_swap(api, old_and_new):
    a, b = old_and_new
    before = api.dump()
    refused(swap(api, 30, a, b, who=person(33)), 403, "forbidden")  # another student
    refused(swap(api, 30, a, b, who=KAVERY), 403, "forbidden")  # an instructor: not a role of it
    assert api.dump() == before


# bad input: 422 naming the field, nothing changed


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"add_section_id": 2}, "drop_section_id"),
        ({"drop_section_id": 1}, "add_section_id"),
        ({"drop_section_id": "1", "add_section_id": 2}, "drop_section_id"),
        ({"drop_section_id": 1, "add_section_id": 2.5}, "add_section_id"),
        ({"drop_section_id": None, "add_section_id": 2}, "drop_section_id"),
        ({"drop_section_id": 0, "add_section_id": 2}, "drop_section_id"),
        ({"drop_section_id": 1, "add_section_id": -4}, "add_section_id"),
        ({"drop_section_id": 1, "add_section_id": 2**63}, "add_section_id"),
        ({"drop_section_id": 1, "add_section_id": 2, "waitlist_ok": "yes"}, "waitlist_ok"),
        ({"drop_section_id": 1, "add_section_id": 2, "waitlist_ok": 1}, "waitlist_ok"),
        ({"drop_section_id": 1, "add_section_id": 2, "section_id": 4}, "section_id"),
        ({"drop_section_id": 1, "add_section_id": 1}, "add_section_id"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(api, body, named):
    before = api.dump()
    reply = api.as_(person(9)).post("/users/9/swaps", json=body)
    assert reply.status_code == 422, reply.text
    assert named in [e["field"] for e in reply.json()["errors"]], reply.json()
    assert api.dump() == before


@pytest.mark.parametrize("user_id", ["0", "-1", "x"])
def test_a_bad_user_id_is_a_422_naming_it(api, user_id):
    reply = api.as_(REGISTRAR).post(
        f"/users/{user_id}/swaps", json={"drop_section_id": 1, "add_section_id": 4}
    )
    assert reply.status_code == 422
    assert [e["field"] for e in reply.json()["errors"]] == ["user_id"]
