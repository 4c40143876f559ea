"""What each rule of the auth service is given about the request it answers (`Call`): the node's
settings, keys and abuse limits, where the request comes from, and its one way to write."""

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from app.auth.primary import Primary, Relay, WriteRequest
from app.auth.settings import Settings
from app.auth.throttle import Origin, Throttle
from app.auth.tokens import KeyRing

T = TypeVar("T")

# A write whose every refusal by the primary is passed on, in the generic words of its 503s.
ANY_REFUSAL = Relay()


@dataclass(frozen=True)
class Call:
    """One request to this auth node, as its rules see it."""

    settings: Settings
    keys: KeyRing
    throttle: Throttle
    origin: Origin
    primary: Primary
    request: WriteRequest  # the request as received, for a replica to send on to the primary

    def write(
        self,
        on_primary: Callable[..., T],
        /,
        *,
        answer: type[BaseModel] | None = None,
        relay: Relay = ANY_REFUSAL,
        **kwargs: Any,
    ) -> T:
        """`on_primary(conn, self, **kwargs)` on the primary, with its write connection; on a
        replica, this request made by the primary, its answer read as `answer` (Primary.write)."""

        def run(conn: sqlite3.Connection) -> T:
            return on_primary(conn, self, **kwargs)

        return self.primary.write(self.request, run, answer=answer, relay=relay)
