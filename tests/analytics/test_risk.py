"""Risk numbers from a seeded workspace (SQLite and PostgreSQL), and the hourly helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from sidestep.analytics.risk import down_hours, hour_of_week_profile, risk_report
from sidestep.store.db import Database
from sidestep.store.metrics import Metrics, NewPoint
from tests.analytics.seeding import DAY0, DAYS, FOLLOWERS, OWNERS, daily_reach, seed_workspace

NOW = DAY0 + timedelta(days=DAYS)


async def test_shares_hhi_outage_cost_and_annual_loss(db: Database) -> None:
    async with db.session() as s:
        seeded = await seed_workspace(s)
        report = await risk_report(s, workspace_id=seeded.workspace_id, owner_of=OWNERS,
                                   now=NOW)
    total = sum(FOLLOWERS.values())
    meta = (FOLLOWERS["Instagram main"] + FOLLOWERS["Facebook page"]) / total
    audience = report.concentrations["audience"]
    assert audience.total == total
    assert audience.by_owner["Meta"] == pytest.approx(meta)
    expected_hhi = sum((100 * n / total) ** 2 for n in (
        FOLLOWERS["Instagram main"] + FOLLOWERS["Facebook page"], FOLLOWERS["Telegram channel"],
        FOLLOWERS["X account"], FOLLOWERS["Newsletter"]))
    assert audience.hhi_owner == pytest.approx(expected_hhi)
    assert audience.band == "highly concentrated"

    reach = daily_reach()
    weekly = {name: float(np.sum(v[DAYS - 28:])) / 4 for name, v in reach.items()}
    meta_weekly = weekly["Instagram main"] + weekly["Facebook page"]
    assert report.concentrations["reach"].total == pytest.approx(sum(weekly.values()))
    meta_outage = next(o for o in report.outages["reach"] if o.owner == "Meta")
    assert meta_outage.hours == 6
    assert meta_outage.expected == pytest.approx(meta_weekly * 6 / 168)
    assert report.hours_down == {"Meta": pytest.approx(8.0)}
    assert report.annual_loss["reach"]["Meta"] == pytest.approx(meta_weekly / 168 * 8)
    assert report.annual_loss["revenue"]["Meta"] == pytest.approx(700 / 168 * 8)
    assert report.recommendations and "Meta carries 72%" in report.recommendations[0].text


async def test_hourly_series_give_an_hour_of_week_profile(db: Database) -> None:
    async with db.session() as s:
        seeded = await seed_workspace(s, days=0, incident=False)
        start = NOW - timedelta(days=14)
        # Instagram reaches 100 an hour at 18:00-23:59 UTC and nothing otherwise.
        points = [NewPoint(seeded.channel_ids["Instagram main"], "reach",
                           start + timedelta(hours=h), 100.0 if (h % 24) >= 18 else 0.0)
                  for h in range(14 * 24)]
        await Metrics(s, workspace_id=seeded.workspace_id).add(points, source="t", at=NOW)
        report = await risk_report(s, workspace_id=seeded.workspace_id, owner_of=OWNERS,
                                   now=NOW)
    meta = next(o for o in report.outages["reach"] if o.owner == "Meta")
    assert meta.worst == pytest.approx(600.0)  # six evening hours
    assert meta.expected == pytest.approx(7 * 600 * 6 / 168)
    assert meta.worst_start_hour % 24 == 18


def test_down_hours_merges_overlapping_incidents_of_one_owner() -> None:
    t = datetime(2026, 10, 4, tzinfo=UTC)
    hours = down_hours([("instagram", t, t + timedelta(hours=6)),
                        ("facebook", t + timedelta(hours=2), t + timedelta(hours=7)),
                        ("x", t, t + timedelta(minutes=30))], OWNERS,
                       since=t - timedelta(days=1), until=t + timedelta(days=1))
    assert hours == {"Meta": 7.0, "X Corp": 0.5}


def test_profile_fills_unseen_hours_with_the_mean() -> None:
    monday = datetime(2026, 10, 5, tzinfo=UTC)
    profile = hour_of_week_profile([monday, monday + timedelta(hours=1)], [2.0, 4.0])
    assert profile[0] == 2.0 and profile[1] == 4.0 and profile[100] == 3.0
