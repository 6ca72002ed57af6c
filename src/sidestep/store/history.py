"""A platform's past for its history page: its incidents and when it was first observed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.store.tables import Incident, Observation

__all__ = ["first_observed", "incidents_of"]


async def incidents_of(
    session: AsyncSession, platform: str, *, since: datetime, limit: int = 200
) -> list[Incident]:
    """The platform's incidents still open or ended after `since`, latest first."""
    query = (
        select(Incident)
        .where(Incident.platform == platform,
               or_(Incident.ended_at.is_(None), Incident.ended_at >= since))
        .order_by(Incident.started_at.desc()).limit(limit)
    )
    return list((await session.scalars(query)).all())


async def first_observed(session: AsyncSession, platform: str) -> datetime | None:
    """The oldest observation of the platform still kept (uses the platform/time index)."""
    oldest: datetime | None = await session.scalar(
        select(func.min(Observation.observed_at)).where(Observation.platform == platform))
    return oldest
