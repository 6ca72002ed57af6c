"""Bounded storage: raw observations for `raw_days`, then minute roll-ups for `rollup_days`."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from sidestep.clock import FrozenClock
from sidestep.monitor.config import StorageConfig
from sidestep.monitor.runner import maintain_storage
from sidestep.store.db import Database
from sidestep.store.health import Health, NewObservation
from sidestep.store.tables import Observation
from sidestep.store.tables_monitor import ObservationMinute

PLATFORMS = ("facebook", "instagram", "x")
STEP = timedelta(minutes=30)  # a probe round every 30 simulated minutes keeps the test fast


def round_at(clock: FrozenClock, n: int) -> list[NewObservation]:
    at = clock.now()
    return [NewObservation(platform=p, signal=signal, vantage="local", observed_at=at,
                           outcome="servfail" if (n + i) % 7 == 0 else "ok",
                           latency_ms=None if signal == "dns" else 40.0 + i,
                           feature="" if signal == "dns" else "api", target=f"t{i}")
            for p in PLATFORMS for i, signal in enumerate(("dns", "dns", "http"))]


async def count(db: Database, table: type[Observation] | type[ObservationMinute]) -> int:
    async with db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


async def test_tables_stay_bounded_through_a_simulated_week(db: Database,
                                                            clock: FrozenClock) -> None:
    storage = StorageConfig(raw_days=1, rollup_days=3)
    per_round = len(round_at(clock, 0))
    rounds_per_day = int(timedelta(days=1) / STEP)
    minute_keys = len(PLATFORMS) * 2  # (dns, "") and (http, "api") per platform and minute
    sizes = []
    start = clock.now()
    for n in range(7 * rounds_per_day):
        async with db.session() as session:
            health = Health(session)
            await health.add_observations(round_at(clock, n))
            if n % 2 == 0:  # hourly, as the runner does
                await maintain_storage(health, now=clock.now(), storage=storage)
        if n % rounds_per_day == rounds_per_day - 1:
            sizes.append((await count(db, Observation), await count(db, ObservationMinute)))
        clock.advance(seconds=STEP.total_seconds())
    raw_cap = (rounds_per_day + 3) * per_round  # one day, plus the hour between passes
    rollup_cap = (2 * rounds_per_day + 3) * minute_keys  # days 1..3 back, plus an hour
    assert all(raw <= raw_cap for raw, _ in sizes), sizes
    assert all(rollups <= rollup_cap for _, rollups in sizes), sizes
    assert sizes[-1][0] >= rounds_per_day * per_round * 0.9  # the last day is kept raw
    assert sizes[-1][1] > 0
    async with db.session() as session:
        minutes = await Health(session).minutes(platform="facebook", since=start)
        oldest = min(m.minute for m in minutes)
    assert clock.now() - oldest <= timedelta(days=3, hours=1)


async def test_a_roll_up_keeps_the_counts_and_latencies(db: Database,
                                                        clock: FrozenClock) -> None:
    async with db.session() as session:
        health = Health(session)
        await health.add_observations(round_at(clock, 0) + round_at(clock, 1))
        clock.advance(seconds=20)
        await health.add_observations(round_at(clock, 6))  # same minute
    async with db.session() as session:
        health = Health(session)
        rolled = await health.roll_up(before=clock.now() + timedelta(minutes=5),
                                      failing={"servfail"})
        rows = await health.minutes(platform="facebook", since=clock.now() - timedelta(hours=1))
    assert rolled == 3 * len(round_at(clock, 0))
    assert await count(db, Observation) == 0
    by_signal = {r.signal: r for r in rows}
    assert by_signal["dns"].checks == 6 and by_signal["http"].checks == 3
    # servfail where (n + i) % 7 == 0: round 0 dns t0, round 6 dns t1
    assert by_signal["dns"].failures == 2 and by_signal["http"].failures == 0
    assert by_signal["http"].timed == 3 and by_signal["http"].latency_max_ms == 42.0
    assert by_signal["http"].latency_sum_ms == 3 * 42.0
