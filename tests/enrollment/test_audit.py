"""The audit trail: registrar and instructor actions, who/what/when, queryable by the registrar."""

import ast
from pathlib import Path
from typing import get_args

from app.enrollment.audit.models import AuditAction
from tests.enrollment.helpers import AVA, KAVERY, REGISTRAR, person

APP = Path(__file__).resolve().parents[2] / "app" / "enrollment"


def trail(api, query: str = "") -> list[dict]:
    response = api.as_(REGISTRAR).get(f"/audit{query}")
    assert response.status_code == 200, response.text
    return response.json()


def test_staff_actions_are_logged_with_actor_action_and_time(api):
    api.as_(REGISTRAR).patch("/sections/1", json={"capacity": 5})  # promotes user 13
    api.as_(KAVERY).delete("/sections/1/enrollments/9")  # promotes user 14
    api.as_(REGISTRAR).post("/users/31/enrollments", json={"section_id": 4})
    entries = trail(api)
    assert [(e["actor_id"], e["actor_role"], e["action"], e["section_id"], e["user_id"])
            for e in entries] == [
        (1, "registrar", "enrollment.enroll", 4, 31),
        (3, "instructor", "enrollment.administrative_drop", 1, 9),
        (1, "registrar", "section.update", 1, None),
    ]  # fmt: skip
    assert entries[2]["details"] == {"changes": {"capacity": 5}, "promoted": [13]}
    assert entries[1]["details"] == {"was": "enrolled"}
    assert all(e["at"].startswith("20") and e["at"].endswith("Z") for e in entries)


def test_students_acting_for_themselves_are_not_logged(api):
    api.as_(person(31)).post("/users/31/enrollments", json={"section_id": 4})
    api.as_(AVA).delete("/users/9/enrollments/2")
    assert trail(api) == []


def test_a_refused_action_leaves_no_audit_entry(api):
    response = api.as_(REGISTRAR).patch("/sections/1", json={"capacity": 1})
    assert response.status_code == 409
    assert trail(api) == []


def test_filters_and_paging(api):
    api.as_(REGISTRAR).post(
        "/courses", json={"department_id": 1, "code": "CPSC 490", "title": "Capstone"}
    )
    for capacity in (31, 32, 33):
        api.as_(REGISTRAR).patch("/sections/2", json={"capacity": capacity})
    api.as_(REGISTRAR).delete("/sections/5")
    assert [e["action"] for e in trail(api, "?section_id=2")] == ["section.update"] * 3
    assert [e["action"] for e in trail(api, "?action=section.delete")] == ["section.delete"]
    first_page = trail(api, "?limit=2")
    assert len(first_page) == 2
    rest = trail(api, f"?after={first_page[-1]['id']}")
    assert [e["id"] for e in first_page + rest] == sorted(
        (e["id"] for e in trail(api)), reverse=True
    )
    assert trail(api, "?actor_id=3") == []


def test_bad_audit_queries_are_422(api):
    for query in ("?limit=0", "?limit=5000", "?action=drop_table", "?actor_id=-1"):
        response = api.as_(REGISTRAR).get(f"/audit{query}")
        assert response.status_code == 422, query


def test_every_action_the_service_records_is_one_the_trail_can_show():
    """GET /audit answers only the actions its model lists: an action recorded under another
    name would make the whole trail a 500. Every `record(...)`/`record_by_system(...)` call's
    action, found in the source, is listed."""
    recorded = set()
    for module in APP.rglob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                where = {"record": 2, "record_by_system": 1}.get(node.func.id)
                if where is not None and len(node.args) > where:
                    action = node.args[where]
                    assert isinstance(action, ast.Constant), f"{module}: {ast.dump(action)}"
                    recorded.add(action.value)
    assert {"enrollment.enroll", "waitlist.skip", "offer.expire"} <= recorded  # the walk works
    assert recorded - set(get_args(AuditAction)) == set()
