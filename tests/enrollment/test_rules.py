"""SPEC §2 business rules 1-9, each with its edge cases, through the HTTP API."""

from tests.enrollment.helpers import AVA, KAVERY, REGISTRAR, person

STUDENTS = list(range(9, 39))  # seed students


def new_section(api, capacity: int, waitlist_capacity: int = 15, number: int = 50) -> int:
    body = {
        "course_id": 5,
        "section_number": number,
        "instructor_id": 3,
        "capacity": capacity,
        "waitlist_capacity": waitlist_capacity,
    }
    response = api.as_(REGISTRAR).post("/sections", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def enroll(api, user_id: int, section_id: int):
    return api.as_(person(user_id)).post(
        f"/users/{user_id}/enrollments", json={"section_id": section_id}
    )


def waitlist(api, section_id: int) -> list[tuple[int, int]]:
    """(position, user_id) pairs of a section's waitlist, as the registrar sees it."""
    entries = api.as_(REGISTRAR).get(f"/sections/{section_id}/waitlist").json()
    return [(e["position"], e["user_id"]) for e in entries]


def enrolled(api, section_id: int) -> list[int]:
    rows = api.as_(REGISTRAR).get(f"/sections/{section_id}/enrollments?status=enrolled").json()
    return [r["user_id"] for r in rows]


def fill(api, section_id: int, students: list[int]) -> None:
    for s in students:
        assert enroll(api, s, section_id).status_code == 201


# rule 1 and 2: capacity, no queue jumping, waitlist limits


def test_free_seat_enrolls_and_says_so(api):
    section = new_section(api, capacity=2)
    response = enroll(api, 9, section)
    assert response.status_code == 201
    assert response.json()["status"] == "enrolled"
    assert response.json()["position"] is None


def test_full_section_puts_caller_on_waitlist_with_position(api):
    section = new_section(api, capacity=2)
    fill(api, section, [9, 10])
    first, second = enroll(api, 11, section), enroll(api, 12, section)
    assert (first.json()["status"], first.json()["position"]) == ("waitlisted", 1)
    assert (second.json()["status"], second.json()["position"]) == ("waitlisted", 2)
    assert enrolled(api, section) == [9, 10]
    seats = api.as_(REGISTRAR).get(f"/sections/{section}").json()
    assert (seats["enrolled"], seats["waitlisted"], seats["seats_available"]) == (2, 2, 0)


def test_nobody_jumps_the_queue_when_a_frozen_section_has_a_free_seat(api):
    section = new_section(api, capacity=1)
    fill(api, section, [9, 10])  # 9 enrolled, 10 waiting
    api.as_(REGISTRAR).patch(f"/sections/{section}", json={"freeze": True})
    api.as_(person(9)).delete(f"/users/9/enrollments/{section}")  # a seat frees, 10 still waits
    response = enroll(api, 11, section)
    assert response.json()["status"] == "waitlisted"
    assert response.json()["position"] == 2
    assert enrolled(api, section) == []


def test_full_waitlist_is_409_naming_the_limit(api):
    section = new_section(api, capacity=1, waitlist_capacity=2)
    fill(api, section, [9, 10, 11])
    before = api.dump()
    response = enroll(api, 12, section)
    assert response.status_code == 409
    assert response.json()["code"] == "waitlist_full"
    assert "waitlist is full" in response.json()["detail"]
    assert api.dump() == before


def test_a_student_may_wait_on_three_waitlists_but_not_four(api):
    sections = [new_section(api, capacity=0, number=60 + i) for i in range(4)]
    for s in sections[:3]:
        assert enroll(api, 30, s).json()["status"] == "waitlisted"
    response = enroll(api, 30, sections[3])
    assert response.status_code == 409
    assert response.json()["code"] == "waitlist_limit_reached"
    assert "3 waitlists" in response.json()["detail"]
    # leaving one makes room again
    api.as_(person(30)).delete(f"/users/30/waitlist/{sections[0]}")
    assert enroll(api, 30, sections[3]).json()["status"] == "waitlisted"


def test_waitlist_limit_does_not_stop_taking_a_free_seat(api):
    full = [new_section(api, capacity=0, number=60 + i) for i in range(3)]
    for s in full:
        enroll(api, 30, s)
    open_section = new_section(api, capacity=5, number=70)
    assert enroll(api, 30, open_section).json()["status"] == "enrolled"


# rule 3: no double enrollment; re-enroll after drop


def test_already_enrolled_or_waitlisted_is_409(api):
    section = new_section(api, capacity=1)
    fill(api, section, [9, 10])
    again = enroll(api, 9, section)
    assert again.status_code == 409 and again.json()["code"] == "already_enrolled"
    again = enroll(api, 10, section)
    assert again.status_code == 409 and again.json()["code"] == "already_waitlisted"


def test_a_student_who_dropped_may_enroll_again(api):
    section = new_section(api, capacity=2)
    fill(api, section, [9])
    api.as_(person(9)).delete(f"/users/9/enrollments/{section}")
    again = enroll(api, 9, section)
    assert again.status_code == 201 and again.json()["status"] == "enrolled"
    history = api.as_(person(9)).get("/users/9/enrollments").json()
    statuses = [r["status"] for r in history if r["section_id"] == section]
    assert statuses == ["dropped", "enrolled"]


# rule 4: drop promotes the head of the waitlist, keeps the dropped row


def test_drop_promotes_the_head_and_renumbers(api):
    section = new_section(api, capacity=2)
    fill(api, section, [9, 10, 11, 12, 13])
    response = api.as_(person(10)).delete(f"/users/10/enrollments/{section}")
    assert response.status_code == 200
    assert response.json()["dropped"]["status"] == "dropped"
    assert [p["user_id"] for p in response.json()["promoted"]] == [11]
    assert enrolled(api, section) == [9, 11]
    assert waitlist(api, section) == [(1, 12), (2, 13)]
    drops = api.as_(KAVERY).get(f"/sections/{section}/enrollments?status=dropped").json()
    assert [d["user_id"] for d in drops] == [10]


def test_administrative_drop_promotes_too(api):
    section = new_section(api, capacity=1)
    fill(api, section, [9, 10])
    response = api.as_(KAVERY).delete(f"/sections/{section}/enrollments/9")
    assert response.json()["dropped"]["drop_reason"] == "administrative"
    assert enrolled(api, section) == [10]


def test_drop_of_a_section_not_taken_is_404(api):
    section = new_section(api, capacity=1)
    fill(api, section, [9, 10])
    assert api.as_(person(11)).delete(f"/users/11/enrollments/{section}").status_code == 404
    # a waitlisted student has no seat to drop; they leave the waitlist instead
    assert api.as_(person(10)).delete(f"/users/10/enrollments/{section}").status_code == 404


# rule 5: positions stay 1..n in arrival order


def test_leaving_the_waitlist_renumbers_everyone_behind(api):
    section = new_section(api, capacity=0)
    fill(api, section, [9, 10, 11, 12])
    response = api.as_(person(10)).delete(f"/users/10/waitlist/{section}")
    assert response.status_code == 200
    assert response.json()["dropped"]["drop_reason"] == "left_waitlist"
    assert waitlist(api, section) == [(1, 9), (2, 11), (3, 12)]
    mine = api.as_(person(12)).get("/users/12/waitlist").json()
    assert [(e["section_id"], e["position"]) for e in mine] == [(section, 3)]


def test_rejoining_the_waitlist_goes_to_the_end(api):
    section = new_section(api, capacity=0)
    fill(api, section, [9, 10, 11])
    api.as_(person(9)).delete(f"/users/9/waitlist/{section}")
    assert enroll(api, 9, section).json()["position"] == 3
    assert waitlist(api, section) == [(1, 10), (2, 11), (3, 9)]


# rule 6: freeze


def test_freeze_stops_promotion_and_unfreeze_fills_every_free_seat_in_order(api):
    section = new_section(api, capacity=3)
    fill(api, section, [9, 10, 11, 12, 13, 14])
    frozen = api.as_(REGISTRAR).patch(f"/sections/{section}", json={"freeze": True})
    assert frozen.json()["section"]["frozen"] is True
    for s in (9, 10):
        dropped = api.as_(person(s)).delete(f"/users/{s}/enrollments/{section}")
        assert dropped.json()["promoted"] == []
    assert enrolled(api, section) == [11]
    assert waitlist(api, section) == [(1, 12), (2, 13), (3, 14)]
    thawed = api.as_(REGISTRAR).patch(f"/sections/{section}", json={"freeze": False})
    assert [p["user_id"] for p in thawed.json()["promoted"]] == [12, 13]
    assert enrolled(api, section) == [11, 12, 13]
    assert waitlist(api, section) == [(1, 14)]


def test_freeze_is_stored_so_every_instance_sees_it(api):
    section = new_section(api, capacity=1)
    api.as_(REGISTRAR).patch(f"/sections/{section}", json={"freeze": True})
    with api.db() as conn:
        assert conn.execute("SELECT frozen FROM sections WHERE id = ?", (section,)).fetchone()[0]


# rule 7: PATCH instructor, capacity, waitlist capacity


def test_raising_capacity_promotes_from_the_waitlist(api):
    section = new_section(api, capacity=1)
    fill(api, section, [9, 10, 11, 12])
    response = api.as_(REGISTRAR).patch(f"/sections/{section}", json={"capacity": 3})
    assert [p["user_id"] for p in response.json()["promoted"]] == [10, 11]
    assert waitlist(api, section) == [(1, 12)]


def test_raising_capacity_of_a_frozen_section_promotes_nobody(api):
    section = new_section(api, capacity=1)
    fill(api, section, [9, 10])
    api.as_(REGISTRAR).patch(f"/sections/{section}", json={"freeze": True})
    response = api.as_(REGISTRAR).patch(f"/sections/{section}", json={"capacity": 5})
    assert response.json()["promoted"] == []
    assert waitlist(api, section) == [(1, 10)]


def test_lowering_capacity_below_enrollment_is_409_and_changes_nothing(api):
    section = new_section(api, capacity=3)
    fill(api, section, [9, 10, 11])
    before = api.dump()
    response = api.as_(REGISTRAR).patch(f"/sections/{section}", json={"capacity": 2})
    assert response.status_code == 409
    assert response.json()["code"] == "capacity_below_enrollment"
    assert api.dump() == before
    assert api.as_(REGISTRAR).patch(f"/sections/{section}", json={"capacity": 3}).status_code == 200


def test_lowering_waitlist_capacity_below_its_length_is_409_and_changes_nothing(api):
    section = new_section(api, capacity=0)
    fill(api, section, [9, 10])
    before = api.dump()
    response = api.as_(REGISTRAR).patch(f"/sections/{section}", json={"waitlist_capacity": 1})
    assert response.status_code == 409
    assert response.json()["code"] == "waitlist_capacity_below_waitlist"
    assert "2" in response.json()["detail"]  # says how many are waiting
    assert api.dump() == before


def test_reassigning_the_instructor_moves_roster_access(api):
    section = new_section(api, capacity=1)
    response = api.as_(REGISTRAR).patch(f"/sections/{section}", json={"instructor_id": 4})
    assert response.json()["section"]["instructor_id"] == 4
    assert api.as_(KAVERY).get(f"/sections/{section}/enrollments").status_code == 403
    assert api.as_(person(4)).get(f"/sections/{section}/enrollments").status_code == 200


def test_only_an_instructor_can_be_assigned(api):
    section = new_section(api, capacity=1)
    response = api.as_(REGISTRAR).patch(f"/sections/{section}", json={"instructor_id": 9})
    assert response.status_code == 409
    assert response.json()["code"] == "not_an_instructor"
    missing = api.as_(REGISTRAR).patch(f"/sections/{section}", json={"instructor_id": 999})
    assert missing.status_code == 404


# rule 8: delete


def test_deleted_section_is_404_everywhere_and_its_history_stays(api):
    section = new_section(api, capacity=1)
    fill(api, section, [9, 10])
    assert api.as_(REGISTRAR).delete(f"/sections/{section}").status_code == 204
    for url in (
        f"/sections/{section}",
        f"/sections/{section}/enrollments",
        f"/sections/{section}/waitlist",
    ):
        assert api.as_(REGISTRAR).get(url).status_code == 404, url
    assert api.as_(REGISTRAR).patch(f"/sections/{section}", json={"capacity": 9}).status_code == 404
    assert api.as_(REGISTRAR).delete(f"/sections/{section}").status_code == 404
    assert enroll(api, 11, section).status_code == 404
    assert api.as_(person(9)).delete(f"/users/9/enrollments/{section}").status_code == 404
    listed = [s["id"] for s in api.as_(REGISTRAR).get("/sections").json()]
    assert section not in listed
    assert section not in [s["id"] for s in api.as_(person(9)).get("/users/9/sections").json()]
    assert api.as_(person(10)).get("/users/10/waitlist").json() == []
    assert all(
        e["section_id"] != section for e in api.as_(REGISTRAR).get("/courses/5/waitlist").json()
    )
    with api.db() as conn:
        rows = conn.execute(
            "SELECT user_id, status, drop_reason FROM enrollments WHERE section_id = ?",
            (section,),
        ).fetchall()
    assert [tuple(r) for r in rows] == [
        (9, "dropped", "section_deleted"),
        (10, "dropped", "section_deleted"),
    ]


def test_a_deleted_sections_waitlist_no_longer_counts_toward_the_limit(api):
    sections = [new_section(api, capacity=0, number=60 + i) for i in range(4)]
    for s in sections[:3]:
        enroll(api, 30, s)
    api.as_(REGISTRAR).delete(f"/sections/{sections[0]}")
    assert enroll(api, 30, sections[3]).json()["status"] == "waitlisted"


def test_a_deleted_sections_number_can_be_reused(api):
    section = new_section(api, capacity=1, number=80)
    api.as_(REGISTRAR).delete(f"/sections/{section}")
    assert new_section(api, capacity=1, number=80) != section


# catalog writes


def test_create_course_and_duplicate_code(api):
    body = {"department_id": 1, "code": "CPSC 490", "title": "Capstone"}
    created = api.as_(REGISTRAR).post("/courses", json=body)
    assert created.status_code == 201 and created.json()["credits"] == 3
    assert api.as_(REGISTRAR).get(f"/courses/{created.json()['id']}").json()["code"] == "CPSC 490"
    again = api.as_(REGISTRAR).post("/courses", json=body)
    assert again.status_code == 409 and again.json()["code"] == "course_exists"


def test_duplicate_section_number_is_409(api):
    new_section(api, capacity=1, number=90)
    body = {"course_id": 5, "section_number": 90, "capacity": 1}
    response = api.as_(REGISTRAR).post("/sections", json=body)
    assert response.status_code == 409 and response.json()["code"] == "section_exists"


def test_new_user_can_enroll_at_once(api):
    newcomer = (77, "freshman", "student")
    response = api.as_(newcomer).post("/users/77/enrollments", json={"section_id": 4})
    assert response.status_code == 201
    assert api.as_(REGISTRAR).get("/users/77").json()["username"] == "freshman"


def test_registrar_enrolls_on_behalf_of_a_student(api):
    response = api.as_(REGISTRAR).post("/users/31/enrollments", json={"section_id": 4})
    assert response.status_code == 201
    assert response.json()["user_id"] == 31
    assert (
        api.as_(REGISTRAR).post("/users/999/enrollments", json={"section_id": 4}).status_code == 404
    )


def test_user_sections_by_type(api):
    both = (3, "kavery", "instructor")
    teaching = api.as_(both).get("/users/3/sections?type=instructing").json()
    assert sorted(s["id"] for s in teaching) == [1, 2]
    assert api.as_(both).get("/users/3/sections?type=enrolled").json() == []
    mine = api.as_(person(9)).get("/users/9/sections?type=enrolled").json()
    assert sorted(s["id"] for s in mine) == [1, 2]
    assert sorted(s["id"] for s in api.as_(person(9)).get("/users/9/sections").json()) == [1, 2]


def test_seed_waitlists_have_their_positions(api):
    assert waitlist(api, 1) == [(1, 13), (2, 14), (3, 15)]
    assert waitlist(api, 3) == [(1, 13), (2, 19), (3, 20)]
    mine = api.as_(person(13)).get("/users/13/waitlist").json()
    assert [(e["section_id"], e["position"]) for e in mine] == [(1, 1), (3, 1)]


def test_a_section_roster_is_its_current_students_unless_asked_for_more(api):
    api.as_(AVA).delete("/users/9/enrollments/1")  # a dropped row; the waitlist's head moves up
    staff = api.as_(KAVERY)

    roster = staff.get("/sections/1/enrollments")
    every_row = staff.get("/sections/1/enrollments", params={"status": "all"})
    waitlisted = staff.get("/sections/1/enrollments", params={"status": "waitlisted"})
    bogus = staff.get("/sections/1/enrollments", params={"status": "everyone"})

    assert roster.status_code == 200 and roster.json()
    assert {row["status"] for row in roster.json()} == {"enrolled"}
    statuses = {row["status"] for row in every_row.json()}
    assert statuses >= {"enrolled", "dropped"} and len(every_row.json()) > len(roster.json())
    assert {row["status"] for row in waitlisted.json()} == {"waitlisted"}  # two still wait
    assert sorted(r["id"] for r in every_row.json()) == sorted(
        r["id"]
        for status in ("enrolled", "waitlisted", "dropped")
        for r in staff.get("/sections/1/enrollments", params={"status": status}).json()
    )
    assert bogus.status_code == 422 and "status" in bogus.text
