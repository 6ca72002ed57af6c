"""Team alerts through a real Apprise `json://` URL, received by a server this test runs."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from sqlalchemy import select

from sidestep.catalogue.loader import Catalogue
from sidestep.clock import FrozenClock
from sidestep.domain.states import PlatformStatus
from sidestep.monitor.alerts import AlertService, attach_alerts, masked, platform_of_url
from sidestep.runtime import Runtime
from sidestep.store.accounts import Accounts
from sidestep.store.alerting import AlertTargets
from sidestep.store.health import Health
from sidestep.store.tables_agents import AlertSent, AlertTarget

DOWN, UP, UNKNOWN = PlatformStatus.DOWN, PlatformStatus.UP, PlatformStatus.UNKNOWN


@dataclass
class Receiver:
    """An HTTP endpoint that records what Apprise posts; answers `status`."""

    url: str = ""
    messages: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.messages.append({**json.loads(body), "path": scope["path"]})
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    sink = Receiver()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(sink, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    async with asyncio.timeout(10):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
    sink.url = f"json://127.0.0.1:{sock.getsockname()[1]}/hook"
    yield sink
    server.should_exit = True
    await task
    sock.close()


@pytest.fixture
async def service(runtime: Runtime, catalogue: Catalogue, receiver: Receiver) -> AlertService:
    async with runtime.db.session() as s:
        ws = await Accounts(s).create_workspace(slug="acme", name="Acme", at=runtime.clock.now())
        targets = AlertTargets(s, workspace_id=ws.id, vault=runtime.vault)
        await targets.add(label="ops-hook", url=receiver.url, platform=platform_of_url(
            receiver.url), at=runtime.clock.now())
        # A channel on Telegram, played by the same local receiver: no test reaches out.
        await targets.add(label="team-telegram", url=receiver.url.replace("/hook", "/tg"),
                          platform="telegram", at=runtime.clock.now())
    return attach_alerts(runtime, catalogue)


async def change(runtime: Runtime, platform: str, status: PlatformStatus, *,
                 features: list[str] | None = None, reason: str = "") -> None:
    async with runtime.db.session() as s:
        assert await Health(s).set_state(platform=platform, status=status,
                                          features=features or [], reason=reason,
                                          at=runtime.clock.now())
    await runtime.db.bus.drain()


async def outcomes(runtime: Runtime) -> list[tuple[str, str, str]]:
    async with runtime.db.session() as s:
        rows = (await s.execute(
            select(AlertTarget.label, AlertSent.state, AlertSent.outcome)
            .join(AlertTarget, AlertTarget.id == AlertSent.target_id).order_by(AlertSent.id)
        )).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_it_alerts_over_channels_the_outage_does_not_touch(
    service: AlertService, runtime: Runtime, receiver: Receiver, clock: FrozenClock,
) -> None:
    await change(runtime, "telegram", DOWN,
                 reason="DNS: SERVFAIL from 3 resolvers and both nameservers")
    assert len(receiver.messages) == 1
    message = receiver.messages[0]
    assert message["title"] == "Telegram is DOWN"
    text = message["message"]
    assert "Telegram (Telegram) is down since 2026-11-23 12:00 UTC" in text
    assert "- DNS: SERVFAIL from 3 resolvers and both nameservers" in text
    assert "no playbook engine yet (issue #10)" in text
    assert "Sent through ops-hook (Webhook), which does not depend on Telegram." in text
    assert "http://127.0.0.1:8000/w/acme/status/telegram" in text
    assert await outcomes(runtime) == [("ops-hook", "down:", "sent"),
                                       ("team-telegram", "down:", "skipped")]


async def test_a_company_wide_outage_skips_its_sister_platforms(service: AlertService) -> None:
    assert service._affects("facebook", "whatsapp")
    assert service._affects("instagram", "instagram")
    assert not service._affects("facebook", "telegram")
    assert not service._affects("webhook", "email")  # "self" is not a company
    assert service._affects("linkedin", "msteams")


async def test_it_sends_each_state_once_and_says_when_it_recovers(
    service: AlertService, runtime: Runtime, receiver: Receiver, clock: FrozenClock,
) -> None:
    await change(runtime, "x", DOWN, reason="5xx everywhere")
    clock.advance(seconds=60)
    await change(runtime, "x", UNKNOWN)  # no alert for unknown
    clock.advance(seconds=60)
    await change(runtime, "x", DOWN, reason="still 5xx")  # the same state: not again
    clock.advance(seconds=600)
    await change(runtime, "x", PlatformStatus.DEGRADED, features=["media"], reason="CDN 503")
    clock.advance(seconds=600)
    await change(runtime, "x", UP)
    titles = [m["title"] for m in receiver.messages if m["path"] == "/hook"]
    assert titles == ["X is DOWN", "X is DEGRADED (media)", "X has recovered"]
    assert "is up again since 2026-11-23 12:22 UTC; it was degraded" in (
        receiver.messages[-1]["message"])
    hook = [(state, outcome) for label, state, outcome in await outcomes(runtime)
            if label == "ops-hook"]
    assert hook == [("down:", "sent"), ("down:", "duplicate"), ("degraded:media", "sent"),
                    ("up:", "sent")]


async def test_it_rate_limits_a_flapping_platform(
    service: AlertService, runtime: Runtime, receiver: Receiver, clock: FrozenClock,
) -> None:
    service.max_per_window = 3
    for _ in range(3):
        await change(runtime, "reddit", DOWN)
        clock.advance(seconds=30)
        await change(runtime, "reddit", UP)
        clock.advance(seconds=30)
    assert len([m for m in receiver.messages if m["path"] == "/hook"]) == 3
    hook = [outcome for label, _, outcome in await outcomes(runtime) if label == "ops-hook"]
    # Rate-limited "up", then "down" again: the team last heard "down", so not again.
    assert hook == ["sent"] * 3 + ["rate_limited", "duplicate", "rate_limited"]
    clock.advance(seconds=3600)
    await change(runtime, "reddit", PlatformStatus.DEGRADED, features=["api"])
    assert len(receiver.messages) == 8  # 3 + 1 to each of the two targets


async def test_an_event_is_sent_once_even_when_heard_twice(
    service: AlertService, runtime: Runtime, receiver: Receiver,
) -> None:
    await change(runtime, "pinterest", DOWN)
    async with runtime.db.session() as s:
        from sidestep.store.events import events_since
        events = await events_since(s, workspace_id=None)
    await service.catch_up(events)  # a second process reading the event table
    assert len(receiver.messages) == 2  # one per target


async def test_a_failed_delivery_is_recorded(
    service: AlertService, runtime: Runtime, receiver: Receiver,
) -> None:
    receiver.status = 500
    await change(runtime, "tiktok", DOWN)
    assert [o for label, _, o in await outcomes(runtime) if label == "ops-hook"] == ["failed"]


async def test_alert_urls_are_encrypted_and_listed_masked(
    service: AlertService, runtime: Runtime, receiver: Receiver,
) -> None:
    async with runtime.db.session() as s:
        rows = (await s.scalars(select(AlertTarget))).all()
    assert all(b"AAFakeBotToken" not in row.url_encrypted for row in rows)
    shown = masked("tgram://123456789:AAFakeBotTokenForTests1234567890abc/-100123")
    assert "AAFakeBotToken" not in shown and shown.startswith("tgram://")
    with pytest.raises(ValueError, match="Apprise does not understand"):
        platform_of_url("nonsense://what")
    assert platform_of_url("mailtos://user:pw@example.org") == "email"
    assert platform_of_url("discord://123/abc") == "discord"
