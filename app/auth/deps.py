"""FastAPI dependencies of the auth service: settings, keys, database connections and, on a
replica, the client for the primary.

Every request gets its own connection. Reads (login, refresh) open the database read-only, so
they work on a LiteFS replica and can never write; writes (register) are refused up front there.
"""

import sqlite3
from collections.abc import Iterator
from typing import Annotated

import httpx
from fastapi import Depends, Header, Request

from app.auth.service import ensure_primary
from app.auth.settings import Settings
from app.auth.tokens import KeyRing
from app.common.db import connect


# `async def`: trivial lookups run on the event loop instead of taking a worker thread.
async def app_settings(request: Request) -> Settings:
    return request.app.state.settings


async def key_ring(request: Request) -> KeyRing:
    return request.app.state.keys


async def primary_client(request: Request) -> httpx.Client | None:
    return request.app.state.primary


AppSettings = Annotated[Settings, Depends(app_settings)]
Keys = Annotated[KeyRing, Depends(key_ring)]
Primary = Annotated[httpx.Client | None, Depends(primary_client)]


def read_db(settings: AppSettings) -> Iterator[sqlite3.Connection]:
    conn = connect(settings.database, readonly=True)
    try:
        yield conn
    finally:
        conn.close()


def write_db(settings: AppSettings) -> Iterator[sqlite3.Connection]:
    ensure_primary(settings)
    conn = connect(settings.database)
    try:
        yield conn
    finally:
        conn.close()


ReadDb = Annotated[sqlite3.Connection, Depends(read_db)]
WriteDb = Annotated[sqlite3.Connection, Depends(write_db)]
Authorization = Annotated[str | None, Header(description="Bearer <registrar access token>")]
