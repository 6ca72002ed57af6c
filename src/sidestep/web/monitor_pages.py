"""Routes for the live status board, platform history and the agents' observations.

- `POST /api/v1/agent/observations`: a probe agent's signed batch (`sidestep.monitor.hub`
  checks it; no cookie or API token is involved, so no CSRF either).
- `GET /w/{slug}/status/events`: server-sent events for the status board. The stream opens
  with a `snapshot` of every row (so a change made between the page load and the stream's
  start is not lost), then one `state` event per `platform.state_changed`. Changes committed
  in this process wake the stream at once through the `EventBus`; the event table is also
  polled every `POLL_S`, for changes written by a monitor in another process. A stream ends
  after `STREAM_MAX_S` and the browser's EventSource reconnects (with Last-Event-ID).
- `GET /w/{slug}/status/{platform}`: one platform's uptime over 24 h, 7 d and 30 d, and its
  incidents.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, status
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy import func, select

from sidestep.monitor.alerts import attach_alerts
from sidestep.monitor.hub import BatchRejected, Hub, read_capped
from sidestep.runtime import Runtime
from sidestep.store.events import EventNotice, events_since
from sidestep.store.health import Health
from sidestep.store.history import first_observed, incidents_of
from sidestep.store.tables import Event
from sidestep.web.board import UPTIME_WINDOWS, BoardRow, board_rows, status_counts, uptime
from sidestep.web.deps import AsViewer, get_runtime
from sidestep.web.pages import chrome
from sidestep.web.views import format_ago, format_utc, render

router = APIRouter()
STATE_CHANGED = "platform.state_changed"
POLL_S = 2.0
STREAM_MAX_S = 300.0
INCIDENTS_SHOWN = 100


class StatusFeed:
    """Wakes every open status stream when a platform's state changes in this process."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    def notify(self, notice: EventNotice) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, timeout_s: float) -> bool:
        """True when woken by a change, False after `timeout_s` without one."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._changed.wait()
        except TimeoutError:
            return False
        return True


def install(app: FastAPI) -> None:
    """Add this module's routes to `app`, with the agents' hub and the board's feed."""
    runtime: Runtime = app.state.runtime
    catalogue = app.state.catalogue
    platforms = {str(p.key) for p in catalogue.all()} if catalogue is not None else None
    app.state.agent_hub = Hub(db=runtime.db, vault=runtime.vault, clock=runtime.clock,
                              platforms=platforms)
    app.state.status_feed = StatusFeed()
    app.state.status_stream_max_s = STREAM_MAX_S
    runtime.db.bus.subscribe(STATE_CHANGED, app.state.status_feed.notify)
    # Team alerts follow the same events; `serve` builds this app once per process.
    attach_alerts(runtime, catalogue)
    app.include_router(router)


# Not in the OpenAPI document: agents sign with HMAC, not the API token it describes.
@router.post("/api/v1/agent/observations", include_in_schema=False, status_code=202)
async def agent_observations(request: Request) -> JSONResponse:
    """A probe agent's batch of observations, HMAC-signed (see `sidestep.monitor.signing`)."""
    hub: Hub = request.app.state.agent_hub
    try:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > hub.max_bytes:
            raise BatchRejected(413, f"batch over {hub.max_bytes} bytes; send smaller batches")
        body = await read_capped(request.stream(), max_bytes=hub.max_bytes)
        accepted = await hub.accept(request.headers, body)
    except BatchRejected as rejected:
        return JSONResponse({"detail": rejected.message}, status_code=rejected.status)
    return JSONResponse({"accepted": accepted}, status_code=202)


@router.get("/w/{slug}/status/events", include_in_schema=False)
async def status_events(request: Request, access: AsViewer) -> Response:
    """The board's server-sent events (see the module docstring)."""
    runtime = get_runtime(request)
    return StreamingResponse(
        _stream(request, runtime), media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _stream(request: Request, runtime: Runtime) -> AsyncIterator[str]:
    feed: StatusFeed = request.app.state.status_feed
    loop = asyncio.get_running_loop()
    deadline = loop.time() + float(request.app.state.status_stream_max_s)
    async with runtime.db.session() as session:
        rows = board_rows(request.app.state.catalogue, await Health(session).states())
        last_id = int(await session.scalar(select(func.max(Event.id))) or 0)
    snapshot = {"rows": [_row_json(row, runtime) for row in rows],
                "counts": status_counts(rows), "as_of": format_utc(runtime.clock.now())}
    yield f"retry: 3000\nid: {last_id}\nevent: snapshot\ndata: {json.dumps(snapshot)}\n\n"
    while loop.time() < deadline:
        async with runtime.db.session() as session:
            events = await events_since(session, workspace_id=None, after_id=last_id)
        for event in events:
            last_id = event.id
            if event.type == STATE_CHANGED:
                yield f"id: {event.id}\nevent: state\ndata: {_change_json(event, runtime)}\n\n"
        if not events and not await feed.wait(POLL_S):
            yield ": keep-alive\n\n"


def _row_json(row: BoardRow, runtime: Runtime) -> dict[str, Any]:
    return {"platform": row.key, "name": row.name, "owner": row.owner,
            "status": row.status.value, "features": row.features, "reason": row.reason,
            "since": format_utc(row.since) if row.since else "",
            "ago": format_ago(row.since, now=runtime.clock.now()) if row.since else ""}


def _change_json(event: Event, runtime: Runtime) -> str:
    payload = event.payload
    return json.dumps({
        "platform": str(payload.get("platform", "")), "old": str(payload.get("old", "")),
        "status": str(payload.get("new", "unknown")),
        "features": [str(f) for f in payload.get("features", [])],
        "reason": str(payload.get("reason", ""))[:500],
        "since": format_utc(event.created_at),
        "ago": format_ago(event.created_at, now=runtime.clock.now()),
        "as_of": format_utc(runtime.clock.now()),
    })


@router.get("/w/{slug}/status/{platform}", include_in_schema=False)
async def platform_history(request: Request, access: AsViewer, platform: str) -> Response:
    """One platform: its state now, uptime over 24 h / 7 d / 30 d, and its incidents."""
    runtime = get_runtime(request)
    now = runtime.clock.now()
    rows = board_rows(request.app.state.catalogue, await Health(access.session).states())
    row = next((r for r in rows if r.key == platform), None)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such platform on the board")
    longest = max(window for _, window in UPTIME_WINDOWS)
    incidents = await incidents_of(access.session, platform, since=now - longest,
                                   limit=INCIDENTS_SHOWN)
    starts = [i.started_at for i in incidents]
    observed = await first_observed(access.session, platform)
    known = min([*starts, *([observed] if observed else [])], default=None)
    uptimes = [uptime(incidents, label=label, window=window, now=now, known_since=known)
               for label, window in UPTIME_WINDOWS]
    return render(request, "status_platform.html", {
        **await chrome(access, "status"), "row": row, "uptimes": uptimes,
        "incidents": [{"incident": i, "duration": _duration((i.ended_at or now) - i.started_at),
                       "ongoing": i.ended_at is None} for i in incidents],
        "known_since": known, "now": now,
    })


def _duration(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{minutes // 1440} d {minutes % 1440 // 60} h"
