"""Domain errors carry their HTTP status; one handler turns every error into one body shape:

    {"detail": "<sentence>", "code": "<code>", "errors": [{"field": ..., "message": ...}]}

`errors` appears only on validation failures (422) and names each offending field.

Every `code` a service answers with is in its catalog, by status, with a one-line meaning:
`COMMON_CODES` here for what both services answer, and each service's `codes.py` for its own
rules. A route declares the codes it can answer (`refusal_responses`, checked against the catalog
when the route is declared); its OpenAPI schema lists them per status, with their meanings and as
an `enum` of ErrorOut's `code`, and adds what every route of these handlers can answer
(`_document_refusals`). tests/test_error_codes.py holds each route's declaration to the codes its
code can raise, and README.md's table of codes to the catalogs (`python -m app.error_table`).
"""

import logging
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.utils import get_flat_params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.common.observe import note_error

log = logging.getLogger(__name__)


class DomainError(Exception):
    """A refusal a client should see: its status, a sentence, a stable code, and any headers
    that go with it (Retry-After, say)."""

    status = 400
    code = "bad_request"

    def __init__(
        self, detail: str, *, code: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers
        if code is not None:
            self.code = code


class Unauthenticated(DomainError):
    status = 401
    code = "unauthenticated"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class Invalid(DomainError):
    status = 422
    code = "validation_error"


class TooManyRequests(DomainError):
    status = 429
    code = "too_many_requests"


class Unavailable(DomainError):
    status = 503
    code = "unavailable"


class Relayed(DomainError):
    """Another node's error answer, passed on as it was (status, detail and code)."""

    def __init__(self, detail: str, *, code: str, status: int) -> None:
        super().__init__(detail, code=code)
        self.status = status


class MadeAnswer(Exception):
    """Not an error: the request's answer, made already (a keyed write's recorded answer,
    app/common/idempotency.py `Answered`), which the handler sends as it is."""

    def response(self) -> Response:
        raise NotImplementedError


class FieldError(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    field: str = Field(description="the offending field, e.g. `section_id`, or `body`")
    in_: str = Field(alias="in", description="where it was: body, path, query or header")
    message: str


class ErrorOut(BaseModel):
    """The one error body of both services."""

    detail: str = Field(description="one sentence for a person")
    code: str = Field(description="a stable code for a program, e.g. `not_found`, `waitlist_full`")
    errors: list[FieldError] | None = Field(None, description="on 422 only: each offending field")
    request_id: str | None = Field(
        None, description="this request's id (X-Request-Id), in the services' logs too: quote it"
    )


# (status, code): what it means, in a line. A code may stand at more than one status.
Catalog = Mapping[tuple[int, str], str]

# The codes of both services: their handlers' (below), app/common/limits.py's, and the gateway
# secret's check.
COMMON_CODES: Catalog = {
    (400, "http_error"): "the request could not be read (any path)",
    (401, "no_gateway"): "the request did not come through this installation's gateway (no"
    " gateway secret, or a wrong one)",
    (404, "not_found"): "no such object: an id in the path or the body names none (any path: no"
    " such route)",
    (405, "method_not_allowed"): "the path has no route for this method (any path)",
    (413, "body_too_large"): "the request body is over the route's size limit: nothing was read",
    (422, "validation_error"): "invalid input: `errors` names each offending field",
    (422, "idempotency_key_reused"): "the Idempotency-Key was given to another request of this"
    " caller (another method, path or body) within 24 hours: nothing was done; a new request"
    " needs a new key",
    (500, "internal_error"): "a fault of the service, logged with the request id",
    (503, "unavailable"): "the database stayed busy past its timeout: nothing was changed; retry"
    " (Retry-After)",
    (503, "storage_full"): "the database's disk is full: nothing was written; retry later",
    (503, "storage_read_only"): "the database cannot be written now: nothing was written; retry"
    " later",
}

# The codes any request may be answered with, whatever its route (unknown paths, methods, bodies
# that cannot be read): no route declares them.
ANY_PATH = frozenset({(400, "http_error"), (404, "not_found"), (405, "method_not_allowed")})

_ERROR_DESCRIPTIONS = {
    400: "The request could not be read",
    401: "Not signed in, or the credentials are not valid",
    403: "Signed in, but not allowed to do this",
    404: "No such object",
    409: "Conflicts with the current state",
    413: "Request body over the size limit",
    422: "Invalid input",
    429: "Over an abuse limit; retry after Retry-After",
    500: "A fault of the service",
    503: "Temporarily unavailable; retry",
}

_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds until an attempt counts again",
        "schema": {"type": "integer"},
    }
}


def refusal_responses(
    catalog: Catalog, *refuses: Mapping[int, Iterable[str]]
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the codes a route can answer, by status (several
    mappings are merged): an unknown code, or one at a status the catalog does not give it, is
    an error here, where the route is declared."""
    by_status: dict[int, set[str]] = {}
    for part in refuses:
        for status, codes in part.items():
            by_status.setdefault(status, set()).update(codes)
    unknown = sorted(
        (s, c) for s, codes in by_status.items() for c in codes if (s, c) not in catalog
    )
    if unknown:
        raise ValueError(f"error codes in no catalog (app/common/errors.py, codes.py): {unknown}")
    return {
        status: error_response(status, {code: catalog[status, code] for code in codes})
        for status, codes in sorted(by_status.items())
    }


def error_response(status: int, meanings: Mapping[str, str]) -> dict[str, Any]:
    """The OpenAPI response of an error status answered with these codes (code: meaning): its
    body is ErrorOut with `code` one of them; `x-codes` holds them for a program."""
    codes = sorted(meanings)
    listed = "\n".join(f"- `{code}`: {meanings[code]}" for code in codes)
    response: dict[str, Any] = {
        "description": f"{_ERROR_DESCRIPTIONS[status]}. `code` is one of:\n{listed}",
        "content": {
            "application/json": {
                "schema": {
                    "allOf": [
                        {"$ref": "#/components/schemas/ErrorOut"},
                        {"properties": {"code": {"enum": codes}}},
                    ]
                }
            }
        },
        "x-codes": {code: meanings[code] for code in codes},
    }
    if status == 429:
        response["headers"] = _RETRY_AFTER
    return response


def error_body(
    detail: str, code: str, errors: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"detail": detail, "code": code}
    if errors is not None:
        body["errors"] = errors
    rid = note_error(code)
    if rid is not None:
        body["request_id"] = rid
    return body


def _field_name(loc: Sequence[int | str]) -> str:
    # ("body", "section_id") -> "section_id"; ("path", "user_id") -> "user_id"; whole body -> "body"
    parts = [str(p) for p in loc if p not in ("body", "path", "query", "header")]
    return ".".join(parts) or str(loc[0] if loc else "body")


def _validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors():
        loc = err.get("loc", ())
        if err.get("type") == "json_invalid":
            where = f" at character {loc[1]}" if len(loc) > 1 else ""
            reason = (err.get("ctx") or {}).get("error", "not valid JSON")
            out.append(
                {"field": "body", "in": "body", "message": f"malformed JSON{where}: {reason}"}
            )
            continue
        out.append(
            {"field": _field_name(loc), "in": str(loc[0]) if loc else "body", "message": err["msg"]}
        )
    return out


# Storage that refuses a write: 503 with a code, since nothing was written (the transaction rolled
# back) and the operator can fix it; the client may retry later.
STORAGE_REFUSALS = {
    sqlite3.SQLITE_FULL: (
        "the database's disk is full: nothing was written; try again later",
        "storage_full",
    ),
    sqlite3.SQLITE_READONLY: (
        "the database cannot be written right now: nothing was written; try again later",
        "storage_read_only",
    ),
}


# The 503s a write can meet in the database (busy past its timeout, or refusing the write), which
# every route that writes declares.
DATABASE_REFUSALS = ("unavailable", *(code for _, code in STORAGE_REFUSALS.values()))


def database_busy(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite refused for load (the database or a table is locked), which a retry cures,
    as opposed to a fault such as a missing table."""
    primary_code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return primary_code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def install_error_handlers(app: FastAPI) -> None:
    """Register the one error shape for domain errors, validation errors and anything unforeseen,
    and declare it in the OpenAPI schema."""

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.detail, exc.code), status_code=exc.status, headers=exc.headers
        )

    @app.exception_handler(MadeAnswer)
    async def _made(_: Request, made: MadeAnswer) -> Response:
        return made.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        fields = ", ".join(sorted({e["field"] for e in errors}))
        return JSONResponse(
            error_body(f"invalid input: {fields}", "validation_error", errors), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        reason = _unparsable_body(exc)
        if reason is not None:
            message = f"malformed JSON: {reason}"
            errors = [{"field": "body", "in": "body", "message": message}]
            return JSONResponse(
                error_body("invalid input: body", "validation_error", errors), status_code=422
            )
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(str(exc.detail), code), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(sqlite3.OperationalError)
    async def _db_error(request: Request, exc: sqlite3.OperationalError) -> JSONResponse:
        if database_busy(exc):
            # Only reached if the busy timeout ran out: tell the client to retry.
            log.error("database busy past the busy timeout: %s", exc)
            return JSONResponse(
                error_body("database busy, retry shortly", "unavailable"),
                status_code=503,
                headers={"Retry-After": "1"},
            )
        refusal = STORAGE_REFUSALS.get(getattr(exc, "sqlite_errorcode", 0) & 0xFF)
        if refusal is not None:
            log.error("database storage refused a write: %s", exc)
            return JSONResponse(
                error_body(*refusal), status_code=503, headers={"Retry-After": "30"}
            )
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug (a SQL typo, `no such table`): the one error shape, and the traceback in the log.
        log.error("unexpected error in %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse(error_body("internal error", "internal_error"), status_code=500)

    _document_refusals(app)


def _unparsable_body(exc: StarletteHTTPException) -> str | None:
    """Why a JSON body could not be parsed, when FastAPI gave up on it with a bare 400.

    FastAPI turns a JSON syntax error into a 422, but anything else `json.loads` raises into
    `400 There was an error parsing the body`, with the cause chained: bytes that are not UTF-8,
    nesting deeper than Python's recursion limit, an integer of more than 4300 digits. Those are
    invalid bodies like any other, so they get the same 422 naming the body.
    """
    cause = exc.__cause__
    if exc.status_code != 400 or not isinstance(cause, ValueError | RecursionError):
        return None
    if isinstance(cause, UnicodeDecodeError):
        return "not UTF-8 text"
    if isinstance(cause, RecursionError):
        return "nested too deeply"
    if "digits" in str(cause):
        return "a number with too many digits"
    return "cannot be parsed"


def _document_refusals(app: FastAPI) -> None:
    """Complete each route's error responses in the OpenAPI schema with what these handlers
    answer on every route that can meet them: 500 `internal_error` on all; 422
    `validation_error` where FastAPI validates input (path, query, header or body); 413
    `body_too_large` on a write's body (app/common/limits.py). FastAPI's own 422 schema,
    HTTPValidationError, goes: these handlers never answer it."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        error_out = ErrorOut.model_json_schema(
            by_alias=True, ref_template="#/components/schemas/{model}", mode="serialization"
        )
        for name, definition in {**error_out.pop("$defs", {}), "ErrorOut": error_out}.items():
            components.setdefault(name, definition)
        for route in iter_route_contexts(app.routes):  # an included router's too
            if isinstance(route.original_route, APIRoute) and route.include_in_schema:
                for method in route.methods or ():  # an APIRoute always has its methods
                    operation = schema["paths"][route.path_format][method.lower()]
                    _add_every_routes_refusals(operation["responses"], route, method)
        app.openapi_schema = schema
        return schema

    # FastAPI's documented way to extend its schema is to replace this method on the instance.
    app.openapi = openapi  # type: ignore[method-assign]


def _add_every_routes_refusals(responses: dict[str, Any], route: RouteContext, method: str) -> None:
    """Add to an operation's `responses` the codes the handlers answer on this route."""
    codes = {int(s): dict(r["x-codes"]) for s, r in responses.items() if "x-codes" in r}
    common = [(500, "internal_error")]
    # Input FastAPI validates, or a header the route declares in its schema (Idempotency-Key).
    declared = getattr(route.original_route, "openapi_extra", None) or {}
    if (
        get_flat_params(route.dependant)
        or route.body_field is not None
        or declared.get("parameters")
    ):
        common.append((422, "validation_error"))
    if method in ("POST", "PUT", "PATCH"):
        common.append((413, "body_too_large"))
    for status, code in common:
        codes.setdefault(status, {})[code] = COMMON_CODES[status, code]
    responses.pop("422", None)  # FastAPI's own, if it made one: replaced by ours, or none
    for status, meanings in sorted(codes.items()):
        responses.pop(str(status), None)
        responses[str(status)] = error_response(status, meanings)
