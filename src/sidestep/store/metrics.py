"""Metric series of a workspace's channels: bulk upserts and reads resampled to hour or day.

Every query is scoped to one workspace. A point is keyed by (workspace, channel, metric,
time): adding one that exists replaces its value and source, so re-importing a file changes
nothing and a corrected export overwrites the old numbers.

Resampling: `followers` is a stock (the audience at that moment), so a bucket takes the last
value in it; every other metric is a flow and a bucket takes the sum. Buckets without any
point are NaN, never zero: a missing day is unknown, not a day without reach.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.domain.states import DeliveryState
from sidestep.store.tables import Channel, Delivery
from sidestep.store.tables_metrics import MetricPoint

METRICS = ("reach", "impressions", "engagement", "clicks", "followers", "conversions",
           "revenue", "posts")
STOCK_METRICS = frozenset({"followers"})
Step = Literal["hour", "day"]
STEPS: dict[str, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
# PostgreSQL allows 65,535 bind parameters per statement; a point uses 7.
_CHUNK = 5000


class MetricStoreError(ValueError):
    """A request the metric store cannot carry out, with the reason for a person."""


@dataclass(frozen=True, slots=True)
class NewPoint:
    channel_id: int
    metric: str
    at: datetime
    value: float


@dataclass(frozen=True, slots=True)
class Series:
    """Values at `times` (bucket starts, evenly spaced by `step`); NaN where nothing is known."""

    channel_id: int
    metric: str
    step: Step
    times: list[datetime]
    values: list[float]


def floor_time(at: datetime, step: Step) -> datetime:
    at = at.astimezone(UTC)
    if step == "day":
        return at.replace(hour=0, minute=0, second=0, microsecond=0)
    return at.replace(minute=0, second=0, microsecond=0)


def bucket_times(start: datetime, end: datetime, step: Step) -> list[datetime]:
    """Bucket starts from `start`'s bucket up to (not including) `end`."""
    first, size = floor_time(start, step), STEPS[step]
    count = max(0, math.ceil((end - first) / size))
    return [first + i * size for i in range(count)]


class Metrics:
    def __init__(self, session: AsyncSession, *, workspace_id: int) -> None:
        self.session = session
        self.workspace_id = workspace_id

    async def add(self, points: Sequence[NewPoint], *, source: str, at: datetime) -> int:
        """Insert or replace `points`; returns how many were written.

        Raises `MetricStoreError` for an unknown metric, a non-finite value or a channel of
        another workspace; nothing is written then.
        """
        owned = set(await self._channel_ids())
        rows: dict[tuple[int, str, datetime], dict[str, object]] = {}
        for p in points:
            if p.metric not in METRICS:
                raise MetricStoreError(f"unknown metric {p.metric!r}; use one of {METRICS}")
            if p.channel_id not in owned:
                raise MetricStoreError(f"channel {p.channel_id} is not in this workspace")
            if not math.isfinite(p.value):
                raise MetricStoreError(f"{p.metric} at {p.at:%Y-%m-%d %H:%M} is not a number")
            when = p.at.astimezone(UTC)
            # The last of several values for one key in a batch wins, as a later import would.
            rows[(p.channel_id, p.metric, when)] = {
                "workspace_id": self.workspace_id, "channel_id": p.channel_id,
                "metric": p.metric, "at": when, "value": float(p.value), "source": source,
                "imported_at": at,
            }
        dialect = sqlite if self.session.get_bind().dialect.name == "sqlite" else postgresql
        values = list(rows.values())
        for i in range(0, len(values), _CHUNK):
            statement = dialect.insert(MetricPoint)
            statement = statement.on_conflict_do_update(
                index_elements=["workspace_id", "channel_id", "metric", "at"],
                set_={"value": statement.excluded.value, "source": statement.excluded.source,
                      "imported_at": statement.excluded.imported_at},
            )
            await self.session.execute(statement, values[i:i + _CHUNK])
        return len(values)

    async def series(self, channel_id: int, metric: str, *, start: datetime, end: datetime,
                     step: Step) -> Series:
        """The metric of one channel over [start, end) resampled to `step`."""
        return (await self.series_many([channel_id], [metric], start=start, end=end,
                                       step=step))[(channel_id, metric)]

    async def series_many(
        self, channel_ids: Iterable[int], metrics: Iterable[str], *, start: datetime,
        end: datetime, step: Step,
    ) -> dict[tuple[int, str], Series]:
        """Every (channel, metric) pair asked for, each over the same buckets."""
        ids, names = sorted(set(channel_ids)), sorted(set(metrics))
        times = bucket_times(start, end, step)
        index = {t: i for i, t in enumerate(times)}
        values = {(c, m): [math.nan] * len(times) for c in ids for m in names}
        if not times or not ids or not names:
            return {key: Series(key[0], key[1], step, times, v) for key, v in values.items()}
        query = (select(MetricPoint.channel_id, MetricPoint.metric, MetricPoint.at,
                        MetricPoint.value)
                 .where(MetricPoint.workspace_id == self.workspace_id,
                        MetricPoint.channel_id.in_(ids), MetricPoint.metric.in_(names),
                        MetricPoint.at >= times[0], MetricPoint.at < end)
                 .order_by(MetricPoint.at))
        for channel_id, metric, when, value in (await self.session.execute(query)).all():
            row, i = values[(channel_id, metric)], index.get(floor_time(when, step))
            if i is None:
                continue
            if metric in STOCK_METRICS or math.isnan(row[i]):
                row[i] = value
            else:
                row[i] += value
        return {key: Series(key[0], key[1], step, times, v) for key, v in values.items()}

    async def resolution(self, channel_ids: Iterable[int]) -> Step:
        """'hour' when any point of these channels falls inside a day, else 'day'."""
        query = select(MetricPoint.at).where(
            MetricPoint.workspace_id == self.workspace_id,
            MetricPoint.channel_id.in_(sorted(set(channel_ids))))
        for (when,) in (await self.session.execute(query.limit(5000))).all():
            if floor_time(when, "day") != when:
                return "hour"
        return "day"

    async def span(self) -> tuple[datetime, datetime] | None:
        """The first and last point's times in the workspace, or None when it has none."""
        first, last = (await self.session.execute(
            select(func.min(MetricPoint.at), func.max(MetricPoint.at))
            .where(MetricPoint.workspace_id == self.workspace_id))).one()
        return None if first is None else (first, last)

    async def available(self) -> dict[int, set[str]]:
        """Per channel, the metrics it has points for."""
        rows = (await self.session.execute(
            select(MetricPoint.channel_id, MetricPoint.metric).distinct()
            .where(MetricPoint.workspace_id == self.workspace_id))).all()
        out: dict[int, set[str]] = {}
        for channel_id, metric in rows:
            out.setdefault(channel_id, set()).add(metric)
        return out

    async def latest(self, metric: str) -> dict[int, float]:
        """Per channel, the most recent value of `metric`."""
        newest = (select(MetricPoint.channel_id, func.max(MetricPoint.at).label("at"))
                  .where(MetricPoint.workspace_id == self.workspace_id,
                         MetricPoint.metric == metric)
                  .group_by(MetricPoint.channel_id).subquery())
        rows = await self.session.execute(
            select(MetricPoint.channel_id, MetricPoint.value).join(
                newest, (MetricPoint.channel_id == newest.c.channel_id)
                & (MetricPoint.at == newest.c.at))
            .where(MetricPoint.workspace_id == self.workspace_id,
                   MetricPoint.metric == metric))
        return {channel_id: value for channel_id, value in rows.all()}

    async def sent_per_day(self, *, start: datetime, end: datetime) -> list[NewPoint]:
        """Posts sent per channel per UTC day, from Sidestep's own delivery records.

        A delivery counts on the day it reached `sent` (its last state change). Every channel
        gets a point for every day of the range, zero included: a day without a post is a
        known zero, unlike a day an export does not cover."""
        start = floor_time(start, "day")
        rows = (await self.session.execute(
            select(Delivery.channel_id, Delivery.updated_at)
            .where(Delivery.workspace_id == self.workspace_id,
                   Delivery.state == DeliveryState.SENT.value,
                   Delivery.updated_at >= start, Delivery.updated_at < end))).all()
        counts: dict[tuple[int, datetime], int] = {}
        for channel_id, when in rows:
            key = (channel_id, floor_time(when, "day"))
            counts[key] = counts.get(key, 0) + 1
        days = bucket_times(start, end, "day")
        return [NewPoint(channel_id, "posts", day, float(counts.get((channel_id, day), 0)))
                for channel_id in await self._channel_ids() for day in days]

    async def _channel_ids(self) -> list[int]:
        rows = await self.session.scalars(
            select(Channel.id).where(Channel.workspace_id == self.workspace_id))
        return list(rows.all())
