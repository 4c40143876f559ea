"""The auth service's rules: who may register with which roles, how a login is checked, what a
refresh may renew. Login and refresh only read the users database, so they run on LiteFS read
replicas too; the abuse counts they keep are in a file of their own (app/auth/throttle.py)."""

import hmac
import sqlite3

import httpx

from app.auth import passwords, queries
from app.auth.models import AccessTokenOut, RegisterIn, TokenOut, UserOut
from app.auth.primary import ask_primary, relay
from app.auth.settings import Settings
from app.auth.throttle import Origin, Throttle
from app.auth.tokens import InvalidToken, KeyRing, TokenUse, build_claims
from app.common.db import immediate
from app.common.errors import (
    Conflict,
    Forbidden,
    NotFound,
    Relayed,
    Unauthenticated,
    Unavailable,
)
from app.common.identity import REGISTRAR, STUDENT

BAD_CREDENTIALS = "invalid username or password"
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
    (`conn` None) the primary creates it: the request is relayed there and its answer passed on."""
    if new.roles != SELF_SERVICE_ROLES:
        _require_registrar(settings=settings, keys=keys, authorization=authorization)
    elif not origin.forwarded_by_replica and not _is_registrar(
        settings=settings, keys=keys, authorization=authorization
    ):
        # Counted once, by the node the client reached (a relaying replica, or the primary).
        throttle.start_registration(address=origin.address)
    if conn is None:
        return _register_on_primary(settings, primary, new, authorization)
    # Hash before taking the write lock: the lock is then held for two inserts, not 25 ms.
    password_hash = passwords.hash_password(new.password)
    try:
        with immediate(conn):
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
    except sqlite3.OperationalError as exc:
        if getattr(exc, "sqlite_errorname", "").startswith("SQLITE_READONLY"):
            # The database refused the write although nothing told us this node is a replica.
            raise Unavailable(
                "this node's database is read-only (a read replica); registration goes to the "
                "primary",
                code="read_replica",
            ) from exc
        raise
    user = queries.get(conn, user_id=user_id)
    assert user is not None
    return _user_out(user)


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


def login(
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
    if attempt is not None:
        throttle.login_succeeded(attempt)
    return TokenOut(
        access_token=_issue(keys, settings, user, "access"),
        refresh_token=_issue(keys, settings, user, "refresh"),
        expires_in=settings.access_ttl_seconds,
    )


def refresh(
    conn: sqlite3.Connection,
    *,
    settings: Settings,
    keys: KeyRing,
    primary: httpx.Client | None,
    refresh_token: str,
) -> AccessTokenOut:
    """Trade a valid refresh token for a new access token with the user's current roles."""
    try:
        claims = keys.verify(
            refresh_token, issuer=settings.issuer, audience=settings.audience, token_use="refresh"
        )
    except InvalidToken as exc:
        raise Unauthenticated(
            "refresh token is invalid or expired; sign in again", code="invalid_token"
        ) from exc
    user = queries.get(conn, user_id=int(claims["sub"]))
    if user is None or user.username != claims["preferred_username"]:
        # The token is genuine, so the account existed on the primary: a replica may lag behind.
        if primary is not None and replica_reason(settings) is not None:
            body = {"refresh_token": refresh_token}
            renewed = ask_primary(primary, "/refresh", body, AccessTokenOut)
            if renewed is not None:
                return renewed
        raise Unauthenticated(
            "the account of this refresh token no longer exists", code="invalid_token"
        )
    return AccessTokenOut(
        access_token=_issue(keys, settings, user, "access"), expires_in=settings.access_ttl_seconds
    )


def _require_registrar(*, settings: Settings, keys: KeyRing, authorization: str | None) -> None:
    if authorization is None:
        raise Forbidden(
            "self-registration creates students only; instructor and registrar accounts need a "
            "registrar's access token (Authorization: Bearer ...)",
            code="registrar_required",
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization must be `Bearer <access token>`", code="invalid_token")
    try:
        claims = keys.verify(
            token.strip(), issuer=settings.issuer, audience=settings.audience, token_use="access"
        )
    except InvalidToken as exc:
        raise Unauthenticated("access token is invalid or expired", code="invalid_token") from exc
    if REGISTRAR not in claims["roles"]:
        raise Forbidden(
            "only a registrar may create instructor or registrar accounts",
            code="registrar_required",
        )


def _is_registrar(*, settings: Settings, keys: KeyRing, authorization: str | None) -> bool:
    """Whether `authorization` holds a registrar's valid access token (never an error)."""
    if authorization is None:
        return False
    try:
        _require_registrar(settings=settings, keys=keys, authorization=authorization)
    except (Forbidden, Unauthenticated):
        return False
    return True


def _issue(keys: KeyRing, settings: Settings, user: queries.StoredUser, use: TokenUse) -> str:
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
