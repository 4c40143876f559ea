"""Accounts as the auth service has them, asked of it (service to service, on loopback, with the
gateway secret) when the registrar names a user: an instructor assigned before they ever made a
request here, with their name, or given the instructor role a moment ago (issue 13). A user's
own requests keep their record current as before (`service.remember_user`, app/enrollment/deps.py
`identify`).

The LiteFS primary is asked first (ENROLL_AUTH_URLS lists it first): an account created a moment
ago is there before any replica has it. If it cannot be reached, the replicas are.
"""

import asyncio
import time
from typing import Any

import httpx

from app.common.db import Database
from app.common.identity import GATEWAY_SECRET_HEADER
from app.common.observe import ASYNC_PASS_ON_ID, KEEP_ALIVE
from app.enrollment.people import service
from app.enrollment.settings import Settings

# The whole lookup's bound, over every instance asked: a route that writes asks before its write,
# so a hung auth instance must not hold the registrar's request long: on loopback a healthy one
# answers in milliseconds, and past the bound the registrar gets the usual 404 naming the id and
# can try again.
BUDGET_SECONDS = 0.5

# One client per event loop (a process runs one), made at the first lookup: building an httpx
# client loads the TLS trust store, 50-80 ms of CPU on the event loop (every request of the
# instance would wait) even for plain http on loopback.
_clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}


def _shared_client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        for old in [known for known in _clients if known.is_closed()]:
            del _clients[old]  # a finished loop's (tests run one per app)
        client = _clients[loop] = httpx.AsyncClient(
            trust_env=False, event_hooks=ASYNC_PASS_ON_ID, limits=KEEP_ALIVE
        )
    return client


async def close_client() -> None:
    """Close this event loop's client, if one was made (the app's shutdown): its connections
    to the auth service end with the app, not when the garbage collector finds them."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


async def fetch_account(settings: Settings, user_id: int) -> dict[str, Any] | None:
    """The account with this id from the auth service, or None if it has none (or no instance
    answers within BUDGET_SECONDS)."""
    headers = {GATEWAY_SECRET_HEADER: settings.gateway_secret}
    deadline = time.monotonic() + BUDGET_SECONDS
    client = _shared_client()
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
            account: dict[str, Any] = reply.json()  # app/auth's account as JSON
            return account
        if reply.status_code == 404:
            return None  # the first instance that answers decides (the primary, if up)
    return None


async def make_current(db: Database, settings: Settings, user_id: int) -> dict[str, Any] | None:
    """Bring this service's record of user `user_id` up to the auth service's account: for the
    registrar's lookups and assignments, which must see an account the registrar has just
    created, renamed or given the instructor role, before that user's own next request. If the
    auth service has no such account, or cannot be asked, the record stays as it is (the
    caller's own check decides: a 404 naming an unknown id). Returns the account, or None."""
    if not settings.auth_urls:
        return None
    account = await fetch_account(settings, user_id)
    if account is not None and not db.read(service.account_is_recorded, account):
        await db.write_aside(service.remember_account, account)  # not the route's own write
    return account
