"""Operations endpoints: /healthz for load balancers, /metrics for Prometheus.

/healthz answers 200 `{"status": "ok", "database": "ok"}` when a read through the store
succeeds within `DB_CHECK_TIMEOUT_S`, and 503 `{"status": "unavailable", "database":
"error"}` otherwise (the cause is logged, not shown). It reads the platform states table, so
a database that answers but was never migrated counts as unavailable too.
/metrics serves the app's own registry (see `sidestep.web.metrics`); it holds request
counts and latencies only, nothing about users or content.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from sidestep.web.deps import get_runtime
from sidestep.web.metrics import HttpMetrics

DB_CHECK_TIMEOUT_S = 3.0
log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    """200 when the database answers, else 503."""
    runtime = get_runtime(request)
    try:
        async with asyncio.timeout(DB_CHECK_TIMEOUT_S):
            ready = await runtime.db.ping()
    except TimeoutError:
        ready = False
    if not ready:
        log.warning("health check: the database does not answer or is not migrated")
        return JSONResponse({"status": "unavailable", "database": "error"}, status_code=503,
                            headers={"Cache-Control": "no-store"})
    return JSONResponse({"status": "ok", "database": "ok"},
                        headers={"Cache-Control": "no-store"})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """The app's Prometheus metrics in the text exposition format."""
    registry: HttpMetrics = request.app.state.metrics
    return registry.exposition()
