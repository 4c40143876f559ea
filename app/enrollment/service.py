"""The registration rules of SPEC §2, each implemented once, by name.

Every function that reads and then writes runs inside one `BEGIN IMMEDIATE` transaction
(`immediate(conn)`), so the three instances sharing the database file serialise on SQLite's
write lock and never act on a stale read. Nothing here keeps state between requests.
"""

import json
import sqlite3
from dataclasses import dataclass

from app.common.db import immediate, snapshot
from app.common.errors import Conflict, Forbidden, NotFound
from app.common.identity import INSTRUCTOR, REGISTRAR
from app.enrollment import queries
from app.enrollment.models import CourseCreate, EnrollIn, SectionCreate, SectionUpdate

MAX_WAITLISTS_PER_STUDENT = 3


@dataclass(frozen=True)
class Identity:
    user_id: int
    username: str
    roles: frozenset[str]

    @property
    def is_registrar(self) -> bool:
        return REGISTRAR in self.roles


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
    """Audit rule: every registrar or instructor action is logged (who, what, when) inside the
    transaction that performs it. A student acting on their own records is not logged."""
    if caller.user_id == user_id and not caller.is_registrar:
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


def make_user_current(conn: sqlite3.Connection, caller: Identity) -> None:
    """The identity rule, in one call: remember the caller unless `user_is_current` already."""
    if not user_is_current(conn, caller):
        remember_user(conn, caller)


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


def remember_account(conn: sqlite3.Connection, account: dict) -> None:
    """Record an account the auth service has (app/enrollment/directory.py), names included."""
    with immediate(conn):
        queries.upsert_account(
            conn,
            user_id=account["id"],
            username=account["username"],
            first_name=account["first_name"],
            last_name=account["last_name"],
            roles=",".join(sorted(account["roles"])),
        )


def remember_user(conn: sqlite3.Connection, caller: Identity) -> None:
    """Identity rule: a signed-in user exists here from their first request, no manual step
    (the dependency that identifies the caller calls this when `user_is_current` is false)."""
    roles = ",".join(sorted(caller.roles))
    try:
        with immediate(conn):
            queries.upsert_user(conn, user_id=caller.user_id, username=caller.username, roles=roles)
    except sqlite3.IntegrityError as exc:
        raise Conflict(
            f"username {caller.username!r} belongs to another user id", code="identity_conflict"
        ) from exc


# catalog


def create_course(conn: sqlite3.Connection, caller: Identity, data: CourseCreate) -> dict:
    """Registrar adds a course; its code is unique."""
    with immediate(conn):
        if queries.get_department(conn, department_id=data.department_id) is None:
            raise NotFound(f"department {data.department_id} not found")
        if queries.get_course_by_code(conn, code=data.code) is not None:
            raise Conflict(f"course {data.code} already exists", code="course_exists")
        course_id = queries.create_course(
            conn,
            department_id=data.department_id,
            code=data.code,
            title=data.title,
            credits=data.credits,
        )
        record(conn, caller, "course.create", course_id=course_id, code=data.code)
        return get_course_or_404(conn, course_id)


def create_section(conn: sqlite3.Connection, caller: Identity, data: SectionCreate) -> dict:
    """Registrar opens a section of a course; section numbers are unique per course."""
    with immediate(conn):
        get_course_or_404(conn, data.course_id)
        if data.instructor_id is not None:
            _require_instructor(conn, data.instructor_id)
        if queries.section_number_taken(
            conn, course_id=data.course_id, section_number=data.section_number
        ):
            raise Conflict(
                f"course {data.course_id} already has a section {data.section_number}",
                code="section_exists",
            )
        section_id = queries.create_section(conn, **data.model_dump())
        record(
            conn,
            caller,
            "section.create",
            course_id=data.course_id,
            section_id=section_id,
            **data.model_dump(exclude={"course_id"}),
        )
        return get_section_or_404(conn, section_id)


# rule 2 and 3: enroll


def enroll(conn: sqlite3.Connection, caller: Identity, user_id: int, data: EnrollIn) -> dict:
    """Rules 1-3: a free seat only when nobody waits; else the end of a waitlist within its
    limits; else 409 naming the limit. Already enrolled or waitlisted here: 409."""
    user_record(conn, caller, user_id)
    with immediate(conn):
        section = get_section_or_404(conn, data.section_id)
        current = queries.get_live_enrollment(conn, section_id=section["id"], user_id=user_id)
        if current is not None:
            raise Conflict(
                f"user {user_id} is already {current['status']} in section {section['id']}",
                code=f"already_{current['status']}",
            )
        if section["enrolled"] < section["capacity"] and section["waitlisted"] == 0:
            status = "enrolled"
        elif section["waitlisted"] >= section["waitlist_capacity"]:
            raise Conflict(
                f"section {section['id']} is full and its waitlist is full"
                f" ({section['waitlist_capacity']} students)",
                code="waitlist_full",
            )
        elif queries.count_waitlists_of(conn, user_id=user_id) >= MAX_WAITLISTS_PER_STUDENT:
            raise Conflict(
                f"section {section['id']} is full and user {user_id} is already on"
                f" {MAX_WAITLISTS_PER_STUDENT} waitlists, the most allowed",
                code="waitlist_limit_reached",
            )
        else:
            status = "waitlisted"
        enrollment_id = queries.insert_enrollment(
            conn, section_id=section["id"], user_id=user_id, status=status
        )
        record(
            conn,
            caller,
            "enrollment.enroll",
            section_id=section["id"],
            user_id=user_id,
            outcome=status,
        )
        return queries.get_enrollment(conn, enrollment_id=enrollment_id)  # type: ignore[return-value]


# rule 4 and 5: drop, leave, promote


def promote_from_waitlist(conn: sqlite3.Connection, section_id: int) -> list[dict]:
    """Rules 4, 6, 7: fill every free seat from the head of the waitlist, in arrival order,
    unless the section is frozen. Call inside the transaction that freed the seats."""
    section = get_section_or_404(conn, section_id)
    free = section["capacity"] - section["enrolled"]
    if section["frozen"] or free <= 0 or section["waitlisted"] == 0:
        return []
    ids = queries.waitlist_head_ids(conn, section_id=section_id, limit=free)
    queries.mark_enrolled(conn, enrollment_ids=ids)
    return [queries.get_enrollment(conn, enrollment_id=i) for i in ids]  # type: ignore[misc]


def drop(conn: sqlite3.Connection, caller: Identity, user_id: int, section_id: int) -> dict:
    """Rule 4 (self-service): the student's seat becomes `dropped`; the waitlist head moves up."""
    require_self_or_registrar(caller, user_id)
    with immediate(conn):
        get_section_or_404(conn, section_id)
        current = queries.get_live_enrollment(conn, section_id=section_id, user_id=user_id)
        if current is None or current["status"] != "enrolled":
            raise NotFound(f"user {user_id} is not enrolled in section {section_id}")
        record(conn, caller, "enrollment.drop", section_id=section_id, user_id=user_id)
        return _drop_and_promote(conn, current, "dropped")


def administrative_drop(
    conn: sqlite3.Connection, caller: Identity, section_id: int, user_id: int
) -> dict:
    """Rule 4 (administrative): registrar or the section's instructor removes a student,
    whether enrolled or waitlisted."""
    with immediate(conn):
        section = get_section_or_404(conn, section_id)
        require_section_staff(caller, section)
        current = queries.get_live_enrollment(conn, section_id=section_id, user_id=user_id)
        if current is None:
            raise NotFound(f"user {user_id} is not enrolled or waitlisted in section {section_id}")
        record(
            conn,
            caller,
            "enrollment.administrative_drop",
            section_id=section_id,
            user_id=user_id,
            was=current["status"],
        )
        return _drop_and_promote(conn, current, "administrative")


def leave_waitlist(
    conn: sqlite3.Connection, caller: Identity, user_id: int, section_id: int
) -> dict:
    """Rule 5: leaving the waitlist moves everyone behind up one place (positions are ranks)."""
    require_self_or_registrar(caller, user_id)
    with immediate(conn):
        get_section_or_404(conn, section_id)
        current = queries.get_live_enrollment(conn, section_id=section_id, user_id=user_id)
        if current is None or current["status"] != "waitlisted":
            raise NotFound(f"user {user_id} is not on the waitlist of section {section_id}")
        queries.mark_dropped(conn, enrollment_id=current["id"], reason="left_waitlist")
        record(conn, caller, "waitlist.leave", section_id=section_id, user_id=user_id)
        return {
            "dropped": queries.get_enrollment(conn, enrollment_id=current["id"]),
            "promoted": [],
        }


def _drop_and_promote(conn: sqlite3.Connection, current: dict, reason: str) -> dict:
    queries.mark_dropped(conn, enrollment_id=current["id"], reason=reason)
    promoted = promote_from_waitlist(conn, current["section_id"])
    return {
        "dropped": queries.get_enrollment(conn, enrollment_id=current["id"]),
        "promoted": promoted,
    }


# rules 6-8: section changes


def update_section(
    conn: sqlite3.Connection, caller: Identity, section_id: int, data: SectionUpdate
) -> dict:
    """Rules 6 and 7: freeze/unfreeze, instructor, capacity and waitlist capacity. Unfreezing or
    raising capacity fills free seats from the waitlist; shrinking below current use is 409."""
    with immediate(conn):
        section = get_section_or_404(conn, section_id)
        changes: dict = {}
        if data.instructor_id is not None:
            _require_instructor(conn, data.instructor_id)
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
        queries.update_section(conn, section_id=section_id, changes=changes)
        promoted = promote_from_waitlist(conn, section_id)
        record(
            conn,
            caller,
            "section.update",
            course_id=section["course_id"],
            section_id=section_id,
            changes=changes,
            promoted=[p["user_id"] for p in promoted],
        )
        return {"section": get_section_or_404(conn, section_id), "promoted": promoted}


def delete_section(conn: sqlite3.Connection, caller: Identity, section_id: int) -> None:
    """Rule 8: the section vanishes from listings and lookups; its waitlist and seats are
    released (rows kept as dropped with reason section_deleted, for history)."""
    with immediate(conn):
        section = get_section_or_404(conn, section_id)
        queries.drop_all_live_in_section(conn, section_id=section_id, reason="section_deleted")
        queries.mark_section_deleted(conn, section_id=section_id)
        record(
            conn,
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
