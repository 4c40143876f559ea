"""Bad input: unknown ids are 404, malformed input is 422 naming the field, and nothing changes."""

import pytest

from tests.enrollment.helpers import AVA, REGISTRAR

HUGE = 2**64

UNKNOWN_IDS = [
    ("GET", "/courses/999", None),
    ("GET", "/courses/999/waitlist", None),
    ("GET", "/sections/999", None),
    ("GET", "/sections?course_id=999", None),
    ("PATCH", "/sections/999", {"capacity": 5}),
    ("DELETE", "/sections/999", None),
    ("GET", "/sections/999/enrollments", None),
    ("GET", "/sections/999/waitlist", None),
    ("DELETE", "/sections/999/enrollments/9", None),
    ("DELETE", "/sections/1/enrollments/999", None),
    ("GET", "/users/999", None),
    ("GET", "/users/999/enrollments", None),
    ("GET", "/users/999/sections", None),
    ("GET", "/users/999/waitlist", None),
    ("POST", "/users/999/enrollments", {"section_id": 4}),
    ("POST", "/users/9/enrollments", {"section_id": 999}),
    ("DELETE", "/users/9/enrollments/999", None),
    ("DELETE", "/users/9/waitlist/999", None),
    ("POST", "/courses", {"department_id": 999, "code": "XYZ 100", "title": "T"}),
    ("POST", "/sections", {"course_id": 999, "section_number": 1, "capacity": 1}),
    (
        "POST",
        "/sections",
        {"course_id": 1, "section_number": 7, "instructor_id": 999, "capacity": 1},
    ),
]


@pytest.mark.parametrize(
    ("method", "url", "body"), UNKNOWN_IDS, ids=[f"{m} {u}" for m, u, _ in UNKNOWN_IDS]
)
def test_unknown_ids_are_404_and_change_nothing(api, method, url, body):
    before = api.dump()
    response = api.as_(REGISTRAR).request(method, url, json=body)
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "not_found"
    assert "999" in response.json()["detail"]
    assert api.dump() == before


ENROLL = "/users/9/enrollments"
# (method, url, raw body or json, field the error must name)
INVALID = [
    ("POST", ENROLL, {"section_id": "4"}, "section_id"),
    ("POST", ENROLL, {"section_id": 4.5}, "section_id"),
    ("POST", ENROLL, {"section_id": True}, "section_id"),
    ("POST", ENROLL, {"section_id": None}, "section_id"),
    ("POST", ENROLL, {"section_id": [4]}, "section_id"),
    ("POST", ENROLL, {"section_id": -4}, "section_id"),
    ("POST", ENROLL, {"section_id": 0}, "section_id"),
    ("POST", ENROLL, {"section_id": HUGE}, "section_id"),
    ("POST", ENROLL, {}, "section_id"),
    ("POST", ENROLL, {"section_id": 4, "status": "enrolled"}, "status"),
    ("POST", ENROLL, [4], "body"),
    ("POST", ENROLL, b'{"section_id": 4', "body"),
    ("POST", ENROLL, b"", "body"),
    ("POST", ENROLL, b"\xff\xfe{}", "body"),
    ("POST", "/users/-9/enrollments", {"section_id": 4}, "user_id"),
    ("POST", "/users/abc/enrollments", {"section_id": 4}, "user_id"),
    ("POST", f"/users/{HUGE}/enrollments", {"section_id": 4}, "user_id"),
    ("GET", "/sections/0", None, "section_id"),
    ("GET", "/sections/1.5", None, "section_id"),
    ("GET", "/sections?course_id=x", None, "course_id"),
    ("GET", "/sections?course_id=-1", None, "course_id"),
    ("GET", "/courses/-1", None, "course_id"),
    ("GET", "/sections/1/enrollments?status=expelled", None, "status"),
    ("GET", "/users/9/enrollments?status=ENROLLED", None, "status"),
    ("GET", "/users/9/sections?type=teaching", None, "type"),
    ("DELETE", "/users/9/enrollments/x", None, "section_id"),
    ("DELETE", "/sections/1/enrollments/-3", None, "user_id"),
    ("PATCH", "/sections/1", {}, "body"),
    ("PATCH", "/sections/1", {"freeze": "yes"}, "freeze"),
    ("PATCH", "/sections/1", {"freeze": None}, "body"),
    ("PATCH", "/sections/1", {"capacity": -1}, "capacity"),
    ("PATCH", "/sections/1", {"capacity": "10"}, "capacity"),
    ("PATCH", "/sections/1", {"capacity": HUGE}, "capacity"),
    ("PATCH", "/sections/1", {"waitlist_capacity": -5}, "waitlist_capacity"),
    ("PATCH", "/sections/1", {"instructor_id": 0}, "instructor_id"),
    ("PATCH", "/sections/1", {"frozen": True}, "frozen"),
    ("POST", "/sections", {"course_id": 1, "section_number": 3}, "capacity"),
    ("POST", "/sections", {"section_number": 3, "capacity": 3}, "course_id"),
    ("POST", "/sections", {"course_id": 1, "section_number": 0, "capacity": 3}, "section_number"),
    (
        "POST",
        "/sections",
        {"course_id": 1, "section_number": 3, "capacity": 3, "room": "x" * 65},
        "room",
    ),
    ("POST", "/courses", {"department_id": 1, "code": "cpsc 999", "title": "T"}, "code"),
    ("POST", "/courses", {"department_id": 1, "code": "CPSC 999", "title": "a\x00b"}, "title"),
    (
        "POST",
        "/sections",
        {"course_id": 1, "section_number": 3, "capacity": 3, "room": "\x1b[31m"},
        "room",
    ),
    ("POST", "/courses", {"department_id": 1, "code": "CPSC 999", "title": ""}, "title"),
    (
        "POST",
        "/courses",
        {"department_id": 1, "code": "CPSC 999", "title": "T", "credits": 99},
        "credits",
    ),
    (
        "POST",
        "/courses",
        {"department_id": 1, "code": "CPSC 999'; DROP TABLE courses;--", "title": "T"},
        "code",
    ),
]


@pytest.mark.parametrize(
    ("method", "url", "body", "field"),
    INVALID,
    ids=[f"{m} {u} {b!r:.40}" for m, u, b, _ in INVALID],
)
def test_invalid_input_is_422_naming_the_field(api, method, url, body, field):
    before = api.dump()
    if isinstance(body, bytes):
        response = api.as_(REGISTRAR).request(
            method, url, content=body, headers={"Content-Type": "application/json"}
        )
    else:
        response = api.as_(REGISTRAR).request(method, url, json=body)
    assert response.status_code == 422, response.text
    payload = response.json()
    assert payload["code"] == "validation_error"
    assert field in {e["field"] for e in payload["errors"]}, payload
    assert field in payload["detail"]
    assert api.dump() == before


def test_sql_in_a_string_field_is_stored_as_text_not_run(api):
    title = "Robert'); DROP TABLE sections;--"
    body = {"department_id": 1, "code": "CPSC 499", "title": title}
    created = api.as_(REGISTRAR).post("/courses", json=body)
    assert created.status_code == 201
    assert api.as_(AVA).get(f"/courses/{created.json()['id']}").json()["title"] == title
    assert api.as_(AVA).get("/sections/1").status_code == 200


def test_unknown_route_and_wrong_method_are_clean_4xx(api):
    missing = api.as_(AVA).get("/nowhere")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    wrong = api.as_(AVA).put("/courses")
    assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"
