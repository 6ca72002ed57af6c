"""The passive publish-path signal: what the dispatcher's recent attempts say about a platform.

A platform can fail while its names resolve and its pages answer (a login or API failure).
One channel's expired token is that channel's problem; auth or 5xx/outage errors on many
distinct channels of one platform at once, across workspaces, are the platform's.

For each platform with attempts in the last `window_s`, each channel counts once, by its
latest attempt: *bad* when that attempt failed with an error class in `error_classes`
(auth, outage, transient by default), good otherwise. The platform's publish-path
observation is `error` when at least `min_channels` channels are bad and they are at least
`min_share` of the channels attempted, else `ok`. Platforms without attempts get none.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.clock import utc
from sidestep.monitor.config import PublishPathConfig
from sidestep.monitor.outcomes import Outcome, Signal
from sidestep.store.health import NewObservation
from sidestep.store.tables import Channel, Delivery, DeliveryAttempt

__all__ = ["Attempt", "judge_attempts", "publish_path_observations", "recent_attempts"]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt, reduced to what the signal needs."""

    platform: str
    channel_id: int
    at: datetime
    outcome: str  # sent / error / unknown
    error_class: str | None


def judge_attempts(
    attempts: Iterable[Attempt], config: PublishPathConfig, *, now: datetime,
    vantage: str = "local",
) -> list[NewObservation]:
    """One observation per platform with attempts (see the module docstring); pure."""
    latest: dict[tuple[str, int], Attempt] = {}
    for attempt in sorted(attempts, key=lambda a: a.at):
        latest[(attempt.platform, attempt.channel_id)] = attempt
    per_platform: dict[str, list[Attempt]] = {}
    for (platform, _), attempt in latest.items():
        per_platform.setdefault(platform, []).append(attempt)
    observations = []
    for platform, last in sorted(per_platform.items()):
        bad = [a for a in last if a.outcome != "sent" and a.error_class in config.error_classes]
        classes = Counter(a.error_class for a in bad)
        failing = len(bad) >= config.min_channels and len(bad) >= config.min_share * len(last)
        what = ", ".join(f"{name}x{count}" for name, count in sorted(classes.items()))
        detail = (f"{len(bad)} of {len(last)} channels failing" + (f" ({what})" if what else "")
                  + ("" if failing else "; not a platform signal"))
        observations.append(NewObservation(
            platform=platform, signal=Signal.PUBLISH.value, vantage=vantage, observed_at=now,
            outcome=(Outcome.ERROR if failing else Outcome.OK).value, feature="text",
            target=f"publish path: {len(last)} channels", detail=detail))
    return observations


async def recent_attempts(
    session: AsyncSession, *, since: datetime, limit: int = 20_000
) -> list[Attempt]:
    """Attempts finished (or started, when unfinished) since `since`, every workspace."""
    at = func.coalesce(DeliveryAttempt.finished_at, DeliveryAttempt.started_at)
    query = (
        select(Channel.platform, Channel.id, at, DeliveryAttempt.outcome,
               DeliveryAttempt.error_class)
        .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
        .join(Channel, Channel.id == Delivery.channel_id)
        .where(at >= since)
        .order_by(DeliveryAttempt.id.desc()).limit(limit)
    )
    rows = (await session.execute(query)).all()
    return [Attempt(platform, channel_id, utc(when), outcome, error_class)
            for platform, channel_id, when, outcome, error_class in rows]


async def publish_path_observations(
    session: AsyncSession, config: PublishPathConfig, *, now: datetime, vantage: str = "local",
) -> list[NewObservation]:
    """`judge_attempts` over the attempts of the last `window_s`."""
    since = now - timedelta(seconds=config.window_s)
    return judge_attempts(await recent_attempts(session, since=since), config, now=now,
                          vantage=vantage)
