"""The eligibility rules (issue 14): holds, prerequisites, time conflicts, credit limits, and the
permits that waive them; each allowed, refused with its own 409 code, and waived. Waitlist
promotion skips a head the rules now refuse. Bad input is a 422 naming the problem."""

import pytest

from tests.enrollment.helpers import KAVERY, LCHEN, LIAM, REGISTRAR, person

STUDENTS = [person(n) for n in range(29, 38)]  # seed students with no enrollments or holds


def new_section(api, course_id: int, number: int, meetings=(), capacity=30, **extra) -> dict:
    body = {"course_id": course_id, "section_number": number, "instructor_id": 3,
            "capacity": capacity, "meetings": list(meetings), **extra}  # fmt: skip
    reply = api.as_(REGISTRAR).post("/sections", json=body)
    assert reply.status_code == 201, reply.text
    return reply.json()


def enroll(api, who, section_id: int):
    return api.as_(who).post(f"/users/{who[0]}/enrollments", json={"section_id": section_id})


def permit(api, who, section_id: int, *waives: str, by=REGISTRAR) -> dict:
    reply = api.as_(by).post(
        f"/sections/{section_id}/permits", json={"user_id": who[0], "waives": list(waives)}
    )
    assert reply.status_code == 201, reply.text
    return reply.json()


def refused(reply, code: str) -> str:
    assert (reply.status_code, reply.json()["code"]) == (409, code), reply.text
    return reply.json()["detail"]


# holds


def test_a_held_student_can_neither_enroll_nor_wait_but_can_drop(api):
    hold = api.as_(REGISTRAR).post("/users/10/holds", json={"reason": "unpaid fees"}).json()

    seat = enroll(api, LIAM, 4)
    wait = enroll(api, LIAM, 3)  # full: would be the waitlist
    waived = permit(api, LIAM, 4, "capacity", "prerequisite", "time_conflict", "credit_limit")
    still = enroll(api, LIAM, 4)
    dropped = api.as_(LIAM).delete("/users/10/enrollments/5")
    api.as_(REGISTRAR).delete(f"/users/10/holds/{hold['id']}")
    after_lift = enroll(api, LIAM, 4)

    assert "unpaid fees" in refused(seat, "hold")
    refused(wait, "hold")
    assert waived["waives"] and "unpaid fees" in refused(still, "hold")  # no permit waives a hold
    assert dropped.status_code == 200
    assert after_lift.status_code == 201
    listed = api.as_(LIAM).get("/users/10/holds").json()
    assert [(h["reason"], h["lifted_by"]) for h in listed] == [("unpaid fees", 1)]


def test_the_registrar_lists_open_holds_newest_first_a_page_at_a_time(api):
    registrar = api.as_(REGISTRAR)
    placed = [
        registrar.post(f"/users/{n}/holds", json={"reason": f"fees {n}"}).json()
        for n in (29, 30, 31)
    ]
    registrar.delete(f"/users/30/holds/{placed[1]['id']}")

    open_holds = registrar.get("/holds").json()
    first = registrar.get("/holds?limit=2").json()
    second = registrar.get(f"/holds?limit=2&after={first[-1]['id']}").json()
    lifted = registrar.get("/holds?open=false").json()
    bad = registrar.get("/holds?open=perhaps")

    # the seed's hold on student 38 is the oldest open one
    assert [(h["user_id"], h["reason"]) for h in open_holds] == [
        (31, "fees 31"), (29, "fees 29"), (38, "unpaid fees: see the bursar")
    ]  # fmt: skip
    assert first + second == open_holds and len(second) == 1
    assert [(h["user_id"], h["lifted_by"]) for h in lifted] == [(30, 1)]
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "open"


# prerequisites


def test_a_missing_prerequisite_is_named_then_met_by_an_import_or_waived(api):
    first, second = STUDENTS[0], STUDENTS[1]
    set_to = api.as_(REGISTRAR).put("/courses/4/prerequisites", json={"course_ids": [1, 3]})

    missing = enroll(api, first, 2)
    imported = api.as_(REGISTRAR).post(
        "/completed-courses",
        content=f"user_id,course_code,term,grade\n{first[0]},CPSC 131,2025-FA,A\n"
        f"{first[0]},CPSC 332,2026-SP,B+\n",
        headers={"Content-Type": "text/csv"},
    )
    met = enroll(api, first, 2)
    permit(api, second, 2, "prerequisite", by=KAVERY)
    waived = enroll(api, second, 2)

    assert [c["code"] for c in set_to.json()] == ["CPSC 131", "CPSC 332"]
    assert [c["code"] for c in api.as_(first).get("/courses/4/prerequisites").json()] == [
        "CPSC 131",
        "CPSC 332",
    ]
    detail = refused(missing, "prerequisite_missing")
    assert "CPSC 131" in detail and "CPSC 332" in detail
    assert imported.json() == {"imported": 2}
    assert met.status_code == 201 and waived.status_code == 201
    completed = api.as_(first).get(f"/users/{first[0]}/completed-courses").json()
    assert [(c["course_code"], c["grade"]) for c in completed] == [("CPSC 131", "A"),
                                                                  ("CPSC 332", "B+")]  # fmt: skip


def test_a_prerequisite_loop_or_an_unknown_course_is_refused_and_changes_nothing(api):
    api.as_(REGISTRAR).put("/courses/4/prerequisites", json={"course_ids": [3]})
    api.as_(REGISTRAR).put("/courses/3/prerequisites", json={"course_ids": [1]})

    loop = api.as_(REGISTRAR).put("/courses/1/prerequisites", json={"course_ids": [4]})
    itself = api.as_(REGISTRAR).put("/courses/1/prerequisites", json={"course_ids": [1]})
    unknown = api.as_(REGISTRAR).put("/courses/1/prerequisites", json={"course_ids": [999]})

    refused(loop, "prerequisite_cycle")
    refused(itself, "prerequisite_cycle")
    assert unknown.status_code == 404 and "999" in unknown.json()["detail"]
    assert api.as_(REGISTRAR).get("/courses/1/prerequisites").json() == []


# time conflicts


def test_overlapping_meetings_conflict_and_a_permit_waives_it(api):
    student, other = STUDENTS[2], STUDENTS[3]
    morning = new_section(api, 2, 20, [{"days": "MW", "start": "10:00", "end": "11:15"}])
    overlap = new_section(api, 4, 20, [{"days": "W", "start": "11:00", "end": "12:00"}])
    adjacent = new_section(api, 8, 20, [{"days": "MW", "start": "11:15", "end": "12:00"}])
    other_days = new_section(api, 3, 20, [{"days": "TR", "start": "10:00", "end": "11:15"}])

    assert enroll(api, student, morning["id"]).status_code == 201
    clash = enroll(api, student, overlap["id"])
    assert enroll(api, student, adjacent["id"]).status_code == 201  # 11:15 ends, 11:15 starts
    assert enroll(api, student, other_days["id"]).status_code == 201
    enroll(api, other, morning["id"])
    permit(api, other, overlap["id"], "time_conflict")
    waived = enroll(api, other, overlap["id"])

    detail = refused(clash, "time_conflict")
    assert str(morning["id"]) in detail and "CPSC 315-20" in detail
    assert waived.status_code == 201
    shown = api.as_(student).get(f"/sections/{morning['id']}").json()["meetings"]
    assert shown == [{"days": "MW", "start": "10:00", "end": "11:15"}]


# credit limits


def test_the_credit_limit_refuses_with_the_numbers_and_a_permit_or_override_waives_it(api):
    student, other = STUDENTS[4], STUDENTS[5]
    sections = [new_section(api, course, 30) for course in (1, 2, 3, 4, 8, 6)]  # 3*5 + 4 = 19
    for section in sections[:5]:
        assert enroll(api, student, section["id"]).status_code == 201  # 15 credits
    over = enroll(api, student, sections[5]["id"])  # MATH 150A, 4 credits: 19 > 18
    permit(api, student, sections[5]["id"], "credit_limit")
    waived = enroll(api, student, sections[5]["id"])

    api.as_(REGISTRAR).put(f"/users/{other[0]}/credit-limit", json={"credit_limit": 3})
    first = enroll(api, other, sections[0]["id"])
    second = enroll(api, other, sections[1]["id"])
    record = api.as_(REGISTRAR).get(f"/users/{other[0]}").json()

    detail = refused(over, "credit_limit")
    assert "4 credits" in detail and "15" in detail and "19" in detail and "18" in detail
    assert waived.status_code == 201
    assert first.status_code == 201 and "limit of 3" in refused(second, "credit_limit")
    assert record["credit_limit"] == 3


# capacity


def test_a_capacity_permit_gives_a_seat_past_a_full_section_and_its_waitlist(api):
    waiting = enroll(api, STUDENTS[6], 1)
    permit(api, STUDENTS[7], 1, "capacity", by=KAVERY)
    seated = enroll(api, STUDENTS[7], 1)
    section = api.as_(REGISTRAR).get("/sections/1").json()

    assert waiting.json()["status"] == "waitlisted"
    assert seated.status_code == 201 and seated.json()["status"] == "enrolled"
    assert (section["enrolled"], section["capacity"]) == (5, 4)


def test_a_revoked_permit_waives_nothing(api):
    given = permit(api, STUDENTS[8], 1, "capacity")
    api.as_(REGISTRAR).delete(f"/sections/1/permits/{given['id']}")
    again = api.as_(REGISTRAR).delete(f"/sections/1/permits/{given['id']}")
    assert enroll(api, STUDENTS[8], 1).json()["status"] == "waitlisted"
    refused(again, "permit_revoked")


def test_an_instructor_grants_permits_only_for_their_own_sections(api):
    reply = api.as_(LCHEN).post("/sections/1/permits", json={"user_id": 29, "waives": ["capacity"]})
    assert reply.status_code == 403
    assert api.as_(REGISTRAR).get("/sections/1/permits").json() == []


# waitlist promotion


def test_promotion_skips_a_head_the_rules_now_refuse_who_keeps_their_place(api):
    a, b, c = STUDENTS[0], STUDENTS[1], STUDENTS[2]
    section = new_section(api, 8, 40, capacity=1)
    assert enroll(api, a, section["id"]).json()["status"] == "enrolled"
    assert enroll(api, b, section["id"]).json()["status"] == "waitlisted"
    assert enroll(api, c, section["id"]).json()["status"] == "waitlisted"
    api.as_(REGISTRAR).post(f"/users/{b[0]}/holds", json={"reason": "missing transcript"})

    dropped = api.as_(a).delete(f"/users/{a[0]}/enrollments/{section['id']}")
    waitlist = api.as_(REGISTRAR).get(f"/sections/{section['id']}/waitlist").json()
    skips = api.as_(REGISTRAR).get("/audit", params={"section_id": section["id"]}).json()

    assert [p["user_id"] for p in dropped.json()["promoted"]] == [c[0]]
    assert [(w["user_id"], w["position"]) for w in waitlist] == [(b[0], 1)]
    skip = next(e for e in skips if e["action"] == "waitlist.skip")
    assert skip["user_id"] == b[0] and skip["details"]["rule"] == "hold"


def test_a_student_passed_over_sees_when_and_why_on_their_waitlist(api):
    a, b, c, d = STUDENTS[0], STUDENTS[1], STUDENTS[2], STUDENTS[3]
    section = new_section(api, 8, 40, capacity=1)
    for who in (a, b, c, d):
        enroll(api, who, section["id"])
    hold = api.as_(REGISTRAR).post(f"/users/{b[0]}/holds", json={"reason": "missing transcript"})
    api.as_(a).delete(f"/users/{a[0]}/enrollments/{section['id']}")  # c is seated over b

    mine = api.as_(b).get(f"/users/{b[0]}/waitlist").json()
    others = api.as_(d).get(f"/users/{d[0]}/waitlist").json()
    # Back in line afresh: an old skip belongs to the place left, not to the new one.
    api.as_(REGISTRAR).delete(f"/users/{b[0]}/holds/{hold.json()['id']}")
    api.as_(b).delete(f"/users/{b[0]}/waitlist/{section['id']}")
    enroll(api, b, section["id"])
    again = api.as_(b).get(f"/users/{b[0]}/waitlist").json()

    assert [(w["section_id"], w["position"]) for w in mine] == [(section["id"], 1)]
    passed = mine[0]["passed_over"]
    assert passed["rule"] == "hold" and "missing transcript" in passed["detail"]
    assert passed["at"] >= mine[0]["joined_at"]
    assert others[0]["passed_over"] is None  # behind b, never skipped
    assert again[0]["passed_over"] is None


# bad input


@pytest.mark.parametrize(
    ("meetings", "named"),
    [
        ([{"days": "XYZ", "start": "10:00", "end": "11:00"}], "days"),
        ([{"days": "WM", "start": "10:00", "end": "11:00"}], "days"),  # out of order
        ([{"days": "", "start": "10:00", "end": "11:00"}], "days"),
        ([{"days": "M", "start": "25:00", "end": "26:00"}], "start"),
        ([{"days": "M", "start": "10:00", "end": "9:00"}], "end"),
        ([{"days": "M", "start": "11:00", "end": "10:00"}], "after start"),
        ([{"days": "M", "start": "10:00"}], "end"),
        ([{"days": "M", "start": "10:00", "end": "11:00", "room": "x"}], "room"),
        ([{"days": "M", "start": "10:00", "end": "11:00"}] * 8, "meetings"),
    ],
)
def test_bad_meeting_times_are_a_422_naming_them(api, meetings, named):
    body = {"course_id": 2, "section_number": 50, "capacity": 5, "meetings": meetings}
    before = api.dump()
    reply = api.as_(REGISTRAR).post("/sections", json=body)
    assert reply.status_code == 422 and named in reply.text
    assert api.dump() == before


@pytest.mark.parametrize(
    ("method", "url", "body", "named"),
    [
        ("POST", "/sections/1/permits", {"user_id": 29, "waives": ["hold"]}, "waives"),
        ("POST", "/sections/1/permits", {"user_id": 29, "waives": []}, "waives"),
        ("POST", "/sections/1/permits", {"user_id": 29, "waives": ["capacity"] * 2}, "repeat"),
        ("POST", "/sections/1/permits", {"user_id": 0, "waives": ["capacity"]}, "user_id"),
        ("POST", "/users/29/holds", {"reason": ""}, "reason"),
        ("POST", "/users/29/holds", {"reason": "x" * 201}, "reason"),
        ("POST", "/users/29/holds", {}, "reason"),
        ("PUT", "/users/29/credit-limit", {"credit_limit": 41}, "credit_limit"),
        ("PUT", "/users/29/credit-limit", {"credit_limit": -1}, "credit_limit"),
        ("PUT", "/users/29/credit-limit", {}, "credit_limit"),
        ("PUT", "/courses/4/prerequisites", {"course_ids": [0]}, "course_ids"),
        ("PUT", "/courses/4/prerequisites", {"course_ids": "1"}, "course_ids"),
    ],
)
def test_bad_eligibility_input_is_a_422_naming_it(api, method, url, body, named):
    before = api.dump()
    reply = api.as_(REGISTRAR).request(method, url, json=body)
    assert reply.status_code == 422 and named in reply.text
    assert api.dump() == before


@pytest.mark.parametrize(
    ("csv", "named"),
    [
        ("", "first line"),
        ("user,course\n29,CPSC 131\n", "first line"),
        ("user_id,course_code\n", "no rows"),
        ("user_id,course_code\n29,CPSC 999\n", "line 2: no course 'CPSC 999'"),
        ("user_id,course_code\n29,CPSC 131\nx,CPSC 131\n", "line 3: user_id 'x'"),
        ("user_id,course_code\n29,CPSC 131\n999999,CPSC 131\n", "line 3: user 999999 not found"),
        ("user_id,course_code,term\n29,CPSC 131\n", "line 2: 2 values, 3 columns"),
        ("user_id,course_code,grade\n29,CPSC 131," + "A" * 40 + "\n", "line 2: term and grade"),
    ],
)
def test_a_bad_import_is_a_422_naming_the_lines_and_imports_nothing(api, csv, named):
    before = api.dump()
    reply = api.as_(REGISTRAR).post(
        "/completed-courses", content=csv, headers={"Content-Type": "text/csv"}
    )
    assert reply.status_code == 422 and named in reply.json()["detail"], reply.text
    assert api.dump() == before


def test_an_import_that_is_not_utf8_is_a_422(api):
    reply = api.as_(REGISTRAR).post(
        "/completed-courses", content=b"user_id,course_code\n29,\xff\n",
        headers={"Content-Type": "text/csv"},
    )  # fmt: skip
    assert (reply.status_code, reply.json()["code"]) == (422, "csv_encoding")


def test_a_database_of_the_previous_schema_is_upgraded_in_place(tmp_path):
    import re
    import sqlite3

    from app.enrollment.init_db import SCHEMA, init_db
    from app.enrollment.settings import SCHEMA_VERSION

    path = tmp_path / "old.db"
    # Version 1: the schema before the eligibility tables and the columns added since.
    old_schema = SCHEMA.read_text().split("-- Eligibility")[0]
    old_schema = re.sub(
        r"(    roles +TEXT NOT NULL DEFAULT 'student'),.*?\n\);",
        r"\1\n);",
        old_schema,
        count=1,
        flags=re.S,
    )
    old_schema = re.sub(
        r"(    deleted_at +TEXT),[^\n]*\n    term_id.*?\n\);", r"\1\n);", old_schema, flags=re.S
    )
    old_schema = re.sub(r", 'offer_declined',\s*'offer_expired', 'swapped'", "", old_schema)
    conn = sqlite3.connect(path)
    conn.executescript(
        old_schema + "\nPRAGMA application_id = 1162760780;\nPRAGMA user_version = 1;"
    )
    conn.executescript("""
        INSERT INTO users (id, username, roles) VALUES (77, 'olduser', 'student');
        INSERT INTO departments (id, code, name) VALUES (1, 'CPSC', 'Computer Science');
        INSERT INTO courses (id, department_id, code, title) VALUES (1, 1, 'CPSC 101', 'Intro');
        INSERT INTO sections (id, course_id, section_number, capacity) VALUES (1, 1, 1, 5);
        INSERT INTO enrollments (id, section_id, user_id, status) VALUES (40, 1, 77, 'enrolled');
        INSERT INTO enrollments (section_id, user_id, status, drop_reason)
            VALUES (1, 77, 'dropped', 'left_waitlist');
        DELETE FROM enrollments WHERE id = 41;
    """)
    (table_sql,) = conn.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'enrollments'"
    ).fetchone()
    assert "offer_expired" not in table_sql
    assert "credit_limit" not in [c[1] for c in conn.execute("PRAGMA table_info(users)")]
    assert "term_id" not in [c[1] for c in conn.execute("PRAGMA table_info(sections)")]
    conn.close()

    init_db(path)  # the start of the new release
    init_db(path)  # and again: nothing more to do

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
    assert conn.execute("SELECT username, credit_limit FROM users").fetchall() == [
        ("olduser", None)
    ]
    # The enrollments were rebuilt for their new CHECK: rows kept, and an id given before (41,
    # deleted) is not given again.
    assert conn.execute("SELECT id, status FROM enrollments").fetchall() == [(40, "enrolled")]
    conn.execute("INSERT INTO enrollments (section_id, user_id, status) VALUES (1, 77, 'dropped')")
    assert conn.execute("SELECT MAX(id) FROM enrollments").fetchone()[0] == 42
    conn.execute(
        "UPDATE enrollments SET drop_reason = 'offer_expired' WHERE id = 42"
    )  # the new CHECK
    assert conn.execute("SELECT waitlist_mode, claim_seconds FROM sections").fetchall() == [
        ("auto", 86400)
    ]
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"holds", "permits", "section_meetings", "course_prerequisites", "terms"} <= tables
    assert {"idempotency_keys", "notifications", "seat_offers"} <= tables
    assert "term_id" in [c[1] for c in conn.execute("PRAGMA table_info(sections)")]
    assert conn.execute("SELECT COUNT(*) FROM courses").fetchone()[0] == 1  # no seed over data
    conn.close()


# terms: registration windows and add/drop deadlines


def moment(hours: float) -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_term(api, code: str, **deadlines) -> dict:
    reply = api.as_(REGISTRAR).post("/terms", json={"code": code, **deadlines})
    assert reply.status_code == 201, reply.text
    return reply.json()


def window(api, term: dict, opens: float, closes: float, **group) -> dict:
    body = {"opens_at": moment(opens), "closes_at": moment(closes), **group}
    reply = api.as_(REGISTRAR).post(f"/terms/{term['id']}/windows", json=body)
    assert reply.status_code == 201, reply.text
    return reply.json()


def test_students_add_only_inside_their_window_and_a_permit_waives_it(api):
    senior, junior, listed = STUDENTS[0], STUDENTS[1], STUDENTS[2]
    api.as_(REGISTRAR).put(f"/users/{senior[0]}/class-level", json={"class_level": "senior"})
    api.as_(REGISTRAR).put(f"/users/{junior[0]}/class-level", json={"class_level": "junior"})
    term = new_term(api, "T-WIN")
    section = new_section(api, 2, 60, term_id=term["id"])
    window(api, term, -1, 2, class_level="senior")  # seniors: open now
    everyone = window(api, term, 3, 5)  # everyone: in three hours
    window(api, term, -1, 1, user_ids=[listed[0]])  # one student, by name: open now

    assert enroll(api, senior, section["id"]).status_code == 201
    assert enroll(api, listed, section["id"]).status_code == 201
    closed = enroll(api, junior, section["id"])
    permit(api, junior, section["id"], "window")
    waived = enroll(api, junior, section["id"])

    detail = refused(closed, "registration_window_closed")
    assert everyone["opens_at"] in detail
    assert waived.status_code == 201
    windows = api.as_(junior).get(f"/terms/{term['id']}/windows").json()
    assert [(w["class_level"], w["user_ids"]) for w in windows] == [
        ("senior", []),
        (None, []),
        (None, [listed[0]]),
    ]


def test_a_term_without_windows_is_open_and_one_with_none_for_you_says_so(api):
    open_term, closed_term = new_term(api, "T-OPEN"), new_term(api, "T-SHUT")
    window(api, closed_term, -2, -1)  # everyone's window, closed an hour ago
    open_section = new_section(api, 2, 61, term_id=open_term["id"])
    shut_section = new_section(api, 3, 61, term_id=closed_term["id"])

    assert enroll(api, STUDENTS[3], open_section["id"]).status_code == 201
    detail = refused(enroll(api, STUDENTS[3], shut_section["id"]), "registration_window_closed")
    assert "no registration window" in detail and "T-SHUT" in detail


def test_after_the_add_deadline_nobody_adds_and_a_permit_waives_it(api):
    term = new_term(api, "T-ADD", add_deadline=moment(-1))
    section = new_section(api, 2, 62, term_id=term["id"])

    late = enroll(api, STUDENTS[4], section["id"])
    permit(api, STUDENTS[5], section["id"], "window")
    waived = enroll(api, STUDENTS[5], section["id"])

    assert term["add_deadline"] in refused(late, "add_deadline_passed")
    assert waived.status_code == 201


def test_after_the_drop_deadline_only_the_registrar_drops(api):
    student, waiting = STUDENTS[6], STUDENTS[7]
    term = new_term(api, "T-DROP")
    section = new_section(api, 2, 63, capacity=1, term_id=term["id"])
    enroll(api, student, section["id"])
    enroll(api, waiting, section["id"])
    api.as_(REGISTRAR).patch(f"/terms/{term['id']}", json={"drop_deadline": moment(-1)})

    drop = api.as_(student).delete(f"/users/{student[0]}/enrollments/{section['id']}")
    leave = api.as_(waiting).delete(f"/users/{waiting[0]}/waitlist/{section['id']}")
    by_registrar = api.as_(REGISTRAR).delete(f"/users/{student[0]}/enrollments/{section['id']}")

    refused(drop, "drop_deadline_passed")
    refused(leave, "drop_deadline_passed")
    assert by_registrar.status_code == 200
    # Promotion is no add by the student: the one waiting is seated, window or not.
    assert [p["user_id"] for p in by_registrar.json()["promoted"]] == [waiting[0]]


def test_credit_limits_and_time_conflicts_count_within_one_term(api):
    student = STUDENTS[8]
    fall, spring = new_term(api, "T-FA"), new_term(api, "T-SP")
    api.as_(REGISTRAR).put(f"/users/{student[0]}/credit-limit", json={"credit_limit": 3})
    meets = [{"days": "MW", "start": "10:00", "end": "11:00"}]
    in_fall = new_section(api, 2, 64, meets, term_id=fall["id"])
    in_spring = new_section(api, 3, 64, meets, term_id=spring["id"])  # same hours, other term

    assert enroll(api, student, in_fall["id"]).status_code == 201
    assert enroll(api, student, in_spring["id"]).status_code == 201
    assert api.as_(student).get(f"/sections/{in_spring['id']}").json()["term_id"] == spring["id"]


@pytest.mark.parametrize(
    ("method", "url", "body", "named"),
    [
        ("POST", "/terms", {"code": "bad code!"}, "code"),
        ("POST", "/terms", {"code": "T1", "add_deadline": "2027-01-01T00:00:00"}, "add_deadline"),
        ("POST", "/terms", {"code": "T1", "drop_deadline": "next week"}, "drop_deadline"),
        ("PATCH", "/terms/2", {}, "nothing to change"),
        ("PATCH", "/terms/2", {"name": None}, "name"),
        ("POST", "/terms/2/windows", {"opens_at": "2027-01-02T00:00:00Z",
                                      "closes_at": "2027-01-01T00:00:00Z"}, "closes_at"),
        ("POST", "/terms/2/windows", {"opens_at": "2027-01-01T00:00:00Z",
                                      "closes_at": "2027-01-02T00:00:00Z",
                                      "class_level": "senior", "user_ids": [9]}, "not both"),
        ("POST", "/terms/2/windows", {"opens_at": "2027-01-01T00:00:00Z",
                                      "closes_at": "2027-01-02T00:00:00Z",
                                      "class_level": "postdoc"}, "class_level"),
        ("PUT", "/users/9/class-level", {"class_level": "first-year"}, "class_level"),
        ("PUT", "/users/9/class-level", {}, "class_level"),
        ("POST", "/sections", {"course_id": 2, "section_number": 70, "capacity": 3,
                               "term_id": 0}, "term_id"),
    ],
)  # fmt: skip
def test_bad_term_input_is_a_422_naming_it(api, method, url, body, named):
    before = api.dump()
    reply = api.as_(REGISTRAR).request(method, url, json=body)
    assert reply.status_code == 422 and named in reply.text, reply.text
    assert api.dump() == before


def test_unknown_terms_and_students_are_404_and_a_taken_code_409(api):
    window_body = {"opens_at": moment(1), "closes_at": moment(2), "user_ids": [9, 999999]}
    unknown_students = api.as_(REGISTRAR).post("/terms/2/windows", json=window_body)
    unknown_term = api.as_(REGISTRAR).post(
        "/sections", json={"course_id": 2, "section_number": 71, "capacity": 3, "term_id": 99}
    )
    taken = api.as_(REGISTRAR).post("/terms", json={"code": "2027-SP"})

    assert unknown_students.status_code == 404 and "999999" in unknown_students.text
    assert unknown_term.status_code == 404 and "term 99" in unknown_term.text
    refused(taken, "term_exists")
