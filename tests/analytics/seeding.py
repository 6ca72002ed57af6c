"""A seeded workspace for the metric, incident and risk tests: channels on Meta, Telegram, X
and email, 60 days of daily (or hourly) reach with a shared weekly rhythm, and an incident
with a known loss on Instagram and a known gain on Telegram."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.store.accounts import Accounts
from sidestep.store.channels import Channels
from sidestep.store.metrics import Metrics, NewPoint
from sidestep.store.tables import Incident
from sidestep.vault import Vault

VAULT = Vault(b"0" * 43 + b"=")
DAY0 = datetime(2026, 9, 1, tzinfo=UTC)
INCIDENT_DAY = 45
DAYS = 60
LOSS = 2400.0  # reach Instagram loses on the incident day
GAIN = 900.0  # reach Telegram gains that day
OWNERS = {"instagram": "Meta", "facebook": "Meta", "whatsapp": "Meta", "telegram": "Telegram",
          "x": "X Corp", "email": "self"}
BASE = {"Instagram main": 5000.0, "Facebook page": 3000.0, "Telegram channel": 1200.0,
        "X account": 2000.0, "Newsletter": 800.0}
PLATFORM = {"Instagram main": "instagram", "Facebook page": "facebook",
            "Telegram channel": "telegram", "X account": "x", "Newsletter": "email"}
FOLLOWERS = {"Instagram main": 40000, "Facebook page": 25000, "Telegram channel": 6000,
             "X account": 15000, "Newsletter": 4000}


@dataclass
class Seeded:
    workspace_id: int
    channel_ids: dict[str, int]
    incident_id: int


def daily_reach(seed: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    rhythm = 1 + 0.15 * np.sin(2 * np.pi * np.arange(DAYS) / 7)
    out = {}
    for name, base in BASE.items():
        out[name] = base * rhythm + rng.normal(0, 0.02 * base, DAYS)
    out["Instagram main"][INCIDENT_DAY] -= LOSS
    out["Telegram channel"][INCIDENT_DAY] += GAIN
    return out


async def seed_workspace(session: AsyncSession, *, slug: str = "acme", days: int = DAYS,
                         incident: bool = True) -> Seeded:
    now = DAY0 + timedelta(days=days)
    accounts = Accounts(session)
    ws = await accounts.create_workspace(slug=slug, name=slug.title(), at=DAY0)
    channels = Channels(session, workspace_id=ws.id, vault=VAULT)
    ids = {}
    for name, platform in PLATFORM.items():
        ids[name] = (await channels.add(platform=platform, name=name, at=DAY0)).id
    reach = daily_reach()
    points = [NewPoint(ids[name], "reach", DAY0 + timedelta(days=d), float(values[d]))
              for name, values in reach.items() for d in range(days)]
    points += [NewPoint(ids[name], "followers", DAY0 + timedelta(days=days - 1), float(n))
               for name, n in FOLLOWERS.items()]
    points += [NewPoint(ids["Instagram main"], "revenue", DAY0 + timedelta(days=d), 100.0)
               for d in range(days)]
    await Metrics(session, workspace_id=ws.id).add(points, source="test", at=now)
    incident_id = 0
    if incident:
        row = Incident(platform="instagram", worst_status="down", features=[],
                       started_at=DAY0 + timedelta(days=INCIDENT_DAY, hours=9),
                       ended_at=DAY0 + timedelta(days=INCIDENT_DAY, hours=17), summary="")
        session.add(row)
        await session.flush()
        incident_id = row.id
    return Seeded(ws.id, ids, incident_id)
