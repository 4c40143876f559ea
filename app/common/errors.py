"""Domain errors carry their HTTP status; one handler turns every error into one body shape:

    {"detail": "<sentence>", "code": "<code>", "errors": [{"field": ..., "message": ...}]}

`errors` appears only on validation failures (422) and names each offending field. `ErrorOut`
documents that shape in the OpenAPI schema: `error_responses(401, 404)` for a route's `responses=`,
and the 422 that FastAPI declares by itself is pointed at it too (see `_document_error_shape`).
"""

import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
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


_ERROR_DESCRIPTIONS = {
    401: "Not signed in, or the credentials are not valid",
    403: "Signed in, but not allowed to do this",
    404: "No such object",
    409: "Conflicts with the current state",
    413: "Request body over the size limit",
    422: "Invalid input; `errors` names each field",
    503: "Temporarily unavailable; retry",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries declaring that a route answers these statuses with ErrorOut."""
    return {s: {"model": ErrorOut, "description": _ERROR_DESCRIPTIONS[s]} for s in statuses}


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

    _document_error_shape(app)


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


def _document_error_shape(app: FastAPI) -> None:
    """Make the 422 that FastAPI declares by itself describe the body we really send (ErrorOut),
    not FastAPI's own HTTPValidationError, which this handler never returns."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        if components.pop("HTTPValidationError", None) is None:
            return schema
        components.pop("ValidationError", None)
        error_out = ErrorOut.model_json_schema(
            by_alias=True, ref_template="#/components/schemas/{model}", mode="serialization"
        )
        for name, definition in {**error_out.pop("$defs", {}), "ErrorOut": error_out}.items():
            components.setdefault(name, definition)
        for operation in (op for path in schema["paths"].values() for op in path.values()):
            declared = operation.get("responses", {}).get("422", {})
            content = declared.get("content", {}).get("application/json", {})
            if content.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                content["schema"] = {"$ref": "#/components/schemas/ErrorOut"}
        app.openapi_schema = schema
        return schema

    # FastAPI's documented way to extend its schema is to replace this method on the instance.
    app.openapi = openapi  # type: ignore[method-assign]
