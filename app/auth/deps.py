"""FastAPI dependencies of the auth service: settings, keys, database connections, the abuse
limits and where a request comes from and, on a replica, the client for the primary.

Each request borrows a pooled connection for its own use: opening one through the LiteFS mount
costs about 15 ms (wall) per request, a pooled one's query 0.4 ms. Reads (login, refresh) use
read-only connections, so they work on a LiteFS replica and can never write; a replica's writes
(register) go to the primary. SQLite sees what replication brought in at each read's start.
"""

import hmac
import sqlite3
from collections.abc import Iterator
from typing import Annotated

import httpx
from fastapi import Depends, Header, Request

from app.auth.primary import REPLICA_HEADER
from app.auth.service import RegistrarCall, registrar_call, replica_reason
from app.auth.settings import Settings
from app.auth.throttle import Origin, Throttle, client_address
from app.auth.tokens import KeyRing


# `async def`: trivial lookups run on the event loop instead of taking a worker thread.
async def app_settings(request: Request) -> Settings:
    return request.app.state.settings


async def key_ring(request: Request) -> KeyRing:
    return request.app.state.keys


async def primary_client(request: Request) -> httpx.Client | None:
    return request.app.state.primary


async def throttle(request: Request) -> Throttle:
    return request.app.state.throttle


AppSettings = Annotated[Settings, Depends(app_settings)]
Keys = Annotated[KeyRing, Depends(key_ring)]
Primary = Annotated[httpx.Client | None, Depends(primary_client)]
Limits = Annotated[Throttle, Depends(throttle)]


# Headers are read from the request here, not declared as parameters: they are no part of the
# API, and the gateway passes neither (it sets X-Forwarded-For itself).
async def request_origin(request: Request, settings: AppSettings) -> Origin:
    peer = request.client.host if request.client is not None else None
    forwarded_for = request.headers.getlist("X-Forwarded-For")
    mark = request.headers.get(REPLICA_HEADER)
    return Origin(
        address=client_address(peer, forwarded_for, settings.trusted_proxies),
        forwarded_by_replica=mark is not None
        and hmac.compare_digest(mark.encode(), request.app.state.replica_secret.encode()),
    )


RequestOrigin = Annotated[Origin, Depends(request_origin)]


def read_db(request: Request) -> Iterator[sqlite3.Connection]:
    """A read-only connection, lent to this request alone."""
    with request.app.state.read_pool.connection() as conn:
        yield conn


def write_db(request: Request, settings: AppSettings) -> Iterator[sqlite3.Connection | None]:
    """A read-write connection on the primary; None on a read replica, which cannot write (its
    writes are relayed to the primary, service.register)."""
    if replica_reason(settings) is not None:
        yield None
        return
    with request.app.state.write_pool.connection() as conn:
        yield conn


ReadDb = Annotated[sqlite3.Connection, Depends(read_db)]
WriteDb = Annotated[sqlite3.Connection | None, Depends(write_db)]
Authorization = Annotated[str | None, Header(description="Bearer <registrar access token>")]


async def registrar(
    settings: AppSettings, keys: Keys, authorization: Authorization = None
) -> RegistrarCall:
    """The registrar making this request (their access token checked here: 401 without a valid
    one, 403 for anyone else's), for the account routes."""
    return registrar_call(settings=settings, keys=keys, authorization=authorization)


Registrar = Annotated[RegistrarCall, Depends(registrar)]
