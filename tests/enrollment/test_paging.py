"""Paging of every list: `limit` rows at a time in the list's own order (id; course code and
section number for the catalog; position for a waitlist; newest first for the audit), the next
page after the `id` of the last row seen."""

import pytest

from tests.enrollment.helpers import AVA, KAVERY, REGISTRAR


def walk(api, who, url: str, limit: int, **params) -> list[list[dict]]:
    pages, after = [], None
    while True:
        query = {**params, "limit": limit} | ({"after": after} if after is not None else {})
        reply = api.as_(who).get(url, params=query)
        assert reply.status_code == 200, reply.text
        pages.append(reply.json())
        if len(reply.json()) < limit:
            return pages
        after = reply.json()[-1]["id"]


def test_paging_walks_500_users_without_gaps_or_repeats(api):
    with api.db() as conn:
        conn.executemany(
            "INSERT INTO users (id, username, roles) VALUES (?, ?, 'student')",
            [(1000 + i, f"paged{i}") for i in range(500)],
        )
        every_id = [row[0] for row in conn.execute("SELECT id FROM users ORDER BY id")]

    pages = walk(api, REGISTRAR, "/users", limit=37)
    seen = [user["id"] for page in pages for user in page]
    first_page = api.as_(REGISTRAR).get("/users").json()

    assert seen == every_id and len(every_id) > 500  # every one, once, in order
    assert all(len(page) == 37 for page in pages[:-1]) and len(pages[-1]) < 37
    assert [u["id"] for u in first_page] == every_id[:100]  # the default page size


def test_a_roster_pages_the_same_way(api):
    everything = api.as_(KAVERY).get("/sections/1/enrollments", params={"status": "all"}).json()
    pages = walk(api, KAVERY, "/sections/1/enrollments", limit=2, status="all")

    assert [row["id"] for page in pages for row in page] == [row["id"] for row in everything]
    assert len(pages) > 1


def test_a_users_enrollments_page_the_same_way(api):
    ava = (9, "ajohnson", "student")
    everything = api.as_(ava).get("/users/9/enrollments").json()
    pages = walk(api, ava, "/users/9/enrollments", limit=1)

    assert [row["id"] for page in pages for row in page] == [row["id"] for row in everything]
    assert len(everything) >= 2 and len(pages) == len(everything) + 1


def ids(pages: list[list[dict]]) -> list[int]:
    return [row["id"] for page in pages for row in page]


def test_the_catalog_pages_in_code_order_whatever_the_ids(api):
    with api.db() as conn:
        # Made in reverse code order, so that id order and code order disagree.
        conn.executemany(
            "INSERT INTO courses (department_id, code, title) VALUES (1, ?, 'Paged')",
            [(f"ZZZ {900 - i}",) for i in range(60)],
        )
        new = [row[0] for row in conn.execute("SELECT id FROM courses WHERE code LIKE 'ZZZ%'")]
        conn.executemany(
            "INSERT INTO sections (course_id, section_number, capacity) VALUES (?, ?, 5)",
            [(course, number) for course in new[:40] for number in (3, 1, 2)],
        )
    courses = walk(api, REGISTRAR, "/courses", limit=7)
    sections = walk(api, REGISTRAR, "/sections", limit=11)
    whole = api.as_(REGISTRAR).get("/sections", params={"limit": 1000}).json()
    one_course = walk(api, REGISTRAR, "/sections", limit=2, course_id=new[0])

    codes = [row["code"] for page in courses for row in page]
    assert codes == sorted(codes) and len(codes) == len(set(codes)) >= 60
    order = [(row["course_code"], row["section_number"]) for page in sections for row in page]
    assert order == sorted(order) and ids(sections) == [row["id"] for row in whole]
    assert [row["section_number"] for page in one_course for row in page] == [1, 2, 3]
    assert len(api.as_(REGISTRAR).get("/sections").json()) == 100  # the default page


def test_a_waitlist_pages_in_position_order_and_a_leaver_skips_nobody(api):
    with api.db() as conn:
        conn.execute("UPDATE sections SET capacity = 0, waitlist_capacity = 50 WHERE id = 2")
        conn.executemany(
            "INSERT INTO users (id, username, roles) VALUES (?, ?, 'student')",
            [(3000 + i, f"waiter{i}") for i in range(12)],
        )
    for i in range(12):
        reply = api.as_((3000 + i, f"waiter{i}", "student")).post(
            f"/users/{3000 + i}/enrollments", json={"section_id": 2}
        )
        assert reply.json()["status"] == "waitlisted", reply.text
    first = api.as_(REGISTRAR).get("/sections/2/waitlist", params={"limit": 5}).json()
    # The first in line leaves between two pages: the next page still starts after the fifth.
    api.as_(REGISTRAR).delete(f"/users/{first[0]['user_id']}/waitlist/2")
    rest = (
        api.as_(REGISTRAR)
        .get("/sections/2/waitlist", params={"limit": 100, "after": first[-1]["id"]})
        .json()
    )

    waiting = [row["user_id"] for row in first] + [row["user_id"] for row in rest]
    assert waiting[: len(first)] == list(range(3000, 3005))
    assert waiting[len(first) :] == list(range(3005, 3012))  # none skipped, none repeated
    assert [row["position"] for row in rest] == list(range(5, 12))  # the leaver moved them up
    course_id = api.as_(REGISTRAR).get("/sections/2").json()["course_id"]
    course = walk(api, REGISTRAR, f"/courses/{course_id}/waitlist", limit=4)
    whole = api.as_(REGISTRAR).get(f"/courses/{course_id}/waitlist").json()
    assert ids(course) == [row["id"] for row in whole] and len(whole) >= 11


def test_a_users_sections_and_waitlists_page_the_same_way(api):
    ava = (9, "ajohnson", "student")
    sections = api.as_(ava).get("/users/9/sections").json()
    paged = walk(api, ava, "/users/9/sections", limit=1)
    waits = api.as_(ava).get("/users/9/waitlist").json()
    paged_waits = walk(api, ava, "/users/9/waitlist", limit=1)

    assert len(sections) >= 2 and ids(paged) == [row["id"] for row in sections]
    assert ids(paged_waits) == [row["id"] for row in waits]


def test_the_audit_pages_back_in_time(api):
    for capacity in range(40, 52):
        api.as_(REGISTRAR).patch("/sections/1", json={"capacity": capacity})
    pages = walk(api, REGISTRAR, "/audit", limit=5)
    seen = ids(pages)
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) >= 12


@pytest.mark.parametrize(
    ("url", "params", "named"),
    [
        ("/users", {"limit": 0}, "limit"),
        ("/users", {"limit": 1001}, "limit"),
        ("/users", {"limit": "ten"}, "limit"),
        ("/users", {"after": 0}, "after"),
        ("/users", {"after": "last"}, "after"),
        ("/sections/1/enrollments", {"limit": -5}, "limit"),
        ("/sections/1/enrollments", {"after": 2**63}, "after"),
        ("/users/9/enrollments", {"limit": 1.5}, "limit"),
        ("/courses", {"limit": 0}, "limit"),
        ("/courses", {"after": -1}, "after"),
        ("/sections", {"limit": 1001}, "limit"),
        ("/sections", {"after": "x"}, "after"),
        ("/sections/1/waitlist", {"limit": 0}, "limit"),
        ("/courses/1/waitlist", {"after": 0}, "after"),
        ("/users/9/sections", {"limit": "all"}, "limit"),
        ("/users/9/waitlist", {"after": 0}, "after"),
        ("/audit", {"limit": 5000}, "limit"),
        ("/audit", {"after": "yesterday"}, "after"),
    ],
)
def test_bad_paging_input_is_a_422_naming_it(api, url, params, named):
    reply = api.as_(REGISTRAR).get(url, params=params)

    assert reply.status_code == 422
    assert named in reply.text


def test_the_catalog_search_matches_code_or_title_in_any_case_and_pages(api):
    codes = lambda reply: {(s["course_code"], s["course_title"]) for s in reply.json()}  # noqa: E731
    by_code = api.as_(AVA).get("/sections", params={"q": "cpsc 4"})
    by_title = api.as_(AVA).get("/sections", params={"q": "DATA STRUCT"})
    nothing = api.as_(AVA).get("/sections", params={"q": "no such course"})
    literal = api.as_(AVA).get("/sections", params={"q": "%"})  # a literal %, not a wildcard
    everything = api.as_(AVA).get("/sections", params={"limit": 1000}).json()
    pages = walk(api, AVA, "/sections", limit=1, q="cpsc")

    assert by_code.status_code == 200 and codes(by_code)
    assert all(code.startswith("CPSC 4") for code, _ in codes(by_code))
    assert codes(by_title) and all("data struct" in t.lower() for _, t in codes(by_title))
    assert nothing.json() == [] and literal.json() == []
    cpsc = [s["id"] for s in everything if "cpsc" in s["course_code"].lower()]
    assert ids(pages) == cpsc and len(cpsc) > 1


@pytest.mark.parametrize("q", ["", "x" * 101, "\x00", "cpsc\x00", "a\nb"])
def test_a_search_of_nothing_or_too_long_is_refused_naming_q(api, q):
    reply = api.as_(AVA).get("/sections", params={"q": q})

    assert reply.status_code == 422
    assert [e["field"] for e in reply.json()["errors"]] == ["q"]
