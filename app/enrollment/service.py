"""The registration rules of SPEC §2, each implemented once, by name.

A function that changes something takes `tx`, the `BEGIN IMMEDIATE` transaction its route's
`db.write(...)` opens for it (app/common/db.py `Database.write`): every read-then-write is one
transaction, so the three instances sharing the database file serialise on SQLite's write lock
and never act on a stale read. A function that only reads takes `conn`. Nothing here keeps state
between requests.
"""

import csv
import io
import json
import re
import sqlite3
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from app.common.db import on_commit, snapshot
from app.common.errors import Conflict, Forbidden, Invalid, NotFound
from app.common.identity import INSTRUCTOR, REGISTRAR, STUDENT
from app.enrollment import metrics, queries
from app.enrollment.models import (
    CourseCreate,
    EnrollIn,
    SectionCreate,
    SectionUpdate,
    TermChange,
    TermIn,
    WindowIn,
    utc_text,
)

MAX_WAITLISTS_PER_STUDENT = 3


@dataclass(frozen=True)
class Identity:
    user_id: int
    username: str
    roles: frozenset[str]

    @property
    def is_registrar(self) -> bool:
        return REGISTRAR in self.roles

    @property
    def is_staff(self) -> bool:
        return REGISTRAR in self.roles or INSTRUCTOR in self.roles


# object rules ("that user", "instructor of that section")


def require_self_or_registrar(caller: Identity, user_id: int) -> None:
    """Rule: a user's own records are theirs and the registrar's, nobody else's."""
    if caller.user_id != user_id and not caller.is_registrar:
        raise Forbidden(f"user {caller.user_id} may not act on user {user_id}'s records")


def require_section_staff(caller: Identity, section: dict) -> None:
    """Rule: only the registrar and the section's own instructor manage a section's roster."""
    if caller.is_registrar:
        return
    if INSTRUCTOR in caller.roles and section["instructor_id"] == caller.user_id:
        return
    raise Forbidden(f"user {caller.user_id} does not teach section {section['id']}")


# lookups that 404


def get_section_or_404(conn: sqlite3.Connection, section_id: int) -> dict:
    section = queries.get_section(conn, section_id=section_id)
    if section is None:
        raise NotFound(f"section {section_id} not found")
    return section


def get_course_or_404(conn: sqlite3.Connection, course_id: int) -> dict:
    course = queries.get_course(conn, course_id=course_id)
    if course is None:
        raise NotFound(f"course {course_id} not found")
    return course


def get_user_or_404(conn: sqlite3.Connection, user_id: int) -> dict:
    user = queries.get_user(conn, user_id=user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


def _require_instructor(conn: sqlite3.Connection, instructor_id: int) -> None:
    user = get_user_or_404(conn, instructor_id)
    if INSTRUCTOR not in user["roles"].split(","):
        raise Conflict(f"user {instructor_id} is not an instructor", code="not_an_instructor")


def not_a_student(user: dict, what: str) -> Conflict | None:
    """Rule: only students get permits, seats and waitlist places; an account without the
    student role (an instructor, the registrar) is refused, whoever asks for it."""
    if STUDENT in user["roles"].split(","):
        return None
    return Conflict(
        f"user {user['id']} ({user['username']}) is not a student: {what}", code="not_a_student"
    )


# audit trail


def record(
    conn: sqlite3.Connection,
    caller: Identity,
    action: str,
    *,
    course_id: int | None = None,
    section_id: int | None = None,
    user_id: int | None = None,
    **details: object,
) -> None:
    """Audit rule: every action of a caller holding the registrar or instructor role is logged
    (who, what, when) inside the transaction that performs it, whatever its target, themself
    included. A student acting on their own records (the only ones they can act on) is not."""
    if not caller.is_staff:
        return
    queries.insert_audit(
        conn,
        actor_id=caller.user_id,
        actor_role=REGISTRAR if caller.is_registrar else INSTRUCTOR,
        action=action,
        course_id=course_id,
        section_id=section_id,
        user_id=user_id,
        details=json.dumps(details, sort_keys=True),
    )


def audit_trail(conn: sqlite3.Connection, **filters) -> list[dict]:
    """The registrar's view of the audit log, newest first."""
    rows = queries.list_audit(conn, **filters)
    return [{**r, "details": json.loads(r["details"])} for r in rows]


# identity


def user_is_current(conn: sqlite3.Connection, caller: Identity) -> bool:
    """Whether the caller's row exists here with the username and roles of their token."""
    known = queries.get_user(conn, user_id=caller.user_id)
    return (
        known is not None
        and known["username"] == caller.username
        and known["roles"] == ",".join(sorted(caller.roles))
    )


def account_is_recorded(conn: sqlite3.Connection, account: dict) -> bool:
    """Whether this service's record of the account says what the auth service says."""
    known = queries.get_user(conn, user_id=account["id"])
    return known is not None and (
        known["username"],
        known["first_name"],
        known["last_name"],
        known["roles"],
    ) == (
        account["username"],
        account["first_name"],
        account["last_name"],
        ",".join(sorted(account["roles"])),
    )


def remember_account(tx: sqlite3.Connection, account: dict) -> None:
    """Record an account the auth service has (app/enrollment/directory.py), names included."""
    queries.upsert_account(
        tx,
        user_id=account["id"],
        username=account["username"],
        first_name=account["first_name"],
        last_name=account["last_name"],
        roles=",".join(sorted(account["roles"])),
    )


def remember_user(tx: sqlite3.Connection, caller: Identity) -> None:
    """Identity rule: a signed-in user exists here from their first request, no manual step
    (app/enrollment/deps.py `identify` calls this when `user_is_current` is false)."""
    roles = ",".join(sorted(caller.roles))
    try:
        queries.upsert_user(tx, user_id=caller.user_id, username=caller.username, roles=roles)
    except sqlite3.IntegrityError as exc:
        raise Conflict(
            f"username {caller.username!r} belongs to another user id", code="identity_conflict"
        ) from exc


# catalog


def create_course(tx: sqlite3.Connection, caller: Identity, data: CourseCreate) -> dict:
    """Registrar adds a course; its code is unique."""
    if queries.get_department(tx, department_id=data.department_id) is None:
        raise NotFound(f"department {data.department_id} not found")
    if queries.get_course_by_code(tx, code=data.code) is not None:
        raise Conflict(f"course {data.code} already exists", code="course_exists")
    course_id = queries.create_course(
        tx,
        department_id=data.department_id,
        code=data.code,
        title=data.title,
        credits=data.credits,
    )
    record(tx, caller, "course.create", course_id=course_id, code=data.code)
    return get_course_or_404(tx, course_id)


def create_section(tx: sqlite3.Connection, caller: Identity, data: SectionCreate) -> dict:
    """Registrar opens a section of a course; section numbers are unique per course."""
    get_course_or_404(tx, data.course_id)
    if data.term_id is not None:
        _term_or_404(tx, data.term_id)
    if data.instructor_id is not None:
        _require_instructor(tx, data.instructor_id)
    if queries.section_number_taken(
        tx, course_id=data.course_id, section_number=data.section_number
    ):
        raise Conflict(
            f"course {data.course_id} already has a section {data.section_number}",
            code="section_exists",
        )
    section_id = queries.create_section(tx, **data.model_dump(exclude={"meetings"}))
    queries.set_meetings(tx, section_id=section_id, meetings=data.model_dump()["meetings"])
    record(
        tx,
        caller,
        "section.create",
        course_id=data.course_id,
        section_id=section_id,
        **data.model_dump(exclude={"course_id"}),
    )
    return get_section_or_404(tx, section_id)


def list_sections(
    conn: sqlite3.Connection,
    *,
    course_id: int | None,
    search: str | None,
    after: int | None,
    limit: int,
) -> list[dict]:
    """Live sections (of one course, 404 if there is no such course; matching `search`), in
    course code and section number order."""
    if course_id is not None:
        get_course_or_404(conn, course_id)
    return queries.list_sections(conn, course_id=course_id, search=search, after=after, limit=limit)


# rule 2 and 3: enroll


def enroll(tx: sqlite3.Connection, caller: Identity, user_id: int, data: EnrollIn) -> dict:
    """Rules 1-3: a free seat only when nobody waits; else the end of a waitlist within its
    limits; else 409 naming the limit. Already enrolled or waitlisted here: 409."""
    user_record(tx, caller, user_id)
    try:
        enrollment = _enroll(tx, caller, user_id, data)
    except Conflict as refusal:
        metrics.ENROLL_OUTCOMES.labels(refusal.code).inc()
        raise
    on_commit(tx, metrics.ENROLL_OUTCOMES.labels(enrollment["status"]).inc)
    return enrollment


def _enroll(tx: sqlite3.Connection, caller: Identity, user_id: int, data: EnrollIn) -> dict:
    section = get_section_or_404(tx, data.section_id)
    current = queries.get_live_enrollment(tx, section_id=section["id"], user_id=user_id)
    if current is not None:
        raise Conflict(
            f"user {user_id} is already {current['status']} in section {section['id']}",
            code=f"already_{current['status']}",
        )
    waivers = Waivers(tx, section_id=section["id"], user_id=user_id)
    refusal = eligibility_refusal(tx, user_id=user_id, section=section, waivers=waivers)
    if refusal is not None:
        raise refusal
    seat_free = section["enrolled"] < section["capacity"] and section["waitlisted"] == 0
    # A capacity permit: a seat past the capacity, ahead of the waitlist.
    if seat_free or "capacity" in waivers:
        status = "enrolled"
    elif section["waitlisted"] >= section["waitlist_capacity"]:
        raise Conflict(
            f"section {section['id']} is full and its waitlist is full"
            f" ({section['waitlist_capacity']} students)",
            code="waitlist_full",
        )
    elif queries.count_waitlists_of(tx, user_id=user_id) >= MAX_WAITLISTS_PER_STUDENT:
        raise Conflict(
            f"section {section['id']} is full and user {user_id} is already on"
            f" {MAX_WAITLISTS_PER_STUDENT} waitlists, the most allowed",
            code="waitlist_limit_reached",
        )
    else:
        status = "waitlisted"
    enrollment_id = queries.insert_enrollment(
        tx, section_id=section["id"], user_id=user_id, status=status
    )
    record(
        tx,
        caller,
        "enrollment.enroll",
        section_id=section["id"],
        user_id=user_id,
        outcome=status,
    )
    return queries.get_enrollment(tx, enrollment_id=enrollment_id)  # type: ignore[return-value]


# rule 4 and 5: drop, leave, promote


def promote_from_waitlist(conn: sqlite3.Connection, section_id: int) -> list[dict]:
    """Rules 4, 6, 7: fill every free seat from the waitlist, in arrival order, unless the section
    is frozen. A student the eligibility rules now refuse (a hold, a time conflict, the credit
    limit: what may have changed since they joined) is skipped, and audited: they keep their
    place, and the next eligible student takes the seat. Call inside the transaction that freed
    the seats."""
    section = get_section_or_404(conn, section_id)
    free = section["capacity"] - section["enrolled"]
    if section["frozen"] and free > 0 and section["waitlisted"] > 0:
        on_commit(conn, metrics.PROMOTION_SKIPS.labels("frozen").inc)
    if section["frozen"] or free <= 0 or section["waitlisted"] == 0:
        return []
    ids = []
    for entry in queries.waitlist_in_order(conn, section_id=section_id):
        if len(ids) == free:
            break
        user_id = entry["user_id"]
        waivers = Waivers(conn, section_id=section_id, user_id=user_id)
        refusal = eligibility_refusal(
            conn, user_id=user_id, section=section, waivers=waivers, promotion=True
        )
        if refusal is None:
            ids.append(entry["id"])
            continue
        on_commit(conn, metrics.PROMOTION_SKIPS.labels(refusal.code).inc)
        queries.insert_audit(
            conn,
            actor_id=0,
            actor_role="system",
            action="waitlist.skip",
            course_id=section["course_id"],
            section_id=section_id,
            user_id=user_id,
            details=json.dumps({"rule": refusal.code, "detail": refusal.detail}, sort_keys=True),
        )
    queries.mark_enrolled(conn, enrollment_ids=ids)
    if ids:
        on_commit(conn, lambda: metrics.PROMOTIONS.inc(len(ids)))
    return [queries.get_enrollment(conn, enrollment_id=i) for i in ids]  # type: ignore[misc]


# eligibility: the rules checked before a student is given a seat or a waitlist place

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
    section: dict,
    waivers: Waivers,
    promotion: bool = False,
) -> Conflict | None:
    """The first rule that refuses the student a place (a seat or the waitlist) in the section,
    as the 409 to answer, or None. In order: an account that is not a student's, a hold (no
    permit waives either), the term's registration window and add deadline (not for a promotion
    from the waitlist, which the student joined in time), prerequisites, a time conflict with a
    section they hold in the same term, the term's credit limit."""
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
    if section["term_id"] is not None and not promotion:
        closed = _window_refusal(conn, user_id=user_id, term_id=section["term_id"])
        if closed is not None and "window" not in waivers:
            return closed
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


def drop(tx: sqlite3.Connection, caller: Identity, user_id: int, section_id: int) -> dict:
    """Rule 4 (self-service): the student's seat becomes `dropped`; the waitlist head moves up."""
    require_self_or_registrar(caller, user_id)
    _require_before_drop_deadline(tx, caller, get_section_or_404(tx, section_id))
    current = queries.get_live_enrollment(tx, section_id=section_id, user_id=user_id)
    if current is None or current["status"] != "enrolled":
        raise NotFound(f"user {user_id} is not enrolled in section {section_id}")
    record(tx, caller, "enrollment.drop", section_id=section_id, user_id=user_id)
    return _drop_and_promote(tx, current, "dropped")


def administrative_drop(
    tx: sqlite3.Connection, caller: Identity, section_id: int, user_id: int
) -> dict:
    """Rule 4 (administrative): registrar or the section's instructor removes a student,
    whether enrolled or waitlisted."""
    section = get_section_or_404(tx, section_id)
    require_section_staff(caller, section)
    current = queries.get_live_enrollment(tx, section_id=section_id, user_id=user_id)
    if current is None:
        raise NotFound(f"user {user_id} is not enrolled or waitlisted in section {section_id}")
    record(
        tx,
        caller,
        "enrollment.administrative_drop",
        section_id=section_id,
        user_id=user_id,
        was=current["status"],
    )
    return _drop_and_promote(tx, current, "administrative")


def leave_waitlist(tx: sqlite3.Connection, caller: Identity, user_id: int, section_id: int) -> dict:
    """Rule 5: leaving the waitlist moves everyone behind up one place (positions are ranks)."""
    require_self_or_registrar(caller, user_id)
    _require_before_drop_deadline(tx, caller, get_section_or_404(tx, section_id))
    current = queries.get_live_enrollment(tx, section_id=section_id, user_id=user_id)
    if current is None or current["status"] != "waitlisted":
        raise NotFound(f"user {user_id} is not on the waitlist of section {section_id}")
    queries.mark_dropped(tx, enrollment_id=current["id"], reason="left_waitlist")
    on_commit(tx, metrics.DROPS.labels("left_waitlist").inc)
    record(tx, caller, "waitlist.leave", section_id=section_id, user_id=user_id)
    return {
        "dropped": queries.get_enrollment(tx, enrollment_id=current["id"]),
        "promoted": [],
    }


def _require_before_drop_deadline(conn: sqlite3.Connection, caller: Identity, section: dict):
    """A student drops, or leaves a waitlist, until the term's drop deadline; the registrar
    (and a section's staff, administratively) after it too."""
    if caller.is_registrar or section["term_id"] is None:
        return
    term = queries.get_term(conn, term_id=section["term_id"])
    if term and term["drop_deadline"] and _now() > term["drop_deadline"]:
        raise Conflict(
            f"the drop deadline of term {term['code']} was {term['drop_deadline']}; the registrar"
            " can still drop",
            code="drop_deadline_passed",
        )


def _now() -> str:
    return utc_text(datetime.now(UTC))


def _drop_and_promote(conn: sqlite3.Connection, current: dict, reason: str) -> dict:
    queries.mark_dropped(conn, enrollment_id=current["id"], reason=reason)
    on_commit(conn, metrics.DROPS.labels(reason).inc)
    promoted = promote_from_waitlist(conn, current["section_id"])
    return {
        "dropped": queries.get_enrollment(conn, enrollment_id=current["id"]),
        "promoted": promoted,
    }


# rules 6-8: section changes


def update_section(
    tx: sqlite3.Connection, caller: Identity, section_id: int, data: SectionUpdate
) -> dict:
    """Rules 6 and 7: freeze/unfreeze, instructor, capacity and waitlist capacity. Unfreezing or
    raising capacity fills free seats from the waitlist; shrinking below current use is 409."""
    section = get_section_or_404(tx, section_id)
    changes: dict = {}
    if data.instructor_id is not None:
        _require_instructor(tx, data.instructor_id)
        changes["instructor_id"] = data.instructor_id
    # Neither may shrink below what is in use: the seats taken, the places on the waitlist.
    for field, used, code in (
        ("capacity", "enrolled", "capacity_below_enrollment"),
        ("waitlist_capacity", "waitlisted", "waitlist_capacity_below_waitlist"),
    ):
        value = getattr(data, field)
        if value is None:
            continue
        if value < section[used]:
            raise Conflict(
                f"{field} {value} is below the {section[used]} students {used} in"
                f" section {section_id}",
                code=code,
            )
        changes[field] = value
    if data.freeze is not None:
        changes["frozen"] = int(data.freeze)
    queries.update_section(tx, section_id=section_id, changes=changes)
    if data.meetings is not None:
        changes["meetings"] = data.model_dump()["meetings"]
        queries.set_meetings(tx, section_id=section_id, meetings=changes["meetings"])
    promoted = promote_from_waitlist(tx, section_id)
    record(
        tx,
        caller,
        "section.update",
        course_id=section["course_id"],
        section_id=section_id,
        changes=changes,
        promoted=[p["user_id"] for p in promoted],
    )
    return {"section": get_section_or_404(tx, section_id), "promoted": promoted}


def delete_section(tx: sqlite3.Connection, caller: Identity, section_id: int) -> None:
    """Rule 8: the section vanishes from listings and lookups; its waitlist and seats are
    released (rows kept as dropped with reason section_deleted, for history)."""
    section = get_section_or_404(tx, section_id)
    queries.drop_all_live_in_section(tx, section_id=section_id, reason="section_deleted")
    queries.mark_section_deleted(tx, section_id=section_id)
    record(
        tx,
        caller,
        "section.delete",
        course_id=section["course_id"],
        section_id=section_id,
        released=section["enrolled"] + section["waitlisted"],
    )


# reads with object rules


def section_roster(
    conn: sqlite3.Connection,
    caller: Identity,
    section_id: int,
    status: str | None,
    *,
    after: int | None = None,
    limit: int = -1,
) -> list[dict]:
    """A page of a section's enrollment rows (optionally one status), for its staff."""
    with snapshot(conn):
        section = get_section_or_404(conn, section_id)
        require_section_staff(caller, section)
        return queries.list_section_enrollments(
            conn, section_id=section_id, status=status, after=after, limit=limit
        )


def section_waitlist(
    conn: sqlite3.Connection, caller: Identity, section_id: int, *, after: int | None, limit: int
) -> list[dict]:
    """A section's waitlist in position order, for its staff."""
    with snapshot(conn):
        section = get_section_or_404(conn, section_id)
        require_section_staff(caller, section)
        return queries.section_waitlist(conn, section_ids=[section_id], after=after, limit=limit)


def course_waitlist(
    conn: sqlite3.Connection, caller: Identity, course_id: int, *, after: int | None, limit: int
) -> list[dict]:
    """Waitlists of a course's sections: all of them for the registrar, an instructor's own
    sections for an instructor (403 if they teach none of them)."""
    with snapshot(conn):
        get_course_or_404(conn, course_id)
        sections = queries.list_sections(conn, course_id=course_id)
        if not caller.is_registrar:
            sections = [s for s in sections if s["instructor_id"] == caller.user_id]
            if not sections:
                raise Forbidden(f"user {caller.user_id} teaches no section of course {course_id}")
        section_ids = [s["id"] for s in sections]
        return queries.section_waitlist(conn, section_ids=section_ids, after=after, limit=limit)


def user_record(conn: sqlite3.Connection, caller: Identity, user_id: int) -> dict:
    """A user's own record, or anyone's for the registrar (404 for an unknown user)."""
    require_self_or_registrar(caller, user_id)
    return get_user_or_404(conn, user_id)


def user_profile(conn: sqlite3.Connection, caller: Identity, user_id: int) -> dict:
    """GET /users/{id}: as `user_record`; rule: an instructor may also read the record (name and
    username) of a student enrolled in, or waiting for, a section they teach: their roster's
    names. The student's enrollments and waitlists stay theirs and the registrar's."""
    if INSTRUCTOR in caller.roles and queries.teaches_student(
        conn, instructor_id=caller.user_id, student_id=user_id
    ):
        return get_user_or_404(conn, user_id)
    return user_record(conn, caller, user_id)


def user_enrollments(
    conn: sqlite3.Connection,
    caller: Identity,
    user_id: int,
    status: str | None,
    *,
    after: int | None = None,
    limit: int = -1,
) -> list[dict]:
    user_record(conn, caller, user_id)
    return queries.list_user_enrollments(
        conn, user_id=user_id, status=status, after=after, limit=limit
    )


def user_waitlist(
    conn: sqlite3.Connection, caller: Identity, user_id: int, *, after: int | None, limit: int
) -> list[dict]:
    user_record(conn, caller, user_id)
    return queries.user_waitlist(conn, user_id=user_id, after=after, limit=limit)


def user_sections(
    conn: sqlite3.Connection,
    caller: Identity,
    user_id: int,
    kind: str,
    *,
    after: int | None,
    limit: int,
) -> list[dict]:
    """Sections a user is enrolled in, teaches, or both (`all`), in catalog order."""
    user_record(conn, caller, user_id)
    return queries.sections_of_user(
        conn,
        user_id=user_id,
        enrolled=kind in ("all", "enrolled"),
        instructing=kind in ("all", "instructing"),
        after=after,
        limit=limit,
    )


def _window_refusal(conn: sqlite3.Connection, *, user_id: int, term_id: int) -> Conflict | None:
    """Why the student may not add a section of the term now (its add deadline has passed, or
    none of their registration windows is open), or None."""
    term = queries.get_term(conn, term_id=term_id)
    assert term is not None
    now = _now()
    if term["add_deadline"] and now > term["add_deadline"]:
        return Conflict(
            f"the add deadline of term {term['code']} was {term['add_deadline']}",
            code="add_deadline_passed",
        )
    total, mine = queries.windows_of_term_for(conn, term_id=term_id, user_id=user_id)
    if not total or any(w["opens_at"] <= now < w["closes_at"] for w in mine):
        return None
    upcoming = [w["opens_at"] for w in mine if w["opens_at"] > now]
    if upcoming:
        detail = (
            f"user {user_id}'s registration window for term {term['code']} opens at {min(upcoming)}"
        )
    else:
        detail = f"no registration window for term {term['code']} is open to user {user_id}"
    return Conflict(detail, code="registration_window_closed")


# eligibility: holds, permits, prerequisites, completed courses, credit limits


def place_hold(tx: sqlite3.Connection, caller: Identity, user_id: int, reason: str) -> dict:
    """The registrar stops a student from enrolling or joining a waitlist (dropping stays open)."""
    get_user_or_404(tx, user_id)
    hold_id = queries.place_hold(tx, user_id=user_id, reason=reason, placed_by=caller.user_id)
    record(tx, caller, "hold.place", user_id=user_id, hold_id=hold_id, reason=reason)
    return queries.get_hold(tx, hold_id=hold_id)  # type: ignore[return-value]


def lift_hold(tx: sqlite3.Connection, caller: Identity, user_id: int, hold_id: int) -> dict:
    hold = queries.get_hold(tx, hold_id=hold_id)
    if hold is None or hold["user_id"] != user_id:
        raise NotFound(f"user {user_id} has no hold {hold_id}")
    if hold["lifted_at"] is not None:
        raise Conflict(f"hold {hold_id} was lifted already", code="hold_lifted")
    queries.lift_hold(tx, hold_id=hold_id, lifted_by=caller.user_id)
    record(tx, caller, "hold.lift", user_id=user_id, hold_id=hold_id)
    return queries.get_hold(tx, hold_id=hold_id)  # type: ignore[return-value]


def user_holds(
    conn: sqlite3.Connection, caller: Identity, user_id: int, *, after: int | None, limit: int
) -> list[dict]:
    user_record(conn, caller, user_id)
    return queries.list_holds(conn, user_id=user_id, after=after, limit=limit)


def set_credit_limit(
    tx: sqlite3.Connection, caller: Identity, user_id: int, credit_limit: int | None
) -> dict:
    """The registrar raises or lowers one student's credit limit (None: back to the default).
    What they already hold stays; the limit applies to what they add next."""
    get_user_or_404(tx, user_id)
    queries.set_credit_limit(tx, user_id=user_id, credit_limit=credit_limit)
    record(tx, caller, "user.credit_limit", user_id=user_id, credit_limit=credit_limit)
    return get_user_or_404(tx, user_id)


def grant_permit(
    tx: sqlite3.Connection, caller: Identity, section_id: int, user_id: int, waives: list[str]
) -> dict:
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
    return queries.get_permit(tx, permit_id=permit_id)  # type: ignore[return-value]


def revoke_permit(
    tx: sqlite3.Connection, caller: Identity, section_id: int, permit_id: int
) -> dict:
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
    return queries.get_permit(tx, permit_id=permit_id)  # type: ignore[return-value]


def section_permits(
    conn: sqlite3.Connection, caller: Identity, section_id: int, *, after: int | None, limit: int
) -> list[dict]:
    with snapshot(conn):
        require_section_staff(caller, get_section_or_404(conn, section_id))
        return queries.list_permits(conn, section_id=section_id, after=after, limit=limit)


def user_permits(
    conn: sqlite3.Connection, caller: Identity, user_id: int, *, after: int | None, limit: int
) -> list[dict]:
    user_record(conn, caller, user_id)
    return queries.list_permits(conn, user_id=user_id, after=after, limit=limit)


def set_prerequisites(
    tx: sqlite3.Connection, caller: Identity, course_id: int, prerequisite_ids: list[int]
) -> list[dict]:
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


def course_prerequisites(conn: sqlite3.Connection, course_id: int) -> list[dict]:
    with snapshot(conn):
        get_course_or_404(conn, course_id)
        return queries.prerequisites(conn, course_id=course_id)


def user_completed(
    conn: sqlite3.Connection, caller: Identity, user_id: int, *, after: int | None, limit: int
) -> list[dict]:
    user_record(conn, caller, user_id)
    return queries.completed_courses(conn, user_id=user_id, after=after, limit=limit)


COMPLETED_COLUMNS = ("user_id", "course_code", "term", "grade")
MAX_IMPORT_ROWS = 50_000
# A user id in the CSV: ASCII digits only (str.isdigit() also takes "²", which int() refuses, and
# "٩", which int() reads as 9), and no more of them than an id has.
CSV_USER_ID = re.compile(r"[0-9]{1,19}")


@dataclass(frozen=True)
class CompletedRows:
    """A CSV of completed courses as read, before any database is asked: its well-formed rows,
    (user_id, course_code, term, grade, line), and its bad lines, (line, why)."""

    rows: list[tuple[int, str, str, str, int]]
    problems: list[tuple[int, str]]


def parse_completed(text: str) -> CompletedRows:
    """Read the registrar's CSV of completed courses: a header line naming the columns,
    user_id,course_code and optionally term and grade (each once), then a row per student and
    course (each pair once). A UTF-8 byte order mark (Excel's "CSV UTF-8") is skipped; lines end
    with LF, CRLF or CR. A control character anywhere is refused, as in every other text field.
    No database here: the route runs this before its write turn."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    columns = "user_id,course_code[,term][,grade]"
    try:
        cells = next(reader, [])
    except csv.Error as exc:
        raise Invalid(f"line 1 is not CSV ({exc})", code="csv_header") from exc
    if not all(cell.isprintable() for cell in cells):
        raise Invalid(
            f"line 1: a control character in the header; the first line must name the columns:"
            f" {columns}",
            code="csv_header",
        )
    header = [cell.strip().lower() for cell in cells]
    if header[:2] != ["user_id", "course_code"] or not set(header) <= set(COMPLETED_COLUMNS):
        raise Invalid(f"the first line must name the columns: {columns}", code="csv_header")
    repeated = next((c for c, n in Counter(header).items() if n > 1), None)
    if repeated is not None:
        raise Invalid(
            f"line 1 names the column {repeated!r} twice: the first line names each column once,"
            f" {columns}",
            code="csv_header",
        )
    rows: list[tuple[int, str, str, str, int]] = []
    problems: list[tuple[int, str]] = []
    first_seen: dict[tuple[int, str], int] = {}
    while True:
        line = reader.line_num + 1  # where this record starts (a quoted value may span lines)
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # a value over the reader's field limit, say: stop reading
            problems.append((line, f"not CSV ({exc})"))
            break
        control = next((i for i, cell in enumerate(cells) if not cell.isprintable()), None)
        values = [cell.strip() for cell in cells]  # when printable, only spaces are stripped
        if control is None and not any(values):
            continue  # a blank line
        if control is not None:
            column = header[control] if control < len(header) else f"value {control + 1}"
            why = f"{column} has a control character (a tab, a line break, a NUL, an escape...)"
            problems.append((line, why))
        elif (problem := _completed_row_problem(header, values)) is not None:
            problems.append((line, problem))
        elif (key := (int(values[0]), values[1])) in first_seen:
            why = (
                f"user {key[0]} and {key[1]} again, as on line {first_seen[key]}: one row per"
                " student and course"
            )
            problems.append((line, why))
        else:
            first_seen[key] = line
            row = dict(zip(header, values, strict=True))
            rows.append((*key, row.get("term", ""), row.get("grade", ""), line))
        if len(rows) + len(problems) > MAX_IMPORT_ROWS:
            raise Invalid(f"at most {MAX_IMPORT_ROWS} rows at a time", code="csv_too_long")
    if not rows and not problems:
        raise Invalid("no rows to import after the header line", code="csv_empty")
    return CompletedRows(rows=rows, problems=problems)


def _completed_row_problem(header: list[str], values: list[str]) -> str | None:
    """Why a row of the CSV (its values stripped) is malformed, or None."""
    if len(values) != len(header):
        return f"{len(values)} values, {len(header)} columns"
    user_id = values[0]
    if not CSV_USER_ID.fullmatch(user_id) or not 0 < int(user_id) < 2**63:
        return f"user_id {_shown(user_id)} is not a user id (ASCII digits 0-9)"
    if any(len(value) > 32 for value in values[2:]):
        return "term and grade are 32 characters at most"
    return None


def _shown(value: str, most: int = 24) -> str:
    """A value as an error names it, cut short (an error lists up to 20 of them)."""
    return repr(value if len(value) <= most else value[:most] + "...")


def import_completed(tx: sqlite3.Connection, caller: Identity, parsed: CompletedRows) -> int:
    """The registrar imports completed courses (`parse_completed`). All rows or none: any bad row
    (malformed, repeated, an unknown course or user) is a 422 naming its line (up to 20 of them),
    and nothing is recorded. A row for a pair already recorded replaces it."""
    courses = queries.course_ids_by_code(tx)
    known = queries.existing_user_ids(tx, user_ids={r[0] for r in parsed.rows})
    problems = list(parsed.problems)
    rows = []
    for user_id, code, term, grade, line in parsed.rows:
        if code not in courses:
            problems.append((line, f"no course {_shown(code)}"))
        elif user_id not in known:
            problems.append((line, f"user {user_id} not found"))
        else:
            rows.append((user_id, courses[code], term, grade))
    if problems:
        problems.sort()
        raise Invalid(
            f"{len(problems)} bad rows, nothing imported: "
            + "; ".join(f"line {line}: {why}" for line, why in problems[:20]),
            code="csv_rows",
        )
    queries.record_completed(tx, rows)
    record(tx, caller, "completed.import", rows=len(rows))
    return len(rows)


# terms and registration windows


def _term_or_404(conn: sqlite3.Connection, term_id: int) -> dict:
    term = queries.get_term(conn, term_id=term_id)
    if term is None:
        raise NotFound(f"term {term_id} not found")
    return term


def create_term(tx: sqlite3.Connection, caller: Identity, data: TermIn) -> dict:
    if queries.term_code_taken(tx, code=data.code):
        raise Conflict(f"term {data.code!r} exists already", code="term_exists")
    values = {
        "code": data.code,
        "name": data.name,
        "add_deadline": data.add_deadline and utc_text(data.add_deadline),
        "drop_deadline": data.drop_deadline and utc_text(data.drop_deadline),
    }
    term_id = queries.create_term(tx, **values)
    record(tx, caller, "term.create", term_id=term_id, **values)
    return _term_or_404(tx, term_id)


def update_term(tx: sqlite3.Connection, caller: Identity, term_id: int, data: TermChange) -> dict:
    _term_or_404(tx, term_id)
    changes = {
        name: utc_text(value) if isinstance(value, datetime) else value
        for name, value in data.model_dump(exclude_unset=True).items()
    }
    queries.update_term(tx, term_id=term_id, changes=changes)
    record(tx, caller, "term.update", term_id=term_id, changes=changes)
    return _term_or_404(tx, term_id)


def get_term(conn: sqlite3.Connection, term_id: int) -> dict:
    return _term_or_404(conn, term_id)


def create_window(tx: sqlite3.Connection, caller: Identity, term_id: int, data: WindowIn) -> dict:
    _term_or_404(tx, term_id)
    unknown = set(data.user_ids) - queries.existing_user_ids(tx, user_ids=set(data.user_ids))
    if unknown:
        raise NotFound(f"users not found: {', '.join(map(str, sorted(unknown)[:20]))}")
    window_id = queries.create_window(
        tx,
        term_id=term_id,
        opens_at=utc_text(data.opens_at),
        closes_at=utc_text(data.closes_at),
        class_level=data.class_level,
        user_ids=list(data.user_ids),
    )
    window = queries.get_window(tx, window_id=window_id)
    assert window is not None
    record(tx, caller, "window.create", window_id=window_id, term_id=term_id,
           opens_at=window["opens_at"], closes_at=window["closes_at"],
           class_level=data.class_level, students=len(window["user_ids"]))  # fmt: skip
    return window


def delete_window(tx: sqlite3.Connection, caller: Identity, term_id: int, window_id: int) -> None:
    window = queries.get_window(tx, window_id=window_id)
    if window is None or window["term_id"] != term_id:
        raise NotFound(f"term {term_id} has no registration window {window_id}")
    queries.delete_window(tx, window_id=window_id)
    record(tx, caller, "window.delete", window_id=window_id, term_id=term_id)


def term_windows(conn: sqlite3.Connection, term_id: int, *, after: int | None, limit: int):
    with snapshot(conn):
        _term_or_404(conn, term_id)
        return queries.list_windows(conn, term_id=term_id, after=after, limit=limit)


def set_class_level(
    tx: sqlite3.Connection, caller: Identity, user_id: int, class_level: str | None
) -> dict:
    get_user_or_404(tx, user_id)
    queries.set_class_level(tx, user_id=user_id, class_level=class_level)
    record(tx, caller, "user.class_level", user_id=user_id, class_level=class_level)
    return get_user_or_404(tx, user_id)
