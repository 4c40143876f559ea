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
    disabled: bool
    token_generation: int


_SELECT_USER = """
    SELECT u.id, u.username, u.password_hash, u.first_name, u.last_name, u.disabled,
           u.token_generation,
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


def search(
    conn: sqlite3.Connection,
    *,
    text: str | None,
    role: str | None,
    disabled: bool | None,
    after: int | None,
    limit: int,
) -> list[StoredUser]:
    """Up to `limit` users with an id above `after`, in id order: those whose username, first or
    last name contains `text` (any case), who hold `role`, and are (not) `disabled`, as given."""
    where, params = ["u.id > ?"], [after or 0]
    if text:
        # LIKE with an escape character, so that `%` and `_` in the text match only themselves.
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where.append(
            "(u.username LIKE ? ESCAPE '\\' OR u.first_name LIKE ? ESCAPE '\\'"
            " OR u.last_name LIKE ? ESCAPE '\\')"
        )
        params += [pattern] * 3
    if role is not None:
        where.append("EXISTS (SELECT 1 FROM user_roles AS r WHERE r.user_id = u.id AND r.role = ?)")
        params.append(role)
    if disabled is not None:
        where.append("u.disabled = ?")
        params.append(int(disabled))
    sql = f"{_SELECT_USER} WHERE {' AND '.join(where)} ORDER BY u.id LIMIT ?"
    return [_user(row) for row in conn.execute(sql, (*params, limit))]  # type: ignore[misc]


def set_roles(conn: sqlite3.Connection, *, user_id: int, roles: list[str]) -> None:
    """Replace the user's roles. Run inside a transaction."""
    conn.execute("DELETE FROM user_roles WHERE user_id = ?", (user_id,))
    conn.executemany(
        "INSERT INTO user_roles (user_id, role) VALUES (?, ?)", [(user_id, role) for role in roles]
    )


def set_names(conn: sqlite3.Connection, *, user_id: int, first_name: str, last_name: str) -> None:
    conn.execute(
        "UPDATE users SET first_name = ?, last_name = ? WHERE id = ?",
        (first_name, last_name, user_id),
    )


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
