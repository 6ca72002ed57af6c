"""The FastAPI application: dashboard pages, the JSON API under /api/v1, health and metrics.

`create_app(runtime)` only wires things together. It runs no migrations and opens no
database of its own: the caller builds the `Runtime` and awaits `runtime.start()` first, and
every request uses `runtime.db`, `runtime.vault` and `runtime.clock`.

    runtime = Runtime.from_settings(Settings())
    await runtime.start()
    app = create_app(runtime)
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from sidestep.runtime import Runtime
from sidestep.web import (
    api,
    auth,
    campaign_pages,
    compose,
    connect,
    email_pages,
    monitor_pages,
    ops,
    pages,
    public_media,
    report_pages,
    site,
)
from sidestep.web.board import PlatformCatalogue, load_default_catalogue
from sidestep.web.errors import install_error_handlers
from sidestep.web.headers import SecurityHeadersMiddleware
from sidestep.web.metrics import HttpMetrics, MetricsMiddleware
from sidestep.web.views import STATIC_DIR, make_templates

API_DESCRIPTION = """\
Sidestep keeps a brand's audience reachable when a social platform goes down.

Authenticate with a personal API token: `Authorization: Bearer sst_...`.
Responses never contain channel credentials.
"""


def create_app(runtime: Runtime, *, catalogue: PlatformCatalogue | None = None) -> FastAPI:
    """Return the web app serving `runtime`.

    `catalogue` is the platform catalogue the status board and the platform-states API list;
    by default `sidestep.catalogue.default_catalogue()` when that package exists (without
    it, only platforms the monitor has a state for are listed). Raises whatever loading the
    default catalogue raises: a broken catalogue should stop the server at start.
    """
    app = FastAPI(
        title="Sidestep API",
        version="1",
        description=API_DESCRIPTION,
        openapi_url=f"{api.API_PREFIX}/openapi.json",
        docs_url=None,  # the Swagger and ReDoc pages load scripts from a CDN, which the CSP bars
        redoc_url=None,
    )
    app.state.runtime = runtime
    app.state.catalogue = catalogue if catalogue is not None else load_default_catalogue()
    app.state.templates = make_templates(runtime.clock)
    app.state.metrics = HttpMetrics()

    app.include_router(api.router)
    app.include_router(auth.router)
    app.include_router(pages.router)
    app.include_router(ops.router)
    connect.install(app)  # the OAuth connect routes, and the Connect buttons' choices
    for area in (compose, monitor_pages, email_pages, campaign_pages, site, report_pages,
                 public_media):
        area.install(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    install_error_handlers(app)

    # The last added middleware runs first: metrics wrap everything, headers go on each answer.
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app
