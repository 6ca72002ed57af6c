"""A workspace with channels on the simulator, a worker to run, and the requests it made."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select

from sidestep.channels.base import Adapter, all_adapters
from sidestep.clock import FrozenClock
from sidestep.dispatch.failover import tend_held
from sidestep.dispatch.quotas import QuotaBook
from sidestep.dispatch.worker import run_once
from sidestep.domain.states import FallbackPolicy, PlatformStatus
from sidestep.sim.server import Simulator
from sidestep.sim.testing import running_simulator
from sidestep.store.accounts import Accounts
from sidestep.store.channels import Channels
from sidestep.store.db import Database
from sidestep.store.health import Health
from sidestep.store.posts import NewPost, Posts
from sidestep.store.tables import Delivery, Event, Workspace
from sidestep.vault import Credentials, Vault
from tests.channels import test_bluesky, test_discord, test_mastodon, test_telegram, test_x

VAULT = Vault(b"0" * 43 + b"=")
PREPARE = {"telegram": test_telegram.prepare, "mastodon": test_mastodon.prepare,
           "bluesky": test_bluesky.prepare, "x": test_x.prepare,
           "discord": test_discord.prepare}
HOSTS = {"telegram": "api.telegram.org", "mastodon": "mastodon.social", "bluesky": "bsky.social"}


@dataclass
class Harness:
    db: Database
    sim: Simulator
    clock: FrozenClock
    adapters: dict[str, Adapter]
    workspace_id: int
    channels: dict[str, int]
    requests: Counter[str] = field(default_factory=Counter)

    async def post(self, *platforms: str, body: str = "We are still here.",
                   due_at: datetime | None = None, **options: Any) -> list[int]:
        """A post on the channels of `platforms`; its delivery ids in that order."""
        fallbacks = [self.channels[p] for p in options.pop("fallbacks", ())]
        async with self.db.session() as s:
            posts = Posts(s, workspace_id=self.workspace_id)
            post = await posts.create(
                NewPost(body=body, due_at=due_at or self.clock.now(),
                        channel_ids=[self.channels[p] for p in platforms],
                        fallback_channel_ids=fallbacks, **options),
                created_by=None, at=self.clock.now())
            by_channel = {d.channel_id: d.id for d in await posts.deliveries(post.id)}
            return [by_channel[self.channels[p]] for p in platforms]

    async def run(self, worker: str = "w1", **kw: Any) -> int:
        return await run_once(self.db, vault=VAULT, adapters=self.adapters, worker=worker,
                              clock=self.clock, rng=random.Random(1), **kw)

    async def tend(self) -> int:
        return await tend_held(self.db, clock=self.clock)

    async def platform(self, platform: str, status: PlatformStatus,
                       features: list[str] | None = None) -> None:
        """What the monitor would write: the platform's state, now."""
        async with self.db.session() as s:
            await Health(s).set_state(platform=platform, status=status,
                                      features=features or [], reason="test",
                                      at=self.clock.now())

    async def settings(self, **dispatch: Any) -> None:
        async with self.db.session() as s:
            ws = await s.get_one(Workspace, self.workspace_id)
            ws.settings = {**ws.settings, "dispatch": dispatch}

    async def delivery(self, delivery_id: int) -> Delivery:
        async with self.db.session() as s:
            return await s.get_one(Delivery, delivery_id)

    async def state(self, delivery_id: int) -> str:
        return (await self.delivery(delivery_id)).state

    async def deliveries(self) -> list[Delivery]:
        async with self.db.session() as s:
            return list((await s.scalars(select(Delivery).order_by(Delivery.id))).all())

    async def events(self, prefix: str) -> list[Event]:
        async with self.db.session() as s:
            return list((await s.scalars(select(Event).where(
                Event.type.startswith(prefix)).order_by(Event.id))).all())

    def recorded(self, platform: str) -> int:
        """How many posts the simulated platform accepted."""
        return len(self.sim.world.record.all(platform))


@asynccontextmanager
async def harness(db: Database, clock: FrozenClock, *platforms: str,
                  timeout_s: float = 2) -> AsyncIterator[Harness]:
    requests: Counter[str] = Counter()

    async def count(request: httpx.Request) -> None:
        requests[request.url.host] += 1

    async with running_simulator(seed=1) as sim, sim.client(
            event_hooks={"request": [count]}) as client:
        classes = all_adapters()
        adapters = {p: classes[p](client=client, clock=sim.world.clock, timeout_s=timeout_s,
                                  poll_interval_s=0.01) for p in platforms}
        credentials = {p: Credentials(await PREPARE[p](sim)) for p in platforms}
        async with db.session() as s:
            ws = await Accounts(s).create_workspace(slug="acme", name="Acme", at=clock.now())
            store = Channels(s, workspace_id=ws.id, vault=VAULT)
            channels = {p: (await store.add(platform=p, name=p, credentials=credentials[p],
                                            at=clock.now())).id for p in platforms}
        requests.clear()
        yield Harness(db, sim, clock, adapters, ws.id, channels, requests)


def host(platform: str) -> str:
    return HOSTS[platform]


__all__ = ["FallbackPolicy", "Harness", "QuotaBook", "harness", "host"]
