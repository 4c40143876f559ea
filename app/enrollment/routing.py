"""How a room declares its routes: `route = Routes()` in its `routes.py`, then
`@route("GET", "/courses", ANY_ROLE, ...)` over each endpoint. Each route declares the roles the
gateway lets through (`x-roles` in the OpenAPI schema, checked again by `CallerFirst` before
anything else of the request is read), the error codes its rules can answer (`refuses=`, by
status, from app/enrollment/codes.py) and, for the catalog listings, how long the gateway may
reuse an answer (`x-cache-seconds`); tests/test_gateway_routes.py holds the gateway config to
them, tests/test_error_codes.py the codes to what the code can raise."""

import functools
import inspect
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from app.common import idempotency
from app.common.errors import DATABASE_REFUSALS, refusal_responses
from app.common.identity import INSTRUCTOR, REGISTRAR, ROLES
from app.enrollment.codes import CODES
from app.enrollment.deps import Caller, CallerFirst, Db, KeyedWrite, caller, database

ANY_ROLE = ROLES
STAFF = (INSTRUCTOR, REGISTRAR)
SELF = ROLES  # object rule: that user, or the registrar

Endpoint = TypeVar("Endpoint", bound=Callable[..., Coroutine[Any, Any, Any]])

# What every route can answer before its own rules run (`identify`, app/enrollment/deps.py): 401
# without the gateway's secret or a usable identity, 409 when the caller's username is another
# user id's here, and, as it records a caller it does not know yet, the database's 503s. (The
# error handlers add 500, and 422 and 413 where a route takes input and a body.)
EVERY_ROUTE = {
    401: ("no_gateway", "unauthenticated"),
    409: ("identity_conflict",),
    503: DATABASE_REFUSALS,
}
ROLE_CHECKED = {403: ("forbidden",)}  # `identify`, on a route whose roles leave one out
# What a write route answers besides: the Idempotency-Key given to another request of the
# caller's (`KeyedWrite`; a malformed key is the handlers' 422 `validation_error`).
KEYED = {422: ("idempotency_key_reused",)}
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Routes:
    """The routes of one room, in the order declared (the order the app tries them)."""

    def __init__(self) -> None:
        self._router = APIRouter(route_class=CallerFirst)

    @property
    def routes(self) -> list[BaseRoute]:
        return self._router.routes

    def __call__(
        self,
        method: str,
        path: str,
        roles: tuple[str, ...],
        *,
        refuses: Mapping[int, Iterable[str]] | None = None,
        cache_seconds: int = 0,
        max_body_bytes: int | None = None,
        **kwargs: Any,
    ) -> Callable[[Endpoint], Endpoint]:
        """Declare a route with the roles allowed to call it and the error codes its rules can
        answer, by status (`refuses`; those of every route are added, EVERY_ROUTE). Every
        route is a coroutine, run on the event loop without a thread hop: it reads with
        `db.read(...)` and writes with `await db.write(...)` (app/common/db.py `Database`), its
        `db: Db` and `who: Caller` handed to it from the request (`_handed`). A GET whose answer
        is the same for every caller may give `cache_seconds`: its successful answers say
        `Cache-Control: max-age=<seconds>`, which the enroll gateway's cache honours
        (etc/enroll/settings/endpoints.json marks the same routes). A route whose body may be
        larger than the common limit gives `max_body_bytes` (`x-max-body-bytes` in its OpenAPI
        schema: the gateway's limit, and app/enrollment/main.py's)."""
        role_checked = ROLE_CHECKED if roles != ANY_ROLE else {}
        keyed = KEYED if method in WRITES else {}
        responses = refusal_responses(CODES, EVERY_ROUTE, role_checked, keyed, refuses or {})
        extra: dict[str, Any] = {"x-roles": list(roles), **kwargs.pop("openapi_extra", {})}
        if method in WRITES:
            extra["parameters"] = [*extra.get("parameters", []), idempotency.OPENAPI_PARAMETER]
        dependencies = list(kwargs.pop("dependencies", []))
        if cache_seconds:
            assert method == "GET", "only a read can be answered from a cache"
            extra["x-cache-seconds"] = cache_seconds
            dependencies.append(Depends(_cacheable_for(cache_seconds)))
        if max_body_bytes is not None:
            assert method != "GET" and "{" not in path, "a body limit is for a write's fixed path"
            extra["x-max-body-bytes"] = max_body_bytes

        def decorator(endpoint: Endpoint) -> Endpoint:
            assert inspect.iscoroutinefunction(endpoint), f"{endpoint.__name__} runs on the loop"
            self._router.add_api_route(
                path,
                _handed(endpoint),
                methods=[method],
                # A write's answer is made once per Idempotency-Key (KeyedWrite).
                route_class_override=KeyedWrite if method in WRITES else None,
                openapi_extra=extra,
                responses=responses,
                dependencies=dependencies,
                **kwargs,
            )
            return endpoint

        return decorator


# Kept, by measure (issue 25): a route's `Db` and `Caller` are handed to it from the request here,
# and FastAPI is shown the endpoint without them (its `__signature__`) instead of solving them as
# dependencies. Both only read what the request holds already, yet FastAPI's solving of the two
# cost 45 µs of CPU a request in process (GET /users/{id}/sections, bench/request_cost.py's app:
# 260 against 215 µs) and 7.5% of the instances' CPU per rush operation through the gateway
# (python -m bench.ab, paired, 5 rounds, without this against with it: 658 against 609 µs, less
# in 4 rounds of 5; closed rush 1,760 against 1,860 ops/s). They stay FastAPI dependencies
# (`Annotated[..., Depends(...)]`, as the service-to-service route takes them), and each is given
# the value its dependency would give.
_HANDED: dict[Any, Callable[[Request], Coroutine[Any, Any, Any]]] = {Db: database, Caller: caller}
_REQUEST = "request_"  # the name under which the endpoint, as FastAPI sees it, takes the request


def _handed(endpoint: Endpoint) -> Callable[..., Coroutine[Any, Any, Any]]:
    """`endpoint` as FastAPI calls it: its `Db` and `Caller` parameters given from the request."""
    signature = inspect.signature(endpoint)
    handed = {
        n: _HANDED[p.annotation] for n, p in signature.parameters.items() if p.annotation in _HANDED
    }
    assert _REQUEST not in signature.parameters
    kept = [p for name, p in signature.parameters.items() if name not in handed]
    kept.append(inspect.Parameter(_REQUEST, inspect.Parameter.KEYWORD_ONLY, annotation=Request))

    @functools.wraps(endpoint)
    async def with_handed(**params: Any) -> Any:
        request = params.pop(_REQUEST)
        for name, give in handed.items():
            params[name] = await give(request)
        return await endpoint(**params)

    # What FastAPI reads (inspect.signature honours it); typeshed declares no __signature__.
    with_handed.__signature__ = signature.replace(parameters=kept)  # type: ignore[attr-defined]
    return with_handed


def body_limits(routes: list[BaseRoute]) -> dict[tuple[str, str], int]:
    """The body limits routes declare above the common one, by (method, path)."""
    return {
        (method, route.path): route.openapi_extra["x-max-body-bytes"]
        for route in routes
        if isinstance(route, APIRoute)
        and route.openapi_extra
        and "x-max-body-bytes" in route.openapi_extra
        for method in route.methods or ()  # an APIRoute always has its methods
    }


def _cacheable_for(seconds: int) -> Callable[[Response], Coroutine[Any, Any, None]]:
    """A dependency marking a route's successful answer as reusable for `seconds` (an error
    answer is built by the error handler, without this header, so it is never cached)."""
    value = f"max-age={seconds}"

    # async: FastAPI would run a plain `def` dependency in its thread pool, a hop per request.
    async def cacheable(response: Response) -> None:
        response.headers["Cache-Control"] = value

    return cacheable
