"""Pause all and resume: the emergency stop, for a whole workspace or one channel.

A pause is a row, not a delivery state: paused deliveries keep their state (`due`, `held`,
`retry_wait`...) and are simply never claimed, rerouted, released or failed by age while
the pause lasts (`not_paused` is the filter every dispatch query uses). Resuming deletes the
row and they carry on; nothing is lost and nothing needs rescheduling.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.store.events import record_event
from sidestep.store.queue import not_paused
from sidestep.store.tables import Channel
from sidestep.store.tables_dispatch import DispatchPause

__all__ = ["PauseError", "not_paused", "pause", "pauses", "resume"]


class PauseError(ValueError):
    """A pause or resume that cannot be done as asked (an unknown channel)."""


def _key(workspace_id: int, channel_id: int | None) -> str:
    return f"ws:{workspace_id}" if channel_id is None else f"ch:{channel_id}"


async def _check_channel(session: AsyncSession, workspace_id: int, channel_id: int | None) -> None:
    if channel_id is None:
        return
    found = await session.scalar(select(Channel.id).where(
        and_(Channel.id == channel_id, Channel.workspace_id == workspace_id)))
    if found is None:
        raise PauseError(f"no channel {channel_id} in this workspace")


async def pause(session: AsyncSession, *, workspace_id: int, channel_id: int | None = None,
                by: str = "", at: datetime) -> bool:
    """Pause the workspace (or one of its channels). False when it was already paused."""
    await _check_channel(session, workspace_id, channel_id)
    key = _key(workspace_id, channel_id)
    if await session.get(DispatchPause, key) is not None:
        return False
    session.add(DispatchPause(key=key, workspace_id=workspace_id, channel_id=channel_id,
                              paused_by=by, paused_at=at))
    await session.flush()
    await record_event(session, type="dispatch.paused", workspace_id=workspace_id,
                       payload={"channel_id": channel_id, "by": by}, at=at)
    return True


async def resume(session: AsyncSession, *, workspace_id: int, channel_id: int | None = None,
                 by: str = "", at: datetime) -> bool:
    """Lift that pause. False when there was none (a channel under a workspace-wide pause
    stays paused until the workspace resumes)."""
    await _check_channel(session, workspace_id, channel_id)
    row = await session.get(DispatchPause, _key(workspace_id, channel_id))
    if row is None:
        return False
    await session.delete(row)
    await session.flush()
    await record_event(session, type="dispatch.resumed", workspace_id=workspace_id,
                       payload={"channel_id": channel_id, "by": by}, at=at)
    return True


async def pauses(session: AsyncSession, *, workspace_id: int) -> list[DispatchPause]:
    """The workspace's pauses, the workspace-wide one first."""
    rows = (await session.scalars(select(DispatchPause).where(
        DispatchPause.workspace_id == workspace_id))).all()
    return sorted(rows, key=lambda row: (row.channel_id is not None, row.channel_id or 0))
