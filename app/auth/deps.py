"""FastAPI dependencies of the auth service: settings, keys, a read connection, the registrar
making a request, and the `Call` a rule is given (the node, where the request comes from, and
the request as a replica would send it on to the primary).

Each request borrows a pooled connection for its own use: opening one through the LiteFS mount
costs about 15 ms (wall) per request, a pooled one's query 0.4 ms. Reads (login, the account
lists) use read-only connections, so they work on a LiteFS replica and can never write; writes go
through `Call.write`, which takes the primary's write connection or sends the request on to the
primary (app/auth/primary.py). SQLite sees what replication brought in at each read's start.
"""

import hmac
import sqlite3
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request

from app.auth.accounts import RegistrarCall, registrar_call
from app.auth.context import Call
from app.auth.primary import REPLICA_HEADER, WriteRequest
from app.auth.settings import Settings
from app.auth.throttle import Origin, client_address
from app.auth.tokens import KeyRing
from app.common import idempotency


# `async def`: trivial lookups run on the event loop instead of taking a worker thread.
async def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def key_ring(request: Request) -> KeyRing:
    keys: KeyRing = request.app.state.keys
    return keys


AppSettings = Annotated[Settings, Depends(app_settings)]
Keys = Annotated[KeyRing, Depends(key_ring)]


# Headers are read from the request here, not declared as parameters: they are no part of the
# API, and the gateway passes neither (it sets X-Forwarded-For itself).
async def request_origin(request: Request, settings: AppSettings) -> Origin:
    peer = request.client.host if request.client is not None else None
    forwarded_for = request.headers.getlist("X-Forwarded-For")
    mark = request.headers.get(REPLICA_HEADER)
    return Origin(
        address=client_address(peer, forwarded_for, settings.trusted_proxies),
        forwarded_by_replica=mark is not None
        and hmac.compare_digest(mark.encode(), request.app.state.primary.mark.encode()),
    )


RequestOrigin = Annotated[Origin, Depends(request_origin)]


def read_db(request: Request) -> Iterator[sqlite3.Connection]:
    """A read-only connection, lent to this request alone."""
    with request.app.state.read_pool.connection() as conn:
        yield conn


ReadDb = Annotated[sqlite3.Connection, Depends(read_db)]
Authorization = Annotated[str | None, Header(description="Bearer <registrar access token>")]


async def registrar(
    settings: AppSettings, keys: Keys, authorization: Authorization = None
) -> RegistrarCall:
    """The registrar making this request (their access token checked here: 401 without a valid
    one, 403 for anyone else's), for the account routes."""
    return registrar_call(settings=settings, keys=keys, authorization=authorization)


Registrar = Annotated[RegistrarCall, Depends(registrar)]


async def this_call(
    request: Request, settings: AppSettings, keys: Keys, origin: RequestOrigin
) -> Call:
    """The request as the rules see it; its body (FastAPI has read it for the route) kept for a
    replica to send on to the primary as it came, with its Idempotency-Key (422 if malformed;
    app/common/idempotency.py), and how the route makes its answer, for a keyed write to
    record."""
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return Call(
        settings=settings,
        keys=keys,
        throttle=request.app.state.throttle,
        origin=origin,
        primary=request.app.state.primary,
        request=WriteRequest(
            method=request.method,
            path=path,
            body=await request.body(),
            authorization=request.headers.get("Authorization"),
            idempotency_key=idempotency.key_of(request.headers),
        ),
        answer_of=idempotency.answer_maker(request.scope["route"]),
    )


ThisCall = Annotated[Call, Depends(this_call)]
