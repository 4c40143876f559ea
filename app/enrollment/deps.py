"""Request dependencies: the database connection and the caller's identity."""

import hmac
import sqlite3
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import Depends, Request

from app.common.db import ConnectionPool, write_turn
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


async def db(request: Request) -> AsyncIterator[sqlite3.Connection]:
    """A pooled connection lent to this request alone (no per-request connection setup)."""
    pool: ConnectionPool = request.app.state.pool
    with pool.connection() as conn:
        yield conn


Db = Annotated[sqlite3.Connection, Depends(db)]


async def write_db(conn: Db) -> AsyncIterator[sqlite3.Connection]:
    """The connection of a route that writes, with the write turn held while the route runs:
    the wait for it never blocks the event loop, and it is given up as soon as the route
    returns, before the response is sent (scope "function")."""
    async with write_turn(conn):
        yield conn


# The one way a route writes: its service call then runs its BEGIN IMMEDIATE transactions in turn.
WriteDb = Annotated[sqlite3.Connection, Depends(write_db, scope="function")]


async def caller(request: Request, conn: Db) -> Identity:
    """The identity the gateway vouches for. Without the gateway's secret, or without the
    identity headers, the request is not signed in (401)."""
    # Read straight from the headers rather than as FastAPI Header parameters: declared header
    # parameters cost a fifth of each request's CPU in FastAPI's dependency solving (py-spy).
    headers = request.headers
    secret = headers.get(GATEWAY_SECRET_HEADER)
    header_user_id = headers.get(USER_ID_HEADER)
    header_username = headers.get(USERNAME_HEADER)
    header_roles = headers.get(ROLES_HEADER)
    expected: str = request.app.state.gateway_secret
    if secret is None or not hmac.compare_digest(secret.encode(), expected.encode()):
        raise Unauthenticated("request did not come through the gateway", code="no_gateway")
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
    who = Identity(user_id=int(header_user_id), username=header_username, roles=role_set)
    if not service.user_is_current(conn, who):
        async with write_turn(conn):  # rare: a user's first request, or new roles
            service.remember_user(conn, who)
    return who


Caller = Annotated[Identity, Depends(caller)]


def allow(*roles: str) -> Callable[[Identity], Identity]:
    """The gateway's role check, repeated here so a backend never trusts a route's roles to
    configuration alone."""
    allowed = frozenset(roles)

    async def check(who: Caller) -> Identity:
        if not who.roles & allowed:
            raise Forbidden(f"this needs one of the roles: {', '.join(sorted(allowed))}")
        return who

    return check
