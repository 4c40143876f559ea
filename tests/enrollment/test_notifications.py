"""The notifications outbox (issue 27): each event a person must hear about is written in the
transaction of the change that causes it, and listed to them (and the registrar) newest first,
with read marks only they set; the registrar lists what the notifier has not delivered."""

import pytest
from fastapi.testclient import TestClient

from app.enrollment.init_db import init_db
from app.enrollment.main import create_app
from app.enrollment.notifications import queries as outbox
from app.enrollment.settings import Settings
from tests.enrollment.helpers import (
    AVA,
    KAVERY,
    LCHEN,
    LIAM,
    REGISTRAR,
    Api,
    make_secret_file,
    person,
)
from tests.enrollment.test_rules import enroll, enrolled, fill, new_section


def notes(api, user_id: int, who: tuple | None = None, **params) -> list[dict]:
    reply = api.as_(who or person(user_id)).get(f"/users/{user_id}/notifications", params=params)
    assert reply.status_code == 200, reply.text
    return reply.json()


def kinds(api, user_id: int) -> list[tuple[str, str]]:
    """(kind, subject) of a user's notifications, oldest first."""
    return [(n["kind"], n["subject"]) for n in reversed(notes(api, user_id))]


def test_enroll_tells_the_student_of_a_seat_or_a_waitlist_place_with_its_position(api):
    section = new_section(api, capacity=1)
    fill(api, section, [11])
    assert enroll(api, 12, section).json()["position"] == 1
    enroll(api, 13, section)
    assert kinds(api, 11) == [("enrolled", "Enrolled in CPSC 474-50")]
    assert kinds(api, 12) == [("waitlisted", "Waitlisted for CPSC 474-50, position 1")]
    assert kinds(api, 13) == [("waitlisted", "Waitlisted for CPSC 474-50, position 2")]
    [note] = notes(api, 13)
    assert note["section_id"] == section and note["read"] is False and note["delivered"] is False
    assert "position 2" in note["body"]


def test_a_refused_enroll_writes_no_notification(api):
    section = new_section(api, capacity=1, waitlist_capacity=0)
    fill(api, section, [11])
    assert enroll(api, 12, section).status_code == 409
    assert notes(api, 12) == []


def test_the_notification_is_in_the_change_s_transaction(api, monkeypatch):
    section = new_section(api, capacity=1)

    def broken(*args, **kwargs):
        raise RuntimeError("the outbox insert fails")

    monkeypatch.setattr(outbox, "insert", broken)
    with pytest.raises(RuntimeError):
        enroll(api, 11, section)
    monkeypatch.undo()
    with api.db() as conn:  # nothing of the enroll was committed without its notification
        rows = conn.execute("SELECT * FROM enrollments WHERE section_id = ?", (section,))
        assert rows.fetchall() == []


def test_a_drop_tells_the_head_of_the_waitlist_of_the_seat_and_no_one_else(api):
    section = new_section(api, capacity=1)
    fill(api, section, [11, 12, 13])
    assert api.as_(person(11)).delete(f"/users/11/enrollments/{section}").status_code == 200
    assert kinds(api, 12)[-1] == ("promoted", "A seat came: you are enrolled in CPSC 474-50")
    assert kinds(api, 11) == [("enrolled", "Enrolled in CPSC 474-50")]  # their own drop: no mail
    assert [k for k, _ in kinds(api, 13)] == ["waitlisted"]


def test_raising_the_capacity_tells_each_student_promoted(api):
    section = new_section(api, capacity=1)
    fill(api, section, [11, 12, 13])
    reply = api.as_(REGISTRAR).patch(f"/sections/{section}", json={"capacity": 3})
    assert reply.status_code == 200, reply.text
    assert [kinds(api, u)[-1][0] for u in (12, 13)] == ["promoted", "promoted"]


@pytest.mark.parametrize(
    ("who", "url", "said"),
    [
        (KAVERY, "/sections/{section}/enrollments/{user}", "The section's instructor"),
        (REGISTRAR, "/sections/{section}/enrollments/{user}", "The registrar"),
        (REGISTRAR, "/users/{user}/enrollments/{section}", "The registrar"),
    ],
)
def test_a_drop_by_staff_tells_the_student(api, who, url, said):
    section = new_section(api, capacity=1)
    fill(api, section, [11])
    reply = api.as_(who).delete(url.format(section=section, user=11))
    assert reply.status_code == 200, reply.text
    [dropped, _] = notes(api, 11)
    assert (dropped["kind"], dropped["subject"]) == ("dropped_by_staff", "Dropped from CPSC 474-50")
    assert dropped["body"].startswith(said)


def test_the_registrar_removing_a_student_from_a_waitlist_tells_them(api):
    section = new_section(api, capacity=1)
    fill(api, section, [11, 12])
    assert api.as_(REGISTRAR).delete(f"/users/12/waitlist/{section}").status_code == 200
    assert kinds(api, 12)[-1][0] == "dropped_by_staff"
    assert "place on the waitlist" in notes(api, 12)[0]["body"]


def test_holds_placed_and_lifted_are_told(api):
    hold = api.as_(REGISTRAR).post("/users/11/holds", json={"reason": "unpaid fees"}).json()
    api.as_(REGISTRAR).delete(f"/users/11/holds/{hold['id']}")
    assert [k for k, _ in kinds(api, 11)] == ["hold_placed", "hold_lifted"]
    assert "unpaid fees" in notes(api, 11)[1]["body"]
    assert notes(api, 11)[0]["section_id"] is None


def test_deleting_a_section_tells_everyone_in_it(api):
    section = new_section(api, capacity=1)
    fill(api, section, [11, 12])
    assert api.as_(REGISTRAR).delete(f"/sections/{section}").status_code == 204
    for user in (11, 12):
        assert kinds(api, user)[-1] == ("section_deleted", "CPSC 474-50 was cancelled")


# the list: whose, paging, read marks


def test_only_the_person_and_the_registrar_read_a_person_s_notifications(api):
    section = new_section(api, capacity=1)
    fill(api, section, [9])
    assert len(notes(api, 9, AVA)) == len(notes(api, 9, REGISTRAR)) == 1
    for other in (LIAM, KAVERY, LCHEN):
        reply = api.as_(other).get("/users/9/notifications")
        assert (reply.status_code, reply.json()["code"]) == (403, "forbidden")


def test_pages_newest_first_and_filters_unread(api):
    for n in range(5):
        api.as_(REGISTRAR).post("/users/11/holds", json={"reason": f"hold {n}"})
    everything = notes(api, 11)
    ids = [n["id"] for n in everything]
    assert ids == sorted(ids, reverse=True) and len(ids) == 5
    first = notes(api, 11, limit=2)
    second = notes(api, 11, limit=2, after=first[-1]["id"])
    assert [n["id"] for n in first + second] == ids[:4]

    marked = api.as_(person(11)).patch("/users/11/notifications", json={"read_up_to": ids[2]})
    assert marked.status_code == 200, marked.text
    assert marked.json() == {"marked": 3, "unread": 2}
    assert [n["id"] for n in notes(api, 11, unread=True)] == ids[:2]
    assert [n["id"] for n in notes(api, 11, unread=False)] == ids[2:]

    one = api.as_(person(11)).patch(f"/users/11/notifications/{ids[0]}", json={"read": True})
    assert one.status_code == 200 and one.json()["read"] is True
    again = api.as_(person(11)).patch(f"/users/11/notifications/{ids[4]}", json={"read": False})
    assert again.json()["read"] is False
    assert [n["id"] for n in notes(api, 11, unread=True)] == [ids[1], ids[4]]


def test_only_the_person_marks_read_and_only_their_own(api):
    api.as_(REGISTRAR).post("/users/11/holds", json={"reason": "x"})
    [note] = notes(api, 11)
    url = f"/users/11/notifications/{note['id']}"
    by_registrar = api.as_(REGISTRAR).patch(url, json={"read": True})
    by_other = api.as_(person(12)).patch(url, json={"read": True})
    others_id = api.as_(person(12)).patch(
        f"/users/12/notifications/{note['id']}", json={"read": True}
    )
    missing = api.as_(person(11)).patch("/users/11/notifications/999999", json={"read": True})
    assert (by_registrar.status_code, by_other.status_code) == (403, 403)
    assert (others_id.status_code, missing.status_code) == (404, 404)
    assert notes(api, 11)[0]["read"] is False


@pytest.mark.parametrize(
    ("method", "url", "body", "field"),
    [
        ("patch", "/users/11/notifications", {"read_up_to": 0}, "read_up_to"),
        ("patch", "/users/11/notifications", {"read_up_to": "1"}, "read_up_to"),
        ("patch", "/users/11/notifications", {}, "read_up_to"),
        ("patch", "/users/11/notifications/1", {"read": "yes"}, "read"),
        ("patch", "/users/11/notifications/0", {"read": True}, "notification_id"),
        ("get", "/users/11/notifications?unread=maybe", None, "unread"),
        ("get", "/users/11/notifications?limit=0", None, "limit"),
    ],
)
def test_bad_input_is_422_naming_the_field(api, method, url, body, field):
    kwargs = {} if body is None else {"json": body}
    reply = getattr(api.as_(person(11)), method)(url, **kwargs)
    assert reply.status_code == 422, reply.text
    assert [e["field"] for e in reply.json()["errors"]] == [field]


def test_the_registrar_lists_what_is_not_delivered_yet(api):
    api.as_(REGISTRAR).post("/users/11/holds", json={"reason": "x"})
    api.as_(REGISTRAR).post("/users/12/holds", json={"reason": "y"})
    with api.db() as conn:
        first = conn.execute("SELECT min(id) FROM notifications").fetchone()[0]
        outbox.mark_delivered(conn, notification_id=first)
        outbox.mark_failed(conn, notification_id=first + 1, next_attempt=99.0, error="421 busy")
    reply = api.as_(REGISTRAR).get("/notifications/undelivered")
    assert reply.status_code == 200, reply.text
    [pending] = reply.json()
    assert (pending["user_id"], pending["attempts"], pending["last_error"]) == (12, 1, "421 busy")
    assert api.as_(AVA).get("/notifications/undelivered").status_code == 403


# the setting: an installation without mail writes no outbox


@pytest.mark.parametrize(("env", "written"), [(None, True), ("1", True), ("0", False)])
def test_the_notifications_setting_turns_the_outbox_on_and_off(tmp_path, monkeypatch, env, written):
    if env is not None:
        monkeypatch.setenv("ENROLL_NOTIFICATIONS", env)
    init_db(tmp_path / "enroll.db")
    secret_file = make_secret_file(tmp_path)
    settings = Settings(database=tmp_path / "enroll.db", gateway_secret_file=secret_file)
    assert settings.notifications is written
    with TestClient(create_app(settings)) as client:
        api = Api(client, secret_file.read_text(), tmp_path / "enroll.db")
        section = new_section(api, capacity=1)
        fill(api, section, [11, 12])
        assert api.as_(person(11)).delete(f"/users/11/enrollments/{section}").status_code == 200
        assert enrolled(api, section) == [12]  # the change itself, told or not
        assert api.as_(REGISTRAR).delete(f"/sections/{section}").status_code == 204
    with api.db() as conn:
        found = conn.execute("SELECT user_id, kind FROM notifications ORDER BY id").fetchall()
    expected = [(11, "enrolled"), (12, "waitlisted"), (12, "promoted"), (12, "section_deleted")]
    assert [tuple(row) for row in found] == (expected if written else [])
