"""`sidestep post create` for several channels and `sidestep post show` with the timeline."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sidestep.cli import app
from sidestep.clock import SystemClock
from sidestep.domain.states import DeliveryState
from sidestep.store.db import Database
from sidestep.store.posts import record_attempt, transition_delivery
from sidestep.store.tables import Delivery

runner = CliRunner()


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SIDESTEP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SIDESTEP_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "data"


def invoke(*args: str, input: str | None = None) -> str:
    result = runner.invoke(app, list(args), input=input)
    assert result.exit_code == 0, result.stderr
    return result.stdout


async def fail_first_delivery(url: str) -> None:
    db = Database(url)
    try:
        async with db.session() as s:
            delivery = await s.get_one(Delivery, 1)
            now = SystemClock().now()
            await transition_delivery(s, delivery, DeliveryState.DUE, at=now)
            await transition_delivery(s, delivery, DeliveryState.SENDING, at=now)
            await record_attempt(s, delivery_id=delivery.id, started_at=now,
                                 finished_at=now + timedelta(seconds=1), outcome="error",
                                 error_class="auth", error_detail="token [red]expired[/red]")
            await transition_delivery(s, delivery, DeliveryState.FAILED,
                                      at=now + timedelta(seconds=1), reason="auth: expired")
    finally:
        await db.close()


def test_a_post_for_two_channels_and_its_timeline(data_dir: Path) -> None:
    invoke("init", "-w", "acme", "--email", "me@acme.example", "--password", "long enough pw")
    for name in ("News", "Alerts"):
        invoke("channel", "add", "telegram", name, "--credentials-stdin",
               input='{"bot_token": "1:x", "chat_id": "@c"}')
    out = invoke("post", "create", "-b", "Open late", "-c", "News", "-c", "Alerts",
                 "--at", "+1h")
    assert "Post 1 scheduled" in out and "on 2 channel(s): News, Alerts." in out
    asyncio.run(fail_first_delivery(f"sqlite+aiosqlite:///{data_dir / 'sidestep.db'}"))
    out = invoke("post", "show", "1")
    news, alerts = out.split("\nNews (telegram): failed")[1].split("\nAlerts (telegram):")
    assert "due\n" in news
    assert "attempt 1: error (auth) — token [red]expired[/red]" in news  # printed, not markup
    assert "failed — auth: expired" in news
    assert "scheduled" in alerts and "nothing yet: waiting for its due time" in alerts
