"""A replica's line to the auth service on the LiteFS primary.

Writes: a LiteFS replica cannot write, so a registration that reaches a replica is relayed to the
primary (`relay`), and the primary's answer is passed on. The auth gateway sends registrations to
the replicas for that reason: when the primary is down, they still answer, with a clear 503,
where a gateway sending to the dead primary itself could only give a bare 500.

Reads: replication takes a few milliseconds, but a login may reach a replica before the row of a
user who has just registered. So a replica that must refuse a login (or a refresh) asks the
primary once and passes on the primary's tokens; the primary holds every committed user.

Such a login or registration is one attempt, and the replica that the client asked has already
counted it against the abuse limits (app/auth/throttle.py). So the replica marks what it forwards
with REPLICA_HEADER, holding a secret derived from the signing key that every auth node, and
nothing else, reads; the primary leaves what is so marked uncounted. A client cannot forge the
mark without that key (and whoever holds it can sign tokens anyway); the gateway passes no such
header in any case. A mark that does not match (a node still on an older key) only makes the
primary count the attempt too.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from app.auth.settings import Settings
from app.auth.tokens import KeyRing
from app.common.observe import PASS_ON_ID

log = logging.getLogger(__name__)

Answer = TypeVar("Answer", bound=BaseModel)

# The primary answers a login in one password hash (tens of milliseconds; 0.2 s for a seed user).
# Five seconds covers a queue of hashes there; a primary that is down is refused at once.
PRIMARY_TIMEOUT = httpx.Timeout(5.0, connect=1.0)

REPLICA_HEADER = "X-Auth-Replica"


def replica_secret(keys: KeyRing) -> str:
    """The value of REPLICA_HEADER: the same on every node that holds the signing key."""
    return keys.derive_secret("auth: a request a replica forwards to its primary")


@contextmanager
def primary_client(settings: Settings, keys: KeyRing) -> Iterator[httpx.Client | None]:
    """An HTTP client for the primary's auth service, or None on a node without AUTH_PRIMARY_URL.
    Every request it sends carries the replica's mark."""
    if settings.primary_url is None:
        yield None
        return
    with httpx.Client(
        base_url=str(settings.primary_url),
        timeout=PRIMARY_TIMEOUT,
        headers={REPLICA_HEADER: replica_secret(keys)},
        event_hooks=PASS_ON_ID,
    ) as client:
        yield client


def relay(
    primary: httpx.Client, path: str, body: dict, headers: dict[str, str], method: str = "POST"
) -> httpx.Response | None:
    """Send `body` to the primary (POST unless told) and return its answer, whatever the status;
    None when the primary cannot be reached or does not answer in time (logged)."""
    try:
        return primary.request(method, path, json=body, headers=headers)
    except httpx.HTTPError as exc:
        log.warning("could not reach the primary for %s: %s", path, exc)
        return None


def ask_primary(
    primary: httpx.Client, path: str, body: dict, answer: type[Answer]
) -> Answer | None:
    """POST `body` to the primary; its 200 answer as `answer`, or None if it refused too (or could
    not be asked, which is logged: the caller then gives its own refusal)."""
    try:
        reply = primary.post(path, json=body)
    except httpx.HTTPError as exc:
        log.warning("could not ask the primary about %s: %s", path, exc)
        return None
    if reply.status_code != 200:
        if reply.status_code != 401:
            log.warning("the primary answered %s with %s", path, reply.status_code)
        return None
    try:
        return answer.model_validate(reply.json())
    except (ValueError, ValidationError) as exc:
        log.warning("the primary's answer to %s is not a %s: %s", path, answer.__name__, exc)
        return None
