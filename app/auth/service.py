"""The auth service's rules: who may register with which roles, how a login is checked, what a
refresh may renew, how a session ends. Login only reads the users database, so it runs on LiteFS
read replicas too; the abuse counts it keeps are in a file of their own (app/auth/throttle.py).
Each write goes through `Call.write`, the same call on every node: on the primary the rule runs
in one transaction on the write connection, what must come before it (a password's hash) just
before; a replica has the primary make it (app/auth/primary.py)."""

import hmac
import sqlite3
import time
import uuid
from typing import Any

from app.auth import metrics, passwords, queries
from app.auth.accounts import RegistrarCall, registrar_call, require_current_registrar, user_out
from app.auth.announce import announce
from app.auth.context import Call
from app.auth.models import RegisterIn, TokenOut, UserOut
from app.auth.primary import Relay
from app.auth.settings import Settings
from app.auth.throttle import LoginAttempt
from app.auth.tokens import InvalidToken, TokenUse, build_claims
from app.common.db import on_commit
from app.common.errors import Conflict, DomainError, Forbidden, NotFound, Unauthenticated
from app.common.identity import STUDENT

BAD_CREDENTIALS = "invalid username or password"
DISABLED = "this account is disabled; the registrar can re-enable it"
SELF_SERVICE_ROLES = [STUDENT]

# A registration a replica relays: of the primary's refusals it passes on those it cannot decide
# itself (a taken username; a registrar token the primary refuses), and its 503s speak to the
# person registering (the web app shows them).
REGISTRATION = Relay(
    name="registration",
    passes_on=frozenset({401, 403, 409}),
    unavailable="registration is unavailable right now: the auth primary, which creates accounts,"
    " cannot be reached; nothing was created, so try again in a few seconds",
)


def register(call: Call, *, new: RegisterIn, authorization: str | None) -> UserOut:
    """Create an account. Students sign themselves up; any other role needs a registrar's token.
    Self-registrations are limited per client address; a registrar's are not. An account a
    registrar makes is checked against the registrar's stored account, on the primary, in the
    transaction that creates it, and audited there."""
    by: RegistrarCall | None = None
    if new.roles != SELF_SERVICE_ROLES:
        by = _require_registrar(call, authorization)
    else:
        by = _registrar_or_none(call, authorization)
        if by is None and not call.origin.forwarded_by_replica:
            # Counted once, by the node the client reached (a relaying replica, or the primary).
            call.throttle.start_registration(address=call.origin.address)
    return call.write(
        _create, answer=UserOut, relay=REGISTRATION, before=_hash_new_password, by=by, new=new
    )


def _hash_new_password(
    conn: sqlite3.Connection, call: Call, *, new: RegisterIn, by: RegistrarCall | None = None
) -> dict[str, str]:
    """On the primary, before the transaction: the new password's hash, so the write lock is
    held for two inserts, not 25 ms."""
    return {"password_hash": passwords.hash_password(new.password)}


def _create(
    tx: sqlite3.Connection,
    call: Call,
    *,
    new: RegisterIn,
    password_hash: str,
    by: RegistrarCall | None = None,
) -> UserOut:
    """On the primary, in one transaction: the account, and its audit if a registrar made it;
    counted and announced once committed."""
    if by is not None:
        require_current_registrar(tx, by)
    if queries.get_by_username(tx, username=new.username) is not None:
        raise Conflict(f"username {new.username!r} is taken", code="username_taken")
    user_id = queries.create(
        tx,
        username=new.username,
        password_hash=password_hash,
        first_name=new.first_name,
        last_name=new.last_name,
        roles=list(new.roles),
        email=new.email,
    )
    if by is not None:
        queries.insert_audit(
            tx,
            actor_id=by.user_id,
            action="account.create",
            user_id=user_id,
            details={"username": new.username, "roles": list(new.roles)},
        )
    user = queries.get(tx, user_id=user_id)
    assert user is not None
    created = user_out(user, call.settings.mail_domain)
    on_commit(tx, metrics.REGISTRATIONS.inc)
    on_commit(tx, lambda: _announce(call, created))
    return created


def _announce(call: Call, account: UserOut) -> None:
    """Tell the enrollment service of a new or changed account (best effort: announce.py)."""
    announce(call.settings, account)


def login(conn: sqlite3.Connection, call: Call, *, username: str, password: str) -> TokenOut:
    """`_login`, its outcome counted (success, or the refusal's code) by the node that answers
    the client: not again by the primary a replica asked."""
    count = not call.origin.forwarded_by_replica
    try:
        tokens = _login(conn, call, username=username, password=password)
    except DomainError as refusal:
        if count:
            metrics.LOGINS.labels(refusal.code).inc()
        raise
    if count:
        metrics.LOGINS.labels("success").inc()
    return tokens


def _login(conn: sqlite3.Connection, call: Call, *, username: str, password: str) -> TokenOut:
    """Check a username and password; on success issue an access and a refresh token.

    Unknown users are checked against a dummy hash so they cost the same time as a wrong password.
    Too many failures for the username or from the address are refused (429) before any of that.
    No write to the users database happens here: a replica's is read-only.
    """
    # The replica that forwarded this login has counted it, and checked the limits, already.
    attempt = None
    if not call.origin.forwarded_by_replica:
        attempt = call.throttle.start_login(username=username, address=call.origin.address)
    user = queries.get_by_username(conn, username=username)
    stored_hash = user.password_hash if user is not None else passwords.DUMMY_HASH
    password_ok = passwords.verify_password(password, stored_hash)
    if user is None or not password_ok:
        # A replica may not have the row of a user who has just registered yet: the primary
        # decides. Both refusals go there, so they still take the same time.
        tokens = _from_the_primary(call, attempt, username=username, password=password)
        if tokens is not None:
            return tokens
        if attempt is not None:
            call.throttle.login_failed(attempt)
        raise Unauthenticated(BAD_CREDENTIALS, code="invalid_credentials")
    if user.disabled:
        # A replica may not know yet that the registrar has re-enabled the account.
        tokens = _from_the_primary(call, attempt, username=username, password=password)
        if tokens is not None:
            return tokens
        raise Forbidden(DISABLED, code="account_disabled")
    if attempt is not None:
        call.throttle.login_succeeded(attempt)
    return TokenOut(
        access_token=_issue(call, user, "access"),
        refresh_token=_issue(call, user, "refresh"),
        expires_in=call.settings.access_ttl_seconds,
    )


def _from_the_primary(
    call: Call, attempt: LoginAttempt | None, *, username: str, password: str
) -> TokenOut | None:
    """On a replica, the primary's tokens for a login this node must refuse, the attempt then
    counted a success; None when the primary refuses too, and always on the primary, whose own
    refusal is final (Primary.ask)."""
    body = {"username": username, "password": password}
    tokens = call.primary.ask("/login", body, TokenOut)
    if tokens is not None and attempt is not None:
        call.throttle.login_succeeded(attempt)
    return tokens


def refresh(call: Call, *, refresh_token: str) -> TokenOut:
    """Trade a valid refresh token for a new access token with the user's current roles, and the
    session's next refresh token: each is good for one use (rotation, OAuth 2.0 Security BCP), and
    a used one presented again ends the session, since two parties then hold it. Made on the
    primary, which keeps the sessions (a replica relays it there; 503 while it is out of reach)."""
    claims = _refresh_claims(call, refresh_token)
    return call.write(_renew, answer=TokenOut, claims=claims)


def _renew(tx: sqlite3.Connection, call: Call, *, claims: dict[str, Any]) -> TokenOut | DomainError:
    """On the primary, in one transaction: the session moved on and its new tokens; or the
    refusal, returned so that it commits what it changed (a session ended for reuse stays
    ended). The tokens are signed inside the transaction (two RS256 signatures, about a
    millisecond) so that a keyed refresh records them with the session's move: its retry gets
    the same tokens back, where presenting the used refresh token again would end the session."""
    turned = _turn_session(tx, settings=call.settings, claims=claims, now=time.time())
    if isinstance(turned, DomainError):
        return turned
    user, next_seq = turned
    return TokenOut(
        access_token=_issue(call, user, "access"),
        refresh_token=_issue(call, user, "refresh", session=(claims["sid"], next_seq)),
        expires_in=call.settings.access_ttl_seconds,
    )


def logout(call: Call, *, refresh_token: str) -> None:
    """End the session of this refresh token (any of its refresh tokens will do): none of them
    refreshes again. Its last access token still works until it expires (README "Security")."""
    claims = _refresh_claims(call, refresh_token)
    call.write(_end_session, claims=claims)


def _end_session(tx: sqlite3.Connection, call: Call, *, claims: dict[str, Any]) -> None:
    """On the primary: the session marked ended by a sign-out, unless it has ended already."""
    session = queries.get_session(tx, session_id=claims["sid"])
    if session is not None and session.ended is not None:
        return  # ended already: signing out twice is not an error
    queries.save_session(
        tx,
        session_id=claims["sid"],
        user_id=int(claims["sub"]),
        refresh_seq=session.refresh_seq if session is not None else claims["seq"],
        ended="logout",
        now=time.time(),
    )


def _refresh_claims(call: Call, refresh_token: str) -> dict[str, Any]:
    """The claims of a genuine, unexpired refresh token of a session; else 401."""
    settings = call.settings
    try:
        claims = call.keys.verify(
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
    conn: sqlite3.Connection, *, settings: Settings, claims: dict[str, Any], now: float
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


def _refresh_refusal(
    user: queries.StoredUser | None, claims: dict[str, Any]
) -> Unauthenticated | None:
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


def _require_registrar(call: Call, authorization: str | None) -> RegistrarCall:
    """The registrar making this registration: 403 without a token, 401/403 for a bad one."""
    if authorization is None:
        raise Forbidden(
            "self-registration creates students only; instructor and registrar accounts need a "
            "registrar's access token (Authorization: Bearer ...)",
            code="registrar_required",
        )
    return registrar_call(
        settings=call.settings,
        keys=call.keys,
        authorization=authorization,
        refusal="only a registrar may create instructor or registrar accounts",
    )


def _registrar_or_none(call: Call, authorization: str | None) -> RegistrarCall | None:
    """The registrar whose valid access token `authorization` holds, or None (never an error)."""
    if authorization is None:
        return None
    try:
        return _require_registrar(call, authorization)
    except (Forbidden, Unauthenticated):
        return None


def _issue(
    call: Call, user: queries.StoredUser, use: TokenUse, *, session: tuple[str, int] | None = None
) -> str:
    """A token for `user`. A refresh token belongs to a session (`sid`, and `seq`, its place in
    the session's rotation): a new one (login) unless `session` names it."""
    settings = call.settings
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
    return call.keys.sign(claims)


def account_for_service(
    conn: sqlite3.Connection, *, settings: Settings, secret: str | None, user_id: int
) -> UserOut:
    """An account as another service of this installation needs it (the enrollment service, for
    an id it has not seen yet): only for a caller showing the gateway secret."""
    _require_a_service(settings, secret)
    user = queries.get(conn, user_id=user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user_out(user, settings.mail_domain)


def accounts_for_service(
    conn: sqlite3.Connection, *, settings: Settings, secret: str | None, user_ids: list[int]
) -> list[UserOut]:
    """Several accounts at once, those of `user_ids` that exist (the notifier's addresses for a
    batch of mail: one request, not one per student); only for the installation's services."""
    _require_a_service(settings, secret)
    found = queries.get_many(conn, user_ids=sorted(set(user_ids)))
    return [user_out(user, settings.mail_domain) for user in found]


def _require_a_service(settings: Settings, secret: str | None) -> None:
    """Rule: the internal routes answer only a caller showing the gateway secret."""
    expected = settings.gateway_secret
    if expected is None or secret is None or not hmac.compare_digest(secret, expected):
        raise Unauthenticated("this route is for the installation's services", code="no_gateway")
