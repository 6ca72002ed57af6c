"""Observations, platform states and incidents: what the monitor saw and concluded."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.domain.states import PlatformStatus
from sidestep.store.events import record_event
from sidestep.store.tables import Incident, Observation, PlatformState
from sidestep.store.tables_monitor import ObservationMinute


@dataclass(frozen=True, slots=True)
class NewObservation:
    platform: str
    signal: str
    vantage: str
    observed_at: datetime
    outcome: str
    latency_ms: float | None = None
    feature: str = ""
    target: str = ""
    detail: str | None = None


class Health:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_observations(self, observations: list[NewObservation]) -> None:
        self.session.add_all(
            Observation(
                platform=o.platform, signal=o.signal, vantage=o.vantage, feature=o.feature,
                target=o.target[:300], observed_at=o.observed_at, outcome=o.outcome,
                latency_ms=o.latency_ms, detail=(o.detail or "")[:500] or None,
            )
            for o in observations
        )
        await self.session.flush()

    async def observations(
        self, *, platform: str, since: datetime, limit: int = 1000
    ) -> list[Observation]:
        query = (
            select(Observation)
            .where(Observation.platform == platform, Observation.observed_at >= since)
            .order_by(Observation.observed_at, Observation.id).limit(limit)
        )
        return list((await self.session.scalars(query)).all())

    async def prune_observations(self, *, before: datetime) -> int:
        result = await self.session.execute(
            delete(Observation).where(Observation.observed_at < before)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def roll_up(self, *, before: datetime, failing: Collection[str],
                      batch: int = 5000) -> int:
        """Sum raw observations older than `before` into minute roll-ups, then delete them.

        `failing` names the outcomes that count as failures. Works in batches of `batch`
        rows so memory stays bounded; returns how many raw rows were rolled up.
        """
        total = 0
        while True:
            rows = list((await self.session.scalars(
                select(Observation).where(Observation.observed_at < before)
                .order_by(Observation.id).limit(batch))).all())
            if not rows:
                return total
            sums: dict[tuple[str, str, str, str, datetime], list[Any]] = {}
            for row in rows:
                minute = row.observed_at.replace(second=0, microsecond=0)
                key = (row.platform, row.signal, row.vantage, row.feature, minute)
                entry = sums.setdefault(key, [0, 0, 0, 0.0, None])
                entry[0] += 1
                entry[1] += row.outcome in failing
                if row.latency_ms is not None:
                    entry[2] += 1
                    entry[3] += row.latency_ms
                    entry[4] = max(entry[4] or 0.0, row.latency_ms)
            for key, (checks, failures, timed, latency_sum, latency_max) in sums.items():
                await self._add_minute(key, checks, failures, timed, latency_sum, latency_max)
            await self.session.execute(
                delete(Observation).where(Observation.id.in_([r.id for r in rows])))
            await self.session.flush()
            total += len(rows)

    async def _add_minute(self, key: tuple[str, str, str, str, datetime], checks: int,
                          failures: int, timed: int, latency_sum: float,
                          latency_max: float | None) -> None:
        platform, signal, vantage, feature, minute = key
        row = await self.session.scalar(select(ObservationMinute).where(
            ObservationMinute.platform == platform, ObservationMinute.minute == minute,
            ObservationMinute.signal == signal, ObservationMinute.vantage == vantage,
            ObservationMinute.feature == feature))
        if row is None:
            self.session.add(ObservationMinute(
                platform=platform, signal=signal, vantage=vantage, feature=feature,
                minute=minute, checks=checks, failures=failures, timed=timed,
                latency_sum_ms=latency_sum, latency_max_ms=latency_max))
            return
        row.checks += checks
        row.failures += failures
        row.timed += timed
        row.latency_sum_ms += latency_sum
        if latency_max is not None:
            row.latency_max_ms = max(row.latency_max_ms or 0.0, latency_max)

    async def prune_rollups(self, *, before: datetime) -> int:
        result = await self.session.execute(
            delete(ObservationMinute).where(ObservationMinute.minute < before))
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def minutes(self, *, platform: str, since: datetime) -> list[ObservationMinute]:
        query = (select(ObservationMinute)
                 .where(ObservationMinute.platform == platform, ObservationMinute.minute >= since)
                 .order_by(ObservationMinute.minute, ObservationMinute.id))
        return list((await self.session.scalars(query)).all())

    async def states(self) -> dict[str, PlatformState]:
        rows = (await self.session.scalars(select(PlatformState))).all()
        return {row.platform: row for row in rows}

    async def set_state(
        self,
        *,
        platform: str,
        status: PlatformStatus,
        features: list[str],
        reason: str,
        at: datetime,
        evidence: dict[str, Any] | None = None,
        announce: bool = True,
    ) -> bool:
        """Record the platform's state; return True if it changed.

        A change writes a `platform.state_changed` event carrying `evidence` (which probes
        saw what) unless `announce` is False: a platform that goes `unknown` because our own
        network is down is recorded, and nobody is told it changed.
        """
        row = await self.session.get(PlatformState, platform)
        if row is None:
            row = PlatformState(
                platform=platform, status=PlatformStatus.UNKNOWN.value, features=[], reason="",
                since=at, updated_at=at,
            )
            self.session.add(row)
        old_status, old_features = row.status, list(row.features)
        row.updated_at = at
        if old_status == status.value and sorted(old_features) == sorted(features):
            return False
        row.status, row.features, row.reason, row.since = status.value, features, reason[:500], at
        await self._follow_incident(platform, status, features, at)
        if announce:
            await record_event(
                self.session, type="platform.state_changed", workspace_id=None,
                payload={"platform": platform, "old": old_status, "new": status.value,
                         "features": features, "reason": reason[:500],
                         "evidence": evidence or {}},
                at=at,
            )
        return True

    async def open_incident(self, platform: str) -> Incident | None:
        return await self.session.scalar(
            select(Incident).where(Incident.platform == platform, Incident.ended_at.is_(None))
        )

    async def incidents(self, *, limit: int = 50) -> list[Incident]:
        query = select(Incident).order_by(Incident.started_at.desc()).limit(limit)
        return list((await self.session.scalars(query)).all())

    async def _follow_incident(
        self, platform: str, status: PlatformStatus, features: list[str], at: datetime
    ) -> None:
        incident = await self.open_incident(platform)
        if status in (PlatformStatus.UP, PlatformStatus.UNKNOWN):
            if incident is not None:
                await self.session.execute(
                    update(Incident).where(Incident.id == incident.id).values(ended_at=at)
                )
            return
        if incident is None:
            self.session.add(
                Incident(platform=platform, worst_status=status.value, features=features,
                         started_at=at, ended_at=None, summary="")
            )
        elif _worse(status, PlatformStatus(incident.worst_status)):
            incident.worst_status = status.value
        if incident is not None:
            incident.features = sorted(set(incident.features) | set(features))


_SEVERITY = {PlatformStatus.DEGRADED: 1, PlatformStatus.LOCAL_OUTAGE: 1, PlatformStatus.DOWN: 2}


def _worse(a: PlatformStatus, b: PlatformStatus) -> bool:
    return _SEVERITY.get(a, 0) > _SEVERITY.get(b, 0)
