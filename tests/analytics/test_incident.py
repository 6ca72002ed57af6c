"""Incident impact from the metric store, on SQLite and PostgreSQL: a known loss on a Meta
channel and a known gain on Telegram are recovered within their intervals."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from sidestep.analytics.impact import ImpactError
from sidestep.analytics.incident import incident_impact
from sidestep.store.db import Database
from sidestep.store.tables import Incident
from tests.analytics.seeding import DAY0, GAIN, INCIDENT_DAY, LOSS, OWNERS, seed_workspace

NOW = DAY0 + timedelta(days=70)


async def _impact(session, seeded, **kwargs):  # type: ignore[no-untyped-def]
    incident = await session.get(Incident, seeded.incident_id)
    return await incident_impact(session, workspace_id=seeded.workspace_id, incident=incident,
                                 owner_of=OWNERS, now=NOW, **kwargs)


async def test_it_recovers_the_loss_on_instagram_and_the_gain_on_telegram(db: Database) -> None:
    async with db.session() as s:
        seeded = await seed_workspace(s)
        result = await _impact(s, seeded)
    assert result.platforms == ("instagram",)
    assert result.step == "day" and result.n_pre == 28
    by = {(e.channel.name, e.metric): e for e in result.series}
    insta = by[("Instagram main", "reach")].impact
    assert insta.cumulative_lower <= -LOSS <= insta.cumulative_upper
    assert insta.significant and insta.cumulative_effect < 0
    tele = by[("Telegram channel", "reach")].impact
    assert tele.cumulative_lower <= GAIN <= tele.cumulative_upper
    assert tele.significant
    # Telegram gained, so it is not a control; X and the newsletter are (Facebook is Meta's).
    assert by[("Instagram main", "reach")].controls == ("Newsletter", "X account")
    assert result.lost["reach"].lower <= -LOSS <= result.lost["reach"].upper
    assert result.net["reach"].effect == pytest.approx(
        result.lost["reach"].effect + result.gained["reach"].effect)
    assert not by[("X account", "reach")].impact.significant


async def test_an_owner_wide_outage_counts_every_platform_of_the_owner(db: Database) -> None:
    async with db.session() as s:
        seeded = await seed_workspace(s)
        s.add(Incident(platform="facebook", worst_status="down", features=[],
                       started_at=DAY0 + timedelta(days=INCIDENT_DAY, hours=10),
                       ended_at=DAY0 + timedelta(days=INCIDENT_DAY, hours=15), summary=""))
        await s.flush()
        result = await _impact(s, seeded)
    assert result.platforms == ("instagram", "facebook")
    affected = {e.channel.name for e in result.effects(affected=True)}
    assert affected == {"Instagram main", "Facebook page"}


async def test_a_pre_period_too_short_is_a_clear_error(db: Database) -> None:
    async with db.session() as s:
        seeded = await seed_workspace(s)
        incident = await s.get(Incident, seeded.incident_id)
        assert incident is not None
        incident.started_at = DAY0 + timedelta(days=5)
        incident.ended_at = DAY0 + timedelta(days=5, hours=3)
        with pytest.raises(ImpactError, match="only 5 days of data before the incident"):
            await _impact(s, seeded)


async def test_a_workspace_without_metrics_on_the_platform_is_told_so(db: Database) -> None:
    async with db.session() as s:
        seeded = await seed_workspace(s)
        other = await seed_workspace(s, slug="globex", incident=False)
        incident = (await s.scalars(select(Incident))).one()
        incident.platform = "whatsapp"
        with pytest.raises(ImpactError, match="no metrics for its whatsapp"):
            await incident_impact(s, workspace_id=other.workspace_id, incident=incident,
                                  owner_of=OWNERS, now=NOW)
        assert seeded.workspace_id != other.workspace_id
