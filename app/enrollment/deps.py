"""Request dependencies: the database and the caller's identity."""

import hmac
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute

from app.common import idempotency
from app.common.db import Database
from app.common.errors import Forbidden, Invalid, Unauthenticated
from app.common.identity import (
    GATEWAY_SECRET_HEADER,
    IDENTITY_HEADERS,
    ROLES,
    ROLES_HEADER,
    USER_ID_HEADER,
    USERNAME_HEADER,
)
from app.enrollment.people import service as people
from app.enrollment.people.models import Identity
from app.enrollment.settings import Settings


async def database(request: Request) -> Database:
    """The service's database (`db.read(...)`, `await db.write(...)`). async: FastAPI would run a
    plain `def` dependency in its thread pool, a hop per request. (A route declared with
    app/enrollment/routing.py's `Routes` is handed it directly, as `Caller`: `_handed` there.)"""
    db: Database = request.app.state.db
    return db


Db = Annotated[Database, Depends(database)]


def _shows_the_secret(request: Request) -> bool:
    """Whether the request carries the installation's gateway secret (X-Gateway-Secret)."""
    secret = request.headers.get(GATEWAY_SECRET_HEADER)
    expected: str = request.app.state.gateway_secret
    return secret is not None and hmac.compare_digest(secret.encode(), expected.encode())


async def identify(request: Request) -> Identity:
    """The identity the gateway vouches for, allowed on this route, and current here. Without
    the gateway's secret, or without the identity headers, the request is not signed in (401); a
    role the route does not allow is 403: the gateway's role check, repeated here so a backend
    never trusts a route's roles to configuration alone."""
    # Read straight from the headers rather than as FastAPI Header parameters: declared header
    # parameters cost a fifth of each request's CPU in FastAPI's dependency solving (py-spy).
    headers = request.headers
    if not _shows_the_secret(request):
        raise Unauthenticated("request did not come through the gateway", code="no_gateway")
    header_user_id = headers.get(USER_ID_HEADER)
    header_username = headers.get(USERNAME_HEADER)
    header_roles = headers.get(ROLES_HEADER)
    if not header_user_id or not header_username or not header_roles:
        raise Unauthenticated(f"missing identity: {', '.join(IDENTITY_HEADERS)} are required")
    if (
        not (header_user_id.isascii() and header_user_id.isdigit())
        or not 0 < int(header_user_id) < 2**63
    ):
        raise Unauthenticated(f"{USER_ID_HEADER} is not a user id")
    role_set = frozenset(r.strip() for r in header_roles.split(",") if r.strip()) & frozenset(ROLES)
    if not role_set:
        raise Unauthenticated(f"{ROLES_HEADER} names no known role")
    allowed = route_roles(request.scope["route"])
    if not role_set & allowed:
        raise Forbidden(f"this needs one of the roles: {', '.join(sorted(allowed))}")
    who = Identity(user_id=int(header_user_id), username=header_username, roles=role_set)
    # The identity rule, for every route, here alone. Looked up on every request, not cached:
    # the users table can change under this process (another instance, a restore from backup),
    # and a stale "known" would refuse the caller.
    db: Database = request.app.state.db
    if not db.read(people.user_is_current, who):
        await db.write_aside(people.remember_user, who)  # rare: a first request, or new roles
    return who


# Where CallerFirst keeps the caller's identity for the route (Starlette's request.state).
CALLER = "caller"


async def caller(request: Request) -> Identity:
    """The caller, as `CallerFirst` identified them."""
    who: Identity = request.scope["state"][CALLER]
    return who


Caller = Annotated[Identity, Depends(caller)]


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class CallerFirst(APIRoute):
    """A route whose caller is identified (`identify`) before FastAPI reads anything else of the
    request: a request the gateway did not vouch for, or whose role the route does not allow, is
    a 401 or 403 whatever its parameters and body, never a 422 that would tell it which are
    wrong. The identity is kept in the request's state, where `Caller` finds it."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def caller_first(request: Request) -> Response:
            who = await identify(request)
            request.scope.setdefault("state", {})[CALLER] = who
            return await self.answer(handler, request, who)

        return caller_first

    async def answer(self, handler: Handler, request: Request, who: Identity) -> Response:
        """The answer to an identified caller's request: the route's own."""
        return await handler(request)


class KeyedWrite(CallerFirst):
    """A write route (POST, PUT, PATCH, DELETE): with an Idempotency-Key, its answer is made once
    per caller and key, recorded in its write's transaction and replayed to every retry
    (app/common/idempotency.py; `Database.write` runs the write under the key). The key is read
    after the caller is identified, so a stranger's bad key is still their 401 or 403 first.
    The caller is the signed-in user: nobody replays another's answer. A retry while the first
    is running waits for the write lock like any writer, then finds its record: the decision is
    that one transaction, so there is no half-run request to report as in progress."""

    async def answer(self, handler: Handler, request: Request, who: Identity) -> Response:
        key = idempotency.key_of(request.headers)
        if key is None:
            return await handler(request)
        settings: Settings = request.app.state.settings
        keyed = idempotency.Keyed(
            caller=f"user:{who.user_id}",
            key=key,
            method=request.method,
            path=request.scope["path"],
            body_digest=idempotency.body_digest(await request.body()),
            ttl_seconds=settings.idempotency_ttl_seconds,
            answer_of=idempotency.answer_maker(self),
        )
        with idempotency.pending(keyed):
            try:
                return await handler(request)  # answered here only if it never wrote
            except idempotency.Ran:
                pass
        if keyed.reused_for is not None:
            raise Invalid(
                f"this Idempotency-Key was given to another request of yours"
                f" ({keyed.reused_for}) in the last {settings.idempotency_ttl_seconds} s:"
                " use a new key for a new request",
                code="idempotency_key_reused",
            )
        return keyed.outcome()


async def installation_service(request: Request) -> None:
    """A request from another service of this installation (the auth service), which shows the
    gateway secret and no user identity; no gateway routes such a request."""
    if not _shows_the_secret(request):
        raise Unauthenticated("this route is for the installation's services", code="no_gateway")


FromService = Depends(installation_service)


async def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


AppSettings = Annotated[Settings, Depends(app_settings)]


def route_roles(route: APIRoute) -> frozenset[str]:
    """The roles a route allows (its `x-roles`, as app/enrollment/routing.py declares them)."""
    roles: frozenset[str] | None = getattr(route, "allowed_roles", None)
    if roles is None:
        assert route.openapi_extra is not None, "every Routes route declares its x-roles"
        roles = frozenset(route.openapi_extra["x-roles"])
        route.allowed_roles = roles  # type: ignore[attr-defined]  # cached on the route object
    return roles
