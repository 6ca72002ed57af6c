"""How exposed a workspace is to one platform or one owner going down, from its own numbers.

Measures: audience (each channel's latest `followers`, or the channel's recorded audience
size when no follower series was imported), reach and revenue (per week, averaged over the
last `window_days`). Hourly reach and revenue give each channel an hour-of-week profile (the
average of each of the 168 hours over the window), so "Meta down for 6 hours" costs what
those hours usually bring; daily data spreads a day evenly over its hours.

Expected annual loss: hours each owner was down (incidents whose worst state was `down`,
overlapping incidents of one owner's platforms counted once) in the past 365 days, times the
owner's average hourly value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.analytics.concentration import (
    OWNED,
    ChannelValue,
    Concentration,
    OutageLoss,
    Recommendation,
    concentration,
    expected_annual_loss,
    outage_loss,
    recommendations,
)
from sidestep.store.metrics import Metrics
from sidestep.store.tables import Channel, Incident

MEASURES = ("audience", "reach", "revenue")
FLOW_MEASURES = ("reach", "revenue")
YEAR = timedelta(days=365)


@dataclass
class RiskReport:
    window_days: int
    outage_hours: int
    concentrations: dict[str, Concentration]
    values: dict[str, list[ChannelValue]]
    outages: dict[str, list[OutageLoss]]  # per flow measure, one per rented owner
    hours_down: dict[str, float]  # per owner, in the past 365 days
    annual_loss: dict[str, dict[str, float]]  # per flow measure, per owner
    recommendations: list[Recommendation]
    notes: list[str] = field(default_factory=list)


def hour_of_week_profile(times: list[datetime], values: list[float]) -> tuple[float, ...]:
    """The mean of each hour of the week (0 = Monday 00:00 UTC) over the series; hours never
    observed take the mean of the observed ones."""
    sums, counts = np.zeros(168), np.zeros(168)
    for when, value in zip(times, values, strict=True):
        if not np.isnan(value):
            how = when.weekday() * 24 + when.hour
            sums[how] += value
            counts[how] += 1
    if not counts.any():
        return ()
    profile = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return tuple(float(v) for v in np.where(np.isnan(profile), np.nanmean(profile), profile))


def down_hours(incidents: list[tuple[str, datetime, datetime]], owner_of: Mapping[str, str],
               *, since: datetime, until: datetime) -> dict[str, float]:
    """Per owner, the hours in [since, until) when any of its platforms was down."""
    spans: dict[str, list[tuple[datetime, datetime]]] = {}
    for platform, start, end in incidents:
        start, end = max(start, since), min(end, until)
        if end > start:
            spans.setdefault(owner_of.get(platform, platform), []).append((start, end))
    out: dict[str, float] = {}
    for owner, items in spans.items():
        items.sort()
        total, (cur_start, cur_end) = 0.0, items[0]
        for start, end in items[1:]:
            if start > cur_end:
                total += (cur_end - cur_start).total_seconds()
                cur_start, cur_end = start, end
            else:
                cur_end = max(cur_end, end)
        out[owner] = (total + (cur_end - cur_start).total_seconds()) / 3600
    return out


async def risk_report(
    session: AsyncSession, *, workspace_id: int, owner_of: Mapping[str, str], now: datetime,
    window_days: int = 28, outage_hours: int = 6,
) -> RiskReport:
    channels = list((await session.scalars(
        select(Channel).where(Channel.workspace_id == workspace_id)
        .order_by(Channel.id))).all())
    metrics = Metrics(session, workspace_id=workspace_id)
    notes: list[str] = []
    followers = await metrics.latest("followers")
    values: dict[str, list[ChannelValue]] = {m: [] for m in MEASURES}
    for c in channels:
        owner = owner_of.get(c.platform, c.platform)
        if c.id not in followers and c.audience_size:
            notes.append(f"{c.name}: no follower series; its recorded audience size is used")
        audience = followers.get(c.id, float(c.audience_size))
        values["audience"].append(ChannelValue(c.name, c.platform, owner, audience))
    start = now - timedelta(days=window_days)
    step = await metrics.resolution(c.id for c in channels)
    found = await metrics.series_many([c.id for c in channels], FLOW_MEASURES, start=start,
                                      end=now, step=step)
    for c in channels:
        owner = owner_of.get(c.platform, c.platform)
        for measure in FLOW_MEASURES:
            s = found[(c.id, measure)]
            observed = [v for v in s.values if not np.isnan(v)]
            if not observed:
                continue
            span_weeks = len(observed) / (168 if step == "hour" else 7)
            weekly = sum(observed) / span_weeks
            hourly = hour_of_week_profile(s.times, s.values) if step == "hour" else ()
            if hourly:
                weekly = sum(hourly)
            values[measure].append(ChannelValue(c.name, c.platform, owner, weekly, hourly))
    concentrations = {m: concentration(m, values[m]) for m in MEASURES}
    rented = sorted({v.owner for vs in values.values() for v in vs if v.owner != OWNED})
    outages = {m: sorted((outage_loss(values[m], owner, outage_hours) for owner in rented
                          if any(v.owner == owner for v in values[m])),
                         key=lambda o: -o.expected) for m in FLOW_MEASURES}
    incidents = (await session.execute(
        select(Incident.platform, Incident.started_at, Incident.ended_at)
        .where(Incident.worst_status == "down", Incident.started_at < now,
               (Incident.ended_at.is_(None)) | (Incident.ended_at > now - YEAR)))).all()
    hours = down_hours([(p, s, e or now) for p, s, e in incidents], owner_of,
                       since=now - YEAR, until=now)
    annual = {m: expected_annual_loss(values[m], hours) for m in FLOW_MEASURES}
    recs: dict[str, Recommendation] = {}
    for m in ("audience", "reach"):
        if concentrations[m].total > 0:
            for r in recommendations(concentrations[m]):
                recs.setdefault(r.text, r)
    if not any(values[m] for m in FLOW_MEASURES):
        notes.append(f"no reach or revenue in the last {window_days} days: import metrics "
                     "(sidestep metrics import) for outage costs")
    return RiskReport(window_days, outage_hours, concentrations, values, outages, hours, annual,
                      sorted(recs.values(), key=lambda r: -r.gain), notes)
