"""Events: a row written in the transaction of the change it reports, then a wake-up.

`record_event` adds the row and remembers it on the session; when that session commits,
the `EventBus` attached to it wakes in-process subscribers. A rolled-back transaction wakes
nobody, so subscribers never hear of a change that did not happen.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from sidestep.store.tables import Event

log = logging.getLogger(__name__)

Subscriber = Callable[["EventNotice"], Awaitable[None] | None]
_PENDING = "sidestep_pending_events"
_BUS = "sidestep_event_bus"


@dataclass(frozen=True, slots=True)
class EventNotice:
    id: int
    type: str
    workspace_id: int | None
    payload: dict[str, Any]
    created_at: datetime


class EventBus:
    """In-process fan-out of committed events. Subscribers match a type or a prefix with '*'."""

    def __init__(self) -> None:
        self._subscribers: list[tuple[str, Subscriber]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def subscribe(self, pattern: str, subscriber: Subscriber) -> None:
        """Call `subscriber` for each committed event whose type matches `pattern`."""
        self._subscribers.append((pattern, subscriber))

    def publish(self, notices: list[EventNotice]) -> None:
        for notice in notices:
            for pattern, subscriber in self._subscribers:
                if _matches(pattern, notice.type):
                    self._deliver(subscriber, notice)

    def _deliver(self, subscriber: Subscriber, notice: EventNotice) -> None:
        try:
            result = subscriber(notice)
        except Exception:
            log.exception("event subscriber failed", extra={"event_type": notice.type})
            return
        if result is not None:
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("event subscriber failed", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait until every subscriber task started so far has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _matches(pattern: str, event_type: str) -> bool:
    if pattern.endswith("*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def attach_bus(session: AsyncSession, bus: EventBus) -> None:
    session.sync_session.info[_BUS] = bus


async def record_event(
    session: AsyncSession,
    *,
    type: str,
    workspace_id: int | None,
    payload: dict[str, Any],
    at: datetime,
) -> Event:
    """Add an event row to the session's transaction; subscribers hear of it after commit."""
    row = Event(type=type, workspace_id=workspace_id, payload=payload, created_at=at)
    session.add(row)
    await session.flush()
    session.sync_session.info.setdefault(_PENDING, []).append(
        EventNotice(row.id, row.type, row.workspace_id, dict(row.payload), row.created_at)
    )
    return row


async def events_since(
    session: AsyncSession, *, workspace_id: int | None, after_id: int = 0, limit: int = 100
) -> list[Event]:
    """Events of one workspace (or the global ones, for None) with id above `after_id`."""
    query = select(Event).where(Event.id > after_id).order_by(Event.id).limit(limit)
    if workspace_id is None:
        query = query.where(Event.workspace_id.is_(None))
    else:
        query = query.where(Event.workspace_id == workspace_id)
    return list((await session.scalars(query)).all())


@sa_event.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    notices = session.info.pop(_PENDING, [])
    bus = session.info.get(_BUS)
    if notices and bus is not None:
        bus.publish(notices)


@sa_event.listens_for(Session, "after_soft_rollback")
def _forget_after_rollback(session: Session, previous_transaction: object) -> None:
    session.info.pop(_PENDING, None)
