"""Request dependencies: the database connection and the caller's identity."""

import hmac
import sqlite3
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from app.common.db import ConnectionPool, write_in_turn
from app.common.errors import Forbidden, Unauthenticated
from app.common.identity import (
    GATEWAY_SECRET_HEADER,
    IDENTITY_HEADERS,
    ROLES,
    ROLES_HEADER,
    USER_ID_HEADER,
    USERNAME_HEADER,
)
from app.enrollment import service
from app.enrollment.service import Identity
from app.enrollment.settings import Settings

# Where a request's pooled connection is kept while it runs (Starlette's request.state).
LENT_CONNECTION = "db"


def lend(request: Request) -> sqlite3.Connection:
    """A pooled connection lent to this request alone (no per-request connection setup), given
    back by `LendConnections` once the response is sent."""
    state = request.scope["state"]
    conn = state.get(LENT_CONNECTION)
    if conn is None:
        conn = state[LENT_CONNECTION] = request.app.state.pool.take()
    return conn


async def db(request: Request) -> sqlite3.Connection:
    """`lend` as a dependency. A plain function, not a generator: FastAPI's handling of
    generator dependencies cost more CPU than the route itself (py-spy)."""
    return lend(request)


Db = Annotated[sqlite3.Connection, Depends(db)]


class LendConnections:
    """ASGI middleware: gives the connection a request borrowed (`db`) back to the pool once the
    request is done, whatever happened."""

    def __init__(self, app: ASGIApp, pool: ConnectionPool) -> None:
        self.app, self.pool = app, pool

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state = scope.setdefault("state", {})
        try:
            await self.app(scope, receive, send)
        finally:
            conn = state.pop(LENT_CONNECTION, None)
            if conn is not None:
                self.pool.give_back(conn)


def _shows_the_secret(request: Request) -> bool:
    """Whether the request carries the installation's gateway secret (X-Gateway-Secret)."""
    secret = request.headers.get(GATEWAY_SECRET_HEADER)
    expected: str = request.app.state.gateway_secret
    return secret is not None and hmac.compare_digest(secret.encode(), expected.encode())


async def caller(request: Request) -> Identity:
    """The identity the gateway vouches for, allowed on this route. Without the gateway's
    secret, or without the identity headers, the request is not signed in (401); a role the
    route does not allow is 403: the gateway's role check, repeated here so a backend never
    trusts a route's roles to configuration alone."""
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
    # Looked up on every request, not cached: the users table can change under this process
    # (another instance, a restore from backup), and a stale "known" would refuse the caller.
    # A route that writes does it in its own write turn (app.enrollment.routes._with_caller):
    # one turn for a user's first request rather than two, which on registration day, with
    # every student new, would double the queue of writers.
    if takes_write_turn(request.scope["route"]):
        return who
    conn = lend(request)  # the request's own connection, as `Db` gives the route
    if not service.user_is_current(conn, who):
        # Rare: a user's first request, or new roles.
        await write_in_turn(conn, lambda: service.remember_user(conn, who))
    return who


Caller = Annotated[Identity, Depends(caller)]

# Where CallerFirst keeps the caller's identity for the route (Starlette's request.state).
CALLER = "caller"


class CallerFirst(APIRoute):
    """A route whose caller (`caller`) is identified before FastAPI reads anything else of the
    request: a request the gateway did not vouch for, or whose role the route does not allow, is
    a 401 or 403 whatever its parameters and body, never a 422 that would tell it which are
    wrong. The identity is kept in the request's state, where the route's endpoint wrapper
    (app.enrollment.routes.route) gives it to the endpoint with the request's connection,
    instead of as FastAPI dependencies: solving the two for every request cost about a fifth
    of a request's CPU in the service (py-spy under the open-loop rush; bench/request_cost.py)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def caller_first(request: Request) -> Response:
            request.scope["state"][CALLER] = await caller(request)
            return await handler(request)

        return caller_first


async def installation_service(request: Request) -> None:
    """A request from another service of this installation (the auth service), which shows the
    gateway secret and no user identity; no gateway routes such a request."""
    if not _shows_the_secret(request):
        raise Unauthenticated("this route is for the installation's services", code="no_gateway")


FromService = Depends(installation_service)


async def app_settings(request: Request) -> Settings:
    return request.app.state.settings


AppSettings = Annotated[Settings, Depends(app_settings)]


def takes_write_turn(route: APIRoute) -> bool:
    """Whether a route runs with the write turn held (app.enrollment.routes.route)."""
    return getattr(route.endpoint, "takes_write_turn", False)


def route_roles(route: APIRoute) -> frozenset[str]:
    """The roles a route allows (its `x-roles`, as app.enrollment.routes.route declares them)."""
    roles = getattr(route, "allowed_roles", None)
    if roles is None:
        roles = route.allowed_roles = frozenset(route.openapi_extra["x-roles"])  # type: ignore[attr-defined]
    return roles
