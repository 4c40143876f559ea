"""The rules of the people room: whose records a caller may read, and the identity rule."""

import sqlite3

from app.common.errors import Conflict, Forbidden, NotFound
from app.common.identity import INSTRUCTOR
from app.enrollment.people import queries
from app.enrollment.people.models import Identity
from app.enrollment.sql import Row


def require_self_or_registrar(caller: Identity, user_id: int) -> None:
    """Rule: a user's own records are theirs and the registrar's, nobody else's."""
    if caller.user_id != user_id and not caller.is_registrar:
        raise Forbidden(f"user {caller.user_id} may not act on user {user_id}'s records")


def get_user_or_404(conn: sqlite3.Connection, user_id: int) -> Row:
    user = queries.get_user(conn, user_id=user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


def user_record(conn: sqlite3.Connection, caller: Identity, user_id: int) -> Row:
    """A user's own record, or anyone's for the registrar (404 for an unknown user)."""
    require_self_or_registrar(caller, user_id)
    return get_user_or_404(conn, user_id)


def user_profile(conn: sqlite3.Connection, caller: Identity, user_id: int) -> Row:
    """GET /users/{id}: as `user_record`; rule: an instructor may also read the record (name and
    username) of a student enrolled in, or waiting for, a section they teach: their roster's
    names. The student's enrollments and waitlists stay theirs and the registrar's."""
    if INSTRUCTOR in caller.roles and queries.teaches_student(
        conn, instructor_id=caller.user_id, student_id=user_id
    ):
        return get_user_or_404(conn, user_id)
    return user_record(conn, caller, user_id)


# identity


def user_is_current(conn: sqlite3.Connection, caller: Identity) -> bool:
    """Whether the caller's row exists here with the username and roles of their token."""
    known = queries.get_user(conn, user_id=caller.user_id)
    return (
        known is not None
        and known["username"] == caller.username
        and known["roles"] == sorted(caller.roles)
    )


def account_is_recorded(conn: sqlite3.Connection, account: Row) -> bool:
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
        sorted(account["roles"]),
    )


def remember_account(tx: sqlite3.Connection, account: Row) -> None:
    """Record an account the auth service has (`directory`), names included."""
    queries.upsert_account(
        tx,
        user_id=account["id"],
        username=account["username"],
        first_name=account["first_name"],
        last_name=account["last_name"],
        roles=account["roles"],
    )


def remember_user(tx: sqlite3.Connection, caller: Identity) -> None:
    """Identity rule: a signed-in user exists here from their first request, no manual step
    (app/enrollment/deps.py `identify` calls this when `user_is_current` is false)."""
    try:
        queries.upsert_user(
            tx, user_id=caller.user_id, username=caller.username, roles=caller.roles
        )
    except sqlite3.IntegrityError as exc:
        raise Conflict(
            f"username {caller.username!r} belongs to another user id", code="identity_conflict"
        ) from exc
