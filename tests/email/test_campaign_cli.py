"""`sidestep campaign` and `sidestep email dkim-keygen|bounces` end to end, in-process, against
an aiosmtpd server in a thread; the campaign is DKIM-signed with the key the CLI made."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import dkim
import pytest
from aiosmtpd.controller import Controller
from typer.testing import CliRunner

from sidestep.cli import app
from sidestep.clock import FrozenClock
from sidestep.store.db import Database
from sidestep.store.subscribers import MailingLists, MembershipStatus, Subscribers, SubscriberStatus

from ..conftest import START
from .conftest import MailRecorder, free_port
from .test_bounces import postfix_dsn

runner = CliRunner()


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SIDESTEP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SIDESTEP_BASE_URL", "https://brand.example")
    monkeypatch.delenv("SIDESTEP_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "data"


def invoke(*args: str, input: str | None = None) -> str:
    result = runner.invoke(app, list(args), input=input)
    assert result.exit_code == 0, result.stdout + result.stderr
    return result.stdout


async def add_people(db_path: Path, emails: list[str]) -> None:
    db = Database(f"sqlite+aiosqlite:///{db_path}")
    now = FrozenClock(START).now()
    async with db.session() as session:
        lst = await MailingLists(session, 1).by_name("news")
        assert lst is not None
        subscribers = Subscribers(session, 1)
        for address in emails:
            row = await subscribers.add(address, name="Fan", status=SubscriberStatus.SUBSCRIBED,
                                        at=now)
            await subscribers.set_membership(row, lst, MembershipStatus.SUBSCRIBED, at=now)
    await db.close()


def test_create_send_status_with_dkim_and_a_bounce(data_dir: Path, tmp_path: Path) -> None:
    invoke("init", "-w", "brand", "--email", "me@brand.example", "--password", "long enough pw")
    invoke("email", "list", "add", "news", "--single-opt-in")
    asyncio.run(add_people(data_dir / "sidestep.db", ["a@example.org", "b@example.org"]))
    record = invoke("email", "dkim-keygen", "brand.example", "--selector", "s1")
    txt = record.split(":", 1)[1].replace("\n", "").strip()
    assert txt.startswith("v=DKIM1; k=rsa; p=")
    with sqlite3.connect(data_dir / "sidestep.db") as conn:
        sealed = conn.execute("select private_key_encrypted from dkim_key").fetchone()[0]
    assert b"PRIVATE KEY" not in sealed

    recorder = MailRecorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        invoke("campaign", "smtp-add", "127.0.0.1", "--port", str(port), "--tls", "none")
        (tmp_path / "t.txt").write_text("Hi {{ subscriber.name }}\n{{ unsubscribe_url }}\n")
        out = invoke("campaign", "create", "--name", "Nov", "--list", "news", "--subject",
                     "Hello", "--text", str(tmp_path / "t.txt"), "--from", "news@brand.example")
        assert "created campaign 1" in out
        out = invoke("campaign", "send", "1")
        assert "done" in out and "2 sent" in out
    finally:
        controller.stop()
    assert sorted(m.rcpt_tos[0] for m in recorder.messages) == ["a@example.org", "b@example.org"]
    dns = {b"s1._domainkey.brand.example.": txt.encode()}
    assert all(dkim.verify(m.data, dnsfunc=lambda n, timeout=5: dns.get(n))
               for m in recorder.messages)

    (tmp_path / "dsn.eml").write_bytes(postfix_dsn(recipient="a@example.org", status="5.1.1"))
    assert "suppressed (hard bounce)" in invoke("email", "bounces", "--report",
                                                str(tmp_path / "dsn.eml"))
    assert "done" in invoke("campaign", "status", "1")
    result = runner.invoke(app, ["campaign", "pause", "1"])
    assert result.exit_code == 2 and "cannot go from done to paused" in result.stderr
