"""What operators see of a service process: a request id on every request, JSON log lines that
carry it, and Prometheus metrics at GET /metrics.

- Request id: the gateway's `X-Request-Id` (KrakenD's martian `header.Id` sets a UUID on every
  backend request), or a new one when a request came without one (a test, a service's own call).
  It is echoed in the answer's `X-Request-Id`, put in every error body (`request_id`, so a
  student can quote it) and in every log line written while the request runs.
- Logs: JSON lines on stderr (etc/logging.json configures uvicorn's loggers the same way). A
  refused or failed request is logged with its route, status and code; a successful one is
  counted in the metrics instead, so a rush does not write a line per request.
- Metrics: prometheus-client's default registry, exposed by prometheus-client itself at
  /metrics. The services listen on 127.0.0.1 only and no gateway routes /metrics.
"""

import logging
import re
import time
import uuid
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import httpx
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST, Histogram, generate_latest
from pythonjsonlogger.json import JsonFormatter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:  # only its types: a process that calls no other service never imports httpx
    import httpx

REQUEST_ID_HEADER = "X-Request-Id"
# FastAPI(telemetry=...) for every service: FastAPI's own OpenTelemetry off. The metrics are
# prometheus-client's (here), and with it on, the check for a configured OpenTelemetry provider
# ran on every request (2% of an enrollment request's CPU).
FASTAPI_TELEMETRY_OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
# What the request's error answer said (its `code`), for its log line: a dict per request, since
# an exception handler may run in a copy of the request's context.
_answer: ContextVar[dict[str, str] | None] = ContextVar("answer", default=None)

log = logging.getLogger("app.requests")

HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Requests answered by this process, by route template, method and status.",
    ["route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


WRITER_LOCK_WAIT = Histogram(
    "writer_lock_wait_seconds",
    "How long a write waited for its turn (the writer queue all processes share) before its"
    " BEGIN IMMEDIATE.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class RequestIdFilter(logging.Filter):
    """Put the current request's id on every log record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class Formatter(JsonFormatter):
    """One JSON object per line: time, level, logger, message, request_id and any extras."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s")
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level"})
        super().__init__(*args, **kwargs)


class Observed:
    """ASGI middleware: the request id, the request's duration in the metrics, and a log line
    for every answer of 400 or more (with the API's error code when there is one)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = _header(scope, b"x-request-id")
        rid = given if given and _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        answer: dict[str, str] = {}
        answer_token = _answer.set(answer)
        started = time.perf_counter()
        status = 500  # unless an answer starts

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            seconds = time.perf_counter() - started
            HTTP_REQUEST_DURATION.labels(route, scope["method"], str(status)).observe(seconds)
            if status >= 400:
                level = logging.ERROR if status >= 500 else logging.INFO
                log.log(
                    level,
                    "request refused" if status < 500 else "request failed",
                    extra={
                        "request_id": rid,
                        "method": scope["method"],
                        "route": route,
                        "path": scope["path"],
                        "status": status,
                        "code": answer.get("code"),
                        "ms": round(seconds * 1000, 1),
                    },
                )
            request_id.reset(token)
            _answer.reset(answer_token)


def note_error(code: str) -> str | None:
    """Record the current request's error code for its log line; its request id, if any."""
    answer = _answer.get()
    if answer is not None:
        answer["code"] = code
    return request_id.get()


def _header(scope: Scope, name: bytes) -> str | None:
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


async def metrics(_request: Request) -> Response:
    """GET /metrics: this process's metrics, in Prometheus's text format (prometheus-client)."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def install(app: Starlette) -> None:
    """Serve GET /metrics (outside the OpenAPI schema, so no gateway route is made for it) and
    wrap the whole app in `Observed`; call after every other middleware is added."""
    app.add_route("/metrics", metrics, include_in_schema=False)
    app.add_middleware(Observed)


def _with_request_id(request: "httpx.Request") -> None:
    rid = request_id.get()
    if rid is not None:
        request.headers[REQUEST_ID_HEADER] = rid


async def _with_request_id_async(request: "httpx.Request") -> None:
    _with_request_id(request)


# httpx clients that call another service pass the current request's id on, so one id follows a
# request across processes: httpx.Client(event_hooks=PASS_ON_ID), or ASYNC_PASS_ON_ID.
PASS_ON_ID = {"request": [_with_request_id]}
ASYNC_PASS_ON_ID = {"request": [_with_request_id_async]}
# And they drop a kept-alive connection after 4 idle seconds, before uvicorn closes it (after 5):
# one kept as long could carry a request just as the server closed it, and a write so lost can
# never be sent again (the gateways' idle_connection_timeout is 4 s for the same reason).
KEEP_ALIVE = httpx.Limits(keepalive_expiry=4.0)
