"""The dispatch worker and reconciliation against the simulator, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy import select

from sidestep.channels.base import Adapter, all_adapters
from sidestep.clock import FrozenClock
from sidestep.dispatch.worker import CANNOT_ASK, reconcile, run_once
from sidestep.domain.content import Content
from sidestep.sim.server import Simulator
from sidestep.sim.testing import running_simulator
from sidestep.store.accounts import Accounts
from sidestep.store.channels import Channels
from sidestep.store.db import Database
from sidestep.store.posts import NewPost, Posts
from sidestep.store.queue import claim, promote_due
from sidestep.store.tables import Channel, Delivery, DeliveryAttempt
from sidestep.store.tables_dispatch import ChannelBreaker
from sidestep.vault import Credentials, Vault
from tests.channels import test_bluesky, test_mastodon, test_telegram

VAULT = Vault(b"0" * 43 + b"=")
PREPARE = {"telegram": test_telegram.prepare, "mastodon": test_mastodon.prepare,
           "bluesky": test_bluesky.prepare}


@dataclass
class Rig:
    db: Database
    sim: Simulator
    clock: FrozenClock
    adapters: dict[str, Adapter]
    workspace_id: int
    channels: dict[str, int]
    credentials: dict[str, Credentials]

    async def post(self, platform: str, body: str = "We are still here.") -> int:
        """A post due now on `platform`'s channel; its delivery id."""
        async with self.db.session() as s:
            posts = Posts(s, workspace_id=self.workspace_id)
            post = await posts.create(NewPost(body=body, due_at=self.clock.now(),
                                              channel_ids=[self.channels[platform]]),
                                      created_by=None, at=self.clock.now())
            [delivery] = await posts.deliveries(post.id)
            return delivery.id

    async def run(self, worker: str = "w1") -> int:
        return await run_once(self.db, vault=VAULT, adapters=self.adapters, worker=worker,
                              clock=self.clock, rng=random.Random(1))

    async def reconcile(self) -> int:
        return await reconcile(self.db, adapters=self.adapters, vault=VAULT, clock=self.clock)

    async def delivery(self, delivery_id: int) -> Delivery:
        async with self.db.session() as s:
            return await s.get_one(Delivery, delivery_id)

    async def attempts(self, delivery_id: int) -> list[DeliveryAttempt]:
        async with self.db.session() as s:
            return list((await s.scalars(select(DeliveryAttempt).where(
                DeliveryAttempt.delivery_id == delivery_id))).all())

    def recorded(self, platform: str) -> int:
        """How many posts the simulated platform accepted in all."""
        return len(self.sim.world.record.all(platform))


@asynccontextmanager
async def rig(db: Database, clock: FrozenClock, *platforms: str,
              timeout_s: float = 2) -> AsyncIterator[Rig]:
    async with running_simulator(seed=1) as sim, sim.client() as client:
        classes = all_adapters()
        adapters = {p: classes[p](client=client, clock=sim.world.clock, timeout_s=timeout_s,
                                  poll_interval_s=0.01) for p in platforms}
        credentials = {p: Credentials(await PREPARE[p](sim)) for p in platforms}
        async with db.session() as s:
            ws = await Accounts(s).create_workspace(slug="acme", name="Acme", at=clock.now())
            store = Channels(s, workspace_id=ws.id, vault=VAULT)
            channels = {p: (await store.add(platform=p, name=p, credentials=credentials[p],
                                            at=clock.now())).id for p in platforms}
        yield Rig(db, sim, clock, adapters, ws.id, channels, credentials)


async def test_it_publishes_each_due_post_once_and_records_it_sent(
        db: Database, clock: FrozenClock) -> None:
    async with rig(db, clock, "telegram", "mastodon") as r:
        ids = [await r.post("telegram"), await r.post("mastodon")]
        assert await r.run() == 2
        assert await r.run() == 0
        for delivery_id, platform in zip(ids, ["telegram", "mastodon"], strict=True):
            delivery = await r.delivery(delivery_id)
            assert delivery.state == "sent" and delivery.external_id
            assert delivery.lease_owner is None and delivery.attempt_count == 1
            assert r.recorded(platform) == 1
            assert r.sim.world.record.find(platform, delivery.external_id or "") is not None
            [attempt] = await r.attempts(delivery_id)
            assert attempt.outcome == "sent" and attempt.error_class is None


async def test_it_waits_after_a_5xx_and_sends_when_the_wait_is_over(
        db: Database, clock: FrozenClock) -> None:
    async with rig(db, clock, "telegram") as r:
        delivery_id = await r.post("telegram")
        await r.sim.set_fault("telegram", "http_5xx")
        assert await r.run() == 1
        delivery = await r.delivery(delivery_id)
        assert delivery.state == "retry_wait" and delivery.last_error
        assert delivery.next_attempt_at > clock.now()
        await r.sim.clear_faults()
        assert await r.run() == 0  # not yet
        clock.set(delivery.next_attempt_at)
        assert await r.run() == 1
        delivery = await r.delivery(delivery_id)
        assert delivery.state == "sent" and delivery.attempt_count == 2
        assert r.recorded("telegram") == 1
        assert [a.error_class for a in await r.attempts(delivery_id)] == ["transient", None]


async def test_it_obeys_the_platforms_retry_after(db: Database, clock: FrozenClock) -> None:
    async with rig(db, clock, "mastodon") as r:
        delivery_id = await r.post("mastodon")
        await r.sim.set_fault("mastodon", "rate_limited", retry_after_s=300)
        assert await r.run() == 1
        delivery = await r.delivery(delivery_id)
        assert delivery.state == "retry_wait" and "rate_limited" in (delivery.last_error or "")
        wait_s = (delivery.next_attempt_at - clock.now()).total_seconds()
        assert 299 <= wait_s <= 331  # the reset, give or take the header's rounding and jitter
        assert r.sim.world.record.all("mastodon") == []


async def test_an_expired_token_flags_the_channel_and_holds_without_retrying(
        db: Database, clock: FrozenClock) -> None:
    async with rig(db, clock, "telegram") as r:
        delivery_id = await r.post("telegram")
        await r.sim.set_fault("telegram", "auth_expired")
        assert await r.run() == 1
        delivery = await r.delivery(delivery_id)
        assert delivery.state == "held" and (delivery.last_error or "").startswith("auth")
        async with r.db.session() as s:
            channel = await s.get_one(Channel, r.channels["telegram"])
            assert channel.status == "needs_reconnect"
            assert await s.scalar(select(ChannelBreaker)) is None  # auth opens no breaker
        clock.advance(seconds=3600)
        second = await r.post("telegram")
        assert await r.run() == 0  # the channel's deliveries wait for a person
        assert (await r.delivery(second)).state == "held"
        assert r.sim.world.record.all("telegram") == []
        assert len(await r.attempts(delivery_id)) == 1


async def test_a_timeout_on_a_platform_that_cannot_be_asked_stays_unknown(
        db: Database, clock: FrozenClock) -> None:
    async with rig(db, clock, "telegram", timeout_s=0.5) as r:
        delivery_id = await r.post("telegram")
        await r.sim.set_fault("telegram", "timeout")
        assert await r.run() == 1
        delivery = await r.delivery(delivery_id)
        assert delivery.state == "unknown" and "may exist" in (delivery.last_error or "")
        await r.sim.clear_faults()
        clock.advance(seconds=3600)
        assert await r.run() == 0 and await r.reconcile() == 0
        assert (await r.delivery(delivery_id)).state == "unknown"
        assert r.sim.world.record.all("telegram") == []


async def test_a_timeout_on_a_platform_that_can_look_is_sent_after_reconciling(
        db: Database, clock: FrozenClock) -> None:
    async with rig(db, clock, "bluesky", timeout_s=0.5) as r:
        assert await r.run() == 0
        first = await r.post("bluesky", "first, which opens the session")
        assert await r.run() == 1 and (await r.delivery(first)).state == "sent"
        delivery_id = await r.post("bluesky")
        await r.sim.set_fault("bluesky", "timeout")
        assert await r.run() == 1
        assert (await r.delivery(delivery_id)).state == "unknown"
        await r.sim.clear_faults()
        assert await r.reconcile() == 1  # the platform has no such post: safe to send
        assert (await r.delivery(delivery_id)).state == "due"
        assert await r.run() == 1
        delivery = await r.delivery(delivery_id)
        assert delivery.state == "sent"
        assert r.recorded("bluesky") == 2  # the first post and this one, once


async def claim_and_crash(r: Rig, delivery_id: int) -> Delivery:
    """Claim like a worker that then dies (before or after its publish call)."""
    async with r.db.session() as s:
        await promote_due(s, now=r.clock.now(), limit=10)
    async with r.db.session() as s:
        [delivery] = await claim(s, worker="dead", now=r.clock.now(), lease_s=120, limit=10)
    assert delivery.id == delivery_id
    return delivery


async def test_an_expired_lease_on_a_platform_that_cannot_be_asked_goes_to_a_person(
        db: Database, clock: FrozenClock) -> None:
    async with rig(db, clock, "telegram") as r:
        delivery_id = await r.post("telegram")
        await claim_and_crash(r, delivery_id)
        assert await r.reconcile() == 0  # the lease still runs
        clock.advance(seconds=121)
        assert await r.reconcile() == 1
        delivery = await r.delivery(delivery_id)
        assert delivery.state == "unknown" and delivery.last_error == CANNOT_ASK
        assert delivery.lease_owner is None
        assert await r.run() == 0 and r.sim.world.record.all("telegram") == []


async def test_an_expired_lease_is_settled_as_sent_when_the_platform_has_the_post(
        db: Database, clock: FrozenClock) -> None:
    async with rig(db, clock, "bluesky") as r:
        delivery_id = await r.post("bluesky")
        delivery = await claim_and_crash(r, delivery_id)
        # The dead worker's publish went through; only the recording was lost.
        published = await r.adapters["bluesky"].publish(
            Content(text="We are still here."), r.credentials["bluesky"],
            idempotency_key=delivery.idempotency_key)
        clock.advance(seconds=121)
        assert await r.reconcile() == 1
        settled = await r.delivery(delivery_id)
        assert settled.state == "sent" and settled.external_id == published.external_id
        assert await r.run() == 0
        assert r.recorded("bluesky") == 1


async def test_an_expired_lease_is_sent_again_when_the_platform_has_no_such_post(
        db: Database, clock: FrozenClock) -> None:
    async with rig(db, clock, "bluesky") as r:
        delivery_id = await r.post("bluesky")
        await claim_and_crash(r, delivery_id)
        clock.advance(seconds=121)
        assert await r.reconcile() == 1
        assert (await r.delivery(delivery_id)).state == "retry_wait"
        assert await r.run() == 1
        settled = await r.delivery(delivery_id)
        assert settled.state == "sent" and settled.attempt_count == 2
        assert r.recorded("bluesky") == 1
