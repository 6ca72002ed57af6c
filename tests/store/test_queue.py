"""The delivery queue's named queries, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from sidestep.clock import FrozenClock
from sidestep.domain.states import DeliveryState
from sidestep.store.accounts import Accounts
from sidestep.store.channels import Channels
from sidestep.store.db import Database
from sidestep.store.posts import NewPost, Posts, transition_delivery
from sidestep.store.queue import claim, expired_leases, promote_due, unknown_outcomes
from sidestep.store.tables import Delivery, Event
from sidestep.vault import Vault

VAULT = Vault(b"0" * 43 + b"=")


async def seed(db: Database, clock: FrozenClock, *, posts: int, due_in_s: float = 0,
               platform: str = "telegram") -> tuple[int, list[int]]:
    """A workspace with one channel and `posts` posts on it; their delivery ids."""
    async with db.session() as s:
        ws = await Accounts(s).create_workspace(slug="acme", name="Acme", at=clock.now())
        channel = await Channels(s, workspace_id=ws.id, vault=VAULT).add(
            platform=platform, name="main", at=clock.now())
        store = Posts(s, workspace_id=ws.id)
        ids: list[int] = []
        for n in range(posts):
            post = await store.create(
                NewPost(body=f"post {n}", due_at=clock.now() + timedelta(seconds=due_in_s),
                        channel_ids=[channel.id]), created_by=None, at=clock.now())
            ids += [d.id for d in await store.deliveries(post.id)]
        return ws.id, ids


async def states(db: Database) -> dict[int, str]:
    async with db.session() as s:
        return {d.id: d.state for d in (await s.scalars(select(Delivery))).all()}


async def event_types(db: Database) -> list[str]:
    async with db.session() as s:
        return list((await s.scalars(select(Event.type).order_by(Event.id))).all())


async def test_it_promotes_only_what_is_due_with_an_event_each(
        db: Database, clock: FrozenClock) -> None:
    _, ids = await seed(db, clock, posts=3)
    async with db.session() as s:
        later = await s.get_one(Delivery, ids[2])
        later.next_attempt_at = clock.now() + timedelta(minutes=5)
        waiting = await s.get_one(Delivery, ids[1])
        await transition_delivery(s, waiting, DeliveryState.DUE, at=clock.now())
        await transition_delivery(s, waiting, DeliveryState.SENDING, at=clock.now())
        await transition_delivery(s, waiting, DeliveryState.RETRY_WAIT, at=clock.now())
    async with db.session() as s:
        assert await promote_due(s, now=clock.now(), limit=10) == 2
    assert await states(db) == {ids[0]: "due", ids[1]: "due", ids[2]: "scheduled"}
    assert (await event_types(db)).count("delivery.due") == 3  # one was due before retry_wait


async def test_a_claim_leases_counts_the_attempt_and_records_an_event(
        db: Database, clock: FrozenClock) -> None:
    _, ids = await seed(db, clock, posts=3)
    async with db.session() as s:
        await promote_due(s, now=clock.now(), limit=10)
    async with db.session() as s:
        claimed = await claim(s, worker="w1", now=clock.now(), lease_s=120, limit=2)
    assert [d.id for d in claimed] == ids[:2]
    for delivery in claimed:
        assert delivery.state == "sending" and delivery.lease_owner == "w1"
        assert delivery.attempt_count == 1
        assert delivery.lease_expires_at == clock.now() + timedelta(seconds=120)
    assert (await event_types(db)).count("delivery.sending") == 2
    async with db.session() as s:
        again = await claim(s, worker="w2", now=clock.now(), lease_s=120, limit=10)
    assert [d.id for d in again] == ids[2:]
    async with db.session() as s:
        assert await claim(s, worker="w3", now=clock.now(), lease_s=120, limit=10) == []


async def test_it_does_not_claim_a_due_delivery_before_its_attempt_time(
        db: Database, clock: FrozenClock) -> None:
    _, ids = await seed(db, clock, posts=1)
    async with db.session() as s:
        await promote_due(s, now=clock.now(), limit=10)
        delivery = await s.get_one(Delivery, ids[0])
        delivery.next_attempt_at = clock.now() + timedelta(seconds=30)
    async with db.session() as s:
        assert await claim(s, worker="w", now=clock.now(), lease_s=60, limit=5) == []
    async with db.session() as s:
        assert len(await claim(s, worker="w", now=clock.now() + timedelta(seconds=30),
                               lease_s=60, limit=5)) == 1


async def test_concurrent_claimers_never_share_a_delivery(
        db: Database, clock: FrozenClock) -> None:
    _, ids = await seed(db, clock, posts=200)
    async with db.session() as s:
        assert await promote_due(s, now=clock.now(), limit=500) == 200
    start = asyncio.Event()

    async def claimer(name: str) -> list[int]:
        got: list[int] = []
        await start.wait()
        while True:
            async with db.session() as s:
                batch = await claim(s, worker=name, now=clock.now(), lease_s=60, limit=7)
                await asyncio.sleep(0)  # hold the transaction open while others claim
            if not batch:
                return got
            got += [d.id for d in batch]

    tasks = [asyncio.create_task(claimer(f"w{n}")) for n in range(4)]
    start.set()
    results = await asyncio.gather(*tasks)
    union = [i for got in results for i in got]
    assert len(union) == len(set(union)) == 200
    assert set(union) == set(ids)
    async with db.session() as s:
        owners = {d.id: d.lease_owner for d in (await s.scalars(select(Delivery))).all()}
    for n, got in enumerate(results):
        assert all(owners[i] == f"w{n}" for i in got)


async def test_it_lists_expired_leases_only(db: Database, clock: FrozenClock) -> None:
    _, ids = await seed(db, clock, posts=2)
    async with db.session() as s:
        await promote_due(s, now=clock.now(), limit=10)
    async with db.session() as s:
        await claim(s, worker="w", now=clock.now(), lease_s=60, limit=1)
    async with db.session() as s:
        await claim(s, worker="w", now=clock.now() + timedelta(seconds=30), lease_s=60,
                    limit=1)
    async with db.session() as s:
        assert await expired_leases(s, now=clock.now() + timedelta(seconds=60), limit=10) == []
        expired = await expired_leases(s, now=clock.now() + timedelta(seconds=61), limit=10)
        assert [d.id for d in expired] == [ids[0]]
        both = await expired_leases(s, now=clock.now() + timedelta(seconds=91), limit=10)
        assert [d.id for d in both] == ids


async def test_it_lists_unknown_outcomes_only_on_platforms_that_can_look(
        db: Database, clock: FrozenClock) -> None:
    _, ids = await seed(db, clock, posts=1, platform="bluesky")
    async with db.session() as s:
        delivery = await s.get_one(Delivery, ids[0])
        for state in (DeliveryState.DUE, DeliveryState.SENDING, DeliveryState.UNKNOWN):
            await transition_delivery(s, delivery, state, at=clock.now())
    async with db.session() as s:
        assert [d.id for d in await unknown_outcomes(s, platforms=["bluesky"], limit=5)] == ids
        assert await unknown_outcomes(s, platforms=["telegram"], limit=5) == []
        assert await unknown_outcomes(s, platforms=[], limit=5) == []
