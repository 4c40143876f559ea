"""The rules of terms: a term's code is unique, its deadlines are moments stored in UTC; a
registration window is for a class level, for the students it lists, or for everyone. What the
deadlines and windows refuse is checked where a student adds or drops: eligibility
(`window_refusal`) and enrollments (`require_before_drop_deadline`)."""

import sqlite3
from datetime import datetime
from typing import TypedDict

from app.common.db import snapshot
from app.common.errors import Conflict, NotFound
from app.enrollment.audit.service import record
from app.enrollment.people.models import Identity
from app.enrollment.people.queries import existing_user_ids
from app.enrollment.people.service import get_user_or_404
from app.enrollment.sql import Row
from app.enrollment.terms import queries
from app.enrollment.terms.models import TermChange, TermIn, WindowIn, utc_text


def get_term_or_404(conn: sqlite3.Connection, term_id: int) -> Row:
    term = queries.get_term(conn, term_id=term_id)
    if term is None:
        raise NotFound(f"term {term_id} not found")
    return term


class _TermValues(TypedDict):
    """A new term's columns, as stored and as audited."""

    code: str
    name: str
    add_deadline: str | None
    drop_deadline: str | None


def create_term(tx: sqlite3.Connection, caller: Identity, data: TermIn) -> Row:
    if queries.term_code_taken(tx, code=data.code):
        raise Conflict(f"term {data.code!r} exists already", code="term_exists")
    values = _TermValues(
        code=data.code,
        name=data.name,
        add_deadline=None if data.add_deadline is None else utc_text(data.add_deadline),
        drop_deadline=None if data.drop_deadline is None else utc_text(data.drop_deadline),
    )
    term_id = queries.create_term(tx, **values)
    record(tx, caller, "term.create", term_id=term_id, **values)
    term = queries.get_term(tx, term_id=term_id)
    assert term is not None  # just written (and no 404 to declare for a term just made)
    return term


def update_term(tx: sqlite3.Connection, caller: Identity, term_id: int, data: TermChange) -> Row:
    get_term_or_404(tx, term_id)
    changes = {
        name: utc_text(value) if isinstance(value, datetime) else value
        for name, value in data.model_dump(exclude_unset=True).items()
    }
    queries.update_term(tx, term_id=term_id, changes=changes)
    record(tx, caller, "term.update", term_id=term_id, changes=changes)
    return get_term_or_404(tx, term_id)


def create_window(tx: sqlite3.Connection, caller: Identity, term_id: int, data: WindowIn) -> Row:
    get_term_or_404(tx, term_id)
    unknown = set(data.user_ids) - existing_user_ids(tx, user_ids=set(data.user_ids))
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


def term_windows(
    conn: sqlite3.Connection, term_id: int, *, after: int | None, limit: int
) -> list[Row]:
    with snapshot(conn):
        get_term_or_404(conn, term_id)
        return queries.list_windows(conn, term_id=term_id, after=after, limit=limit)


def set_class_level(
    tx: sqlite3.Connection, caller: Identity, user_id: int, class_level: str | None
) -> Row:
    get_user_or_404(tx, user_id)
    queries.set_class_level(tx, user_id=user_id, class_level=class_level)
    record(tx, caller, "user.class_level", user_id=user_id, class_level=class_level)
    return get_user_or_404(tx, user_id)
