"""The eligibility rules, checked in one order (`eligibility_refusal`) inside the transaction
that gives a seat or a waitlist place; and the registrar's and instructors' tools: holds,
permits, prerequisites, credit limits."""

import sqlite3

from app.common.db import snapshot
from app.common.errors import Conflict, NotFound
from app.common.identity import STUDENT
from app.enrollment.audit.service import record
from app.enrollment.catalog.service import (
    get_course_or_404,
    get_section_or_404,
    require_section_staff,
)
from app.enrollment.eligibility import queries
from app.enrollment.notifications import service as notify
from app.enrollment.people.models import Identity
from app.enrollment.people.service import get_user_or_404, user_record
from app.enrollment.sql import Row
from app.enrollment.terms.models import now
from app.enrollment.terms.queries import get_term, windows_of_term_for


def not_a_student(user: Row, what: str) -> Conflict | None:
    """Rule: only students get permits, seats and waitlist places; an account without the
    student role (an instructor, the registrar) is refused, whoever asks for it."""
    if STUDENT in user["roles"]:
        return None
    return Conflict(
        f"user {user['id']} ({user['username']}) is not a student: {what}", code="not_a_student"
    )


DEFAULT_CREDIT_LIMIT = 18


class Waivers:
    """The rules the student's live permits for one section waive, read only if a rule needs
    them (most requests break none, and pay nothing for permits)."""

    def __init__(self, conn: sqlite3.Connection, *, section_id: int, user_id: int) -> None:
        self.conn, self.section_id, self.user_id = conn, section_id, user_id
        self._waived: set[str] | None = None

    def __contains__(self, rule: str) -> bool:
        if self._waived is None:
            self._waived = queries.live_waivers(
                self.conn, section_id=self.section_id, user_id=self.user_id
            )
        return rule in self._waived


def eligibility_refusal(
    conn: sqlite3.Connection,
    *,
    user_id: int,
    section: Row,
    waivers: Waivers,
) -> Conflict | None:
    """The first rule that refuses the student a place (a seat or the waitlist) in the section,
    as the 409 to answer, or None. In order: an account that is not a student's, a hold (no
    permit waives either), the term's registration window and add deadline, prerequisites, a
    time conflict with a section they hold in the same term, the term's credit limit."""
    refusal = _student_refusal(conn, user_id=user_id)
    if refusal is not None:
        return refusal
    if section["term_id"] is not None:
        closed = window_refusal(conn, user_id=user_id, term_id=section["term_id"])
        if closed is not None and "window" not in waivers:
            return closed
    return _seat_refusal(conn, user_id=user_id, section=section, waivers=waivers)


def promotion_refusal(
    conn: sqlite3.Connection, *, user_id: int, section: Row, waivers: Waivers
) -> Conflict | None:
    """`eligibility_refusal` for a student moving up from the waitlist (promoted, or offered a
    seat, or accepting one): every rule but the registration window and add deadline, which the
    student met when they joined the waitlist."""
    refusal = _student_refusal(conn, user_id=user_id)
    if refusal is not None:
        return refusal
    return _seat_refusal(conn, user_id=user_id, section=section, waivers=waivers)


def _student_refusal(conn: sqlite3.Connection, *, user_id: int) -> Conflict | None:
    """An account that is not a student's, or a hold (no permit waives either)."""
    user = get_user_or_404(conn, user_id)
    refusal = not_a_student(user, "only students take seats or waitlist places")
    if refusal is not None:
        return refusal
    hold = queries.active_hold(conn, user_id=user_id)
    if hold is not None:
        return Conflict(
            f"user {user_id} has a hold: {hold['reason']} (hold {hold['id']}); the registrar"
            " lifts holds",
            code="hold",
        )
    return None


def _seat_refusal(
    conn: sqlite3.Connection, *, user_id: int, section: Row, waivers: Waivers
) -> Conflict | None:
    """Prerequisites, a time conflict, the credit limit: what the section itself asks."""
    missing = queries.missing_prerequisites(conn, course_id=section["course_id"], user_id=user_id)
    if missing and "prerequisite" not in waivers:
        return Conflict(
            f"{section['course_code']} needs {', '.join(missing)} completed first",
            code="prerequisite_missing",
        )
    clash = queries.time_conflict(conn, section_id=section["id"], user_id=user_id)
    if clash is not None and "time_conflict" not in waivers:
        return Conflict(
            f"section {section['id']} meets at the same time as section {clash['id']}"
            f" ({clash['course_code']}-{clash['section_number']}), which user {user_id} holds",
            code="time_conflict",
        )
    held = queries.credits_held(conn, user_id=user_id, term_id=section["term_id"])
    limit = queries.credit_limit(conn, user_id=user_id)
    limit = DEFAULT_CREDIT_LIMIT if limit is None else limit
    if held + section["credits"] > limit and "credit_limit" not in waivers:
        return Conflict(
            f"{section['course_code']} is {section['credits']} credits: user {user_id} holds"
            f" {held} this term, so {held + section['credits']}, over their limit of {limit}",
            code="credit_limit",
        )
    return None


def window_refusal(conn: sqlite3.Connection, *, user_id: int, term_id: int) -> Conflict | None:
    """Why the student may not add a section of the term now (its add deadline has passed, or
    none of their registration windows is open), or None."""
    term = get_term(conn, term_id=term_id)
    assert term is not None
    moment = now()
    if term["add_deadline"] and moment > term["add_deadline"]:
        return Conflict(
            f"the add deadline of term {term['code']} was {term['add_deadline']}",
            code="add_deadline_passed",
        )
    total, mine = windows_of_term_for(conn, term_id=term_id, user_id=user_id)
    if not total or any(w["opens_at"] <= moment < w["closes_at"] for w in mine):
        return None
    upcoming = [w["opens_at"] for w in mine if w["opens_at"] > moment]
    if upcoming:
        detail = (
            f"user {user_id}'s registration window for term {term['code']} opens at {min(upcoming)}"
        )
    else:
        detail = f"no registration window for term {term['code']} is open to user {user_id}"
    return Conflict(detail, code="registration_window_closed")


# holds, permits, prerequisites, completed courses, credit limits


def place_hold(tx: sqlite3.Connection, caller: Identity, user_id: int, reason: str) -> Row:
    """The registrar stops a student from enrolling or joining a waitlist (dropping stays open)."""
    get_user_or_404(tx, user_id)
    hold_id = queries.place_hold(tx, user_id=user_id, reason=reason, placed_by=caller.user_id)
    record(tx, caller, "hold.place", user_id=user_id, hold_id=hold_id, reason=reason)
    notify.hold_placed(tx, user_id=user_id, reason=reason)
    return queries.get_hold(tx, hold_id=hold_id)  # type: ignore[return-value]  # just written: never None


def lift_hold(tx: sqlite3.Connection, caller: Identity, user_id: int, hold_id: int) -> Row:
    hold = queries.get_hold(tx, hold_id=hold_id)
    if hold is None or hold["user_id"] != user_id:
        raise NotFound(f"user {user_id} has no hold {hold_id}")
    if hold["lifted_at"] is not None:
        raise Conflict(f"hold {hold_id} was lifted already", code="hold_lifted")
    queries.lift_hold(tx, hold_id=hold_id, lifted_by=caller.user_id)
    record(tx, caller, "hold.lift", user_id=user_id, hold_id=hold_id)
    notify.hold_lifted(tx, user_id=user_id, reason=hold["reason"])
    return queries.get_hold(tx, hold_id=hold_id)  # type: ignore[return-value]  # just written: never None


def user_holds(
    conn: sqlite3.Connection, caller: Identity, user_id: int, *, after: int | None, limit: int
) -> list[Row]:
    user_record(conn, caller, user_id)
    return queries.list_holds(conn, user_id=user_id, after=after, limit=limit)


def all_holds(
    conn: sqlite3.Connection, *, open_only: bool, after: int | None, limit: int
) -> list[Row]:
    """The registrar's list of holds across students: those still open (the ones that stop a
    student now) unless `open_only` is False (the lifted ones, for the record), newest first."""
    return queries.all_holds(conn, lifted=not open_only, after=after, limit=limit)


def grant_permit(
    tx: sqlite3.Connection, caller: Identity, section_id: int, user_id: int, waives: list[str]
) -> Row:
    """The registrar, or the section's instructor, lets one student past the named rules of one
    section (capacity, prerequisite, time_conflict, credit_limit). A hold is never waived."""
    section = get_section_or_404(tx, section_id)
    require_section_staff(caller, section)
    refusal = not_a_student(get_user_or_404(tx, user_id), "permits are for students")
    if refusal is not None:
        raise refusal
    permit_id = queries.grant_permit(
        tx, section_id=section_id, user_id=user_id, waives=waives, granted_by=caller.user_id
    )
    record(
        tx,
        caller,
        "permit.grant",
        course_id=section["course_id"],
        section_id=section_id,
        user_id=user_id,
        permit_id=permit_id,
        waives=waives,
    )
    return queries.get_permit(tx, permit_id=permit_id)  # type: ignore[return-value]  # just written: never None


def revoke_permit(tx: sqlite3.Connection, caller: Identity, section_id: int, permit_id: int) -> Row:
    """A permit stops waiving anything; a place it already gave stays."""
    section = get_section_or_404(tx, section_id)
    require_section_staff(caller, section)
    permit = queries.get_permit(tx, permit_id=permit_id)
    if permit is None or permit["section_id"] != section_id:
        raise NotFound(f"section {section_id} has no permit {permit_id}")
    if permit["revoked_at"] is not None:
        raise Conflict(f"permit {permit_id} was revoked already", code="permit_revoked")
    queries.revoke_permit(tx, permit_id=permit_id)
    record(
        tx,
        caller,
        "permit.revoke",
        course_id=section["course_id"],
        section_id=section_id,
        user_id=permit["user_id"],
        permit_id=permit_id,
    )
    return queries.get_permit(tx, permit_id=permit_id)  # type: ignore[return-value]  # just written: never None


def section_permits(
    conn: sqlite3.Connection, caller: Identity, section_id: int, *, after: int | None, limit: int
) -> list[Row]:
    with snapshot(conn):
        require_section_staff(caller, get_section_or_404(conn, section_id))
        return queries.list_permits(conn, section_id=section_id, after=after, limit=limit)


def user_permits(
    conn: sqlite3.Connection, caller: Identity, user_id: int, *, after: int | None, limit: int
) -> list[Row]:
    user_record(conn, caller, user_id)
    return queries.list_permits(conn, user_id=user_id, after=after, limit=limit)


def set_prerequisites(
    tx: sqlite3.Connection, caller: Identity, course_id: int, prerequisite_ids: list[int]
) -> list[Row]:
    """Replace a course's prerequisites. Each must be another existing course, and none may
    need this course in turn (directly or through others): such a loop would bar everyone."""
    wanted = sorted(set(prerequisite_ids))
    course = get_course_or_404(tx, course_id)
    for prerequisite_id in wanted:
        get_course_or_404(tx, prerequisite_id)
    if course_id in wanted:
        raise Conflict(
            f"course {course_id} cannot be its own prerequisite", code="prerequisite_cycle"
        )
    looped = queries.courses_needing(tx, course_id=course_id) & set(wanted)
    if looped:
        raise Conflict(
            f"course {min(looped)} already needs {course['code']} (directly or through"
            " others): it cannot also be its prerequisite",
            code="prerequisite_cycle",
        )
    queries.set_prerequisites(tx, course_id=course_id, prerequisite_ids=wanted)
    record(tx, caller, "course.prerequisites", course_id=course_id, prerequisites=wanted)
    return queries.prerequisites(tx, course_id=course_id)


def course_prerequisites(conn: sqlite3.Connection, course_id: int) -> list[Row]:
    with snapshot(conn):
        get_course_or_404(conn, course_id)
        return queries.prerequisites(conn, course_id=course_id)


def user_completed(
    conn: sqlite3.Connection, caller: Identity, user_id: int, *, after: int | None, limit: int
) -> list[Row]:
    user_record(conn, caller, user_id)
    return queries.completed_courses(conn, user_id=user_id, after=after, limit=limit)


def set_credit_limit(
    tx: sqlite3.Connection, caller: Identity, user_id: int, credit_limit: int | None
) -> Row:
    """The registrar raises or lowers one student's credit limit (None: back to the default).
    What they already hold stays; the limit applies to what they add next."""
    get_user_or_404(tx, user_id)
    queries.set_credit_limit(tx, user_id=user_id, credit_limit=credit_limit)
    record(tx, caller, "user.credit_limit", user_id=user_id, credit_limit=credit_limit)
    return get_user_or_404(tx, user_id)
