"""A sender process killed with SIGKILL mid-campaign; a new sender resumes. Nobody gets the
campaign twice; the batch that was in flight is `unknown` (SMTP cannot tell us whether the
server took it), and once the owner resends those, everyone has it exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP as SMTPProtocol

from sidestep.clock import FrozenClock, SystemClock
from sidestep.email import campaign as campaign_ops
from sidestep.store.db import Database

from .campaign_helpers import audience, campaign, pool, sender

EMAILS = [f"p{i:02d}@example.org" for i in range(40)]
ROOT = Path(__file__).resolve().parents[2]


class StallingRecorder:
    """Accepts `accept` messages, then holds every later DATA without answering."""

    def __init__(self, accept: int) -> None:
        self.accept = accept
        self.delivered: list[str] = []
        self.stalled = asyncio.Event()
        self.holding = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.accept <= 0:
            self.holding += 1
            self.stalled.set()
            await asyncio.sleep(3600)
        self.accept -= 1
        self.delivered.extend(envelope.rcpt_tos)
        return "250 OK"


async def test_a_killed_campaign_resumes_and_reaches_everyone_exactly_once(
        tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'crash.db'}"
    db = Database(url)
    await db.migrate()
    clock = FrozenClock(SystemClock().now())
    ws, list_id = await audience(db, clock, EMAILS)
    cid = await campaign(db, clock, ws, list_id)

    recorder = StallingRecorder(accept=15)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTPProtocol(recorder), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    child = subprocess.Popen(  # noqa: ASYNC220 - killed with SIGKILL, never awaited
        [sys.executable, "-m", "tests.email.crash_sender", url, str(port), str(ws), str(cid)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    try:
        await asyncio.wait_for(recorder.stalled.wait(), timeout=60)
        await asyncio.sleep(0.2)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    server.close()
    first_run = Counter(recorder.delivered)
    assert len(first_run) == 15 and max(first_run.values()) == 1

    # A new sender, after the dead one's lease ran out, with a server that answers.
    from .conftest import MailRecorder
    healthy = MailRecorder()
    server = await loop.create_server(lambda: SMTPProtocol(healthy), "127.0.0.1", 0)
    mailer = pool(server.sockets[0].getsockname()[1])
    clock.set(SystemClock().now() + timedelta(seconds=31))
    resumed = sender(db, clock, ws, mailer)
    progress = await resumed.run(cid)
    unknown = progress.counts.get("unknown", 0)
    assert progress.state == "done"
    assert progress.counts["sent"] == 40 - unknown
    assert unknown == recorder.holding  # exactly the messages in flight at the kill
    second_run = Counter(m.rcpt_tos[0] for m in healthy.messages)
    assert not set(first_run) & set(second_run), "someone got the campaign twice"
    assert max(second_run.values()) == 1

    # The unknown rows were held by the stalled server and never delivered: the owner resends.
    assert await campaign_ops.resend_unknown(db, ws, cid, at=clock.now()) == unknown
    progress = await resumed.run(cid)
    await mailer.close()
    server.close()
    total = Counter(recorder.delivered) + Counter(m.rcpt_tos[0] for m in healthy.messages)
    assert progress.counts == {"sent": 40}
    assert sorted(total) == sorted(EMAILS) and set(total.values()) == {1}
    await db.close()
