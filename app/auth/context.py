"""What each rule of the auth service is given about the request it answers (`Call`): the node's
settings, keys and abuse limits, where the request comes from, and its one way to write."""

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from app.auth.primary import Primary, Relay, WriteRequest
from app.auth.settings import Settings
from app.auth.throttle import Origin, Throttle
from app.auth.tokens import KeyRing
from app.common import idempotency
from app.common.errors import DomainError

if TYPE_CHECKING:  # accounts imports this module
    from app.auth.accounts import RegistrarCall

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
    # How the route makes its answer from what its write returns (for a keyed write, which
    # records it: app/common/idempotency.py); None on a route that does not write.
    answer_of: Callable[[Any], idempotency.Answer] | None = None

    def write(
        self,
        on_primary: Callable[..., T | DomainError],
        /,
        *,
        answer: type[BaseModel] | None = None,
        relay: Relay = ANY_REFUSAL,
        before: Callable[..., dict[str, Any]] | None = None,
        by: "RegistrarCall | None" = None,
        **kwargs: Any,
    ) -> T:
        """`on_primary(tx, self, **kwargs)` on the primary, in one transaction on its write
        connection, after `before(conn, self, **kwargs)` outside it, whose result (a dict) is
        given to `on_primary` as more keyword arguments; on a replica, this request made by the
        primary, its answer read as `answer` (Primary.write). `by`, the registrar making the
        change, is given to both too.

        With an Idempotency-Key the write is answered once per key: a registrar's keys are
        theirs (`user:<id>`); a request without a signed-in caller (a registration, a refresh, a
        sign-out) is its own caller, by an HMAC of its body, and its recorded answer is sealed
        with that body, which holds the password or refresh token: only whoever sends the very
        same request can have the answer, tokens included, and the database alone opens none."""
        if by is not None:
            kwargs["by"] = by

        def prepare(conn: sqlite3.Connection) -> dict[str, Any]:
            return before(conn, self, **kwargs) if before is not None else {}

        def run(tx: sqlite3.Connection, prepared: dict[str, Any]) -> T | DomainError:
            return on_primary(tx, self, **kwargs, **prepared)

        return self.primary.write(
            self.request, run, answer=answer, relay=relay, before=prepare, keyed=self._keyed(by)
        )

    def _keyed(self, by: "RegistrarCall | None") -> idempotency.Keyed | None:
        """This request's Idempotency-Key as its write needs it, or None without one."""
        request = self.request
        if request.idempotency_key is None or self.answer_of is None:
            return None
        secret = self.primary.idempotency_secret
        own_request = by is None
        return idempotency.Keyed(
            caller=f"user:{by.user_id}"
            if by is not None
            else idempotency.request_caller(
                request.method, request.path, request.body, secret=secret
            ),
            key=request.idempotency_key,
            method=request.method,
            path=request.path,
            body_digest=idempotency.body_digest(request.body, secret=secret),
            ttl_seconds=self.settings.idempotency_ttl_seconds,
            answer_of=self.answer_of,
            seal_material=idempotency.canonical(request.body) if own_request else None,
            salt=secret,
        )
