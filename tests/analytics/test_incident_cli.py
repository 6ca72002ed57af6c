"""`sidestep metrics import` and `sidestep report incident|risk` end to end on SQLite."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sidestep.cli import app
from sidestep.store.db import Database
from sidestep.store.tables import Incident
from tests.analytics.seeding import BASE, INCIDENT_DAY, PLATFORM, daily_reach

runner = CliRunner()


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SIDESTEP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SIDESTEP_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "data"


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _add_incident(data_dir: Path, start: datetime) -> None:
    async def main() -> None:
        db = Database(f"sqlite+aiosqlite:///{data_dir / 'sidestep.db'}")
        async with db.session() as s:
            s.add(Incident(platform="instagram", worst_status="down", features=[],
                           started_at=start, ended_at=start + timedelta(hours=8), summary=""))
        await db.close()

    asyncio.run(main())


def test_import_then_report_incident_and_risk(tmp_path: Path, data_dir: Path) -> None:
    code, _, err = invoke("init", "-w", "acme", "--email", "me@acme.example",
                          "--password", "long enough pw")
    assert code == 0, err
    for name in BASE:
        assert invoke("channel", "add", PLATFORM[name], name)[0] == 0
    day0 = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
        days=60)
    lines = ["channel,metric,time,value"]
    for name, values in daily_reach().items():
        lines += [f"{name},reach,{(day0 + timedelta(days=d)).date()},{v:.1f}"
                  for d, v in enumerate(values)]
    lines.append("Instagram main,reach,not a date,5")
    (tmp_path / "reach.csv").write_text("\n".join(lines) + "\n")
    code, out, err = invoke("metrics", "import", "long", str(tmp_path / "reach.csv"))
    assert code == 0, err
    assert "300 points written" in out and "1 rejected" in out
    assert "line 302: cannot read the time 'not a date'" in out

    _add_incident(data_dir, day0 + timedelta(days=INCIDENT_DAY, hours=9))
    code, out, err = invoke("report", "incident", "1", "--format", "csv", "--out", "i.csv")
    assert code == 0, err
    assert "reach:" in out and "on instagram" in out
    assert (tmp_path / "i.csv").read_text().startswith("incident,channel")
    code, out, err = invoke("report", "risk", "--out", "risk.html")
    assert code == 0, err
    assert "data:image/png;base64," in (tmp_path / "risk.html").read_text()


def test_a_malformed_file_and_a_missing_incident_are_one_line_each(tmp_path: Path) -> None:
    assert invoke("init", "-w", "acme", "--email", "me@acme.example",
                  "--password", "long enough pw")[0] == 0
    (tmp_path / "bad.csv").write_text("foo,bar\n1,2\n")
    code, _, err = invoke("metrics", "import", "long", str(tmp_path / "bad.csv"))
    assert code == 2 and "no header with a time column" in err
    code, _, err = invoke("metrics", "import", "meta", str(tmp_path / "bad.csv"))
    assert code == 2 and "name its channel" in err
    code, _, err = invoke("report", "incident", "7", "--out", "x.html")
    assert code == 2 and "no incident 7" in err
