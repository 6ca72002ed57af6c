"""Bounce and complaint reports in the formats real mail systems send (a Postfix DSN, a Gmail
style DSN without our tag, an RFC 5965 ARF report), parsed and applied. No IMAP server runs
here, so `fetch_imap` is not exercised; the webhook path is in test_campaign_pages.py."""

from __future__ import annotations

from datetime import UTC, datetime

from sidestep.clock import FrozenClock
from sidestep.email.bounces import SOFT_BOUNCE_LIMIT, apply_report, parse_report
from sidestep.email.campaign import tag_secret
from sidestep.email.message import RecipientRef, recipient_tag
from sidestep.store.campaigns import Campaigns
from sidestep.store.db import Database
from sidestep.store.subscribers import Subscribers, Suppressions

from .campaign_helpers import SECRET, audience, campaign, pool, sender
from .conftest import SmtpServerFixture

KEY = tag_secret(SECRET)


def postfix_dsn(*, recipient: str, status: str, action: str = "failed",
                diagnostic: str = "smtp; 550 5.1.1 <x>: Recipient address rejected: User unknown",
                tag: str = "", message_id: str = "<c1.r1.a1.ab@brand.example>") -> bytes:
    tag_line = f"X-Sidestep-Recipient: {tag}\n" if tag else ""
    return f"""Return-Path: <>
Received: by mail.brand.example (Postfix) id 4F1C2; Mon, 23 Nov 2026 12:01:02 +0000 (UTC)
Date: Mon, 23 Nov 2026 12:01:02 +0000 (UTC)
From: MAILER-DAEMON@mail.brand.example (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: bounces@brand.example
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="4F1C2.1795440062/mail.brand.example"
Message-Id: <20261123120102.4F1C2@mail.brand.example>

This is a MIME-encapsulated message.

--4F1C2.1795440062/mail.brand.example
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mail.brand.example.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<{recipient}>: host mx.example.org[192.0.2.1] said: 550 5.1.1 User unknown

--4F1C2.1795440062/mail.brand.example
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.brand.example
X-Postfix-Queue-ID: 4F1C2
X-Postfix-Sender: rfc822; bounces@brand.example
Arrival-Date: Mon, 23 Nov 2026 12:01:00 +0000 (UTC)

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: {action}
Status: {status}
Remote-MTA: dns; mx.example.org
Diagnostic-Code: {diagnostic}

--4F1C2.1795440062/mail.brand.example
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: Brand <news@brand.example>
To: Person <{recipient}>
Subject: News
Message-ID: {message_id}
{tag_line}
--4F1C2.1795440062/mail.brand.example--
""".replace("\n", "\r\n").encode()


def arf(*, recipient: str, tag: str = "") -> bytes:
    tag_line = f"X-Sidestep-Recipient: {tag}\n" if tag else ""
    return f"""From: <abuse@mail.example.net>
Date: Thu, 8 Mar 2005 17:40:36 EDT
Subject: FW: Earn money
To: <abuse@brand.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
     boundary="part1_13d.2e68ed54_boundary"

--part1_13d.2e68ed54_boundary
Content-Type: text/plain; charset="US-ASCII"
Content-Transfer-Encoding: 7bit

This is an email abuse report for an email message received from IP
192.0.2.1 on Thu, 8 Mar 2005 14:00:00 EDT.

--part1_13d.2e68ed54_boundary
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeGenerator/1.0
Version: 1
Original-Mail-From: <bounces@brand.example>
Original-Rcpt-To: <{recipient}>
Received-Date: Thu, 8 Mar 2005 14:00:00 EDT
Source-IP: 192.0.2.1
Reported-Domain: brand.example
Reporting-MTA: dns; mail.example.net

--part1_13d.2e68ed54_boundary
Content-Type: message/rfc822
Content-Disposition: inline

From: <news@brand.example>
Received: from mailserver.example.net by example.com with ESMTP
To: <{recipient}>
Subject: News
MIME-Version: 1.0
Message-ID: <8787KJKJ3K4J3K4J3K4J3.mail@brand.example>
{tag_line}Date: Thu, 02 Sep 2004 12:31:03 -0500
Content-Type: text/plain

Hello
--part1_13d.2e68ed54_boundary--
""".replace("\n", "\r\n").encode()


def test_it_reads_a_postfix_hard_bounce() -> None:
    report = parse_report(postfix_dsn(recipient="gone@example.org", status="5.1.1", tag="1.2.3.x"))
    assert (report.kind, report.address, report.status) == ("hard", "gone@example.org", "5.1.1")
    assert "User unknown" in report.detail
    assert report.tag == "1.2.3.x" and report.message_id == "<c1.r1.a1.ab@brand.example>"


def test_mailbox_full_and_policy_refusals_are_soft_and_delays_are_ignored() -> None:
    assert parse_report(postfix_dsn(recipient="a@example.org", status="5.2.2",
                                    diagnostic="smtp; 552 5.2.2 Mailbox full")).kind == "soft"
    assert parse_report(postfix_dsn(recipient="a@example.org", status="4.4.1")).kind == "soft"
    assert parse_report(postfix_dsn(recipient="a@example.org", status="4.4.1",
                                    action="delayed")).kind == "ignored"


def test_it_reads_an_arf_complaint() -> None:
    report = parse_report(arf(recipient="angry@example.org", tag="9.9.9.x"))
    assert (report.kind, report.address, report.status) == ("complaint", "angry@example.org",
                                                            "abuse")
    assert report.tag == "9.9.9.x"


def test_other_mail_and_garbage_are_ignored() -> None:
    assert parse_report(b"From: a@b.example\r\nSubject: hi\r\n\r\nout of office").kind == "ignored"
    assert parse_report(b"\x00\xff garbage").kind == "ignored"
    assert parse_report(b"Content-Type: multipart/report; boundary=x\r\n\r\n--x--").kind \
        == "ignored"


async def test_bounces_and_complaints_suppress_and_soft_bounces_count(
        db: Database, clock: FrozenClock, smtp_server: SmtpServerFixture) -> None:
    emails = ["a@example.org", "b@example.org", "c@example.org"]
    ws, list_id = await audience(db, clock, emails)
    cid = await campaign(db, clock, ws, list_id)
    mailer = pool(smtp_server.port)
    await sender(db, clock, ws, mailer).run(cid)
    await mailer.close()
    async with db.session() as session:
        rows = {r.email: r for r in await Campaigns(session, ws).recipients(cid)}
    tag_a = recipient_tag(KEY, RecipientRef(ws, cid, rows["a@example.org"].id))
    now = datetime(2026, 11, 23, 13, tzinfo=UTC)
    async with db.session() as session:
        # The tag names the row even when the DSN's recipient is rewritten by a forwarder.
        done = await apply_report(session, workspace_id=ws, tag_key=KEY, at=now, report=parse_report(
            postfix_dsn(recipient="forwarded@elsewhere.example", status="5.1.1", tag=tag_a)))
        assert done == "suppressed (hard bounce)"
        assert await apply_report(session, workspace_id=ws, tag_key=KEY, at=now,
                                  report=parse_report(arf(recipient="b@example.org"))) \
            == "suppressed (complaint)"
        for _ in range(SOFT_BOUNCE_LIMIT - 1):
            await apply_report(session, workspace_id=ws, tag_key=KEY, at=now, report=parse_report(
                postfix_dsn(recipient="c@example.org", status="4.2.2")))
        assert not await Suppressions(session, ws).is_suppressed("c@example.org")
        await apply_report(session, workspace_id=ws, tag_key=KEY, at=now, report=parse_report(
            postfix_dsn(recipient="c@example.org", status="4.2.2")))
        suppressions = Suppressions(session, ws)
        assert await suppressions.is_suppressed("a@example.org")
        assert (await suppressions.get("b@example.org")).reason == "complaint"  # type: ignore[union-attr]
        assert await suppressions.is_suppressed("c@example.org")
        assert not await suppressions.is_suppressed("forwarded@elsewhere.example")
        c = await Subscribers(session, ws).find_by_email("c@example.org")
        assert c is not None and c.soft_bounces == SOFT_BOUNCE_LIMIT


async def test_a_forged_or_foreign_report_suppresses_nobody(
        db: Database, clock: FrozenClock) -> None:
    ws, _ = await audience(db, clock, ["a@example.org"])
    forged = recipient_tag(b"not our key" * 3, RecipientRef(ws, 1, 1))
    async with db.session() as session:
        done = await apply_report(session, workspace_id=ws, tag_key=KEY, at=clock.now(),
                                  report=parse_report(postfix_dsn(
                                      recipient="stranger@example.org", status="5.1.1",
                                      tag=forged)))
        assert done.startswith("ignored")
        assert not await Suppressions(session, ws).is_suppressed("stranger@example.org")
