"""HTTP routes of the auth service. Routes that touch the database or a password are plain `def`:
FastAPI runs them in its thread pool, so hashing (tens of milliseconds of CPU) never blocks the
event loop and the other requests on it. The JWKS route does neither and stays on the loop."""

from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from app.auth import accounts, service
from app.auth.codes import CODES
from app.auth.deps import AppSettings, Authorization, Keys, ReadDb, Registrar, ThisCall
from app.auth.models import (
    AccountAction,
    AccountAuditEntry,
    AccountChange,
    AccountOut,
    LoginIn,
    LogoutIn,
    PasswordIn,
    RefreshIn,
    RegisterIn,
    TokenOut,
    UserOut,
)
from app.common import idempotency
from app.common.errors import DATABASE_REFUSALS, refusal_responses
from app.common.identity import GATEWAY_SECRET_HEADER, REGISTRAR, Role
from app.common.models import Id
from app.common.params import DEFAULT_PAGE, After, PageLimit, PathId

router = APIRouter()

Refusals = Mapping[int, Iterable[str]]

# What a write can answer besides its rules' refusals: made on the primary (app/auth/primary.py),
# it is 503 on a replica that cannot have the primary make it, and the database's 503s there. A
# replica passes on the primary's refusals as they are: the primary's answer to the same route,
# whose codes are the route's own.
WRITE: Refusals = {
    503: ["read_replica", "primary_unavailable", *DATABASE_REFUSALS],
    # Idempotency-Key (app/common/idempotency.py): kept on the primary with the answer
    409: ["request_in_progress"],
    422: ["idempotency_key_reused"],
}
# Every write declares the Idempotency-Key header (this service reads it in `this_call`).
KEYED: dict[str, Any] = {"parameters": [idempotency.OPENAPI_PARAMETER]}
# A sign-in takes the header too, so a client may send one with every POST, but changes nothing
# to make exactly once: a users database a replica cannot write, no session row until the first
# refresh. Its retry signs in again (new tokens; the lost answer's are of use to nobody), and no
# answer holding tokens is kept anywhere for it.
SIGN_IN_KEY: dict[str, Any] = {
    "parameters": [
        {
            **idempotency.OPENAPI_PARAMETER,
            "description": "Taken, and checked (1-255 printable ASCII characters), as on every"
            " write; a sign-in changes nothing, so its retry simply signs in again.",
        }
    ]
}
# A registrar's request, their token and stored account checked (app/auth/accounts.py).
REGISTRARS: Refusals = {
    401: ["invalid_token", "session_ended"],
    403: ["registrar_required", "account_disabled"],
}


def refuses(*refusals: Refusals) -> dict[int | str, dict[str, Any]]:
    """`responses=` for the error codes a route can answer, by status (app/auth/codes.py)."""
    return refusal_responses(CODES, *refusals)


@router.post(
    "/register",
    status_code=201,
    responses=refuses(
        REGISTRARS,  # for a registrar's token, which makes any roles
        {409: ["username_taken"], 429: ["registration_rate_limited"]},
        WRITE,
    ),
    openapi_extra=KEYED,
)
def register(body: RegisterIn, call: ThisCall, authorization: Authorization = None) -> UserOut:
    """Create an account: a student, or any roles when a registrar's token is presented."""
    return service.register(call, new=body, authorization=authorization)


@router.post(
    "/login",
    responses=refuses(
        {
            401: ["invalid_credentials"],
            403: ["account_disabled"],
            429: ["too_many_attempts"],
            503: DATABASE_REFUSALS,  # the abuse counts' database
        }
    ),
    openapi_extra=SIGN_IN_KEY,
)
def login(body: LoginIn, db: ReadDb, call: ThisCall) -> TokenOut:
    """Trade a username and password for an access token and a refresh token."""
    return service.login(db, call, username=body.username, password=body.password)


@router.post(
    "/refresh",
    responses=refuses(
        {401: ["invalid_token", "session_ended", "refresh_token_reused", "account_disabled"]},
        WRITE,
    ),
    openapi_extra=KEYED,
)
def refresh(body: RefreshIn, call: ThisCall) -> TokenOut:
    """Trade a refresh token for a new access token and the next refresh token. A refresh token
    is good for one use: presenting one again ends its session (401 `refresh_token_reused`)."""
    return service.refresh(call, refresh_token=body.refresh_token)


@router.post(
    "/logout",
    status_code=204,
    responses=refuses({401: ["invalid_token"]}, WRITE),
    openapi_extra=KEYED,
)
def logout(body: LogoutIn, call: ThisCall) -> Response:
    """Sign out: end the session of this refresh token, so that none of its refresh tokens works
    again. The session's access token lasts until it expires (at most 20 minutes)."""
    service.logout(call, refresh_token=body.refresh_token)
    return Response(status_code=204)


@router.get("/.well-known/jwks.json")
async def jwks(keys: Keys, response: Response) -> dict[str, Any]:
    """The public signing keys, for anyone verifying this service's tokens."""
    response.headers["Cache-Control"] = "public, max-age=300"
    return keys.public_jwks


# The registrar's accounts. Every route needs a registrar's access token (the gateway checks it,
# and so does the service). A list is paged: `limit` rows at a time, in id order. `x-roles` names
# the roles the gateway admits (tests/test_gateway_routes.py holds the gateway to it).
# Paging (`limit`, `after`) and ids are the enrollment service's too (app/common/params.py).
REGISTRAR_ONLY: dict[str, Any] = {"x-roles": [REGISTRAR]}
REGISTRARS_WRITE: dict[str, Any] = {**REGISTRAR_ONLY, **KEYED}


@router.get("/accounts", responses=refuses(REGISTRARS), openapi_extra=REGISTRAR_ONLY)
def list_accounts(
    db: ReadDb,
    by: Registrar,
    settings: AppSettings,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=254,  # an email address, pasted whole
            description="Only accounts whose username, first, last or full name, or email"
            " address contains this (any case)",
        ),
    ] = None,
    role: Annotated[Role | None, Query(description="Only accounts holding this role")] = None,
    disabled: Annotated[
        bool | None, Query(description="Only disabled (true) or only active (false) accounts")
    ] = None,
    after: After = None,
    limit: PageLimit = DEFAULT_PAGE,
) -> list[AccountOut]:
    """Find accounts (registrar only), a page at a time."""
    return accounts.list_accounts(
        db,
        by=by,
        text=q,
        role=role,
        disabled=disabled,
        after=after,
        limit=limit,
        mail_domain=settings.mail_domain,
    )


@router.get(
    "/accounts/{user_id}",
    responses=refuses(REGISTRARS, {404: ["not_found"]}),
    openapi_extra=REGISTRAR_ONLY,
)
def get_account(user_id: PathId, db: ReadDb, by: Registrar, settings: AppSettings) -> AccountOut:
    """One account (registrar only)."""
    return accounts.get_account(db, by=by, user_id=user_id, mail_domain=settings.mail_domain)


@router.get("/audit", responses=refuses(REGISTRARS), openapi_extra=REGISTRAR_ONLY)
def account_audit(
    db: ReadDb,
    by: Registrar,
    actor_id: Annotated[Id | None, Query(description="Only changes by this registrar")] = None,
    user_id: Annotated[Id | None, Query(description="Only changes to this account")] = None,
    action: Annotated[AccountAction | None, Query(description="Only this kind of change")] = None,
    after: After = None,
    limit: PageLimit = DEFAULT_PAGE,
) -> list[AccountAuditEntry]:
    """Registrars' changes to accounts (made, roles, names, disabled, enabled, password set),
    newest first, a page at a time: the same filters and paging as the enrollment `/audit`."""
    return accounts.account_audit(
        db, by=by, actor_id=actor_id, user_id=user_id, action=action, after=after, limit=limit
    )


@router.patch(
    "/accounts/{user_id}",
    responses=refuses(
        REGISTRARS, {404: ["not_found"], 409: ["own_account", "last_registrar"]}, WRITE
    ),
    openapi_extra=REGISTRARS_WRITE,
)
def change_account(
    user_id: PathId, body: AccountChange, call: ThisCall, by: Registrar
) -> AccountOut:
    """Change an account's roles, names or email address (null: back to the default), disable
    it or re-enable it (registrar only; not
    one's own roles or disabled state, 409; never the last active registrar, 409). A role change
    or a disable ends the account's sessions (refresh fails; sign in again); its access token
    lasts until it expires (AUTH_ACCESS_TTL_SECONDS, 20 minutes), except at these account
    routes, which refuse it at once."""
    return accounts.change_account(call, by=by, user_id=user_id, change=body)


@router.put(
    "/accounts/{user_id}/password",
    status_code=204,
    responses=refuses(
        REGISTRARS, {404: ["not_found"], 409: ["own_account"], 422: ["weak_password"]}, WRITE
    ),
    openapi_extra=REGISTRARS_WRITE,
)
def set_password(user_id: PathId, body: PasswordIn, call: ThisCall, by: Registrar) -> Response:
    """Set a new password (registrar only; not one's own, 409). The account's sessions end:
    refresh tokens issued before are refused."""
    accounts.set_password(call, by=by, user_id=user_id, password=body.password)
    return Response(status_code=204)


# At most this many ids in one GET /internal/users (the notifier's batch is 50 by default).
MAX_IDS_PER_LOOKUP = 200


@router.get("/internal/users", include_in_schema=False)
def accounts_for_service(
    request: Request,
    db: ReadDb,
    settings: AppSettings,
    ids: Annotated[list[Id], Query(min_length=1, max_length=MAX_IDS_PER_LOOKUP)],
) -> list[UserOut]:
    """The accounts of these ids that exist (`?ids=3&ids=9`), for the installation's services
    (gateway secret; not routed by any gateway): the notifier's addresses for a batch of mail."""
    return service.accounts_for_service(
        db, settings=settings, secret=request.headers.get(GATEWAY_SECRET_HEADER), user_ids=ids
    )


@router.get("/internal/users/{user_id}", include_in_schema=False)
def account_for_service(
    user_id: PathId,
    request: Request,
    db: ReadDb,
    settings: AppSettings,
) -> UserOut:
    """One account, for the enrollment service (gateway secret; not routed by any gateway)."""
    return service.account_for_service(
        db, settings=settings, secret=request.headers.get(GATEWAY_SECRET_HEADER), user_id=user_id
    )
