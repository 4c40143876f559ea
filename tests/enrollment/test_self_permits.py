"""Staff acting on themselves (issue 24, item 4): an instructor granted themself a permit on a
full section they teach (201, unaudited), and the registrar enrolled that instructor past the
capacity. Every action of a caller holding a staff role is audited whatever its target, and only
students get permits, seats or waitlist places: anyone else is a 409 `not_a_student` naming them,
on every path that gives a place, with nothing written."""

import pytest

from tests.enrollment.helpers import KAVERY, LCHEN, PEOPLE, REGISTRAR, person


def trail(api) -> list[tuple]:
    entries = api.as_(REGISTRAR).get("/audit").json()
    return [(e["actor_id"], e["actor_role"], e["action"], e["section_id"], e["user_id"])
            for e in entries]  # fmt: skip


def announce(api, user_id: int, roles: list[str]):
    """The auth service announces that an account's roles changed."""
    p = PEOPLE[user_id]
    body = {"username": p["username"], "first_name": p["first_name"],
            "last_name": p["last_name"], "roles": roles}  # fmt: skip
    return api.client.put(
        f"/internal/users/{user_id}", json=body, headers={"X-Gateway-Secret": api.secret}
    )


def refused_as_not_a_student(reply, user_id: int, username: str) -> None:
    assert (reply.status_code, reply.json().get("code")) == (409, "not_a_student"), reply.text
    assert f"user {user_id} ({username})" in reply.json()["detail"], reply.text


def test_an_instructor_granting_themself_a_permit_is_refused_and_nothing_is_written(api):
    before = api.dump()
    reply = api.as_(KAVERY).post(
        "/sections/1/permits", json={"user_id": 3, "waives": ["capacity"]}
    )  # section 1 is full, and KAVERY teaches it

    refused_as_not_a_student(reply, 3, "kavery")
    assert api.dump() == before  # no permit, no audit entry
    assert api.as_(KAVERY).get("/sections/1/permits").json() == []


@pytest.mark.parametrize(
    ("who", "section_id"),
    [
        (KAVERY, 1),  # their own full section: the waitlist
        (KAVERY, 2),  # their own section with free seats
        (LCHEN, 1),  # another instructor's section
        (REGISTRAR, 4),  # the registrar themself
    ],
)
def test_the_registrar_cannot_enroll_an_account_that_is_not_a_student(api, who, section_id):
    before = api.dump()
    reply = api.as_(REGISTRAR).post(f"/users/{who[0]}/enrollments", json={"section_id": section_id})

    refused_as_not_a_student(reply, who[0], who[1])
    assert api.dump() == before  # no enrollment row, no audit entry


def test_a_permit_for_another_instructor_is_refused_too(api):
    before = api.dump()
    reply = api.as_(REGISTRAR).post(
        "/sections/1/permits", json={"user_id": 4, "waives": ["capacity"]}
    )
    refused_as_not_a_student(reply, 4, "lchen")
    assert api.dump() == before


def test_an_instructor_who_is_also_a_student_is_audited_acting_on_themself(api):
    """A teaching assistant (instructor and student): their permit and their enrollment are
    allowed, and both are in the audit trail, since the caller holds a staff role."""
    ta = (*KAVERY, "student")
    permit = api.as_(ta).post("/sections/1/permits", json={"user_id": 3, "waives": ["capacity"]})
    seat = api.as_(ta).post("/users/3/enrollments", json={"section_id": 1})

    assert permit.status_code == 201, permit.text
    assert (seat.status_code, seat.json()["status"]) == (201, "enrolled"), seat.text
    assert trail(api) == [
        (3, "instructor", "enrollment.enroll", 1, 3),
        (3, "instructor", "permit.grant", 1, 3),
    ]


def test_a_registrar_who_is_also_a_student_is_audited_enrolling_themself(api):
    registrar_student = (*REGISTRAR, "student")
    seat = api.as_(registrar_student).post("/users/1/enrollments", json={"section_id": 4})
    assert seat.status_code == 201, seat.text
    assert trail(api) == [(1, "registrar", "enrollment.enroll", 4, 1)]


def test_students_acting_on_themselves_stay_unlogged(api):
    student = person(31)
    assert api.as_(student).post("/users/31/enrollments", json={"section_id": 4}).status_code == 201
    assert api.as_(student).delete("/users/31/enrollments/4").status_code == 200
    assert trail(api) == []


def test_a_waitlisted_account_no_longer_a_student_is_skipped_by_promotion(api):
    """User 13 heads section 1's waitlist, then becomes an instructor only: a freed seat goes
    to the next student (14), and the skip is audited with its rule; 13 keeps their place."""
    assert announce(api, 13, roles=["instructor"]).status_code == 204
    change = api.as_(REGISTRAR).patch("/sections/1", json={"capacity": 5})

    assert change.status_code == 200, change.text
    assert [p["user_id"] for p in change.json()["promoted"]] == [14]
    skips = api.as_(REGISTRAR).get("/audit", params={"action": "waitlist.skip"}).json()
    assert [(s["user_id"], s["details"]["rule"]) for s in skips] == [(13, "not_a_student")]
    waitlist = api.as_(REGISTRAR).get("/sections/1/waitlist").json()
    assert [(w["user_id"], w["position"]) for w in waitlist] == [(13, 1), (15, 2)]
