"""The gate and the failover policies against the simulator, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sidestep.clock import FrozenClock
from sidestep.domain.states import FallbackPolicy, PlatformStatus
from sidestep.store.db import Database
from sidestep.store.tables_dispatch import Deliverable
from tests.dispatch.harness import harness, host

DOWN, UP, DEGRADED = PlatformStatus.DOWN, PlatformStatus.UP, PlatformStatus.DEGRADED


async def test_a_down_platform_gets_no_attempt_and_its_post_goes_out_once_when_it_returns(
        db: Database, clock: FrozenClock) -> None:
    async with harness(db, clock, "telegram") as h:
        await h.platform("telegram", DOWN)
        [delivery_id] = await h.post("telegram")
        for _ in range(3):
            assert await h.run() == 0
            clock.advance(seconds=60)
            await h.platform("telegram", DOWN)  # the monitor keeps saying so
        assert await h.state(delivery_id) == "held"
        assert h.requests[host("telegram")] == 0 and h.recorded("telegram") == 0
        await h.platform("telegram", UP)
        assert await h.run() == 1
        for _ in range(2):
            clock.advance(seconds=60)
            assert await h.run() == 0
        delivery = await h.delivery(delivery_id)
        assert delivery.state == "sent" and delivery.attempt_count == 1
        assert h.recorded("telegram") == 1
        moves = [e.type for e in await h.events("delivery.")]
        assert moves == ["delivery.due", "delivery.held", "delivery.due", "delivery.sending",
                         "delivery.sent"]


async def test_a_local_outage_holds_without_burning_attempts(
        db: Database, clock: FrozenClock) -> None:
    async with harness(db, clock, "telegram") as h:
        await h.platform("telegram", PlatformStatus.LOCAL_OUTAGE)
        [delivery_id] = await h.post("telegram")
        assert await h.run() == 0
        delivery = await h.delivery(delivery_id)
        assert delivery.state == "held" and delivery.attempt_count == 0
        assert "local outage" in (delivery.last_error or "")


async def test_a_media_outage_holds_media_posts_and_lets_text_through(
        db: Database, clock: FrozenClock) -> None:
    async with harness(db, clock, "telegram") as h:
        await h.platform("telegram", DEGRADED, ["media"])
        [text_id] = await h.post("telegram", body="Text only")
        [media_id] = await h.post("telegram", body="With a photo",
                                  media=[{"kind": "image", "url": "https://example.org/a.jpg"}])
        assert await h.run() == 1
        assert await h.state(text_id) == "sent"
        held = await h.delivery(media_id)
        assert held.state == "held" and "media failing" in (held.last_error or "")
        await h.platform("telegram", DEGRADED, ["text"])
        clock.advance(seconds=30)
        assert await h.run() == 0 and await h.state(media_id) == "held"


async def test_reroute_after_the_grace_period_publishes_on_the_fallbacks_once(
        db: Database, clock: FrozenClock) -> None:
    async with harness(db, clock, "telegram", "mastodon") as h:
        await h.platform("telegram", DOWN)
        [original] = await h.post("telegram", fallback_policy=FallbackPolicy.REROUTE,
                                  fallbacks=["mastodon"], reroute_grace_s=600)
        assert await h.run() == 0
        clock.advance(seconds=599)
        await h.platform("telegram", DOWN)  # the monitor keeps saying so
        assert await h.run() == 0 and await h.state(original) == "held"
        clock.advance(seconds=1)
        assert await h.run() == 1  # the fallback, created and sent in the same pass
        for _ in range(3):
            clock.advance(seconds=60)
            await h.platform("telegram", DOWN)
            assert await h.run() == 0
        assert await h.state(original) == "rerouted"
        [_, fallback] = await h.deliveries()
        assert fallback.origin_delivery_id == original and fallback.state == "sent"
        assert h.recorded("mastodon") == 1 and h.recorded("telegram") == 0
        assert h.requests[host("telegram")] == 0
        await h.platform("telegram", UP)  # no catch-up asked: it stays rerouted
        assert await h.run() == 0 and await h.state(original) == "rerouted"


async def test_mirror_now_reroutes_at_once_and_catch_up_sends_the_original_when_back(
        db: Database, clock: FrozenClock) -> None:
    async with harness(db, clock, "telegram", "mastodon") as h:
        await h.platform("telegram", DOWN)
        [original] = await h.post("telegram", fallback_policy=FallbackPolicy.MIRROR_NOW,
                                  fallbacks=["mastodon"], catch_up=True)
        assert await h.run() == 0  # rerouted at the gate; the fallback is due for next pass
        assert await h.state(original) == "rerouted"
        assert await h.run() == 1 and h.recorded("mastodon") == 1
        clock.advance(seconds=300)
        await h.platform("telegram", UP)
        assert await h.run() == 1
        assert await h.state(original) == "sent" and h.recorded("telegram") == 1
        clock.advance(seconds=60)
        assert await h.run() == 0
        assert h.recorded("telegram") == 1 and h.recorded("mastodon") == 1


async def test_hold_past_the_maximum_delay_fails_visibly(
        db: Database, clock: FrozenClock) -> None:
    async with harness(db, clock, "telegram") as h:
        await h.settings(hold_max_s=3600)
        await h.platform("telegram", DOWN)
        [delivery_id] = await h.post("telegram")
        assert await h.run() == 0
        clock.advance(seconds=3599)
        await h.platform("telegram", DOWN)  # the monitor keeps saying so
        assert await h.run() == 0 and await h.state(delivery_id) == "held"
        clock.advance(seconds=1)
        await h.platform("telegram", DOWN)
        assert await h.run() == 0
        failed = await h.delivery(delivery_id)
        assert failed.state == "failed" and "maximum delay (1 h)" in (failed.last_error or "")
        assert h.requests[host("telegram")] == 0


async def test_a_delivery_past_its_maximum_age_fails_with_the_reason(
        db: Database, clock: FrozenClock) -> None:
    async with harness(db, clock, "telegram") as h:
        [old] = await h.post("telegram", due_at=clock.now() - timedelta(hours=3),
                             max_age_s=7200)
        [fresh] = await h.post("telegram", due_at=clock.now() - timedelta(hours=1),
                               max_age_s=7200)
        assert await h.run() == 1
        failed = await h.delivery(old)
        assert failed.state == "failed" and "maximum age (2 h" in (failed.last_error or "")
        assert await h.state(fresh) == "sent" and h.recorded("telegram") == 1


async def test_a_deliverable_held_near_its_deadline_is_flagged_at_risk_once(
        db: Database, clock: FrozenClock) -> None:
    async with harness(db, clock, "telegram") as h:
        await h.platform("telegram", DOWN)
        [delivery_id] = await h.post("telegram")
        async with db.session() as s:
            post_id = (await h.delivery(delivery_id)).post_id
            s.add(Deliverable(workspace_id=h.workspace_id, partner_name="Brand Co",
                              partner_email="pr@example.org", title="Launch post",
                              due_at=clock.now() + timedelta(hours=3), post_id=post_id,
                              status="pending", created_at=clock.now()))
        assert await h.run() == 0
        assert await h.events("deliverable.") == []  # 3 h away, the margin is 2 h
        clock.advance(seconds=3600 + 1)
        await h.platform("telegram", DOWN)
        await h.run()
        await h.run()
        [event] = await h.events("deliverable.")
        assert event.type == "deliverable.at_risk"
        assert event.payload["partner_name"] == "Brand Co" and event.payload["states"] == ["held"]
