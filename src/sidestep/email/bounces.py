"""Bounces (RFC 3464 delivery status notifications) and complaints (RFC 5965 ARF reports).

`parse_report(raw)` reads one report message into a `Report`: what kind (`hard`, `soft`,
`complaint`, or `ignored` for delays and successes), which address, the status and the
diagnostic, and, when the returned headers carry it, our signed `X-Sidestep-Recipient` tag and
the Message-ID. `apply_report` acts on it for one workspace: a hard bounce or a complaint
suppresses the address; a soft bounce counts against the subscriber, and `SOFT_BOUNCE_LIMIT`
of them in a row suppress it as a hard bounce would. Addresses are matched through the signed
tag first; a report without one is applied only to an address that is this workspace's
subscriber, so a forged report can at most suppress an address nobody here mails.

Reports come from an IMAP mailbox (`fetch_imap`, the stdlib client in a worker thread) or
are POSTed one per request to the webhook in `sidestep.web.campaign_pages`.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
import hmac
import imaplib
import re
from dataclasses import dataclass
from datetime import datetime
from email.message import Message

from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.email.message import TAG_HEADER, read_recipient_tag
from sidestep.store.events import record_event
from sidestep.store.subscribers import Subscribers, Suppressions
from sidestep.store.tables_campaign import Campaign, CampaignRecipient

__all__ = ["Report", "apply_report", "fetch_imap", "parse_report", "webhook_secret"]

SOFT_BOUNCE_LIMIT = 5
MAX_REPORT_BYTES = 2 * 1024 * 1024
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_HARD_STATUS = {("1", "1"), ("1", "2"), ("1", "3"), ("1", "6"), ("1", "10")}


@dataclass(frozen=True, slots=True)
class Report:
    kind: str  # hard, soft, complaint, ignored
    address: str | None
    status: str
    detail: str
    tag: str | None
    message_id: str | None


def webhook_secret(links_secret: bytes, workspace_id: int) -> str:
    """The bearer secret of a workspace's bounce webhook (derived, so nothing is stored)."""
    mac = hmac.new(links_secret, f"sidestep/bounce-webhook/{workspace_id}".encode(),
                   hashlib.sha256)
    return mac.hexdigest()


def _fields(part: Message) -> list[Message]:
    """The field groups of a message/delivery-status or feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):  # the parser splits delivery-status into header blocks
        return [p for p in payload if isinstance(p, Message)]
    text = payload if isinstance(payload, str) else ""
    return [email.message_from_string(block + "\n")
            for block in re.split(r"\r?\n\r?\n", text.strip()) if block.strip()]


def _address(value: str | None) -> str | None:
    if not value:
        return None
    value = value.split(";", 1)[-1].strip().strip("<>").strip()
    return value or None


def _original_headers(msg: Message) -> Message | None:
    for part in msg.walk():
        kind = part.get_content_type()
        if kind in ("message/rfc822", "message/global"):
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                return inner[0]
        if kind in ("text/rfc822-headers", "message/rfc822-headers"):
            text = part.get_payload(decode=True)
            if isinstance(text, bytes):
                return email.message_from_bytes(text)
    return None


def parse_report(raw: bytes) -> Report:
    """Read one DSN or ARF report; anything else is `ignored` with the reason in `detail`."""
    if len(raw) > MAX_REPORT_BYTES:
        return Report("ignored", None, "", "the report is larger than 2 MB", None, None)
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    original = _original_headers(msg)
    tag = original.get(TAG_HEADER) if original is not None else None
    message_id = original.get("Message-ID") if original is not None else None
    tag = str(tag).strip() if tag else None
    message_id = str(message_id).strip() if message_id else None
    for part in msg.walk():
        kind = part.get_content_type()
        if kind == "message/feedback-report":
            groups = _fields(part)
            first = groups[0] if groups else Message()
            address = _address(first.get("Original-Rcpt-To"))
            if address is None and original is not None:
                address = _address(str(original.get("To", "")).rpartition("<")[2])
            feedback = str(first.get("Feedback-Type", "abuse")).strip().lower()
            return Report("complaint", address, feedback,
                          f"complaint ({feedback}) from {first.get('Reporting-MTA', '?')}",
                          tag, message_id)
        if kind in ("message/delivery-status", "message/global-delivery-status"):
            return _from_delivery_status(_fields(part), tag, message_id)
    return Report("ignored", None, "", "not a delivery status or feedback report", tag,
                  message_id)


def _from_delivery_status(groups: list[Message], tag: str | None,
                          message_id: str | None) -> Report:
    for group in groups[1:] or groups:  # the first group is per-message, then per-recipient
        action = str(group.get("Action", "")).strip().lower()
        status = str(group.get("Status", "")).strip()
        if not action and not status:
            continue
        address = _address(group.get("Final-Recipient") or group.get("Original-Recipient"))
        diagnostic = " ".join(str(group.get("Diagnostic-Code", "")).split())[:500]
        match = _STATUS.search(status)
        if action in ("delivered", "relayed", "expanded", "delayed"):
            return Report("ignored", address, status, f"action {action}: not a bounce", tag,
                          message_id)
        if match is None:
            return Report("soft", address, status, diagnostic or "failed, no status", tag,
                          message_id)
        hard = match.group(1) == "5" and (match.group(2), match.group(3)) in _HARD_STATUS
        return Report("hard" if hard else "soft", address, status, diagnostic, tag,
                      message_id)
    return Report("ignored", None, "", "no per-recipient status in the report", tag,
                  message_id)


async def apply_report(session: AsyncSession, *, workspace_id: int, report: Report,
                       tag_key: bytes, at: datetime) -> str:
    """Act on `report` for `workspace_id`; returns what was done, in a few words."""
    if report.kind == "ignored":
        return f"ignored: {report.detail}"
    address = await _trusted_address(session, workspace_id, report, tag_key)
    if address is None:
        return "ignored: the report names no recipient of this workspace"
    suppressions = Suppressions(session, workspace_id)
    detail = f"{report.status} {report.detail}".strip()[:500]
    if report.kind == "complaint":
        await suppressions.suppress(address, "complaint", detail, at=at)
        done = "suppressed (complaint)"
    elif report.kind == "hard":
        await suppressions.suppress(address, "hard_bounce", detail, at=at)
        done = "suppressed (hard bounce)"
    else:
        subscriber = await Subscribers(session, workspace_id).find_by_email(address)
        count = 0
        if subscriber is not None:
            subscriber.soft_bounces += 1
            subscriber.updated_at = at
            count = subscriber.soft_bounces
        if count >= SOFT_BOUNCE_LIMIT:
            await suppressions.suppress(address, "hard_bounce",
                                        f"{count} soft bounces; last: {detail}", at=at)
            done = f"suppressed after {count} soft bounces"
        else:
            done = f"soft bounce counted ({count})"
    await record_event(session, type=f"email.{report.kind}", workspace_id=workspace_id,
                       payload={"status": report.status, "done": done}, at=at)
    return done


async def _trusted_address(session: AsyncSession, workspace_id: int, report: Report,
                           tag_key: bytes) -> str | None:
    if report.tag:
        ref = read_recipient_tag(tag_key, report.tag)
        if ref is not None and ref.workspace_id == workspace_id:
            row = await session.get(CampaignRecipient, ref.recipient_id)
            campaign = await session.get(Campaign, ref.campaign_id)
            if row is not None and campaign is not None and row.campaign_id == campaign.id \
                    and campaign.workspace_id == workspace_id:
                return row.email
    if report.address:
        subscriber = await Subscribers(session, workspace_id).find_by_email(report.address)
        if subscriber is not None:
            return subscriber.email
    return None


async def fetch_imap(*, host: str, port: int, username: str, password: str,
                     mailbox: str = "INBOX", limit: int = 200) -> list[tuple[bytes, bytes]]:
    """Unseen messages of `mailbox` over IMAPS as (uid, raw) pairs; they are marked seen by
    the fetch. Runs the stdlib client in a thread (one short session per call)."""

    def fetch() -> list[tuple[bytes, bytes]]:
        found: list[tuple[bytes, bytes]] = []
        with imaplib.IMAP4_SSL(host, port, timeout=30) as client:
            client.login(username, password)
            client.select(mailbox)
            _, data = client.uid("search", None, "UNSEEN")  # type: ignore[arg-type]
            for uid in (data[0] or b"").split()[:limit]:
                _, parts = client.uid("fetch", uid.decode(), "(RFC822)")
                for part in parts:
                    if isinstance(part, tuple):
                        found.append((uid, part[1]))
        return found

    return await asyncio.to_thread(fetch)
