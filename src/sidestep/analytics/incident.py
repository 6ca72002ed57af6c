"""What an incident cost a workspace, where the audience went meanwhile, and the net.

For an incident of platform P (or of every platform of P's owner, when the owner's other
platforms had incidents overlapping it, as Meta's did in October 2021):

- affected series: each metric of the workspace's channels on the fallen platforms;
- the shift: the same metrics of every other channel, each modelled on its own pre-period
  (no controls: they are the series the audience may have moved to);
- controls for the affected series: per metric, the sum of that metric over channels of other
  owners that are complete over the whole window and show no significant shift of their own
  (a channel that gained from the outage would lift the counterfactual and hide the loss);
- pre-period: up to `pre_days` before the incident (less when less exists, an `ImpactError`
  when under `MIN_PRE`); post-period: the incident and a tail after it, as far as data goes.

Series of one incident share their time axis, so each group (affected with a control,
affected without, the shift) is one `estimate_batch` call. Totals add the channels' effects;
their intervals assume the channels' errors independent (sd = root of summed variances).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from scipy.stats import norm
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.analytics.impact import Impact, ImpactError, estimate_batch
from sidestep.store.metrics import STEPS, Metrics, Step, floor_time
from sidestep.store.tables import Channel, Incident

REPORT_METRICS = ("reach", "impressions", "engagement", "clicks", "conversions", "revenue")
HEADLINE_METRICS = ("reach", "engagement", "conversions", "revenue")
MIN_PRE: dict[str, int] = {"day": 14, "hour": 72}  # points
SEASON: dict[str, int] = {"day": 7, "hour": 24}
TAIL: dict[str, timedelta] = {"day": timedelta(days=3), "hour": timedelta(hours=24)}


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    id: int
    name: str
    platform: str
    owner: str


@dataclass(frozen=True, slots=True)
class SeriesEffect:
    channel: ChannelInfo
    metric: str
    affected: bool
    actual: list[float]
    impact: Impact
    controls: tuple[str, ...]  # names of the channels summed into its control series


@dataclass(frozen=True, slots=True)
class Total:
    effect: float
    lower: float
    upper: float


@dataclass(frozen=True)
class IncidentImpact:
    incident_id: int
    platform: str
    owner: str
    platforms: tuple[str, ...]  # every platform counted as down
    started_at: datetime
    ended_at: datetime | None
    step: Step
    times: list[datetime]
    n_pre: int
    series: list[SeriesEffect]
    lost: dict[str, Total]  # per metric: the affected channels' summed effect (negative = lost)
    gained: dict[str, Total]  # the other channels' summed effect
    net: dict[str, Total]
    notes: list[str]

    def effects(self, *, affected: bool) -> list[SeriesEffect]:
        return [s for s in self.series if s.affected == affected]


def analyse(
    *, incident_id: int, platform: str, owner: str, platforms: Sequence[str],
    started_at: datetime, ended_at: datetime | None, step: Step, times: list[datetime],
    n_pre: int, channels: Sequence[ChannelInfo], data: Mapping[tuple[int, str], Sequence[float]],
) -> IncidentImpact:
    """The pure core: `data` holds each (channel id, metric) series over `times`."""
    need = MIN_PRE[step]
    if n_pre < need:
        unit = "days" if step == "day" else "hours"
        raise ImpactError(f"only {n_pre} {unit} of data before the incident; at least {need} are "
                          "needed (import more history first)")
    if n_pre >= len(times):
        raise ImpactError("there is no data from the incident on; import the days it covers")
    season = SEASON[step] if n_pre >= 2 * SEASON[step] + 7 else 0
    notes: list[str] = []
    rows: list[tuple[ChannelInfo, str, np.ndarray]] = []
    for c in channels:
        for metric in REPORT_METRICS:
            if (c.id, metric) not in data:
                continue
            y = np.asarray(data[(c.id, metric)], dtype=float)
            if np.all(np.isnan(y)):
                continue
            if np.sum(~np.isnan(y[:n_pre])) < need or np.all(np.isnan(y[n_pre:])):
                notes.append(f"{c.name} {metric}: too few points before or during the "
                             "incident; left out")
                continue
            rows.append((c, metric, y))
    affected = [r for r in rows if r[0].platform in platforms]
    others = [r for r in rows if r[0].platform not in platforms]
    if not affected:
        raise ImpactError("no channel of this workspace on the fallen platform has metrics "
                          "around the incident")
    series: list[SeriesEffect] = []
    shift = _run([r[2] for r in others], None, n_pre, season)
    for (c, metric, y), impact in zip(others, shift, strict=True):
        series.append(SeriesEffect(c, metric, False, y.tolist(), impact, ()))
    controls = _controls(others, shift, owner, n_pre)
    with_x = [r for r in affected if r[1] in controls]
    without_x = [r for r in affected if r[1] not in controls]
    if with_x:
        xs = np.stack([controls[m][1] for _, m, _ in with_x])[:, :, None]
        for (c, metric, y), impact in zip(
                with_x, _run([r[2] for r in with_x], xs, n_pre, season), strict=True):
            series.append(SeriesEffect(c, metric, True, y.tolist(), impact, controls[metric][0]))
    for (c, metric, y), impact in zip(
            without_x, _run([r[2] for r in without_x], None, n_pre, season), strict=True):
        series.append(SeriesEffect(c, metric, True, y.tolist(), impact, ()))
    series.sort(key=lambda s: (not s.affected, REPORT_METRICS.index(s.metric), s.channel.name))
    lost = _totals([s for s in series if s.affected])
    gained = _totals([s for s in series if not s.affected])
    net = {m: _add(lost.get(m), gained.get(m)) for m in REPORT_METRICS
           if m in lost or m in gained}
    return IncidentImpact(incident_id, platform, owner, tuple(platforms), started_at, ended_at,
                          step, times, n_pre, series, lost, gained, net, notes)


def _run(ys: list[np.ndarray], xs: np.ndarray | None, n_pre: int, season: int) -> list[Impact]:
    if not ys:
        return []
    return estimate_batch(np.stack(ys), n_pre=n_pre, controls=xs, season=season)


def _controls(others: list[tuple[ChannelInfo, str, np.ndarray]], shift: list[Impact],
              owner: str, n_pre: int) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
    """Per metric: the names and summed series of the usable control channels."""
    out: dict[str, tuple[tuple[str, ...], np.ndarray]] = {}
    for (c, metric, y), impact in zip(others, shift, strict=True):
        if c.owner == owner or np.isnan(y).any() or impact.significant:
            continue
        if np.std(y[:n_pre]) == 0:
            continue
        names, total = out.get(metric, ((), np.zeros_like(y)))
        out[metric] = ((*names, c.name), total + y)
    return out


_Z = float(norm.ppf(0.975))


def _totals(effects: list[SeriesEffect]) -> dict[str, Total]:
    out: dict[str, Total] = {}
    for metric in REPORT_METRICS:
        chosen = [s.impact for s in effects if s.metric == metric]
        if not chosen:
            continue
        effect = sum(i.cumulative_effect for i in chosen)
        sd = math.sqrt(sum(((i.cumulative_upper - i.cumulative_lower) / (2 * _Z)) ** 2
                           for i in chosen))
        out[metric] = Total(effect, effect - _Z * sd, effect + _Z * sd)
    return out


def _add(a: Total | None, b: Total | None) -> Total:
    parts = [t for t in (a, b) if t is not None]
    effect = sum(t.effect for t in parts)
    sd = math.sqrt(sum(((t.upper - t.lower) / (2 * _Z)) ** 2 for t in parts))
    return Total(effect, effect - _Z * sd, effect + _Z * sd)


async def affected_platforms(session: AsyncSession, incident: Incident,
                             owner_of: Mapping[str, str], *, now: datetime) -> list[str]:
    """The incident's platform, plus the owner's other platforms with overlapping incidents."""
    owner = owner_of.get(incident.platform, incident.platform)
    siblings = [p for p, o in owner_of.items() if o == owner and p != incident.platform]
    if not siblings or owner == "self":
        return [incident.platform]
    end = incident.ended_at or now
    rows = await session.scalars(select(Incident.platform).where(
        Incident.platform.in_(siblings), Incident.started_at < end,
        (Incident.ended_at.is_(None)) | (Incident.ended_at > incident.started_at)))
    return [incident.platform, *sorted(set(rows.all()))]


async def incident_impact(
    session: AsyncSession, *, workspace_id: int, incident: Incident,
    owner_of: Mapping[str, str], now: datetime, pre_days: int = 28,
    step: Step | None = None,
) -> IncidentImpact:
    """Load the workspace's series around `incident` and analyse them.

    Raises `ImpactError` when the data cannot support an estimate (no affected channel with
    metrics, a pre-period under `MIN_PRE`, nothing after the start)."""
    channel_rows = (await session.scalars(
        select(Channel).where(Channel.workspace_id == workspace_id))).all()
    channels = [ChannelInfo(c.id, c.name, c.platform, owner_of.get(c.platform, c.platform))
                for c in channel_rows]
    platforms = await affected_platforms(session, incident, owner_of, now=now)
    metrics = Metrics(session, workspace_id=workspace_id)
    available = await metrics.available()
    with_data = [c for c in channels if available.get(c.id, set()) & set(REPORT_METRICS)]
    if not any(c.platform in platforms for c in with_data):
        raise ImpactError(f"this workspace has no metrics for its {', '.join(platforms)} "
                          "channels; import some (sidestep metrics import)")
    span = await metrics.span()
    assert span is not None  # there are points
    step = step or await metrics.resolution(c.id for c in with_data)
    size = STEPS[step]
    start = floor_time(incident.started_at, step)
    first = max(floor_time(span[0], step), start - timedelta(days=pre_days))
    ended = incident.ended_at or now
    last = min(floor_time(ended, step) + size + TAIL[step], floor_time(span[1], step) + size)
    found = await metrics.series_many([c.id for c in with_data], REPORT_METRICS,
                                      start=first, end=max(last, start), step=step)
    times = next(iter(found.values())).times if found else []
    n_pre = int((start - first) / size)
    data = {key: s.values for key, s in found.items()}
    return analyse(incident_id=incident.id, platform=incident.platform,
                   owner=owner_of.get(incident.platform, incident.platform),
                   platforms=platforms, started_at=incident.started_at,
                   ended_at=incident.ended_at, step=step, times=times, n_pre=n_pre,
                   channels=with_data, data=data)
