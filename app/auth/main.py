"""The auth service's ASGI app.

    AUTH_DATABASE=... AUTH_PRIVATE_JWKS=... uvicorn app.auth.main:app --host 127.0.0.1 --port 5100

`app` is built on first access from the AUTH_* environment (see settings.py), so importing this
module has no side effects. bin/auth-node runs `uvicorn --factory app.auth.main:serve`: the same
app, with the process's long-lived objects frozen for the garbage collector (app/common/server.py).
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache

from fastapi import FastAPI

from app.auth import passwords
from app.auth.primary import Primary
from app.auth.routes import router
from app.auth.settings import Settings, load_settings
from app.auth.throttle import Throttle
from app.auth.tokens import KeyRing
from app.common.db import ConnectionPool
from app.common.errors import install_error_handlers
from app.common.limits import BodySizeLimit
from app.common.observe import FASTAPI_TELEMETRY_OFF
from app.common.observe import install as observe
from app.common.server import long_lived


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the auth app; without `settings`, read them from the environment (or exit)."""
    settings = settings if settings is not None else load_settings()
    keys = KeyRing.from_file(settings.private_jwks)
    throttle = Throttle.open(settings)
    # The auth nodes of this host share the throttle's directory (outside LiteFS): the limit on
    # concurrent password hashes is counted there, for all of them at once.
    passwords.hash_slots.share_with(settings.throttle_path.parent)
    primary = Primary(settings, keys)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with primary.reachable():  # a replica's client for the primary, while the app runs
            yield

    app = FastAPI(
        title="Registrar auth service",
        version="1.0",
        lifespan=lifespan,
        telemetry=FASTAPI_TELEMETRY_OFF,
    )
    app.state.settings = settings
    app.state.keys = keys
    app.state.primary = primary  # whether this node is the primary, and how to reach it
    app.state.throttle = throttle
    app.state.read_pool = ConnectionPool(settings.database, readonly=True)
    install_error_handlers(app)
    app.include_router(router)
    app.add_middleware(BodySizeLimit)
    observe(app)  # request ids, JSON log lines of refusals, /metrics
    return app


def serve() -> FastAPI:
    """The app of one auth node process, from the environment (bin/auth-node)."""
    return long_lived(create_app())


@cache
def _app_from_environment() -> FastAPI:
    return create_app()


def __getattr__(name: str) -> FastAPI:
    # `uvicorn app.auth.main:app` looks the attribute up; build the app only then.
    if name == "app":
        return _app_from_environment()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
