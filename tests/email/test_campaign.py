from __future__ import annotations

import email
import email.policy

import pytest

from sidestep.clock import FrozenClock
from sidestep.email import campaign as campaign_ops
from sidestep.email.campaign import tag_secret
from sidestep.email.links import UNSUBSCRIBE, verify_token
from sidestep.email.message import TAG_HEADER, read_recipient_tag
from sidestep.store.campaigns import CampaignError, Campaigns
from sidestep.store.db import Database
from sidestep.store.events import events_since
from sidestep.store.subscribers import Subscribers, SubscriberStatus, Suppressions

from .campaign_helpers import SECRET, audience, campaign, pool, sender
from .conftest import SmtpServerFixture

EMAILS = [f"person{i}@example.org" for i in range(20)]


async def test_it_sends_each_subscriber_one_personal_message(
        db: Database, clock: FrozenClock, smtp_server: SmtpServerFixture) -> None:
    ws, list_id = await audience(db, clock, EMAILS)
    cid = await campaign(db, clock, ws, list_id)
    mailer = pool(smtp_server.port)
    progress = await sender(db, clock, ws, mailer).run(cid)
    await mailer.close()
    assert progress.state == "done"
    assert progress.counts == {"sent": 20}
    received = smtp_server.recorder.messages
    assert sorted(m.rcpt_tos[0] for m in received) == sorted(EMAILS)
    for m in received:
        msg = email.message_from_bytes(m.data, policy=email.policy.default)
        i = EMAILS.index(m.rcpt_tos[0])
        assert msg["Subject"] == f"News for Person {i}"
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        token = msg["List-Unsubscribe"].strip("<>").rsplit("/u/", 1)[1]
        claims = verify_token(SECRET, token, purpose=UNSUBSCRIBE)
        assert (claims.workspace_id, claims.list_id) == (ws, list_id)
        ref = read_recipient_tag(tag_secret(SECRET), msg[TAG_HEADER])
        assert ref is not None and ref.campaign_id == cid
        assert token in msg.get_body(("plain",)).get_content()


async def test_a_4xx_defers_and_a_later_run_delivers_exactly_once(
        db: Database, clock: FrozenClock, smtp_server: SmtpServerFixture) -> None:
    ws, list_id = await audience(db, clock, EMAILS[:5])
    smtp_server.recorder.rcpt_replies[EMAILS[2]] = ["451 4.7.1 Greylisted", "421 4.7.0 busy"]
    cid = await campaign(db, clock, ws, list_id)
    mailer = pool(smtp_server.port)
    run = sender(db, clock, ws, mailer, retry_base_s=60)
    progress = await run.run(cid)
    assert progress.state == "sending" and progress.counts == {"sent": 4, "deferred": 1}
    assert await run.run(cid) == progress  # nothing is due yet
    clock.advance(seconds=61)
    assert (await run.run(cid)).counts == {"sent": 4, "deferred": 1}
    clock.advance(seconds=121)
    progress = await run.run(cid)
    await mailer.close()
    assert progress.state == "done" and progress.counts == {"sent": 5}
    assert len(smtp_server.recorder.to(EMAILS[2])) == 1
    async with db.session() as session:
        row = (await Campaigns(session, ws).recipients(cid, state="sent"))[2]
    assert row.attempts == 3


async def test_a_hard_bounce_fails_and_suppresses_the_address(
        db: Database, clock: FrozenClock, smtp_server: SmtpServerFixture) -> None:
    ws, list_id = await audience(db, clock, EMAILS[:3])
    smtp_server.recorder.rcpt_replies[EMAILS[1]] = ["550 5.1.1 <x>: User unknown"]
    cid = await campaign(db, clock, ws, list_id)
    mailer = pool(smtp_server.port)
    progress = await sender(db, clock, ws, mailer).run(cid)
    await mailer.close()
    assert progress.counts == {"sent": 2, "failed": 1}
    async with db.session() as session:
        assert await Suppressions(session, ws).is_suppressed(EMAILS[1])
        failed = await Campaigns(session, ws).recipients(cid, state="failed")
    assert failed[0].last_code == 550 and "User unknown" in (failed[0].last_reply or "")


async def test_suppression_and_unsubscribes_after_the_snapshot_are_obeyed(
        db: Database, clock: FrozenClock, smtp_server: SmtpServerFixture) -> None:
    ws, list_id = await audience(db, clock, EMAILS[:4])
    cid = await campaign(db, clock, ws, list_id)
    mailer = pool(smtp_server.port)
    run = sender(db, clock, ws, mailer)
    assert await run.start(cid) == 4
    async with db.session() as session:
        await Suppressions(session, ws).suppress(EMAILS[0], "complaint", at=clock.now())
        subscribers = Subscribers(session, ws)
        row = await subscribers.find_by_email(EMAILS[3])
        assert row is not None
        await subscribers.set_status(row, SubscriberStatus.UNSUBSCRIBED, at=clock.now())
    progress = await run.run(cid)
    await mailer.close()
    assert progress.counts == {"sent": 2, "skipped_suppressed": 2}
    assert smtp_server.recorder.to(EMAILS[0]) == [] and smtp_server.recorder.to(EMAILS[3]) == []


async def test_the_error_budget_pauses_a_failing_campaign_and_tells_the_owner(
        db: Database, clock: FrozenClock, smtp_server: SmtpServerFixture) -> None:
    ws, list_id = await audience(db, clock, EMAILS)
    for address in EMAILS:
        smtp_server.recorder.rcpt_replies[address] = ["554 5.7.1 Rejected by policy"]
    cid = await campaign(db, clock, ws, list_id, error_budget=5)
    mailer = pool(smtp_server.port)
    progress = await sender(db, clock, ws, mailer, batch_size=3).run(cid)
    await mailer.close()
    assert progress.state == "paused" and "error budget" in progress.reason
    assert progress.counts["failed"] == 6 and progress.counts["pending"] == 14
    async with db.session() as session:
        types = [e.type for e in await events_since(session, workspace_id=ws)]
    assert "campaign.error_budget_exhausted" in types


async def test_pause_resume_and_cancel(
        db: Database, clock: FrozenClock, smtp_server: SmtpServerFixture) -> None:
    ws, list_id = await audience(db, clock, EMAILS[:10])
    cid = await campaign(db, clock, ws, list_id)
    mailer = pool(smtp_server.port)
    run = sender(db, clock, ws, mailer, batch_size=4)

    def pause_after_first_batch(progress: object) -> None:
        del progress
        raise_pause.append(True)

    raise_pause: list[bool] = []
    await run.start(cid)
    await campaign_ops.pause(db, ws, cid, at=clock.now())
    with pytest.raises(CampaignError, match="paused"):
        await run.run(cid)
    assert smtp_server.recorder.messages == []
    await campaign_ops.resume(db, ws, cid, at=clock.now())
    progress = await run.run(cid, on_batch=pause_after_first_batch)
    assert progress.state == "done" and progress.counts == {"sent": 10}
    with pytest.raises(CampaignError):
        await campaign_ops.cancel(db, ws, cid, at=clock.now())

    cid2 = await campaign(db, clock, ws, list_id)
    await run.start(cid2)
    assert await campaign_ops.cancel(db, ws, cid2, at=clock.now()) == 10
    assert (await run.progress(cid2)).counts == {"cancelled": 10}
    await mailer.close()
    assert len(smtp_server.recorder.messages) == 10


async def test_a_second_sender_cannot_take_a_campaign_being_sent(
        db: Database, clock: FrozenClock, smtp_server: SmtpServerFixture) -> None:
    ws, list_id = await audience(db, clock, EMAILS[:3])
    cid = await campaign(db, clock, ws, list_id)
    mailer = pool(smtp_server.port)
    first = sender(db, clock, ws, mailer)
    await first.start(cid)
    async with db.session() as session:
        campaigns = Campaigns(session, ws)
        assert await campaigns.take_lease(await campaigns.get(cid), owner="other",
                                          now=clock.now(), lease_s=60)
    with pytest.raises(CampaignError, match="being sent by other"):
        await first.run(cid)
    clock.advance(seconds=61)
    assert (await first.run(cid)).counts == {"sent": 3}
    await mailer.close()


async def test_rows_left_sending_by_a_dead_sender_become_unknown_not_resent(
        db: Database, clock: FrozenClock, smtp_server: SmtpServerFixture) -> None:
    ws, list_id = await audience(db, clock, EMAILS[:5])
    cid = await campaign(db, clock, ws, list_id)
    mailer = pool(smtp_server.port)
    run = sender(db, clock, ws, mailer)
    await run.start(cid)
    async with db.session() as session:  # a sender claims two rows, then dies
        campaigns = Campaigns(session, ws)
        campaign_row = await campaigns.get(cid)
        await campaigns.take_lease(campaign_row, owner="dead", now=clock.now(), lease_s=30)
        await campaigns.claim(campaign_row, now=clock.now(), limit=2)
    clock.advance(seconds=31)
    progress = await run.run(cid)
    assert progress.counts == {"sent": 3, "unknown": 2} and progress.state == "done"
    assert await campaign_ops.resend_unknown(db, ws, cid, at=clock.now()) == 2
    progress = await run.run(cid)
    await mailer.close()
    assert progress.counts == {"sent": 5} and progress.state == "done"


async def test_a_broken_template_is_refused_at_start(
        db: Database, clock: FrozenClock, smtp_server: SmtpServerFixture) -> None:
    ws, list_id = await audience(db, clock, EMAILS[:2])
    cid = await campaign(db, clock, ws, list_id, subject="{{ ''.__class__.__mro__ }}")
    mailer = pool(smtp_server.port)
    with pytest.raises(CampaignError):
        await sender(db, clock, ws, mailer).run(cid)
    await mailer.close()
    assert smtp_server.recorder.messages == []
