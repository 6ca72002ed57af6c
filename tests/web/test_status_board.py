"""The live status board's stream and the per-platform history page (over ASGI and uvicorn)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx

from sidestep.clock import FrozenClock
from sidestep.domain.states import PlatformStatus
from sidestep.runtime import Runtime
from sidestep.store.accounts import Accounts
from sidestep.store.health import Health, NewObservation
from sidestep.web.board import uptime
from sidestep.web.deps import SESSION_COOKIE
from tests.conftest import START
from tests.web.conftest import World, sign_in
from tests.web.test_browser import base_url  # noqa: F401 - the app under uvicorn


async def seed_history(runtime: Runtime, clock: FrozenClock) -> None:
    """x: observed since two days ago, down 11:00-11:30 today, up since."""
    now = clock.now()
    async with runtime.db.session() as s:
        health = Health(s)
        await health.add_observations([NewObservation(
            platform="x", signal="http", vantage="local", observed_at=now - timedelta(days=2),
            outcome="ok")])
        await health.set_state(platform="x", status=PlatformStatus.DOWN, features=[],
                               reason="HTTP 503 from web and api", at=now - timedelta(hours=1))
        await health.set_state(platform="x", status=PlatformStatus.UP, features=[], reason="",
                               at=now - timedelta(minutes=30))


async def test_the_history_page_shows_uptime_and_incidents(
    client: httpx.AsyncClient, runtime: Runtime, world: World, clock: FrozenClock,
) -> None:
    await seed_history(runtime, clock)
    await sign_in(client, runtime, world.viewer)
    response = await client.get("/w/acme/status/x")
    assert response.status_code == 200
    html = response.text
    assert "97.92 %" in html  # 30 min down out of 24 h
    assert "98.96 %" in html  # 30 min out of the 48 h the monitor knew x, for 7 d and 30 d
    assert "2026-11-23 11:00 UTC" in html and "30 min" in html
    assert "<h1>X" in html
    assert (await client.get("/w/acme/status/myspace")).status_code == 404
    assert (await client.get("/w/globex/status/x")).status_code == 404  # not a member


def test_uptime_without_observations_is_no_data() -> None:
    result = uptime([], label="24 h", window=timedelta(hours=24), now=START, known_since=None)
    assert result.up_fraction is None


async def test_the_stream_sends_a_snapshot_then_each_change(
    base_url: str, runtime: Runtime, world: World, clock: FrozenClock,  # noqa: F811
) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as c:
        assert (await c.get("/w/acme/status/events")).status_code in (303, 401)  # anonymous
        async with runtime.db.session() as s:
            token, _ = await Accounts(s).start_session(
                user_id=world.viewer.id, at=clock.now(), max_age_s=3600)
        c.headers["Cookie"] = f"{SESSION_COOKIE}={token}"
        events: list[tuple[str, dict[str, object]]] = []
        async with c.stream("GET", "/w/acme/status/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            kind = ""
            lines = response.aiter_lines()
            async with asyncio.timeout(10):
                async for line in lines:
                    if line.startswith("event: "):
                        kind = line.removeprefix("event: ")
                    elif line.startswith("data: "):
                        events.append((kind, json.loads(line.removeprefix("data: "))))
                        if kind == "snapshot":
                            async with runtime.db.session() as s:
                                await Health(s).set_state(
                                    platform="tiktok", status=PlatformStatus.DOWN, features=[],
                                    reason="DNS SERVFAIL <b>", at=clock.now())
                        else:
                            break
    snapshot = events[0][1]
    rows = {row["platform"]: row for row in snapshot["rows"]}  # type: ignore[attr-defined]
    assert rows["instagram"]["status"] == "down"
    assert events[1] == ("state", {
        "platform": "tiktok", "old": "unknown", "status": "down", "features": [],
        "reason": "DNS SERVFAIL <b>", "since": "2026-11-23 12:00 UTC", "ago": "just now",
        "as_of": "2026-11-23 12:00 UTC"})

