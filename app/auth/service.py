"""The auth service's rules: who may register with which roles, how a login is checked, what a
refresh may renew. Login and refresh only read the users database, so they run on LiteFS read
replicas too; the abuse counts they keep are in a file of their own (app/auth/throttle.py)."""

import hmac
import sqlite3
import time
import uuid
from dataclasses import dataclass

import httpx

from app.auth import metrics, passwords, queries
from app.auth.announce import announce
from app.auth.models import (
    AccountAuditEntry,
    AccountChange,
    AccountOut,
    RegisterIn,
    TokenOut,
    UserOut,
)
from app.auth.primary import ask_primary, relay
from app.auth.settings import Settings
from app.auth.throttle import Origin, Throttle
from app.auth.tokens import InvalidToken, KeyRing, TokenUse, build_claims
from app.common.db import immediate
from app.common.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    Relayed,
    Unauthenticated,
    Unavailable,
)
from app.common.identity import REGISTRAR, ROLES, STUDENT

BAD_CREDENTIALS = "invalid username or password"
DISABLED = "this account is disabled; the registrar can re-enable it"
SELF_SERVICE_ROLES = [STUDENT]


def replica_reason(settings: Settings) -> str | None:
    """Why this node must not write (it is a read replica), or None on the primary."""
    # LiteFS puts `.primary` (holding the primary's name) in the mount on replicas only, and
    # only while connected to the primary; replicas therefore also set AUTH_READ_ONLY.
    marker = settings.database.parent / ".primary"
    if marker.is_file():
        primary = marker.read_text().strip() or "unknown"
        return f"this node is a read replica (primary: {primary})"
    if settings.read_only:
        return "this node is a read replica (AUTH_READ_ONLY)"
    return None


def ensure_primary(settings: Settings) -> None:
    """Refuse a write on a read replica with 503 rather than a database error."""
    reason = replica_reason(settings)
    if reason is not None:
        raise Unavailable(f"{reason}; registration goes to the primary", code="read_replica")


def register(
    conn: sqlite3.Connection | None,
    *,
    settings: Settings,
    keys: KeyRing,
    primary: httpx.Client | None,
    throttle: Throttle,
    origin: Origin,
    new: RegisterIn,
    authorization: str | None,
) -> UserOut:
    """Create an account. Students sign themselves up; any other role needs a registrar's token.
    Self-registrations are limited per client address; a registrar's are not. On a read replica
    (`conn` None) the primary creates it: the request is relayed there and its answer passed on.
    An account a registrar makes is checked against the registrar's stored account, on the primary,
    in the transaction that creates it, and audited there."""
    by: RegistrarCall | None = None
    if new.roles != SELF_SERVICE_ROLES:
        by = _require_registrar(settings=settings, keys=keys, authorization=authorization)
    else:
        by = _registrar_or_none(settings=settings, keys=keys, authorization=authorization)
        if by is None and not origin.forwarded_by_replica:
            # Counted once, by the node the client reached (a relaying replica, or the primary).
            throttle.start_registration(address=origin.address)
    if conn is None:
        return _register_on_primary(settings, primary, new, authorization)
    # Hash before taking the write lock: the lock is then held for two inserts, not 25 ms.
    password_hash = passwords.hash_password(new.password)
    try:
        with immediate(conn):
            if by is not None:
                _require_current_registrar(conn, by)
            if queries.get_by_username(conn, username=new.username) is not None:
                raise Conflict(f"username {new.username!r} is taken", code="username_taken")
            user_id = queries.create(
                conn,
                username=new.username,
                password_hash=password_hash,
                first_name=new.first_name,
                last_name=new.last_name,
                roles=list(new.roles),
            )
            if by is not None:
                queries.insert_audit(
                    conn,
                    actor_id=by.user_id,
                    action="account.create",
                    user_id=user_id,
                    details={"username": new.username, "roles": list(new.roles)},
                )
    except sqlite3.OperationalError as exc:
        if getattr(exc, "sqlite_errorname", "").startswith("SQLITE_READONLY"):
            # The database refused the write although nothing told us this node is a replica.
            raise Unavailable(
                "this node's database is read-only (a read replica); registration goes to the "
                "primary",
                code="read_replica",
            ) from exc
        raise
    metrics.REGISTRATIONS.inc()
    user = queries.get(conn, user_id=user_id)
    assert user is not None
    created = _user_out(user)
    announce(settings, created)
    return created


# What the primary may answer a relayed registration with, besides 201: the refusals a replica
# cannot decide itself (a taken username; a registrar token the primary refuses).
RELAYED_REFUSALS = {401, 403, 409}


def _register_on_primary(
    settings: Settings, primary: httpx.Client | None, new: RegisterIn, authorization: str | None
) -> UserOut:
    """A replica's registration: made by the primary; its answer, or 503 if it is out of reach."""
    if primary is None:  # a read-only node that knows no primary
        ensure_primary(settings)
    assert primary is not None
    headers = {"Authorization": authorization} if authorization else {}
    reply = relay(primary, "/register", new.model_dump(), headers)
    if reply is not None and reply.status_code == 201:
        return UserOut.model_validate(reply.json())
    if reply is not None and reply.status_code in RELAYED_REFUSALS:
        body = reply.json()
        raise Relayed(body["detail"], code=body["code"], status=reply.status_code)
    raise Unavailable(
        "registration is unavailable right now: the auth primary, which creates accounts, cannot "
        "be reached; nothing was created, so try again in a few seconds",
        code="primary_unavailable",
    )


def login(conn: sqlite3.Connection, *, origin: Origin, **kwargs) -> TokenOut:
    """`_login`, its outcome counted (success, or the refusal's code) by the node that answers
    the client: not again by the primary a replica asked."""
    count = not origin.forwarded_by_replica
    try:
        tokens = _login(conn, origin=origin, **kwargs)
    except DomainError as refusal:
        if count:
            metrics.LOGINS.labels(refusal.code).inc()
        raise
    if count:
        metrics.LOGINS.labels("success").inc()
    return tokens


def _login(
    conn: sqlite3.Connection,
    *,
    settings: Settings,
    keys: KeyRing,
    primary: httpx.Client | None,
    throttle: Throttle,
    origin: Origin,
    username: str,
    password: str,
) -> TokenOut:
    """Check a username and password; on success issue an access and a refresh token.

    Unknown users are checked against a dummy hash so they cost the same time as a wrong password.
    Too many failures for the username or from the address are refused (429) before any of that.
    No write to the users database happens here: a replica's is read-only.
    """
    # The replica that forwarded this login has counted it, and checked the limits, already.
    attempt = None
    if not origin.forwarded_by_replica:
        attempt = throttle.start_login(username=username, address=origin.address)
    user = queries.get_by_username(conn, username=username)
    stored_hash = user.password_hash if user is not None else passwords.DUMMY_HASH
    password_ok = passwords.verify_password(password, stored_hash)
    if user is None or not password_ok:
        # A replica may not have the row of a user who has just registered yet: the primary
        # decides. Both refusals go there, so they still take the same time. Only a replica asks,
        # so a refusal on the primary is final and two nodes never ask each other in a loop.
        if primary is not None and replica_reason(settings) is not None:
            body = {"username": username, "password": password}
            tokens = ask_primary(primary, "/login", body, TokenOut)
            if tokens is not None:
                if attempt is not None:
                    throttle.login_succeeded(attempt)
                return tokens
        if attempt is not None:
            throttle.login_failed(attempt)
        raise Unauthenticated(BAD_CREDENTIALS, code="invalid_credentials")
    if user.disabled:
        # A replica may not know yet that the registrar has re-enabled the account.
        if primary is not None and replica_reason(settings) is not None:
            body = {"username": username, "password": password}
            tokens = ask_primary(primary, "/login", body, TokenOut)
            if tokens is not None:
                if attempt is not None:
                    throttle.login_succeeded(attempt)
                return tokens
        raise Forbidden(DISABLED, code="account_disabled")
    if attempt is not None:
        throttle.login_succeeded(attempt)
    return TokenOut(
        access_token=_issue(keys, settings, user, "access"),
        refresh_token=_issue(keys, settings, user, "refresh"),
        expires_in=settings.access_ttl_seconds,
    )


def refresh(
    conn: sqlite3.Connection | None,
    *,
    settings: Settings,
    keys: KeyRing,
    primary: httpx.Client | None,
    refresh_token: str,
) -> TokenOut:
    """Trade a valid refresh token for a new access token with the user's current roles, and the
    session's next refresh token: each is good for one use (rotation, OAuth 2.0 Security BCP), and
    a used one presented again ends the session, since two parties then hold it. Made on the
    primary, which keeps the sessions (a replica relays it there; 503 while it is out of reach)."""
    claims = _refresh_claims(settings, keys, refresh_token)
    if conn is None:
        reply = _on_primary(settings, primary, "POST", "/refresh", {"refresh_token": refresh_token})
        return TokenOut.model_validate(reply.json())
    now = time.time()
    with immediate(conn):
        turned = _turn_session(conn, settings=settings, claims=claims, now=now)
    # Raised once the transaction has committed, so a session ended for reuse stays ended.
    if isinstance(turned, DomainError):
        raise turned
    user, next_seq = turned
    return TokenOut(
        access_token=_issue(keys, settings, user, "access"),
        refresh_token=_issue(keys, settings, user, "refresh", session=(claims["sid"], next_seq)),
        expires_in=settings.access_ttl_seconds,
    )


def logout(
    conn: sqlite3.Connection | None,
    *,
    settings: Settings,
    keys: KeyRing,
    primary: httpx.Client | None,
    refresh_token: str,
) -> None:
    """End the session of this refresh token (any of its refresh tokens will do): none of them
    refreshes again. Its last access token still works until it expires (README "Security")."""
    claims = _refresh_claims(settings, keys, refresh_token)
    if conn is None:
        _on_primary(settings, primary, "POST", "/logout", {"refresh_token": refresh_token})
        return
    with immediate(conn):
        session = queries.get_session(conn, session_id=claims["sid"])
        if session is not None and session.ended is not None:
            return  # ended already: signing out twice is not an error
        queries.save_session(
            conn,
            session_id=claims["sid"],
            user_id=int(claims["sub"]),
            refresh_seq=session.refresh_seq if session is not None else claims["seq"],
            ended="logout",
            now=time.time(),
        )


def _refresh_claims(settings: Settings, keys: KeyRing, refresh_token: str) -> dict:
    """The claims of a genuine, unexpired refresh token of a session; else 401."""
    try:
        claims = keys.verify(
            refresh_token, issuer=settings.issuer, audience=settings.audience, token_use="refresh"
        )
    except InvalidToken as exc:
        raise Unauthenticated(
            "refresh token is invalid or expired; sign in again", code="invalid_token"
        ) from exc
    if not isinstance(claims.get("sid"), str) or not isinstance(claims.get("seq"), int):
        # Issued before sessions were kept: it cannot be rotated, so it ends here.
        raise Unauthenticated(
            "this refresh token is from an older version of the service; sign in again",
            code="invalid_token",
        )
    return claims


REUSED = (
    "this refresh token has been used already, so someone else may hold it: the session is ended"
    " to be safe; sign in again"
)


def _turn_session(
    conn: sqlite3.Connection, *, settings: Settings, claims: dict, now: float
) -> tuple[queries.StoredUser, int] | DomainError:
    """In the refresh's transaction: the user and the session's next `seq`, with the session
    moved on to it; or the refusal (a reused token's session is ended, and stays ended)."""
    user = queries.get(conn, user_id=int(claims["sub"]))
    refusal = _refresh_refusal(user, claims)
    if refusal is not None:
        return refusal
    assert user is not None
    session = queries.get_session(conn, session_id=claims["sid"])
    if session is not None and session.user_id != user.id:
        return Unauthenticated("refresh token is invalid; sign in again", code="invalid_token")
    if session is not None and session.ended is not None:
        return Unauthenticated(
            "this session has ended (signed out, or ended after a reused refresh token);"
            " sign in again",
            code="session_ended",
        )
    current = session.refresh_seq if session is not None else 0
    if claims["seq"] != current:
        queries.save_session(
            conn,
            session_id=claims["sid"],
            user_id=user.id,
            refresh_seq=current,
            ended="reused",
            now=now,
        )
        return Unauthenticated(REUSED, code="refresh_token_reused")
    queries.save_session(
        conn,
        session_id=claims["sid"],
        user_id=user.id,
        refresh_seq=current + 1,
        ended=None,
        now=now,
    )
    queries.delete_sessions_before(conn, before=now - settings.refresh_ttl_seconds)
    return user, current + 1


def _refresh_refusal(user: queries.StoredUser | None, claims: dict) -> Unauthenticated | None:
    """Why this refresh token may not be renewed for this stored user, or None if it may."""
    if user is None or user.username != claims["preferred_username"]:
        return Unauthenticated(
            "the account of this refresh token no longer exists", code="invalid_token"
        )
    if user.disabled:
        return Unauthenticated(DISABLED, code="account_disabled")
    if claims.get("gen", 0) != user.token_generation:
        return Unauthenticated(
            "this session has ended (the password was changed or the account disabled since);"
            " sign in again",
            code="session_ended",
        )
    return None


def _require_registrar(
    *, settings: Settings, keys: KeyRing, authorization: str | None
) -> "RegistrarCall":
    if authorization is None:
        raise Forbidden(
            "self-registration creates students only; instructor and registrar accounts need a "
            "registrar's access token (Authorization: Bearer ...)",
            code="registrar_required",
        )
    return registrar_call(
        settings=settings,
        keys=keys,
        authorization=authorization,
        refusal="only a registrar may create instructor or registrar accounts",
    )


def _registrar_or_none(
    *, settings: Settings, keys: KeyRing, authorization: str | None
) -> "RegistrarCall | None":
    """The registrar whose valid access token `authorization` holds, or None (never an error)."""
    if authorization is None:
        return None
    try:
        return _require_registrar(settings=settings, keys=keys, authorization=authorization)
    except (Forbidden, Unauthenticated):
        return None


def _issue(
    keys: KeyRing,
    settings: Settings,
    user: queries.StoredUser,
    use: TokenUse,
    *,
    session: tuple[str, int] | None = None,
) -> str:
    """A token for `user`. A refresh token belongs to a session (`sid`, and `seq`, its place in
    the session's rotation): a new one (login) unless `session` names it."""
    ttl = settings.access_ttl_seconds if use == "access" else settings.refresh_ttl_seconds
    claims = build_claims(
        user_id=user.id,
        username=user.username,
        given_name=user.first_name,
        family_name=user.last_name,
        roles=user.roles,
        issuer=settings.issuer,
        audience=settings.audience,
        ttl_seconds=ttl,
        token_use=use,
    )
    claims["gen"] = user.token_generation  # refused once the account's generation moves on
    if use == "refresh":
        claims["sid"], claims["seq"] = session if session is not None else (uuid.uuid4().hex, 0)
    return keys.sign(claims)


def account_for_service(
    conn: sqlite3.Connection, *, settings: Settings, secret: str | None, user_id: int
) -> UserOut:
    """An account as another service of this installation needs it (the enrollment service, for
    an id it has not seen yet): only for a caller showing the gateway secret."""
    expected = settings.gateway_secret
    if expected is None or secret is None or not hmac.compare_digest(secret, expected):
        raise Unauthenticated("this route is for the installation's services", code="no_gateway")
    user = queries.get(conn, user_id=user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return _user_out(user)


def _user_out(user: queries.StoredUser) -> UserOut:
    return UserOut(
        id=user.id,
        username=user.username,
        first_name=user.first_name,
        last_name=user.last_name,
        roles=user.roles,
    )


# The registrar's account management. The roles in a registrar's token are only where the check
# starts: every registrar action also checks the caller's stored account (enabled, still a
# registrar, the token of its current generation), a change on the primary inside the
# transaction that makes it, so that a registrar disabled or demoted a moment ago can undo
# nothing with the token they still hold. Reads answer from this node's copy of the database; a
# change is made on the primary (relayed there from a replica, with the registrar's token, which
# the primary checks again), and audited in its transaction.

NOT_REGISTRAR = "only a registrar may manage accounts"


@dataclass(frozen=True)
class RegistrarCall:
    """A request of a registrar: who (their user id), the generation of their token, and their
    Authorization, passed on when a replica relays the request to the primary."""

    user_id: int
    generation: int
    authorization: str


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
    assert authorization is not None
    generation = claims.get("gen", 0)
    return RegistrarCall(
        user_id=int(claims["sub"]),
        generation=generation if isinstance(generation, int) else -1,
        authorization=authorization,
    )


def _require_current_registrar(conn: sqlite3.Connection, by: RegistrarCall) -> None:
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
) -> list[AccountOut]:
    """One page of the accounts matching the search, in id order."""
    _require_current_registrar(conn, by)
    found = queries.search(conn, text=text, role=role, disabled=disabled, after=after, limit=limit)
    return [_account_out(user) for user in found]


def get_account(conn: sqlite3.Connection, *, by: RegistrarCall, user_id: int) -> AccountOut:
    _require_current_registrar(conn, by)
    return _account_out(_existing(conn, user_id))


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
    _require_current_registrar(conn, by)
    rows = queries.list_audit(
        conn, actor_id=actor_id, user_id=user_id, action=action, after=after, limit=limit
    )
    return [AccountAuditEntry.model_validate(row) for row in rows]


OWN_ACCOUNT = (
    "a registrar cannot change their own roles, disabled state or password through the account"
    " routes; another registrar can"
)


def change_account(
    conn: sqlite3.Connection | None,
    *,
    settings: Settings,
    primary: httpx.Client | None,
    by: RegistrarCall,
    user_id: int,
    change: AccountChange,
) -> AccountOut:
    """Change an account's roles, names, or whether it is disabled. A registrar may not change
    their own roles or disabled state (a registrar disabled or demoted would otherwise restore
    themselves), and the last active registrar keeps the role: the registrar's office would
    otherwise have no way back in. A role change ends the account's sessions."""
    if by.user_id == user_id and (change.disabled is not None or change.roles is not None):
        raise Conflict(OWN_ACCOUNT, code="own_account")
    if conn is None:
        body = change.model_dump(exclude_unset=True)
        reply = _on_primary(
            settings, primary, "PATCH", f"/accounts/{user_id}", body, by.authorization
        )
        return AccountOut.model_validate(reply.json())
    with immediate(conn):
        _require_current_registrar(conn, by)
        user = _existing(conn, user_id)
        audit = []
        roles = None if change.roles is None else [r for r in ROLES if r in change.roles]
        if roles is not None and roles != user.roles:
            if REGISTRAR not in roles:
                _keep_a_registrar(conn, user)
            queries.set_roles(conn, user_id=user_id, roles=roles)
            audit.append(("account.roles", {"before": user.roles, "after": roles}))
        names = (change.first_name or user.first_name, change.last_name or user.last_name)
        if names != (user.first_name, user.last_name):
            queries.set_names(conn, user_id=user_id, first_name=names[0], last_name=names[1])
            audit.append(
                (
                    "account.names",
                    {"before": [user.first_name, user.last_name], "after": list(names)},
                )
            )
        if change.disabled is not None and change.disabled != user.disabled:
            if change.disabled:
                _keep_a_registrar(conn, user)
            queries.set_disabled(conn, user_id=user_id, disabled=change.disabled)
            audit.append(("account.disable" if change.disabled else "account.enable", {}))
        for action, details in audit:
            queries.insert_audit(
                conn, actor_id=by.user_id, action=action, user_id=user_id, details=details
            )
        changed = _account_out(_existing(conn, user_id))
    if change.roles is not None or change.first_name is not None or change.last_name is not None:
        announce(settings, changed)
    return changed


def _keep_a_registrar(conn: sqlite3.Connection, user: queries.StoredUser) -> None:
    """Refuse to disable or demote the last enabled registrar (409)."""
    if REGISTRAR not in user.roles or user.disabled:
        return
    if queries.count_active_registrars(conn, other_than=user.id) == 0:
        raise Conflict(
            f"account {user.id} is the last active registrar; make another registrar first",
            code="last_registrar",
        )


def set_password(
    conn: sqlite3.Connection | None,
    *,
    settings: Settings,
    primary: httpx.Client | None,
    by: RegistrarCall,
    user_id: int,
    password: str,
) -> None:
    """Give the account a new password (a forgotten one, a compromised one). Every refresh token
    issued before stops working, so whoever held the old password loses their session too."""
    if by.user_id == user_id:
        raise Conflict(OWN_ACCOUNT, code="own_account")
    if conn is None:
        body = {"password": password}
        path = f"/accounts/{user_id}/password"
        _on_primary(settings, primary, "PUT", path, body, by.authorization)
        return
    _require_current_registrar(conn, by)
    user = _existing(conn, user_id)
    if password.lower() == user.username:
        raise Invalid("password must not be the username", code="weak_password")
    password_hash = passwords.hash_password(password)  # outside the write lock, as in register
    with immediate(conn):
        _require_current_registrar(conn, by)
        _existing(conn, user_id)
        queries.set_password(conn, user_id=user_id, password_hash=password_hash)
        queries.insert_audit(
            conn, actor_id=by.user_id, action="account.password", user_id=user_id, details={}
        )


def _on_primary(
    settings: Settings,
    primary: httpx.Client | None,
    method: str,
    path: str,
    body: dict,
    authorization: str | None = None,
) -> httpx.Response:
    """A replica's write (an account change, a refresh, a sign-out), made by the primary: its
    successful answer; its refusal passed on as it was; 503 when it is out of reach (nothing
    was changed then)."""
    if primary is None:
        ensure_primary(settings)
    assert primary is not None
    headers = {"Authorization": authorization} if authorization else {}
    reply = relay(primary, path, body, headers, method=method)
    if reply is not None and reply.is_success:
        return reply
    if reply is not None and 400 <= reply.status_code < 500:
        answer = reply.json()
        raise Relayed(answer["detail"], code=answer["code"], status=reply.status_code)
    raise Unavailable(
        f"this is unavailable right now ({method} {path}): the auth primary, which makes the"
        " change, cannot be reached; nothing was changed, so try again in a few seconds",
        code="primary_unavailable",
    )


def _existing(conn: sqlite3.Connection, user_id: int) -> queries.StoredUser:
    user = queries.get(conn, user_id=user_id)
    if user is None:
        raise NotFound(f"account {user_id} not found")
    return user


def _account_out(user: queries.StoredUser) -> AccountOut:
    return AccountOut(**_user_out(user).model_dump(), disabled=user.disabled)
