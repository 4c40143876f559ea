"""The web app's server: the single-page app in share/web, as static files, plus `/config.json`
(where the browser finds the two gateways). It never talks to a backend itself: the pages call
the gateways, which allow this origin by CORS (etc/krakend/templates/service.tmpl).

    uvicorn --factory app.web.main:serve --host 127.0.0.1 --port 5600   (bin/web)
"""

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.common.server import long_lived
from app.web.settings import Settings, get_settings

PAGES = Path(__file__).resolve().parents[2] / "share" / "web"


def create_app(settings: Settings | None = None) -> ASGIApp:
    settings = settings or get_settings()
    config = {"enroll_api": settings.enroll_api, "auth_api": settings.auth_api}

    async def config_json(_request: Request) -> JSONResponse:
        return JSONResponse(config)

    app = Starlette(
        routes=[
            Route("/config.json", config_json),
            Mount("/", StaticFiles(directory=PAGES, html=True)),
        ]
    )
    return SecurityHeaders(app, connect=settings.api_origins)


def serve() -> ASGIApp:
    """The app of the web process, from the environment (bin/web)."""
    return long_lived(create_app())


class SecurityHeaders:
    """Headers a public page should carry: scripts, styles and requests from this origin and the
    gateways only (no inline script, so an injected one does not run), no framing, no sniffing,
    no referrer sent to the gateways, and no stale app after an upgrade (revalidate each time)."""

    def __init__(self, app: ASGIApp, connect: list[str]) -> None:
        self.app = app
        policy = (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src 'self' {' '.join(connect)}; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'self'"
        )
        self.headers = [
            (b"content-security-policy", policy.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"cache-control", b"no-cache"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, with_headers)
