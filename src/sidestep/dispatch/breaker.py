"""Per-channel circuit breakers in the database, so every worker process shares them.

Every change is a compare-and-set on the breaker's state with a row-count check, and writes
a `breaker.<state>` event in the same transaction. Outage-class failures are
`PlatformOutage` (nothing answered: refused, DNS, 502-504); any other answer, even an error,
shows the platform is there and resets the count. Auth errors open nothing.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.dispatch.policy import BreakerView
from sidestep.domain.states import BreakerState, check_breaker_transition
from sidestep.store.events import record_event
from sidestep.store.tables_dispatch import ChannelBreaker

__all__ = ["breakers", "note_failure", "note_success", "start_probe"]


async def breakers(session: AsyncSession,
                   channel_ids: Collection[int]) -> dict[int, BreakerView]:
    """The breakers of `channel_ids` that exist (a channel without a row is closed)."""
    if not channel_ids:
        return {}
    rows = (await session.scalars(select(ChannelBreaker).where(
        ChannelBreaker.channel_id.in_(list(channel_ids))))).all()
    return {row.channel_id: BreakerView(BreakerState(row.state), row.opened_at, row.probe_at)
            for row in rows}


async def _move(session: AsyncSession, channel_id: int, workspace_id: int, old: BreakerState,
                new: BreakerState, *, at: datetime, reason: str, **values: object) -> bool:
    check_breaker_transition(old, new)
    result = await session.execute(
        update(ChannelBreaker)
        .where(ChannelBreaker.channel_id == channel_id, ChannelBreaker.state == old.value)
        .values(state=new.value, updated_at=at, **values))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    await record_event(session, type=f"breaker.{new.value}", workspace_id=workspace_id,
                       payload={"channel_id": channel_id, "old": old.value, "reason": reason},
                       at=at)
    return True


async def start_probe(session: AsyncSession, channel_id: int, workspace_id: int,
                      breaker: BreakerView, *, at: datetime) -> bool:
    """Let one delivery through as the probe; True for the one caller that wins the CAS."""
    old = breaker.state
    condition = [ChannelBreaker.probe_at == breaker.probe_at] if (
        old is BreakerState.HALF_OPEN and breaker.probe_at is not None) else []
    if condition:
        result = await session.execute(
            update(ChannelBreaker).where(ChannelBreaker.channel_id == channel_id,
                                         ChannelBreaker.state == old.value, *condition)
            .values(probe_at=at, updated_at=at))
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return False
        await record_event(session, type="breaker.half_open", workspace_id=workspace_id,
                           payload={"channel_id": channel_id, "old": old.value,
                                    "reason": "the last probe was lost; probing again"}, at=at)
        return True
    return await _move(session, channel_id, workspace_id, old, BreakerState.HALF_OPEN, at=at,
                       reason="cool-down over; one probe", probe_at=at)


async def note_failure(session: AsyncSession, channel_id: int, workspace_id: int, *,
                       at: datetime, threshold: int, detail: str) -> bool:
    """Count an outage-class failure; True when the breaker is (now) open."""
    row = {"channel_id": channel_id, "state": BreakerState.CLOSED.value, "failures": 0,
           "updated_at": at}
    insert = (pg_insert if session.get_bind().dialect.name == "postgresql"
              else sqlite_insert)(ChannelBreaker).values(row).on_conflict_do_nothing()
    await session.execute(insert)
    counted = (await session.execute(
        update(ChannelBreaker).where(ChannelBreaker.channel_id == channel_id)
        .values(failures=ChannelBreaker.failures + 1, updated_at=at)
        .returning(ChannelBreaker.failures, ChannelBreaker.state))).one()
    failures, state = int(counted[0]), BreakerState(counted[1])
    if state is BreakerState.HALF_OPEN:
        return await _move(session, channel_id, workspace_id, state, BreakerState.OPEN, at=at,
                           reason=f"the probe failed: {detail}", opened_at=at, probe_at=None)
    if state is BreakerState.CLOSED and failures >= threshold:
        return await _move(session, channel_id, workspace_id, state, BreakerState.OPEN, at=at,
                           reason=f"{failures} outage-class failures in a row: {detail}",
                           opened_at=at)
    return state is BreakerState.OPEN


async def note_success(session: AsyncSession, channel_id: int, workspace_id: int, *,
                       at: datetime, known: BreakerView | None) -> None:
    """The platform answered: reset the count and close an open or half-open breaker.

    `known` is the breaker as read at claim time. A channel that had none (the usual case)
    costs no query; a failure another worker counted meanwhile is reset by the next success
    that finds the row.
    """
    if known is None:
        return
    state = BreakerState(await session.scalar(select(ChannelBreaker.state).where(
        ChannelBreaker.channel_id == channel_id)) or BreakerState.CLOSED.value)
    if state is BreakerState.CLOSED:
        await session.execute(update(ChannelBreaker).where(
            ChannelBreaker.channel_id == channel_id,
            ChannelBreaker.state == BreakerState.CLOSED.value).values(failures=0, updated_at=at))
        return
    await _move(session, channel_id, workspace_id, state, BreakerState.CLOSED,
                at=at, reason="the platform answered again", failures=0, opened_at=None,
                probe_at=None)
