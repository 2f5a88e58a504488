"""The sidecar's FastAPI application: REST ``/api/v1``, ``/ws`` and the dashboard.

``create_app()`` is the factory (``uvicorn --factory api.main:create_app`` works); the normal
way to run the sidecar is ``python -m api`` (:mod:`api.server`), which also serves ``/ws`` on
the WebSocket port.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from api.core.browser import SecurityHeadersMiddleware
from api.core.docs import mount_docs
from api.core.errors import install_error_handlers
from api.core.guard import GuardMiddleware
from api.core.openapi_doc import document_guard
from api.core.runtime import Runtime
from api.live.websocket import websocket_endpoint
from api.routes import api_router, metrics
from tradeos_pipelines.core.settings import Settings, get_settings

API_PREFIX = "/api/v1"
DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboard" / "static"


def _lifespan(runtime: Runtime | None):  # noqa: ANN202 - FastAPI's lifespan protocol
    """Start a runtime of our own unless one is shared with us (``api.server``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if runtime is not None:
            app.state.runtime = runtime
            yield
            return
        own = Runtime(app.state.settings)
        await own.start()
        app.state.runtime = own
        try:
            yield
        finally:
            await own.stop()

    return lifespan


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    """The sidecar application; ``runtime`` shares resources between apps of one process."""
    settings = settings or (runtime.settings if runtime else get_settings())
    app = FastAPI(
        title="TradeOS ⇄ 1C Sync sidecar",
        version="1.0",
        description=(
            "Administration of 1C integrations, sync logs, statistics, conflicts and the 1C "
            "webhook. Every route except `GET /api/v1/health` needs `Authorization: Bearer "
            "<token>`. Live events: `ws://HOST:8001/ws?token=…&channels=…`."
        ),
        lifespan=_lifespan(runtime),
        # Served from local files by mount_docs (no CDN, no inline script); no ReDoc.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app)
    # Inside CORS (preflights need no token), outside routing: no body is read before it.
    app.add_middleware(GuardMiddleware)
    if settings.cors_origins:
        # Closed unless TRADEOS_CORS_ORIGINS lists the origins allowed to call the API.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    # Outermost of ours: the guard's refusals carry the headers too.
    app.add_middleware(SecurityHeadersMiddleware, settings=settings)
    app.include_router(api_router, prefix=API_PREFIX)
    app.include_router(metrics.router)  # /metrics: Prometheus' conventional path
    mount_docs(app)
    document_guard(app)
    app.add_api_websocket_route("/ws", websocket_endpoint)
    mount_dashboard(app)
    return app


def mount_dashboard(app: FastAPI) -> None:
    """``/`` redirects to ``/dashboard/``; the page and its assets need no token."""

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/dashboard/")

    if DASHBOARD_DIR.is_dir():
        app.mount("/dashboard", StaticFiles(directory=DASHBOARD_DIR, html=True), name="dashboard")
