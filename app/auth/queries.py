"""All SQL of the auth service. Functions take the connection and keyword-only arguments."""

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.common.db import where_given
from app.common.identity import ROLES


@dataclass(frozen=True)
class StoredUser:
    id: int
    username: str
    password_hash: str
    first_name: str
    last_name: str
    roles: list[str]
    disabled: bool
    token_generation: int
    email: str | None  # the address given; None: the default, <username>@<mail domain>

    def address(self, mail_domain: str) -> str:
        """Where mail to this user goes."""
        return self.email or f"{self.username}@{mail_domain}"


_SELECT_USER = """
    SELECT u.id, u.username, u.password_hash, u.first_name, u.last_name, u.disabled,
           u.token_generation, u.email,
           (SELECT group_concat(r.role) FROM user_roles AS r WHERE r.user_id = u.id) AS roles
    FROM users AS u
"""


def _user(row: sqlite3.Row | None) -> StoredUser | None:
    if row is None:
        return None
    granted = set((row["roles"] or "").split(","))
    return StoredUser(
        id=row["id"],
        username=row["username"],
        password_hash=row["password_hash"],
        first_name=row["first_name"],
        last_name=row["last_name"],
        roles=[role for role in ROLES if role in granted],
        disabled=bool(row["disabled"]),
        token_generation=row["token_generation"],
        email=row["email"],
    )


def get(conn: sqlite3.Connection, *, user_id: int) -> StoredUser | None:
    """The user with this id, or None."""
    return _user(conn.execute(f"{_SELECT_USER} WHERE u.id = ?", (user_id,)).fetchone())


def get_many(conn: sqlite3.Connection, *, user_ids: list[int]) -> list[StoredUser]:
    """The users with these ids that exist, in id order."""
    marks = ",".join("?" * len(user_ids))
    found = conn.execute(f"{_SELECT_USER} WHERE u.id IN ({marks}) ORDER BY u.id", user_ids)
    return [user for row in found.fetchall() if (user := _user(row)) is not None]


def get_by_username(conn: sqlite3.Connection, *, username: str) -> StoredUser | None:
    """The user with this (lowercase) username, or None."""
    return _user(conn.execute(f"{_SELECT_USER} WHERE u.username = ?", (username,)).fetchone())


def create(
    conn: sqlite3.Connection,
    *,
    username: str,
    password_hash: str,
    first_name: str,
    last_name: str,
    roles: list[str],
    user_id: int | None = None,
    email: str | None = None,
) -> int:
    """Insert a user and their roles; return the id. Run inside a transaction."""
    cursor = conn.execute(
        "INSERT INTO users (id, username, password_hash, first_name, last_name, email)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (user_id, username, password_hash, first_name, last_name, email),
    )
    new_id = cursor.lastrowid
    assert new_id is not None
    conn.executemany(
        "INSERT INTO user_roles (user_id, role) VALUES (?, ?)", [(new_id, role) for role in roles]
    )
    return new_id


def search(
    conn: sqlite3.Connection,
    *,
    text: str | None,
    role: str | None,
    disabled: bool | None,
    after: int | None,
    limit: int,
    mail_domain: str,
) -> list[StoredUser]:
    """Up to `limit` users with an id above `after`, in id order: those whose username, first,
    last or full name, or email address (the default one, `<username>@<mail_domain>`, if none
    was given) contains `text` (any case), who hold `role`, and are (not) `disabled`, as given."""
    where: list[str] = ["u.id > ?"]
    params: list[object] = [after or 0]
    if text:
        # LIKE with an escape character, so that `%` and `_` in the text match only themselves.
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(
            "(u.username LIKE ? ESCAPE '\\' OR u.first_name LIKE ? ESCAPE '\\'"
            " OR u.last_name LIKE ? ESCAPE '\\'"
            " OR u.first_name || ' ' || u.last_name LIKE ? ESCAPE '\\'"
            " OR COALESCE(u.email, u.username || '@' || ?) LIKE ? ESCAPE '\\')"
        )
        params += [pattern] * 4 + [mail_domain, pattern]
    if role is not None:
        where.append("EXISTS (SELECT 1 FROM user_roles AS r WHERE r.user_id = u.id AND r.role = ?)")
        params.append(role)
    if disabled is not None:
        where.append("u.disabled = ?")
        params.append(int(disabled))
    sql = f"{_SELECT_USER} WHERE {' AND '.join(where)} ORDER BY u.id LIMIT ?"
    rows = conn.execute(sql, (*params, limit)).fetchall()
    return [user for row in rows if (user := _user(row)) is not None]


def set_roles(conn: sqlite3.Connection, *, user_id: int, roles: Sequence[str]) -> None:
    """Replace the user's roles and end every session (tokens carry the roles they were issued
    with). Run inside a transaction."""
    conn.execute("DELETE FROM user_roles WHERE user_id = ?", (user_id,))
    conn.executemany(
        "INSERT INTO user_roles (user_id, role) VALUES (?, ?)", [(user_id, role) for role in roles]
    )
    conn.execute(
        "UPDATE users SET token_generation = token_generation + 1 WHERE id = ?", (user_id,)
    )


def count_active_registrars(conn: sqlite3.Connection, *, other_than: int) -> int:
    """How many enabled accounts other than `other_than` hold the registrar role."""
    row = conn.execute(
        "SELECT count(*) FROM users AS u JOIN user_roles AS r ON r.user_id = u.id"
        " WHERE r.role = 'registrar' AND u.disabled = 0 AND u.id != ?",
        (other_than,),
    ).fetchone()
    return int(row[0])


def set_names(conn: sqlite3.Connection, *, user_id: int, first_name: str, last_name: str) -> None:
    conn.execute(
        "UPDATE users SET first_name = ?, last_name = ? WHERE id = ?",
        (first_name, last_name, user_id),
    )


def set_email(conn: sqlite3.Connection, *, user_id: int, email: str | None) -> None:
    """Give the account an address (None: back to the default one)."""
    conn.execute("UPDATE users SET email = ? WHERE id = ?", (email, user_id))


def set_disabled(conn: sqlite3.Connection, *, user_id: int, disabled: bool) -> None:
    """Disable or re-enable the account; disabling also ends every session (refresh token)."""
    conn.execute(
        "UPDATE users SET disabled = ?, token_generation = token_generation + ? WHERE id = ?",
        (int(disabled), int(disabled), user_id),
    )


def set_password(conn: sqlite3.Connection, *, user_id: int, password_hash: str) -> None:
    """Store a new password hash and end every session (refresh token) issued before it."""
    conn.execute(
        "UPDATE users SET password_hash = ?, token_generation = token_generation + 1 WHERE id = ?",
        (password_hash, user_id),
    )


# sessions (refresh token rotation)


@dataclass(frozen=True)
class StoredSession:
    id: str
    user_id: int
    refresh_seq: int
    ended: str | None


def get_session(conn: sqlite3.Connection, *, session_id: str) -> StoredSession | None:
    row = conn.execute(
        "SELECT id, user_id, refresh_seq, ended FROM sessions WHERE id = ?", (session_id,)
    ).fetchone()
    return None if row is None else StoredSession(**dict(row))


def save_session(
    conn: sqlite3.Connection,
    *,
    session_id: str,
    user_id: int,
    refresh_seq: int,
    ended: str | None,
    now: float,
) -> None:
    """Create or update the session's row. Run inside a transaction."""
    conn.execute(
        "INSERT INTO sessions (id, user_id, refresh_seq, ended, updated_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (id) DO UPDATE SET refresh_seq = excluded.refresh_seq,"
        " ended = excluded.ended, updated_at = excluded.updated_at",
        (session_id, user_id, refresh_seq, ended, now),
    )


def delete_sessions_before(conn: sqlite3.Connection, *, before: float) -> None:
    """Forget sessions untouched since `before` (their refresh tokens have expired)."""
    conn.execute("DELETE FROM sessions WHERE updated_at < ?", (before,))


# the audit trail of account changes


def insert_audit(
    conn: sqlite3.Connection, *, actor_id: int, action: str, user_id: int, details: dict[str, Any]
) -> None:
    """Record a change to an account. Run inside the transaction that makes it."""
    conn.execute(
        "INSERT INTO account_audit (actor_id, action, user_id, details) VALUES (?, ?, ?, ?)",
        (actor_id, action, user_id, json.dumps(details, sort_keys=True)),
    )


def list_audit(
    conn: sqlite3.Connection,
    *,
    actor_id: int | None,
    user_id: int | None,
    action: str | None,
    after: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Newest first; `after` (the last id of the page before) pages backwards in time."""
    where, params = where_given(
        {"actor_id = ?": actor_id, "user_id = ?": user_id, "action = ?": action, "id < ?": after}
    )
    rows = conn.execute(
        f"SELECT id, at, actor_id, action, user_id, details FROM account_audit WHERE {where}"
        " ORDER BY id DESC LIMIT ?",
        (*params, limit),
    )
    return [dict(row) | {"details": json.loads(row["details"])} for row in rows]
