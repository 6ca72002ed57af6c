"""Whatever the list and whenever an address is suppressed (before the snapshot, or between
the snapshot and the send), a suppressed address never gets the campaign and everyone else
gets it exactly once."""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidestep.clock import FrozenClock
from sidestep.store.db import Database
from sidestep.store.subscribers import Suppressions

from ..conftest import START
from .campaign_helpers import audience, campaign, pool, sender
from .conftest import SmtpServerFixture

ADDRESSES = st.lists(st.from_regex(r"[a-z]{1,6}@(example\.org|exämple\.net|Mail\.Example\.COM)",
                                   fullmatch=True), min_size=1, max_size=25, unique_by=str.lower)


@settings(max_examples=8, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(addresses=ADDRESSES, data=st.data())
async def test_suppressed_addresses_never_get_mail(
        smtp_server: SmtpServerFixture, addresses: list[str], data: st.DataObject) -> None:
    before = data.draw(st.sets(st.sampled_from(addresses)), label="suppressed before")
    during = data.draw(st.sets(st.sampled_from(addresses)), label="suppressed mid-campaign")
    batch_size = data.draw(st.integers(min_value=1, max_value=8), label="batch size")
    smtp_server.recorder.messages.clear()
    clock = FrozenClock(START)
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite+aiosqlite:///{Path(tmp) / 'p.db'}")
        await db.migrate()
        ws, list_id = await audience(db, clock, addresses)
        async with db.session() as session:
            for address in before:
                await Suppressions(session, ws).suppress(address, "manual", at=clock.now())
        cid = await campaign(db, clock, ws, list_id)
        mailer = pool(smtp_server.port)
        run = sender(db, clock, ws, mailer, batch_size=batch_size)
        await run.start(cid)
        async with db.session() as session:
            for address in during:
                await Suppressions(session, ws).suppress(address, "unsubscribed",
                                                         at=clock.now())
        progress = await run.run(cid)
        await mailer.close()
        await db.close()
    stored = {a: a.rsplit("@", 1)[0] + "@" + a.rsplit("@", 1)[1].encode("idna").decode().lower()
              for a in addresses}
    got = Counter(m.rcpt_tos[0] for m in smtp_server.recorder.messages)
    suppressed = {stored[a] for a in before | during}
    assert not suppressed & set(got)
    assert set(got) == set(stored.values()) - suppressed
    assert set(got.values()) <= {1}
    assert progress.state == "done"
