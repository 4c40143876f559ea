"""The swap rule (SPEC §2 rule 11, issue 27): a conditional drop and add. A student gives up their
seat in one section only if another section takes them, in one transaction: either both happen or
neither does.

The seat is dropped first, inside the transaction, so that the eligibility rules of the add see it
as gone: a time conflict with the section given up, or its credits counted against the limit, do
not refuse the swap. If the add is then refused, the refusal raised rolls the whole transaction
back (`Database.write`, app/common/db.py `immediate`; under an Idempotency-Key, to the keyed
write's savepoint, `idempotency.once`), the drop and the promotion it made included, and the
answer is the add's refusal."""

import sqlite3

from app.common.errors import Conflict, NotFound
from app.enrollment.audit.service import record
from app.enrollment.catalog.service import get_section_or_404
from app.enrollment.enrollments import queries
from app.enrollment.enrollments.models import SwapIn
from app.enrollment.enrollments.service import (
    _drop_and_promote,
    require_before_drop_deadline,
    take_place,
)
from app.enrollment.notifications import service as notify
from app.enrollment.people.models import Identity
from app.enrollment.people.service import require_self_or_registrar
from app.enrollment.sql import Row


def swap(tx: sqlite3.Connection, caller: Identity, user_id: int, data: SwapIn) -> Row:
    """Rule 11: drop `drop_section_id` and take a place in `add_section_id`, or change nothing.
    The add is a seat, or a waitlist place only when `waitlist_ok`; the seat given up goes to
    the head of its section's waitlist, as a drop's does."""
    require_self_or_registrar(caller, user_id)
    giving_up = get_section_or_404(tx, data.drop_section_id)
    require_before_drop_deadline(tx, caller, giving_up)
    current = queries.get_live_enrollment(tx, section_id=giving_up["id"], user_id=user_id)
    if current is None or current["status"] != "enrolled":
        raise NotFound(
            f"user {user_id} is not enrolled in section {giving_up['id']}, the section to drop"
        )
    adding = get_section_or_404(tx, data.add_section_id)
    dropped = _drop_and_promote(tx, current, "swapped")
    added = take_place(tx, user_id=user_id, section=adding)
    if added["status"] == "waitlisted" and not data.waitlist_ok:
        raise Conflict(
            f"section {adding['id']} ({notify.section_label(adding)}) is full, with"
            f" {adding['waitlisted']} waiting: the swap changed nothing, user {user_id} keeps"
            f" their seat in section {giving_up['id']} ({notify.section_label(giving_up)}). A swap"
            " takes a waitlist place instead only when it says so (waitlist_ok)",
            code="no_seat_free",
        )
    record(
        tx,
        caller,
        "enrollment.swap",
        section_id=adding["id"],
        user_id=user_id,
        dropped_section_id=giving_up["id"],
        added_section_id=adding["id"],
        outcome=added["status"],
        promoted=[p["user_id"] for p in dropped["promoted"]],
    )
    notify.swapped(tx, user_id=user_id, dropped=giving_up, added=adding, enrollment=added)
    return {"dropped": dropped["dropped"], "added": added, "promoted": dropped["promoted"]}
