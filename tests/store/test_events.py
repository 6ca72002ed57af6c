"""Events are rows of the same transaction; subscribers hear only of committed ones."""

from __future__ import annotations

import pytest

from sidestep.clock import FrozenClock
from sidestep.store.accounts import Accounts
from sidestep.store.db import Database
from sidestep.store.events import EventNotice, events_since, record_event


async def test_subscribers_hear_of_an_event_after_commit(db: Database, clock: FrozenClock) -> None:
    heard: list[EventNotice] = []
    db.bus.subscribe("workspace.*", heard.append)
    async with db.session() as s:
        await Accounts(s).create_workspace(slug="acme", name="Acme", at=clock.now())
        assert heard == []  # not before the commit
    assert [n.type for n in heard] == ["workspace.created"]
    assert heard[0].payload == {"slug": "acme"}


async def test_a_rolled_back_change_leaves_no_event_and_wakes_nobody(db: Database, clock: FrozenClock) -> None:
    heard: list[EventNotice] = []
    db.bus.subscribe("workspace.created", heard.append)
    with pytest.raises(RuntimeError):
        async with db.session() as s:
            await Accounts(s).create_workspace(slug="acme", name="Acme", at=clock.now())
            raise RuntimeError("boom")
    async with db.session() as s:
        assert await Accounts(s).workspace_by_slug("acme") is None
        assert await events_since(s, workspace_id=None) == []
    assert heard == []


async def test_async_subscribers_run_and_can_be_drained(db: Database, clock: FrozenClock) -> None:
    seen: list[str] = []

    async def subscriber(notice: EventNotice) -> None:
        seen.append(notice.type)

    db.bus.subscribe("custom.thing", subscriber)
    async with db.session() as s:
        await record_event(s, type="custom.thing", workspace_id=None, payload={"n": 1}, at=clock.now())
        await record_event(s, type="other", workspace_id=None, payload={}, at=clock.now())
    await db.bus.drain()
    assert seen == ["custom.thing"]
    async with db.session() as s:
        rows = await events_since(s, workspace_id=None)
    assert [(r.type, r.payload) for r in rows] == [("custom.thing", {"n": 1}), ("other", {})]
