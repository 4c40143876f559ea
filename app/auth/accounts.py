"""The registrar's accounts: finding them, reading their audit, changing roles, names, whether
one is disabled, and setting a password.

The roles in a registrar's token are only where the check starts: every registrar action also
checks the caller's stored account (enabled, still a registrar, the token of its current
generation), a change on the primary inside the transaction that makes it, so that a registrar
disabled or demoted a moment ago can undo nothing with the token they still hold. Reads answer
from this node's copy of the database; a change is made on the primary (a replica sends the
request on, with the registrar's token, which the primary checks again), and audited in its
transaction."""

import sqlite3
from dataclasses import dataclass

from app.auth import passwords, queries
from app.auth.announce import announce
from app.auth.context import Call
from app.auth.models import AccountAuditEntry, AccountChange, AccountOut, UserOut
from app.auth.settings import Settings
from app.auth.tokens import InvalidToken, KeyRing
from app.common.db import on_commit
from app.common.errors import Conflict, Forbidden, Invalid, NotFound, Unauthenticated
from app.common.identity import REGISTRAR, ROLES

NOT_REGISTRAR = "only a registrar may manage accounts"


@dataclass(frozen=True)
class RegistrarCall:
    """A request of a registrar: who (their user id) and the generation of their token."""

    user_id: int
    generation: int


def registrar_call(
    *,
    settings: Settings,
    keys: KeyRing,
    authorization: str | None,
    refusal: str = NOT_REGISTRAR,
) -> RegistrarCall:
    """The registrar of the valid access token in `authorization`: 401 without one, 403
    (`refusal`) for anyone else's. The gateway checks the same before a request gets here; this
    service checks again, since it also answers the requests that replicas relay."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization must be `Bearer <access token>`", code="invalid_token")
    try:
        claims = keys.verify(
            token.strip(), issuer=settings.issuer, audience=settings.audience, token_use="access"
        )
    except InvalidToken as exc:
        raise Unauthenticated("access token is invalid or expired", code="invalid_token") from exc
    if REGISTRAR not in claims["roles"]:
        raise Forbidden(refusal, code="registrar_required")
    generation = claims.get("gen", 0)
    return RegistrarCall(
        user_id=int(claims["sub"]),
        generation=generation if isinstance(generation, int) else -1,
    )


def require_current_registrar(conn: sqlite3.Connection, by: RegistrarCall) -> None:
    """Refuse a registrar's token that their stored account no longer backs: disabled (403),
    no longer a registrar (403), or issued before a change to the account (401: roles, password
    or a disable moved its generation on)."""
    me = queries.get(conn, user_id=by.user_id)
    if me is None or me.disabled:
        raise Forbidden("your account is disabled or no longer exists", code="account_disabled")
    if REGISTRAR not in me.roles:
        raise Forbidden(
            f"{NOT_REGISTRAR}, and your account no longer holds the registrar role",
            code="registrar_required",
        )
    if by.generation != me.token_generation:
        raise Unauthenticated(
            "your access token was issued before a change to your account (roles, password or"
            " a disable); sign in again",
            code="session_ended",
        )


def list_accounts(
    conn: sqlite3.Connection,
    *,
    by: RegistrarCall,
    text: str | None,
    role: str | None,
    disabled: bool | None,
    after: int | None,
    limit: int,
    mail_domain: str,
) -> list[AccountOut]:
    """One page of the accounts matching the search, in id order."""
    require_current_registrar(conn, by)
    found = queries.search(
        conn,
        text=text,
        role=role,
        disabled=disabled,
        after=after,
        limit=limit,
        mail_domain=mail_domain,
    )
    return [_account_out(user, mail_domain) for user in found]


def get_account(
    conn: sqlite3.Connection, *, by: RegistrarCall, user_id: int, mail_domain: str
) -> AccountOut:
    """One account, as this node's copy of the database has it."""
    require_current_registrar(conn, by)
    return _account_out(_existing(conn, user_id), mail_domain)


def account_audit(
    conn: sqlite3.Connection,
    *,
    by: RegistrarCall,
    actor_id: int | None,
    user_id: int | None,
    action: str | None,
    after: int | None,
    limit: int,
) -> list[AccountAuditEntry]:
    """The registrar's changes to accounts, newest first, a page at a time."""
    require_current_registrar(conn, by)
    rows = queries.list_audit(
        conn, actor_id=actor_id, user_id=user_id, action=action, after=after, limit=limit
    )
    return [AccountAuditEntry.model_validate(row) for row in rows]


OWN_ACCOUNT = (
    "a registrar cannot change their own roles, disabled state or password through the account"
    " routes; another registrar can"
)


def change_account(
    call: Call, *, by: RegistrarCall, user_id: int, change: AccountChange
) -> AccountOut:
    """Change an account's roles, names, or whether it is disabled. A registrar may not change
    their own roles or disabled state (a registrar disabled or demoted would otherwise restore
    themselves), and the last active registrar keeps the role: the registrar's office would
    otherwise have no way back in. A role change ends the account's sessions."""
    if by.user_id == user_id and (change.disabled is not None or change.roles is not None):
        raise Conflict(OWN_ACCOUNT, code="own_account")
    return call.write(_change, answer=AccountOut, by=by, user_id=user_id, change=change)


def _change(
    tx: sqlite3.Connection, call: Call, *, by: RegistrarCall, user_id: int, change: AccountChange
) -> AccountOut:
    """On the primary: the change and its audit in one transaction, announced once committed."""
    require_current_registrar(tx, by)
    user = _existing(tx, user_id)
    audit = []
    roles = None if change.roles is None else [r for r in ROLES if r in change.roles]
    if roles is not None and roles != user.roles:
        if REGISTRAR not in roles:
            _keep_a_registrar(tx, user)
        queries.set_roles(tx, user_id=user_id, roles=roles)
        audit.append(("account.roles", {"before": user.roles, "after": roles}))
    names = (change.first_name or user.first_name, change.last_name or user.last_name)
    if names != (user.first_name, user.last_name):
        queries.set_names(tx, user_id=user_id, first_name=names[0], last_name=names[1])
        audit.append(
            (
                "account.names",
                {"before": [user.first_name, user.last_name], "after": list(names)},
            )
        )
    if change.disabled is not None and change.disabled != user.disabled:
        if change.disabled:
            _keep_a_registrar(tx, user)
        queries.set_disabled(tx, user_id=user_id, disabled=change.disabled)
        audit.append(("account.disable" if change.disabled else "account.enable", {}))
    if "email" in change.model_fields_set and change.email != user.email:
        queries.set_email(tx, user_id=user_id, email=change.email)
        audit.append(("account.email", {"before": user.email, "after": change.email}))
    for action, details in audit:
        queries.insert_audit(
            tx, actor_id=by.user_id, action=action, user_id=user_id, details=details
        )
    changed = _account_out(_existing(tx, user_id), call.settings.mail_domain)
    if change.roles is not None or change.first_name is not None or change.last_name is not None:
        on_commit(tx, lambda: _announce(call, changed))
    return changed


def _announce(call: Call, account: AccountOut) -> None:
    """Tell the enrollment service of the change (best effort: announce.py)."""
    announce(call.settings, account)


def _keep_a_registrar(conn: sqlite3.Connection, user: queries.StoredUser) -> None:
    """Refuse to disable or demote the last enabled registrar (409)."""
    if REGISTRAR not in user.roles or user.disabled:
        return
    if queries.count_active_registrars(conn, other_than=user.id) == 0:
        raise Conflict(
            f"account {user.id} is the last active registrar; make another registrar first",
            code="last_registrar",
        )


def set_password(call: Call, *, by: RegistrarCall, user_id: int, password: str) -> None:
    """Give the account a new password (a forgotten one, a compromised one). Every refresh token
    issued before stops working, so whoever held the old password loses their session too."""
    if by.user_id == user_id:
        raise Conflict(OWN_ACCOUNT, code="own_account")
    call.write(_set_password, before=_new_password_hash, by=by, user_id=user_id, password=password)


def _new_password_hash(
    conn: sqlite3.Connection, call: Call, *, by: RegistrarCall, user_id: int, password: str
) -> dict[str, str]:
    """On the primary, before the transaction: the caller and the account checked (a refused
    caller costs no hash), then the new password's hash, outside the write lock as in register."""
    require_current_registrar(conn, by)
    user = _existing(conn, user_id)
    if password.lower() == user.username:
        raise Invalid("password must not be the username", code="weak_password")
    return {"password_hash": passwords.hash_password(password)}


def _set_password(
    tx: sqlite3.Connection,
    call: Call,
    *,
    by: RegistrarCall,
    user_id: int,
    password: str,
    password_hash: str,
) -> None:
    """On the primary, in one transaction: the new password's hash stored and audited."""
    require_current_registrar(tx, by)  # again under the lock: what the change rests on
    _existing(tx, user_id)
    queries.set_password(tx, user_id=user_id, password_hash=password_hash)
    queries.insert_audit(
        tx, actor_id=by.user_id, action="account.password", user_id=user_id, details={}
    )


def _existing(conn: sqlite3.Connection, user_id: int) -> queries.StoredUser:
    user = queries.get(conn, user_id=user_id)
    if user is None:
        raise NotFound(f"account {user_id} not found")
    return user


def _account_out(user: queries.StoredUser, mail_domain: str) -> AccountOut:
    return AccountOut(**user_out(user, mail_domain).model_dump(), disabled=user.disabled)


def user_out(user: queries.StoredUser, mail_domain: str) -> UserOut:
    """The account as its owner, the registrar and the installation's services see it (with the
    email address, which no other student is ever shown)."""
    return UserOut(
        id=user.id,
        username=user.username,
        first_name=user.first_name,
        last_name=user.last_name,
        roles=user.roles,
        email=user.address(mail_domain),
    )
