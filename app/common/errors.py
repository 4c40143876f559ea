"""Domain errors carry their HTTP status; one handler turns every error into one body shape:

    {"detail": "<sentence>", "code": "<code>", "errors": [{"field": ..., "message": ...}]}

`errors` appears only on validation failures (422) and names each offending field.
"""

import logging
import sqlite3

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class DomainError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
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


def error_body(detail: str, code: str, errors: list[dict] | None = None) -> dict:
    body: dict = {"detail": detail, "code": code}
    if errors is not None:
        body["errors"] = errors
    return body


def _field_name(loc: tuple | list) -> str:
    # ("body", "section_id") -> "section_id"; ("path", "user_id") -> "user_id"; whole body -> "body"
    parts = [str(p) for p in loc if p not in ("body", "path", "query", "header")]
    return ".".join(parts) or str(loc[0] if loc else "body")


def _validation_errors(exc: RequestValidationError) -> list[dict]:
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


def install_error_handlers(app: FastAPI) -> None:
    """Register the one error shape for domain errors, validation errors and anything unforeseen."""

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse(error_body(exc.detail, exc.code), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        fields = ", ".join(sorted({e["field"] for e in errors}))
        return JSONResponse(
            error_body(f"invalid input: {fields}", "validation_error", errors), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(str(exc.detail), code), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(sqlite3.OperationalError)
    async def _db_busy(_: Request, exc: sqlite3.OperationalError) -> JSONResponse:
        # Only reached if the busy timeout ran out: tell the client to retry instead of a bare 500.
        log.error("database unavailable: %s", exc)
        return JSONResponse(
            error_body("database busy, retry shortly", "unavailable"),
            status_code=503,
            headers={"Retry-After": "1"},
        )
