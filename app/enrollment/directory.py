"""Accounts this service has not seen yet, asked of the auth service (service to service, on
loopback, with the gateway secret): an instructor the registrar assigns before they ever made a
request here, with their name (issue 13). A user's own requests keep them current as before
(`service.remember_user`); this fills in the ones who have not made any.

The LiteFS primary is asked first (ENROLL_AUTH_URLS lists it first): an account created a moment
ago is there before any replica has it. If it cannot be reached, the replicas are.
"""

import sqlite3
import time

import httpx

from app.common.db import write_turn
from app.common.identity import GATEWAY_SECRET_HEADER
from app.enrollment import service
from app.enrollment.settings import Settings

# The whole lookup's bound, over every instance asked. A route that writes asks with the write
# turn held (every instance's writers wait meanwhile), so a hung auth instance must not hold it
# long: on loopback a healthy one answers in milliseconds, and past the bound the registrar gets
# the usual 404 naming the id and can try again.
BUDGET_SECONDS = 0.5


async def fetch_account(settings: Settings, user_id: int) -> dict | None:
    """The account with this id from the auth service, or None if it has none (or no instance
    answers within BUDGET_SECONDS)."""
    headers = {GATEWAY_SECRET_HEADER: settings.gateway_secret}
    deadline = time.monotonic() + BUDGET_SECONDS
    async with httpx.AsyncClient() as client:
        for base in settings.auth_urls:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                reply = await client.get(
                    f"{base}/internal/users/{user_id}", headers=headers, timeout=left
                )
            except httpx.HTTPError:
                continue  # that instance is down or slow: the next one, while time is left
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
