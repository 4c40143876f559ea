"""All SQL of the auth service. Functions take the connection and keyword-only arguments."""

import sqlite3
from dataclasses import dataclass

from app.common.identity import ROLES


@dataclass(frozen=True)
class StoredUser:
    id: int
    username: str
    password_hash: str
    first_name: str
    last_name: str
    roles: list[str]


_SELECT_USER = """
    SELECT u.id, u.username, u.password_hash, u.first_name, u.last_name,
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
    )


def get(conn: sqlite3.Connection, *, user_id: int) -> StoredUser | None:
    """The user with this id, or None."""
    return _user(conn.execute(f"{_SELECT_USER} WHERE u.id = ?", (user_id,)).fetchone())


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
) -> int:
    """Insert a user and their roles; return the id. Run inside a transaction."""
    cursor = conn.execute(
        "INSERT INTO users (id, username, password_hash, first_name, last_name)"
        " VALUES (?, ?, ?, ?, ?)",
        (user_id, username, password_hash, first_name, last_name),
    )
    new_id = cursor.lastrowid
    assert new_id is not None
    conn.executemany(
        "INSERT INTO user_roles (user_id, role) VALUES (?, ?)", [(new_id, role) for role in roles]
    )
    return new_id
