"""The enrollment app tries the registration-day routes first: the enrollments room comes first in
app/enrollment/routes.py, and those routes first in its file. That order only saves matching
work; it is safe because no path could match two route templates: the route a request finds does
not depend on the order."""

import itertools

# What students send on registration day (bench/rush.py): enroll, drop, leave a waitlist, list
# their sections.
RUSH_PATHS = (
    "/users/{user_id}/enrollments",
    "/users/{user_id}/enrollments/{section_id}",
    "/users/{user_id}/waitlist/{section_id}",
    "/users/{user_id}/sections",
)


def _overlap(a: str, b: str) -> bool:
    """Whether some path matches both templates (a `{param}` matches any one segment)."""
    left, right = a.strip("/").split("/"), b.strip("/").split("/")
    return len(left) == len(right) and all(
        x == y or x.startswith("{") or y.startswith("{") for x, y in zip(left, right, strict=True)
    )


def test_the_rush_routes_are_tried_first(api):
    routes = [r for r in api.client.app.router.routes if hasattr(r, "path")]
    rush = [r for r in routes if r.path in RUSH_PATHS]
    assert {r.path for r in rush} == set(RUSH_PATHS), "a rush path names no route"
    assert routes[: len(rush)] == rush


def test_no_path_matches_two_route_templates(api):
    templates = {r.path for r in api.client.app.router.routes if hasattr(r, "path")}
    assert set(RUSH_PATHS) <= templates, "a rush path names no route"
    clashes = [(a, b) for a, b in itertools.combinations(sorted(templates), 2) if _overlap(a, b)]
    assert clashes == []


def test_the_overlap_check_sees_a_clash():
    assert _overlap("/users/{user_id}", "/users/me")
    assert _overlap("/a/{x}/c", "/a/b/{y}")
    assert not _overlap("/users/{user_id}/sections", "/users/{user_id}/waitlist")
    assert not _overlap("/users/{user_id}", "/users/{user_id}/sections")
