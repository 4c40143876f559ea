"""The enrollment app tries the registration-day routes first (app/enrollment/main.py
`rush_first`). That is only safe if no path could match two route templates: then the route a
request finds does not depend on the order."""

import itertools

from app.enrollment.main import RUSH_PATHS


def _overlap(a: str, b: str) -> bool:
    """Whether some path matches both templates (a `{param}` matches any one segment)."""
    left, right = a.strip("/").split("/"), b.strip("/").split("/")
    return len(left) == len(right) and all(
        x == y or x.startswith("{") or y.startswith("{") for x, y in zip(left, right, strict=True)
    )


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
