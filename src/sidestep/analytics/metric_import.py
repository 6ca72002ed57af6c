"""Import metric series into a workspace: from CSV exports, or from Sidestep's own deliveries.

    summary = await import_file(session, workspace_id=1, format="meta", data=raw,
                                channel="Instagram main", at=now)

Raises `MalformedFile` when the file cannot be read as that format (nothing is written);
otherwise every usable point is written (replacing the same point from an earlier import)
and the summary lists every rejected row with its reason, every ignored column, and points
of channels the workspace does not have.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.analytics.formats import MalformedFile, Reader, Rejected
from sidestep.analytics.formats.generic import read_long, read_wide
from sidestep.analytics.formats.platforms import (
    read_linkedin,
    read_meta,
    read_x,
    read_youtube,
)
from sidestep.store.metrics import Metrics, NewPoint
from sidestep.store.tables import Channel

READERS: dict[str, Reader] = {
    "long": read_long, "wide": read_wide, "meta": read_meta, "x": read_x,
    "linkedin": read_linkedin, "youtube": read_youtube,
}
FORMATS = (*READERS, "deliveries")

__all__ = ["FORMATS", "READERS", "ImportSummary", "MalformedFile", "import_deliveries",
           "import_file"]


@dataclass
class ImportSummary:
    format: str
    rows: int = 0
    written: int = 0
    by_metric: dict[str, int] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    blank_cells: int = 0
    first: datetime | None = None
    last: datetime | None = None


async def _channel_ids(session: AsyncSession, workspace_id: int) -> dict[str, int]:
    rows = (await session.execute(select(Channel.id, Channel.name)
                                  .where(Channel.workspace_id == workspace_id))).all()
    by_name = {name.casefold(): channel_id for channel_id, name in rows}
    by_name.update({str(channel_id): channel_id for channel_id, _ in rows})
    return by_name


async def import_file(session: AsyncSession, *, workspace_id: int, format: str, data: bytes,
                      channel: str | None, at: datetime) -> ImportSummary:
    """Read `data` as `format` and store its points in the workspace."""
    reader = READERS.get(format)
    if reader is None:
        raise MalformedFile(f"unknown format {format!r}; use one of {', '.join(READERS)}")
    channels = await _channel_ids(session, workspace_id)
    if channel is not None and channel.casefold() not in channels:
        raise MalformedFile(f"no channel {channel!r} in this workspace")
    parsed = reader(data, channel)
    summary = ImportSummary(format=format, rows=parsed.rows, rejected=list(parsed.rejected),
                            ignored_columns=parsed.ignored_columns,
                            blank_cells=parsed.blank_cells)
    points: list[NewPoint] = []
    unknown: Counter[str] = Counter()
    for p in parsed.points:
        channel_id = channels.get(p.channel.casefold())
        if channel_id is None:
            unknown[p.channel] += 1
        else:
            points.append(NewPoint(channel_id, p.metric, p.at, p.value))
    summary.rejected.extend(
        Rejected(0, f"no channel {name!r} in this workspace: {n} values not imported")
        for name, n in sorted(unknown.items()))
    _finish(summary, points)
    summary.written = await Metrics(session, workspace_id=workspace_id).add(
        points, source=format, at=at)
    return summary


async def import_deliveries(session: AsyncSession, *, workspace_id: int, start: datetime,
                            end: datetime, at: datetime) -> ImportSummary:
    """Store `posts` per channel per day from the workspace's sent deliveries."""
    metrics = Metrics(session, workspace_id=workspace_id)
    points = await metrics.sent_per_day(start=start, end=end)
    summary = ImportSummary(format="deliveries", rows=len(points))
    _finish(summary, points)
    summary.written = await metrics.add(points, source="deliveries", at=at)
    return summary


def _finish(summary: ImportSummary, points: list[NewPoint]) -> None:
    summary.by_metric = dict(Counter(p.metric for p in points))
    if points:
        summary.first = min(p.at for p in points)
        summary.last = max(p.at for p in points)
