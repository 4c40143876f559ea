"""Paging of the long lists (GET /users, a section's roster, a user's enrollments): `limit` rows
at a time in id order, the next page after the last id seen."""

import pytest

from tests.enrollment.helpers import KAVERY, REGISTRAR


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
    ],
)
def test_bad_paging_input_is_a_422_naming_it(api, url, params, named):
    reply = api.as_(REGISTRAR).get(url, params=params)

    assert reply.status_code == 422
    assert named in reply.text
