"""Accounts this service has not seen yet, asked of the auth service (service to service, on
loopback, with the gateway secret): an instructor the registrar assigns before they ever made a
request here, with their name (issue 13). A user's own requests keep them current as before
(`service.remember_user`); this fills in the ones who have not made any.

The LiteFS primary is asked first (ENROLL_AUTH_URLS lists it first): an account created a moment
ago is there before any replica has it. If it cannot be reached, the replicas are.
"""

import sqlite3

import httpx

from app.common.db import write_turn
from app.common.identity import GATEWAY_SECRET_HEADER
from app.enrollment import service
from app.enrollment.settings import Settings

TIMEOUT_SECONDS = 2.0


async def fetch_account(settings: Settings, user_id: int) -> dict | None:
    """The account with this id from the auth service, or None if it has none (or none of its
    instances answers)."""
    headers = {GATEWAY_SECRET_HEADER: settings.gateway_secret}
    async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as client:
        for base in settings.auth_urls:
            try:
                reply = await client.get(f"{base}/internal/users/{user_id}", headers=headers)
            except httpx.HTTPError:
                continue  # that instance is down: the next one
            if reply.status_code == 200:
                return reply.json()
            if reply.status_code == 404:
                return None  # the first instance that answers decides (the primary, if up)
    return None


async def make_known(conn: sqlite3.Connection, settings: Settings, user_id: int) -> None:
    """If no user `user_id` is known here, ask the auth service and record its account; if it has
    none either, leave it to the caller's own check (a 404 naming the id)."""
    if not settings.auth_urls or service.user_is_known(conn, user_id):
        return
    account = await fetch_account(settings, user_id)
    if account is not None:
        async with write_turn(conn):  # a route that writes holds it already (reentrant)
            service.remember_account(conn, account)
