"""The notification rule (issue 27): whatever a person must hear about is written to the outbox
in the transaction of the change that causes it, so a change is never committed without its
notification nor a notification without its change; the notifier (app/notifier) delivers them.

The events, each written by the rule that makes the change: `enrolled` and `waitlisted` (with
the position) by enroll; `promoted` by the promotion from a waitlist, whatever freed the seat;
`dropped_by_staff` by a drop or a waitlist removal the student did not make themself;
`offered` (with the deadline) and `offer_expired` by seat offers (app/enrollment/offers);
`hold_placed` and `hold_lifted` by the registrar's holds; `section_deleted` for each student
enrolled in or waiting for a section the registrar deletes; `swapped` by a swap, one for its drop
and its add."""

import sqlite3
import weakref

from app.common.errors import Forbidden, NotFound
from app.enrollment.notifications import queries
from app.enrollment.people.models import Identity
from app.enrollment.people.service import require_self_or_registrar
from app.enrollment.sql import Row


def section_label(section: Row) -> str:
    """How a person names a section: `CPSC 449-01`."""
    return f"{section['course_code']}-{section['section_number']:02d}"


def _about(section: Row) -> str:
    return f"{section_label(section)} ({section['course_title']})"


def enrolled(tx: sqlite3.Connection, *, enrollment: Row, section: Row) -> None:
    """Enroll's outcome, a seat or a waitlist place (with its position)."""
    label = section_label(section)
    if enrollment["status"] == "enrolled":
        kind, subject = "enrolled", f"Enrolled in {label}"
        body = f"You are enrolled in {_about(section)}."
    else:
        position = enrollment["position"]
        kind, subject = "waitlisted", f"Waitlisted for {label}, position {position}"
        then = (
            "it will be offered to you, to accept within a deadline"
            if section["waitlist_mode"] == "offer"
            else "you will be enrolled and told"
        )
        body = (
            f"{_about(section)} is full: you are on its waitlist at position {position}. If a"
            f" seat comes free while you are first in line, {then}."
        )
    _add(tx, user_id=enrollment["user_id"], kind=kind, section=section, subject=subject, body=body)


def promoted(tx: sqlite3.Connection, *, user_id: int, section: Row) -> None:
    """A seat came free and the student first in line took it."""
    _add(
        tx,
        user_id=user_id,
        kind="promoted",
        section=section,
        subject=f"A seat came: you are enrolled in {section_label(section)}",
        body=f"A seat in {_about(section)} came free and you were first on its waitlist: you"
        " are now enrolled.",
    )


def offered(tx: sqlite3.Connection, *, user_id: int, section: Row, deadline: str) -> None:
    """A seat came free and is held for the student first in line until `deadline`."""
    _add(
        tx,
        user_id=user_id,
        kind="offered",
        section=section,
        subject=f"A seat in {section_label(section)} is yours to claim until {deadline}",
        body=f"A seat in {_about(section)} came free and you are first on its waitlist: it is"
        f" held for you until {deadline} (UTC). Accept it before then to be enrolled, or decline"
        " it; if you do neither, the offer expires, you leave the waitlist, and the seat is"
        " offered to the next student.",
    )


def offer_expired(tx: sqlite3.Connection, *, user_id: int, section: Row) -> None:
    """The student let an offer's deadline pass: their waitlist place ended."""
    _add(
        tx,
        user_id=user_id,
        kind="offer_expired",
        section=section,
        subject=f"Your seat offer in {section_label(section)} expired",
        body=f"The seat held for you in {_about(section)} was not claimed by its deadline: the"
        " offer expired, you are no longer on the section's waitlist, and the seat went to the"
        " next student. You may join the waitlist again if it has room.",
    )


def dropped_by_staff(
    tx: sqlite3.Connection, caller: Identity, *, user_id: int, section: Row, was: str
) -> None:
    """A drop or a waitlist removal the student did not make themself."""
    if caller.user_id == user_id:
        return
    who = "The registrar" if caller.is_registrar else "The section's instructor"
    place = "seat in" if was == "enrolled" else "place on the waitlist of"
    _add(
        tx,
        user_id=user_id,
        kind="dropped_by_staff",
        section=section,
        subject=f"Dropped from {section_label(section)}",
        body=f"{who} dropped you from {_about(section)}: your {place} the section is released.",
    )


def swapped(
    tx: sqlite3.Connection, *, user_id: int, dropped: Row, added: Row, enrollment: Row
) -> None:
    """A swap's outcome, one notification for its drop and its add: the seat given up in
    `dropped`, the seat or waitlist place (with its position) taken in `added`."""
    label = section_label(added)
    if enrollment["status"] == "enrolled":
        subject = f"Switched to {label}"
        place = f"you are enrolled in {_about(added)}"
    else:
        subject = f"Switched to the waitlist of {label}, position {enrollment['position']}"
        place = f"you are on the waitlist of {_about(added)} at position {enrollment['position']}"
    _add(
        tx,
        user_id=user_id,
        kind="swapped",
        section=added,
        subject=subject,
        body=f"Your seat in {_about(dropped)} is given up and {place}.",
    )


def section_deleted(tx: sqlite3.Connection, *, section: Row) -> None:
    """Before a section's seats and waitlist are released: each student in it is told."""
    if tx in _WITHOUT_OUTBOX:
        return
    label = section_label(section)
    queries.insert_for_live_members(
        tx,
        section_id=section["id"],
        kind="section_deleted",
        subject=f"{label} was cancelled",
        body=f"The registrar cancelled {_about(section)}: your seat or waitlist place in it is"
        " released. Other sections of the course may have room.",
    )


def hold_placed(tx: sqlite3.Connection, *, user_id: int, reason: str) -> None:
    _add(
        tx,
        user_id=user_id,
        kind="hold_placed",
        section=None,
        subject="A hold was placed on your registration",
        body=f"The registrar placed a hold on your registration: {reason}. Until it is lifted you"
        " cannot enroll or join a waitlist.",
    )


def hold_lifted(tx: sqlite3.Connection, *, user_id: int, reason: str) -> None:
    _add(
        tx,
        user_id=user_id,
        kind="hold_lifted",
        section=None,
        subject="The hold on your registration was lifted",
        body=f"The registrar lifted the hold on your registration ({reason}). You may enroll"
        " again.",
    )


# The connections of an installation without mail (setting `notifications` off).
_WITHOUT_OUTBOX: "weakref.WeakSet[sqlite3.Connection]" = weakref.WeakSet()


def without_outbox(conn: sqlite3.Connection) -> None:
    """The setting `notifications` off (ENROLL_NOTIFICATIONS=0): no change written on `conn`
    records an event, so nobody is told (create_app has its Database do this to every connection
    it opens). The one place that decides whether a notification is written: `_add` and
    `section_deleted`, which every event goes through."""
    _WITHOUT_OUTBOX.add(conn)


def _add(
    tx: sqlite3.Connection,
    *,
    user_id: int,
    kind: str,
    section: Row | None,
    subject: str,
    body: str,
) -> None:
    if tx in _WITHOUT_OUTBOX:
        return
    queries.insert(
        tx,
        user_id=user_id,
        kind=kind,
        section_id=None if section is None else section["id"],
        subject=subject,
        body=body,
    )


# the person's own list


def user_notifications(
    conn: sqlite3.Connection,
    caller: Identity,
    user_id: int,
    *,
    unread: bool | None,
    after: int | None,
    limit: int,
) -> list[Row]:
    """A user's notifications, newest first (that user's and the registrar's)."""
    require_self_or_registrar(caller, user_id)
    return queries.list_for_user(conn, user_id=user_id, unread=unread, after=after, limit=limit)


def _require_own(caller: Identity, user_id: int) -> None:
    """Rule: only the person marks their notifications; the registrar reading them does not."""
    if caller.user_id != user_id:
        raise Forbidden(f"only user {user_id} marks their own notifications read")


def set_read(
    tx: sqlite3.Connection, caller: Identity, user_id: int, notification_id: int, read: bool
) -> Row:
    """Mark one notification read or unread again."""
    _require_own(caller, user_id)
    found = queries.get(tx, notification_id=notification_id)
    if found is None or found["user_id"] != user_id:
        raise NotFound(f"user {user_id} has no notification {notification_id}")
    queries.set_read(tx, notification_id=notification_id, read=read)
    return queries.get(tx, notification_id=notification_id)  # type: ignore[return-value]  # just read: never None


def mark_read_up_to(tx: sqlite3.Connection, caller: Identity, user_id: int, up_to: int) -> Row:
    """Mark every notification of the user up to `up_to` read: what their list showed them."""
    _require_own(caller, user_id)
    marked = queries.mark_read_up_to(tx, user_id=user_id, up_to=up_to)
    return {"marked": marked, "unread": queries.count_unread(tx, user_id=user_id)}


def undelivered(conn: sqlite3.Connection, *, after: int | None, limit: int) -> list[Row]:
    """Events the notifier has not delivered yet, oldest first (registrar)."""
    return queries.undelivered(conn, after=after, limit=limit)
