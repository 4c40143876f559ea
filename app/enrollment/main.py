"""The enrollment service's ASGI app: `uvicorn --factory app.enrollment.main:serve`
(bin/enrollment), or `create_app(settings)` in tests."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from app.common.db import Database
from app.common.errors import install_error_handlers
from app.common.limits import BodySizeLimit
from app.common.observe import FASTAPI_TELEMETRY_OFF
from app.common.observe import install as observe
from app.common.server import long_lived
from app.enrollment.notifications import service as notify
from app.enrollment.offers import sweeper
from app.enrollment.people import directory
from app.enrollment.relay import (
    PrimaryPosition,
    ReplicaPositions,
    ReplicaRelay,
    position_file,
)
from app.enrollment.routes import internal, router
from app.enrollment.routing import body_limits
from app.enrollment.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; settings come from ENROLL_* environment variables unless given."""
    settings = settings or get_settings()
    # The three instances queue their writers on one lock file beside the database.
    db = Database(
        settings.database,
        writer_lock_file=settings.writer_lock,
        on_connect=None if settings.notifications else notify.without_outbox,
        relays_writes=settings.replica,
        one_transaction_a_turn=settings.one_transaction_a_turn,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Seat offers' deadlines are kept by the instances that write (a replica's would only
        # find what the primary's have done already).
        every = settings.offer_sweep_seconds
        async with nullcontext() if settings.replica else sweeper.running(db, every):
            yield
        await directory.close_client()

    app = FastAPI(
        title="Enrollment service",
        version="1.0.0",
        lifespan=lifespan,
        telemetry=FASTAPI_TELEMETRY_OFF,
    )
    app.state.settings = settings
    app.state.gateway_secret = settings.gateway_secret
    app.state.db = db
    install_error_handlers(app)
    # The routes go on the app's own router rather than through include_router: FastAPI matches
    # an included router through an extra layer on every request, 5-18% of a request's CPU in
    # the service (measured in process, interleaved, per kind of request). They go first, in the
    # order of app/enrollment/routes.py (registration day's first), ahead of FastAPI's own
    # (/openapi.json, /docs): Starlette tries routes in order.
    app.router.routes[:0] = [*router.routes, *internal.routes]

    # On more than one host (bin/multihost), inside the body limits: a replica's instance has
    # the primary's make its writes; the primary's tells it the position they reached.
    if settings.replica:
        app.add_middleware(
            ReplicaRelay,
            primary_urls=settings.primary_urls,
            database=settings.database,
            acked_position_file=settings.acked_position_file,
        )
    elif position_file(settings.database).exists():
        replicas = None
        if settings.ack == "replica":  # acknowledged means kept (docs/multihost.md)
            replicas = ReplicaPositions(settings.ack_replicas, database=settings.database.name)
        app.add_middleware(
            PrimaryPosition,
            database=settings.database,
            replicas=replicas,
            ack_seconds=settings.ack_seconds,
        )
    app.add_middleware(BodySizeLimits, wider=body_limits(router.routes))
    observe(app)  # request ids, JSON log lines of refusals, /metrics

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok", "instance": settings.instance}

    return app


def serve() -> FastAPI:
    """The app of one instance process, from the environment (bin/enrollment)."""
    return long_lived(create_app())


class BodySizeLimits:
    """`BodySizeLimit` (app/common/limits.py) with the larger limit a route declares for its
    method and path (`max_body_bytes`, app/enrollment/routing.py), and the common one for every
    other request."""

    def __init__(self, app: ASGIApp, wider: dict[tuple[str, str], int]) -> None:
        self.common = BodySizeLimit(app)
        self.wider = {key: BodySizeLimit(app, max_bytes=limit) for key, limit in wider.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.common
        if scope["type"] == "http":
            limit = self.wider.get((scope["method"], scope["path"]), self.common)
        await limit(scope, receive, send)
