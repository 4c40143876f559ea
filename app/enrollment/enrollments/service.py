"""The registration rules of SPEC §2, each implemented once, by name: enroll (rules 1-3), drop
and leave a waitlist (4, 5), promotion from the waitlist (4, 6, 7), a section's changes (6-8);
and the rosters and waitlists, for whom they belong to.

A function that changes something takes `tx`, the `BEGIN IMMEDIATE` transaction its route's
`db.write(...)` opens for it (app/common/db.py `Database.write`): every read-then-write is one
transaction, so the three instances sharing the database file serialise on SQLite's write lock
and never act on a stale read. A function that only reads takes `conn`. Nothing here keeps state
between requests."""

import sqlite3

from app.common.db import on_commit, snapshot
from app.common.errors import Conflict, Forbidden, NotFound
from app.enrollment.audit.service import passed_over, record, record_by_system
from app.enrollment.catalog import queries as catalog_queries
from app.enrollment.catalog.models import SectionUpdate
from app.enrollment.catalog.service import (
    get_course_or_404,
    get_section_or_404,
    require_instructor,
    require_section_staff,
)
from app.enrollment.eligibility.service import Waivers, eligibility_refusal, promotion_refusal
from app.enrollment.enrollments import metrics, queries
from app.enrollment.enrollments.models import EnrollIn
from app.enrollment.notifications import service as notify
from app.enrollment.offers import holding
from app.enrollment.people.models import Identity
from app.enrollment.people.service import require_self_or_registrar, user_record
from app.enrollment.sql import Row
from app.enrollment.terms.models import now
from app.enrollment.terms.queries import get_term

MAX_WAITLISTS_PER_STUDENT = 3


# rules 1-3: enroll


def enroll(tx: sqlite3.Connection, caller: Identity, user_id: int, data: EnrollIn) -> Row:
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


def _enroll(tx: sqlite3.Connection, caller: Identity, user_id: int, data: EnrollIn) -> Row:
    section = get_section_or_404(tx, data.section_id)
    enrollment = take_place(tx, user_id=user_id, section=section)
    record(
        tx,
        caller,
        "enrollment.enroll",
        section_id=section["id"],
        user_id=user_id,
        outcome=enrollment["status"],
    )
    notify.enrolled(tx, enrollment=enrollment, section=section)
    return enrollment


def take_place(tx: sqlite3.Connection, *, user_id: int, section: Row) -> Row:
    """Rules 1-3 for one student in one section: the seat or waitlist place written, or the 409
    that refuses it. Who asked, the audit and the notification are the caller's (an enroll's
    own, a swap's)."""
    current = queries.get_live_enrollment(tx, section_id=section["id"], user_id=user_id)
    if current is not None:
        raise Conflict(
            f"user {user_id} is already {current['status']} in section {section['id']}",
            code="already_enrolled" if current["status"] == "enrolled" else "already_waitlisted",
        )
    waivers = Waivers(tx, section_id=section["id"], user_id=user_id)
    refusal = eligibility_refusal(tx, user_id=user_id, section=section, waivers=waivers)
    if refusal is not None:
        raise refusal
    # A seat held by an open offer is in use (seats_available counts it); its holder waits.
    seat_free = section["seats_available"] > 0 and section["waitlisted"] == 0
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
    return queries.get_enrollment(tx, enrollment_id=enrollment_id)  # type: ignore[return-value]  # just written: never None


# rules 4 and 5: drop, leave, promote


def promote_from_waitlist(tx: sqlite3.Connection, section_id: int) -> list[Row]:
    """Rules 4, 6, 7: fill every free seat from the waitlist, in arrival order, unless the section
    is frozen. A student the eligibility rules now refuse (a hold, a time conflict, the credit
    limit: what may have changed since they joined) is skipped, and audited: they keep their
    place, and the next eligible student takes the seat. Call inside the transaction that freed
    the seats. In a section whose waitlist mode is `offer`, the seat is not taken but held for
    the student by an offer (app/enrollment/offers), and they are not among those returned; a
    student already holding an offer is passed over, their seat being held already."""
    section = get_section_or_404(tx, section_id)
    offering = section["waitlist_mode"] == "offer"
    free = section["seats_available"]
    if section["frozen"] and free > 0 and section["waitlisted"] > 0:
        on_commit(tx, metrics.PROMOTION_SKIPS.labels("frozen").inc)
    if section["frozen"] or free <= 0 or section["waitlisted"] == 0:
        return []
    chosen: list[Row] = []
    held = holding.held_places(tx, section_id=section_id) if section["offered"] else set()
    for entry in queries.waitlist_in_order(tx, section_id=section_id):
        if len(chosen) == free:
            break
        if entry["id"] in held:
            continue
        user_id = entry["user_id"]
        waivers = Waivers(tx, section_id=section_id, user_id=user_id)
        refusal = promotion_refusal(tx, user_id=user_id, section=section, waivers=waivers)
        if refusal is None:
            chosen.append(entry)
            continue
        on_commit(tx, metrics.PROMOTION_SKIPS.labels(refusal.code).inc)
        record_by_system(
            tx,
            "waitlist.skip",
            course_id=section["course_id"],
            section_id=section_id,
            user_id=user_id,
            rule=refusal.code,
            detail=refusal.detail,
        )
    if offering:
        for entry in chosen:
            holding.offer(tx, section=section, enrollment=entry)
        return []
    ids = [entry["id"] for entry in chosen]
    queries.mark_enrolled(tx, enrollment_ids=ids)
    if ids:
        on_commit(tx, lambda: metrics.PROMOTIONS.inc(len(ids)))
    promoted: list[Row] = [queries.get_enrollment(tx, enrollment_id=i) for i in ids]  # type: ignore[misc]  # just written: never None
    for enrollment in promoted:
        notify.promoted(tx, user_id=enrollment["user_id"], section=section)
    return promoted


def drop(tx: sqlite3.Connection, caller: Identity, user_id: int, section_id: int) -> Row:
    """Rule 4 (self-service): the student's seat becomes `dropped`; the waitlist head moves up."""
    require_self_or_registrar(caller, user_id)
    section = get_section_or_404(tx, section_id)
    require_before_drop_deadline(tx, caller, section)
    current = queries.get_live_enrollment(tx, section_id=section_id, user_id=user_id)
    if current is None or current["status"] != "enrolled":
        raise NotFound(f"user {user_id} is not enrolled in section {section_id}")
    record(tx, caller, "enrollment.drop", section_id=section_id, user_id=user_id)
    notify.dropped_by_staff(tx, caller, user_id=user_id, section=section, was="enrolled")
    return _drop_and_promote(tx, current, "dropped")


def administrative_drop(
    tx: sqlite3.Connection, caller: Identity, section_id: int, user_id: int
) -> Row:
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
    notify.dropped_by_staff(tx, caller, user_id=user_id, section=section, was=current["status"])
    return _drop_and_promote(tx, current, "administrative")


def leave_waitlist(tx: sqlite3.Connection, caller: Identity, user_id: int, section_id: int) -> Row:
    """Rule 5: leaving the waitlist moves everyone behind up one place (positions are ranks)."""
    require_self_or_registrar(caller, user_id)
    section = get_section_or_404(tx, section_id)
    require_before_drop_deadline(tx, caller, section)
    current = queries.get_live_enrollment(tx, section_id=section_id, user_id=user_id)
    if current is None or current["status"] != "waitlisted":
        raise NotFound(f"user {user_id} is not on the waitlist of section {section_id}")
    notify.dropped_by_staff(tx, caller, user_id=user_id, section=section, was="waitlisted")
    record(tx, caller, "waitlist.leave", section_id=section_id, user_id=user_id)
    # A seat held for them by an offer goes on to the next in line.
    return _drop_and_promote(tx, current, "left_waitlist")


def require_before_drop_deadline(tx: sqlite3.Connection, caller: Identity, section: Row) -> None:
    """A student drops, or leaves a waitlist, until the term's drop deadline; the registrar
    (and a section's staff, administratively) after it too."""
    if caller.is_registrar or section["term_id"] is None:
        return
    term = get_term(tx, term_id=section["term_id"])
    if term and term["drop_deadline"] and now() > term["drop_deadline"]:
        raise Conflict(
            f"the drop deadline of term {term['code']} was {term['drop_deadline']}; the registrar"
            " can still drop",
            code="drop_deadline_passed",
        )


def _drop_and_promote(tx: sqlite3.Connection, current: Row, reason: str) -> Row:
    """End a place (a seat, or a waitlist place and the seat an offer held for it), and fill
    what that freed from the waitlist."""
    queries.mark_dropped(tx, enrollment_id=current["id"], reason=reason)
    on_commit(tx, metrics.DROPS.labels(reason).inc)
    withdrew = current["status"] == "waitlisted" and holding.withdraw(
        tx, enrollment_id=current["id"]
    )
    # Leaving a waitlist frees no seat, unless an offer held one for the student.
    refill = reason != "left_waitlist" or withdrew
    promoted = promote_from_waitlist(tx, current["section_id"]) if refill else []
    return {
        "dropped": queries.get_enrollment(tx, enrollment_id=current["id"]),
        "promoted": promoted,
    }


# rules 6-8: a section's changes, and what they do to its seats and waitlist


def update_section(
    tx: sqlite3.Connection, caller: Identity, section_id: int, data: SectionUpdate
) -> Row:
    """Rules 6 and 7: freeze/unfreeze, instructor, capacity and waitlist capacity. Unfreezing or
    raising capacity fills free seats from the waitlist; shrinking below current use is 409."""
    section = get_section_or_404(tx, section_id)
    changes: Row = {}
    if data.instructor_id is not None:
        require_instructor(tx, data.instructor_id)
        changes["instructor_id"] = data.instructor_id
    # Neither may shrink below what is in use: the seats taken, the places on the waitlist.
    # Seats held by open offers are in use.
    in_use = {"enrolled": section["enrolled"] + section["offered"]}
    for field, used, code in (
        ("capacity", "enrolled", "capacity_below_enrollment"),
        ("waitlist_capacity", "waitlisted", "waitlist_capacity_below_waitlist"),
    ):
        value = getattr(data, field)
        if value is None:
            continue
        count = in_use.get(used, section[used])
        if value < count:
            held = " or holding offers" if used == "enrolled" and section["offered"] else ""
            raise Conflict(
                f"{field} {value} is below the {count} students {used}{held} in"
                f" section {section_id}",
                code=code,
            )
        changes[field] = value
    if data.freeze is not None:
        changes["frozen"] = int(data.freeze)
    for field in ("waitlist_mode", "claim_seconds"):
        if getattr(data, field) is not None:
            changes[field] = getattr(data, field)
    catalog_queries.update_section(tx, section_id=section_id, changes=changes)
    if data.meetings is not None:
        changes["meetings"] = data.model_dump()["meetings"]
        catalog_queries.set_meetings(tx, section_id=section_id, meetings=changes["meetings"])
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
    notify.section_deleted(tx, section=section)
    holding.withdraw_all(tx, section_id=section_id)
    queries.drop_all_live_in_section(tx, section_id=section_id, reason="section_deleted")
    catalog_queries.mark_section_deleted(tx, section_id=section_id)
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
) -> list[Row]:
    """A page of a section's enrollment rows (optionally one status), for its staff."""
    with snapshot(conn):
        section = get_section_or_404(conn, section_id)
        require_section_staff(caller, section)
        return queries.list_section_enrollments(
            conn, section_id=section_id, status=status, after=after, limit=limit
        )


def section_waitlist(
    conn: sqlite3.Connection, caller: Identity, section_id: int, *, after: int | None, limit: int
) -> list[Row]:
    """A section's waitlist in position order, for its staff."""
    with snapshot(conn):
        section = get_section_or_404(conn, section_id)
        require_section_staff(caller, section)
        return queries.section_waitlist(conn, section_ids=[section_id], after=after, limit=limit)


def course_waitlist(
    conn: sqlite3.Connection, caller: Identity, course_id: int, *, after: int | None, limit: int
) -> list[Row]:
    """Waitlists of a course's sections: all of them for the registrar, an instructor's own
    sections for an instructor (403 if they teach none of them)."""
    with snapshot(conn):
        get_course_or_404(conn, course_id)
        sections = catalog_queries.list_sections(conn, course_id=course_id)
        if not caller.is_registrar:
            sections = [s for s in sections if s["instructor_id"] == caller.user_id]
            if not sections:
                raise Forbidden(f"user {caller.user_id} teaches no section of course {course_id}")
        section_ids = [s["id"] for s in sections]
        return queries.section_waitlist(conn, section_ids=section_ids, after=after, limit=limit)


def user_enrollments(
    conn: sqlite3.Connection,
    caller: Identity,
    user_id: int,
    status: str | None,
    *,
    after: int | None = None,
    limit: int = -1,
) -> list[Row]:
    user_record(conn, caller, user_id)
    return queries.list_user_enrollments(
        conn, user_id=user_id, status=status, after=after, limit=limit
    )


def user_waitlist(
    conn: sqlite3.Connection, caller: Identity, user_id: int, *, after: int | None, limit: int
) -> list[Row]:
    """The student's waitlist places, each with the latest time it was skipped at a promotion
    (`passed_over`), so that they can see why a seat that came free went to someone after them."""
    user_record(conn, caller, user_id)
    places = queries.user_waitlist(conn, user_id=user_id, after=after, limit=limit)
    return [
        {
            **place,
            "passed_over": passed_over(
                conn, user_id=user_id, section_id=place["section_id"], since=place["joined_at"]
            ),
        }
        for place in places
    ]


def user_sections(
    conn: sqlite3.Connection,
    caller: Identity,
    user_id: int,
    kind: str,
    *,
    after: int | None,
    limit: int,
) -> list[Row]:
    """Sections a user is enrolled in, teaches, or both (`all`), in catalog order."""
    user_record(conn, caller, user_id)
    return catalog_queries.sections_of_user(
        conn,
        user_id=user_id,
        enrolled=kind in ("all", "enrolled"),
        instructing=kind in ("all", "instructing"),
        after=after,
        limit=limit,
    )
