"""Every route, with each role and object rule: who may call it and who is refused."""

import pytest

from tests.enrollment.helpers import AVA, KAVERY, LCHEN, LIAM, REGISTRAR, person

STUDENT_NEW = (40, "newstudent", "student")  # signed in, never seen by the service before

NEW_COURSE = {"department_id": 1, "code": "CPSC 490", "title": "Capstone", "credits": 3}
WINDOW = {"opens_at": "2027-01-02T16:00:00Z", "closes_at": "2027-01-03T16:00:00Z"}
NEW_SECTION = {"course_id": 2, "section_number": 9, "instructor_id": 6, "capacity": 10}

# (method, url, json body, caller, expected status)
CASES = [
    # catalog reads: any signed-in role
    ("GET", "/courses", None, AVA, 200),
    ("GET", "/courses", None, KAVERY, 200),
    ("GET", "/courses", None, REGISTRAR, 200),
    ("GET", "/courses/4", None, AVA, 200),
    ("GET", "/courses/4", None, KAVERY, 200),
    ("GET", "/sections", None, AVA, 200),
    ("GET", "/sections?course_id=4", None, KAVERY, 200),
    ("GET", "/sections?term_id=2", None, AVA, 200),
    ("GET", "/sections/1", None, REGISTRAR, 200),
    ("GET", "/sections/1", None, STUDENT_NEW, 200),
    # catalog writes: registrar only
    ("POST", "/courses", NEW_COURSE, REGISTRAR, 201),
    ("POST", "/courses", NEW_COURSE, KAVERY, 403),
    ("POST", "/courses", NEW_COURSE, AVA, 403),
    ("POST", "/sections", NEW_SECTION, REGISTRAR, 201),
    ("POST", "/sections", NEW_SECTION, KAVERY, 403),
    ("POST", "/sections", NEW_SECTION, AVA, 403),
    ("PATCH", "/sections/2", {"capacity": 31}, REGISTRAR, 200),
    ("PATCH", "/sections/2", {"capacity": 31}, KAVERY, 403),
    ("PATCH", "/sections/2", {"capacity": 31}, AVA, 403),
    ("DELETE", "/sections/2", None, REGISTRAR, 204),
    ("DELETE", "/sections/2", None, KAVERY, 403),
    ("DELETE", "/sections/2", None, AVA, 403),
    # course waitlist: registrar; instructor only for sections they teach
    ("GET", "/courses/4/waitlist", None, REGISTRAR, 200),
    ("GET", "/courses/4/waitlist", None, KAVERY, 200),
    ("GET", "/courses/4/waitlist", None, LCHEN, 403),
    ("GET", "/courses/4/waitlist", None, AVA, 403),
    # section roster and waitlist: registrar; the section's own instructor
    ("GET", "/sections/1/enrollments", None, REGISTRAR, 200),
    ("GET", "/sections/1/enrollments", None, KAVERY, 200),
    ("GET", "/sections/1/enrollments", None, LCHEN, 403),
    ("GET", "/sections/1/enrollments", None, AVA, 403),
    ("GET", "/sections/1/waitlist", None, REGISTRAR, 200),
    ("GET", "/sections/1/waitlist", None, KAVERY, 200),
    ("GET", "/sections/1/waitlist", None, LCHEN, 403),
    ("GET", "/sections/1/waitlist", None, AVA, 403),
    # administrative drop: registrar; the section's own instructor
    ("DELETE", "/sections/1/enrollments/9", None, REGISTRAR, 200),
    ("DELETE", "/sections/1/enrollments/9", None, KAVERY, 200),
    ("DELETE", "/sections/1/enrollments/9", None, LCHEN, 403),
    ("DELETE", "/sections/1/enrollments/9", None, AVA, 403),
    # users: registrar; a user may read their own record; an instructor, the record of a student
    # enrolled in or waiting for a section they teach (not one who dropped it)
    ("GET", "/users", None, REGISTRAR, 200),
    ("GET", "/users", None, KAVERY, 403),
    ("GET", "/users", None, AVA, 403),
    ("GET", "/users/9", None, REGISTRAR, 200),
    ("GET", "/users/9", None, AVA, 200),
    ("GET", "/users/9", None, LIAM, 403),
    ("GET", "/users/9", None, KAVERY, 200),
    ("GET", "/users/9", None, LCHEN, 403),
    ("GET", "/users/15", None, KAVERY, 200),
    ("GET", "/users/15", None, LCHEN, 403),
    ("GET", "/users/29", None, LCHEN, 403),
    ("GET", "/users/1", None, KAVERY, 403),
    ("GET", "/users/40", None, STUDENT_NEW, 200),
    # a user's enrollments, sections and waitlists: that user; registrar
    ("GET", "/users/9/enrollments", None, AVA, 200),
    ("GET", "/users/9/enrollments", None, REGISTRAR, 200),
    ("GET", "/users/9/enrollments", None, LIAM, 403),
    ("GET", "/users/9/enrollments", None, KAVERY, 403),
    ("GET", "/users/9/sections", None, AVA, 200),
    ("GET", "/users/3/sections?type=instructing", None, KAVERY, 200),
    ("GET", "/users/9/sections", None, REGISTRAR, 200),
    ("GET", "/users/9/sections", None, LIAM, 403),
    ("GET", "/users/13/waitlist", None, person(13), 200),
    ("GET", "/users/13/waitlist", None, REGISTRAR, 200),
    ("GET", "/users/13/waitlist", None, AVA, 403),
    # enroll: that user as a student; registrar on their behalf
    ("POST", "/users/10/enrollments", {"section_id": 4}, LIAM, 201),
    ("POST", "/users/10/enrollments", {"section_id": 4}, REGISTRAR, 201),
    ("POST", "/users/10/enrollments", {"section_id": 4}, AVA, 403),
    ("POST", "/users/3/enrollments", {"section_id": 4}, KAVERY, 403),
    ("POST", "/users/40/enrollments", {"section_id": 4}, STUDENT_NEW, 201),
    # drop and leave: that user; registrar
    ("DELETE", "/users/9/enrollments/2", None, AVA, 200),
    ("DELETE", "/users/9/enrollments/2", None, REGISTRAR, 200),
    ("DELETE", "/users/9/enrollments/2", None, LIAM, 403),
    ("DELETE", "/users/9/enrollments/2", None, KAVERY, 403),
    ("DELETE", "/users/13/waitlist/1", None, person(13), 200),
    ("DELETE", "/users/13/waitlist/1", None, REGISTRAR, 200),
    ("DELETE", "/users/13/waitlist/1", None, AVA, 403),
    # swap: that user as a student; registrar on their behalf
    ("POST", "/users/9/swaps", {"drop_section_id": 2, "add_section_id": 4}, AVA, 200),
    ("POST", "/users/9/swaps", {"drop_section_id": 2, "add_section_id": 4}, REGISTRAR, 200),
    ("POST", "/users/9/swaps", {"drop_section_id": 2, "add_section_id": 4}, LIAM, 403),
    ("POST", "/users/9/swaps", {"drop_section_id": 2, "add_section_id": 4}, KAVERY, 403),
    # seat offers: the student's own and the registrar's (seat offer 1 does not exist)
    ("GET", "/users/9/offers", None, AVA, 200),
    ("GET", "/users/9/offers", None, REGISTRAR, 200),
    ("GET", "/users/9/offers", None, KAVERY, 403),
    ("GET", "/users/9/offers", None, person(10), 403),
    ("POST", "/users/9/offers/1/accept", None, AVA, 404),
    ("POST", "/users/9/offers/1/accept", None, REGISTRAR, 404),
    ("POST", "/users/9/offers/1/accept", None, person(10), 403),
    ("POST", "/users/9/offers/1/accept", None, KAVERY, 403),
    ("POST", "/users/9/offers/1/decline", None, AVA, 404),
    ("POST", "/users/9/offers/1/decline", None, person(10), 403),
    ("POST", "/users/9/offers/1/decline", None, KAVERY, 403),
    # eligibility: prerequisites (anyone reads, the registrar sets), completed courses (CSV
    # import by the registrar; a user reads their own), credit limits and holds (the registrar;
    # a user reads their own holds), permits (the registrar or the section's instructor grants
    # and revokes; a user reads their own)
    ("GET", "/courses/4/prerequisites", None, AVA, 200),
    ("PUT", "/courses/4/prerequisites", {"course_ids": [1]}, REGISTRAR, 200),
    ("PUT", "/courses/4/prerequisites", {"course_ids": [1]}, KAVERY, 403),
    ("PUT", "/courses/4/prerequisites", {"course_ids": [1]}, AVA, 403),
    ("POST", "/completed-courses", "user_id,course_code\n10,CPSC 131\n", REGISTRAR, 200),
    ("POST", "/completed-courses", "user_id,course_code\n10,CPSC 131\n", KAVERY, 403),
    ("POST", "/completed-courses", "user_id,course_code\n10,CPSC 131\n", LIAM, 403),
    ("GET", "/users/9/completed-courses", None, AVA, 200),
    ("GET", "/users/9/completed-courses", None, REGISTRAR, 200),
    ("GET", "/users/9/completed-courses", None, LIAM, 403),
    ("PUT", "/users/9/credit-limit", {"credit_limit": 21}, REGISTRAR, 200),
    ("PUT", "/users/9/credit-limit", {"credit_limit": 21}, KAVERY, 403),
    ("PUT", "/users/9/credit-limit", {"credit_limit": 21}, AVA, 403),
    ("POST", "/users/9/holds", {"reason": "unpaid fees"}, REGISTRAR, 201),
    ("POST", "/users/9/holds", {"reason": "unpaid fees"}, KAVERY, 403),
    ("POST", "/users/9/holds", {"reason": "unpaid fees"}, AVA, 403),
    ("GET", "/holds", None, REGISTRAR, 200),
    ("GET", "/holds?open=false", None, REGISTRAR, 200),
    ("GET", "/holds", None, KAVERY, 403),
    ("GET", "/holds", None, AVA, 403),
    ("GET", "/users/9/holds", None, AVA, 200),
    ("GET", "/users/9/holds", None, REGISTRAR, 200),
    ("GET", "/users/9/holds", None, LIAM, 403),
    ("DELETE", "/users/9/holds/1", None, KAVERY, 403),
    ("DELETE", "/users/9/holds/1", None, AVA, 403),
    ("POST", "/sections/1/permits", {"user_id": 20, "waives": ["capacity"]}, REGISTRAR, 201),
    ("POST", "/sections/1/permits", {"user_id": 20, "waives": ["capacity"]}, KAVERY, 201),
    ("POST", "/sections/1/permits", {"user_id": 20, "waives": ["capacity"]}, LCHEN, 403),
    ("POST", "/sections/1/permits", {"user_id": 20, "waives": ["capacity"]}, AVA, 403),
    ("GET", "/sections/1/permits", None, KAVERY, 200),
    ("GET", "/sections/1/permits", None, LCHEN, 403),
    ("GET", "/sections/1/permits", None, AVA, 403),
    ("DELETE", "/sections/1/permits/1", None, LCHEN, 403),
    ("DELETE", "/sections/1/permits/1", None, AVA, 403),
    ("GET", "/users/20/permits", None, person(20), 200),
    ("GET", "/users/20/permits", None, REGISTRAR, 200),
    ("GET", "/users/20/permits", None, AVA, 403),
    # terms and registration windows: anyone reads; the registrar opens and changes them; a
    # student's class level (for windows) is the registrar's to set
    ("GET", "/terms", None, AVA, 200),
    ("GET", "/terms/2", None, KAVERY, 200),
    ("GET", "/terms/2/windows", None, AVA, 200),
    ("POST", "/terms", {"code": "2027-SU"}, REGISTRAR, 201),
    ("POST", "/terms", {"code": "2027-SU"}, KAVERY, 403),
    ("POST", "/terms", {"code": "2027-SU"}, AVA, 403),
    ("PATCH", "/terms/2", {"name": "Spring"}, REGISTRAR, 200),
    ("PATCH", "/terms/2", {"name": "Spring"}, KAVERY, 403),
    ("PATCH", "/terms/2", {"name": "Spring"}, AVA, 403),
    ("POST", "/terms/2/windows", WINDOW, REGISTRAR, 201),
    ("POST", "/terms/2/windows", WINDOW, KAVERY, 403),
    ("POST", "/terms/2/windows", WINDOW, AVA, 403),
    ("DELETE", "/terms/2/windows/1", None, REGISTRAR, 204),
    ("DELETE", "/terms/2/windows/1", None, KAVERY, 403),
    ("DELETE", "/terms/2/windows/1", None, AVA, 403),
    ("PUT", "/users/11/class-level", {"class_level": "junior"}, REGISTRAR, 200),
    ("PUT", "/users/11/class-level", {"class_level": "junior"}, KAVERY, 403),
    ("PUT", "/users/11/class-level", {"class_level": "junior"}, AVA, 403),
    # audit trail: registrar only
    ("GET", "/audit", None, REGISTRAR, 200),
    ("GET", "/audit?section_id=1&limit=5", None, REGISTRAR, 200),
    ("GET", "/audit", None, KAVERY, 403),
    ("GET", "/audit", None, AVA, 403),
    # notifications: that user and the registrar read; only that user marks them read
    ("GET", "/users/9/notifications", None, AVA, 200),
    ("GET", "/users/9/notifications?unread=true", None, REGISTRAR, 200),
    ("GET", "/users/9/notifications", None, LIAM, 403),
    ("GET", "/users/9/notifications", None, KAVERY, 403),
    ("PATCH", "/users/9/notifications", {"read_up_to": 1}, AVA, 200),
    ("PATCH", "/users/9/notifications", {"read_up_to": 1}, REGISTRAR, 403),
    ("PATCH", "/users/9/notifications", {"read_up_to": 1}, LIAM, 403),
    ("PATCH", "/users/9/notifications/1", {"read": True}, AVA, 404),  # none yet in the seed
    ("PATCH", "/users/9/notifications/1", {"read": True}, REGISTRAR, 403),
    ("PATCH", "/users/9/notifications/1", {"read": True}, KAVERY, 403),
    ("GET", "/notifications/undelivered", None, REGISTRAR, 200),
    ("GET", "/notifications/undelivered", None, KAVERY, 403),
    ("GET", "/notifications/undelivered", None, AVA, 403),
]


@pytest.mark.parametrize(
    ("method", "url", "body", "who", "status"),
    CASES,
    ids=[f"{m} {u} as {w[1]} -> {s}" for m, u, _, w, s in CASES],
)
def test_route_access(api, method, url, body, who, status):
    before = api.dump()
    if isinstance(body, str):  # a CSV import
        headers = {"Content-Type": "text/csv"}
        response = api.as_(who).request(method, url, content=body, headers=headers)
    else:
        response = api.as_(who).request(method, url, json=body)
    assert response.status_code == status, response.text
    if status == 403:
        assert response.json()["code"] == "forbidden"
        assert api.dump() == before, "a refused request changed the database"


def test_every_route_is_covered_by_the_matrix():
    from app.enrollment.routes import router

    covered = set()
    for method, url, *_ in CASES:
        path = url.split("?")[0]
        for route in router.routes:
            if method in route.methods and route.path_regex.match(path):
                covered.add((method, route.path))
    declared = {(m, r.path) for r in router.routes for m in r.methods}
    assert declared == covered


@pytest.mark.parametrize("route", ["/courses", "/sections/1", "/users/9/enrollments"])
def test_without_identity_headers_is_401(api, route):
    headers = api.headers(AVA)
    del headers["X-User-Id"]
    response = api.client.get(route, headers=headers)
    assert response.status_code == 401
    assert "X-User-Id" in response.json()["detail"]


def test_forged_identity_without_the_gateway_secret_is_401(api):
    forged = api.headers(REGISTRAR)
    forged["X-Gateway-Secret"] = "guess" * 8
    response = api.client.get("/users", headers=forged)
    assert response.status_code == 401
    assert response.json()["code"] == "no_gateway"
    no_secret = api.headers(REGISTRAR)
    del no_secret["X-Gateway-Secret"]
    assert api.client.get("/users", headers=no_secret).status_code == 401


@pytest.mark.parametrize("roles", ["", "admin", " , "])
def test_unknown_roles_are_not_signed_in(api, roles):
    headers = api.headers(AVA)
    headers["X-User-Roles"] = roles
    assert api.client.get("/courses", headers=headers).status_code == 401


def test_instructor_sees_only_own_sections_in_course_waitlist(api):
    # Give lchen section 2 of CPSC 449 (kavery keeps section 1, which has the waitlist).
    api.as_(REGISTRAR).patch("/sections/2", json={"instructor_id": 4})
    api.as_(REGISTRAR).patch("/sections/2", json={"capacity": 2})
    api.as_(person(30)).post("/users/30/enrollments", json={"section_id": 2})
    theirs = api.as_(LCHEN).get("/courses/4/waitlist").json()
    assert {e["section_id"] for e in theirs} == {2}
    assert [e["user_id"] for e in theirs] == [30]
    everyone = api.as_(REGISTRAR).get("/courses/4/waitlist").json()
    assert {e["section_id"] for e in everyone} == {1, 2}


def test_only_the_catalog_listings_may_be_reused_by_the_gateway(api):
    """The answers the gateway may cache say so; a 401 or 404 never does, and neither does any
    answer that depends on the caller or must be live (one section's seats)."""
    from app.enrollment.routes import CATALOG_CACHE_SECONDS

    reusable = f"max-age={CATALOG_CACHE_SECONDS}"
    for url in ("/courses", "/sections", "/sections?course_id=4"):
        response = api.as_(AVA).get(url)
        assert (response.status_code, response.headers.get("cache-control")) == (200, reusable)
    for url in ("/sections/1", "/courses/4", "/users/9/sections", "/users/9/enrollments"):
        response = api.as_(AVA).get(url)
        assert response.status_code == 200 and "cache-control" not in response.headers, url
    missing = api.as_(AVA).get("/sections?course_id=999")
    assert missing.status_code == 404 and "cache-control" not in missing.headers
    headers = api.headers(AVA)
    del headers["X-User-Id"]
    refused = api.client.get("/sections", headers=headers)
    assert refused.status_code == 401 and "cache-control" not in refused.headers


def test_a_hold_and_a_permit_are_lifted_and_revoked_by_their_own_staff_only(api):
    hold = api.as_(REGISTRAR).post("/users/9/holds", json={"reason": "library fine"}).json()
    permit = (
        api.as_(KAVERY)
        .post("/sections/1/permits", json={"user_id": 20, "waives": ["capacity"]})
        .json()
    )

    lifted = api.as_(REGISTRAR).delete(f"/users/9/holds/{hold['id']}")
    revoked = api.as_(KAVERY).delete(f"/sections/1/permits/{permit['id']}")

    assert lifted.status_code == 200 and lifted.json()["lifted_by"] == 1
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None


def test_every_route_names_the_caller_before_it_reads_the_request(api):
    """A request the gateway did not vouch for is a 401, and a role the route does not allow a
    403, on every route, whatever its path parameters, query and body: never a 422 that tells
    a stranger which of them are wrong."""
    import re

    from app.enrollment.routes import router

    no_secret = api.headers(REGISTRAR)
    del no_secret["X-Gateway-Secret"]
    before = api.dump()
    for route in router.routes:
        (method,) = route.methods
        url = re.sub(r"\{[^}]+\}", "not-a-number", route.path) + "?limit=-5&after=x"
        bad, json_type = b'{"not json', {"Content-Type": "application/json"}
        response = api.client.request(method, url, content=bad, headers=no_secret | json_type)
        assert response.status_code == 401, (method, route.path, response.text)
        assert response.json()["code"] == "no_gateway"
        if "student" not in route.openapi_extra["x-roles"]:
            response = api.as_(AVA).request(method, url, content=bad, headers=json_type)
            assert response.status_code == 403, (method, route.path, response.text)
    assert api.dump() == before, "a refused request changed the database"
