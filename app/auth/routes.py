"""HTTP routes of the auth service. Routes that touch the database or a password are plain `def`:
FastAPI runs them in its thread pool, so hashing (tens of milliseconds of CPU) never blocks the
event loop and the other requests on it. The JWKS route does neither and stays on the loop."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from app.auth import service
from app.auth.deps import (
    AppSettings,
    Authorization,
    Keys,
    Limits,
    Primary,
    ReadDb,
    RequestOrigin,
    WriteDb,
)
from app.auth.models import AccessTokenOut, LoginIn, RefreshIn, RegisterIn, TokenOut, UserOut
from app.common.errors import ErrorOut, error_responses
from app.common.identity import GATEWAY_SECRET_HEADER

router = APIRouter()

TOO_MANY: dict[int | str, dict[str, Any]] = {
    429: {
        "model": ErrorOut,
        "description": "Over an abuse limit (app/auth/throttle.py); retry after Retry-After",
        "headers": {
            "Retry-After": {
                "description": "seconds until an attempt counts again",
                "schema": {"type": "integer"},
            }
        },
    }
}


@router.post(
    "/register",
    status_code=201,
    responses=error_responses(401, 403, 409, 413, 503) | TOO_MANY,
)
def register(
    body: RegisterIn,
    db: WriteDb,
    settings: AppSettings,
    keys: Keys,
    primary: Primary,
    throttle: Limits,
    origin: RequestOrigin,
    authorization: Authorization = None,
) -> UserOut:
    """Create an account: a student, or any roles when a registrar's token is presented."""
    return service.register(
        db,
        settings=settings,
        keys=keys,
        primary=primary,
        throttle=throttle,
        origin=origin,
        new=body,
        authorization=authorization,
    )


@router.post("/login", responses=error_responses(401, 413) | TOO_MANY)
def login(
    body: LoginIn,
    db: ReadDb,
    settings: AppSettings,
    keys: Keys,
    primary: Primary,
    throttle: Limits,
    origin: RequestOrigin,
) -> TokenOut:
    """Trade a username and password for an access token and a refresh token."""
    return service.login(
        db,
        settings=settings,
        keys=keys,
        primary=primary,
        throttle=throttle,
        origin=origin,
        username=body.username,
        password=body.password,
    )


@router.post("/refresh", responses=error_responses(401, 413))
def refresh(
    body: RefreshIn, db: ReadDb, settings: AppSettings, keys: Keys, primary: Primary
) -> AccessTokenOut:
    """Trade a refresh token for a new access token."""
    return service.refresh(
        db, settings=settings, keys=keys, primary=primary, refresh_token=body.refresh_token
    )


@router.get("/.well-known/jwks.json")
async def jwks(keys: Keys, response: Response) -> dict:
    """The public signing keys, for anyone verifying this service's tokens."""
    response.headers["Cache-Control"] = "public, max-age=300"
    return keys.public_jwks


@router.get("/internal/users/{user_id}", include_in_schema=False)
def account_for_service(
    user_id: Annotated[int, Path(gt=0, le=2**63 - 1)],
    request: Request,
    db: ReadDb,
    settings: AppSettings,
) -> UserOut:
    """One account, for the enrollment service (gateway secret; not routed by any gateway)."""
    return service.account_for_service(
        db, settings=settings, secret=request.headers.get(GATEWAY_SECRET_HEADER), user_id=user_id
    )
