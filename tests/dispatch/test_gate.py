"""Quotas, circuit breakers and pauses against the simulator, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from sidestep.catalogue import default_catalogue
from sidestep.clock import FrozenClock
from sidestep.dispatch.pause import pause, resume
from sidestep.dispatch.quotas import QuotaBook, Window
from sidestep.store.db import Database
from sidestep.store.tables_dispatch import ChannelBreaker
from tests.dispatch.harness import harness, host


def test_the_catalogue_quotas_become_windows_per_channel_or_per_app() -> None:
    book = QuotaBook.from_catalogue(default_catalogue())
    assert book.windows("instagram") == (Window(50, 86_400, "channel"),)
    assert book.windows("tiktok") == (Window(6, 60, "channel"),)
    assert book.windows("youtube") == (Window(100, 86_400, "app"),)
    assert set(book.windows("bluesky")) == {Window(11_666, 86_400, "channel"),
                                            Window(1_666, 3_600, "channel")}
    assert Window(10_000, 86_400, "app") in book.windows("x")
    assert Window(100, 86_400, "app").key("youtube", 7) == "youtube:app:86400"


async def test_a_delivery_over_quota_waits_for_a_token_and_is_never_failed(
        db: Database, clock: FrozenClock) -> None:
    async with harness(db, clock, "telegram") as h:  # Telegram: 20 a minute per chat
        ids = [(await h.post("telegram", body=f"post {n}"))[0] for n in range(23)]
        assert await h.run(batch=50) == 20
        waiting = [await h.delivery(i) for i in ids[20:]]
        assert {d.state for d in waiting} == {"retry_wait"}
        assert {d.next_attempt_at for d in waiting} == {clock.now() + timedelta(seconds=60)}
        postponed = await h.events("delivery.retry_wait")
        assert len(postponed) == 3 and all("quota" in e.payload["reason"] for e in postponed)
        clock.advance(seconds=30)
        assert await h.run(batch=50, worker="w2") == 0  # no token yet
        clock.advance(seconds=30)
        assert await h.run(batch=50, worker="w2") == 3
        assert h.recorded("telegram") == 23
        assert {(await h.delivery(i)).attempt_count for i in ids} == {1}


async def test_the_breaker_opens_probes_and_closes_when_the_platform_answers(
        db: Database, clock: FrozenClock) -> None:
    async with harness(db, clock, "telegram") as h:  # no monitor state: the breaker decides
        await h.sim.set_fault("telegram", "refused")
        ids = [(await h.post("telegram", body=f"post {n}"))[0] for n in range(3)]
        assert await h.run() == 3  # three outage-class failures in a row open it
        states = sorted([await h.state(i) for i in ids])  # sent at once, so in any order
        assert states == ["held", "retry_wait", "retry_wait"]
        [opened] = await h.events("breaker.")
        assert opened.type == "breaker.open"
        asked = h.requests[host("telegram")]
        [late] = await h.post("telegram", body="due while open")
        clock.advance(seconds=100)  # the retries of the first two are due too
        assert await h.run() == 0 and h.requests[host("telegram")] == asked
        assert await h.state(late) == "held"
        clock.advance(seconds=20)  # cool-down over: exactly one probe, which fails
        assert await h.run() == 1 and h.requests[host("telegram")] == asked + 1
        assert [e.type for e in await h.events("breaker.")] == [
            "breaker.open", "breaker.half_open", "breaker.open"]
        await h.sim.clear_faults()
        clock.advance(seconds=120)
        assert await h.run() == 1  # the probe succeeds and closes the breaker
        async with db.session() as s:
            breaker = await s.scalar(select(ChannelBreaker))
            assert breaker is not None and breaker.state == "closed" and breaker.failures == 0
        for _ in range(3):
            clock.advance(seconds=60)
            await h.run()
        assert {(await h.delivery(i)).state for i in [*ids, late]} == {"sent"}
        assert h.recorded("telegram") == 4


async def test_paused_deliveries_are_never_claimed_and_go_out_after_resume(
        db: Database, clock: FrozenClock) -> None:
    async with harness(db, clock, "telegram", "mastodon") as h:
        [tg] = await h.post("telegram")
        [md] = await h.post("mastodon")
        async with db.session() as s:
            assert await pause(s, workspace_id=h.workspace_id, by="ops", at=clock.now())
            assert not await pause(s, workspace_id=h.workspace_id, at=clock.now())
            assert await pause(s, workspace_id=h.workspace_id, channel_id=h.channels["mastodon"],
                               at=clock.now())
        clock.advance(seconds=3600)
        assert await h.run() == 0
        assert {await h.state(tg), await h.state(md)} == {"due"}
        assert h.requests[host("telegram")] == h.requests[host("mastodon")] == 0
        async with db.session() as s:
            assert await resume(s, workspace_id=h.workspace_id, at=clock.now())
        assert await h.run() == 1  # mastodon's own pause still holds
        assert await h.state(tg) == "sent" and await h.state(md) == "due"
        async with db.session() as s:
            await resume(s, workspace_id=h.workspace_id, channel_id=h.channels["mastodon"],
                         at=clock.now())
        assert await h.run() == 1 and await h.state(md) == "sent"
        assert [e.type for e in await h.events("dispatch.")] == [
            "dispatch.paused", "dispatch.paused", "dispatch.resumed", "dispatch.resumed"]
