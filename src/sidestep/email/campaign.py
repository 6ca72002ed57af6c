"""Sending a campaign: snapshot → claim → check suppression → render → sign → SMTP → record.

`CampaignSender.run` is the whole pipeline for one campaign. The recipient row is the job:

1. `start` moves the draft to `sending` and snapshots the segment (subscribed, not
   suppressed) into `campaign_recipient`, in one transaction.
2. Each batch is claimed (`pending`/`deferred` → `sending`, committed) before any mail
   goes out, then checked against the suppression list and the subscriber's current
   status *again*, right before sending: an unsubscribe that lands mid-campaign is obeyed.
3. Results are written in one transaction per batch: `sent`; `deferred` with a growing
   `next_at` (4xx, never a failure; after `max_attempts` it gives up as `failed`); `failed`
   (5xx; a hard bounce also suppresses the address); `unknown` (the line broke mid-DATA).

Exactly once, and where it cannot be: a row goes to `sending` before its message is handed
to SMTP and settles after the reply, so a resumed campaign never sends a settled row again.
If the process dies between the two, the rows of the batch in flight stay `sending`; the next
run (which must first take the campaign's lease, so only after the dead one's expires) marks
them `unknown` instead of resending, because SMTP offers no way to ask whether the server
got them. At most `batch_size` recipients can be in that state after a crash; `resend_unknown`
puts them back when the owner prefers a possible duplicate to a possible gap.

The error budget: when permanent failures plus unknown outcomes in one run reach the
campaign's `error_budget`, the campaign pauses itself with the reason, and an event
`campaign.error_budget_exhausted` tells the owner.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select

from sidestep.clock import Clock
from sidestep.email.links import UNSUBSCRIBE, preferences_url, sign_token, unsubscribe_url
from sidestep.email.message import (
    MessageError,
    OutgoingMessage,
    RecipientRef,
    build_message,
    recipient_tag,
)
from sidestep.email.smtp_pool import Outcome, SendResult
from sidestep.email.templates import CompiledTemplates, TemplateError, compile_templates, lint
from sidestep.store.campaigns import (
    CampaignError,
    Campaigns,
    CampaignState,
    RecipientState,
)
from sidestep.store.db import Database
from sidestep.store.events import record_event
from sidestep.store.subscribers import Subscribers, Suppressions
from sidestep.store.tables_campaign import Campaign, CampaignRecipient
from sidestep.store.tables_email import ListMembership, Subscriber, Suppression

__all__ = ["CampaignSender", "Mailer", "Progress", "SendSettings", "Signer", "tag_secret"]

_TAGS = re.compile(r"<[^>]+>")


class Mailer(Protocol):
    async def send(self, *, sender: str, recipient: str, message: bytes) -> SendResult: ...


Signer = Callable[[list[bytes]], Awaitable[list[bytes]]]


def tag_secret(links_secret: bytes) -> bytes:
    """The key of `X-Sidestep-Recipient` tags, derived so it signs nothing else."""
    import hashlib
    import hmac

    return hmac.new(links_secret, b"sidestep/recipient-tag/v1", hashlib.sha256).digest()


@dataclass(frozen=True, slots=True, kw_only=True)
class SendSettings:
    base_url: str
    links_secret: bytes = field(repr=False)
    bounce_address: str | None = None
    batch_size: int = 100
    lease_s: float = 120.0
    retry_base_s: float = 60.0
    retry_max_s: float = 3600.0
    max_attempts: int = 12
    # Prepare (render, sign) the next batch while this one is on the wire. Faster, but a
    # crash then also leaves the prepared batch `unknown` though none of it was sent.
    prefetch: bool = False
    # Group commit: the result writer gathers replies for up to this long (or until
    # `record_batch` are waiting) before one transaction. A crash can leave the replies of
    # that window `unknown` (never resent), as it can the messages on the wire.
    record_window_s: float = 0.05
    record_batch: int = 200


@dataclass(frozen=True, slots=True)
class Progress:
    state: str
    reason: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def finished(self) -> int:
        waiting = {RecipientState.PENDING, RecipientState.DEFERRED, RecipientState.SENDING}
        return sum(n for s, n in self.counts.items() if s not in waiting)


@dataclass
class _Prepared:
    row: CampaignRecipient
    message: bytes
    message_id: str


class CampaignSender:
    """Sends one workspace's campaigns through `mailer`, signing with `signer` if given."""

    def __init__(self, db: Database, *, workspace_id: int, mailer: Mailer,
                 settings: SendSettings, clock: Clock, signer: Signer | None = None,
                 owner: str | None = None) -> None:
        self.db = db
        self.workspace_id = workspace_id
        self.mailer = mailer
        self.settings = settings
        self.clock = clock
        self.signer = signer
        self.owner = owner or f"sender-{secrets.token_hex(4)}"
        self._tag_secret = tag_secret(settings.links_secret)

    async def start(self, campaign_id: int) -> int:
        """Draft → sending with its recipient snapshot; returns the number of recipients.

        Raises `CampaignError` for a campaign that is not a draft or whose templates do not
        compile (`TemplateError` is reported as the reason).
        """
        now = self.clock.now()
        async with self.db.session() as session:
            campaigns = Campaigns(session, self.workspace_id)
            campaign = await campaigns.get(campaign_id)
            errors = [p for p in lint(campaign.subject_tpl, campaign.html_tpl,
                                      campaign.text_tpl,
                                      known=["campaign"],
                                      sample_context=dict(campaign.context or {}))
                      if p.level == "error"]
            if errors:
                raise CampaignError("the campaign's templates have errors: " + "; ".join(
                    f"{p.part}: {p.message}" for p in errors))
            await campaigns.transition(campaign, CampaignState.SENDING, reason="started",
                                       at=now, started_at=now, failures_in_run=0)
            segment = Subscribers(session, self.workspace_id).segment(
                campaign.list_id, [str(t) for t in campaign.tags])
            return await campaigns.snapshot(campaign, segment, at=now)

    async def run(self, campaign_id: int, *, stop_when_idle: bool = True,
                  on_batch: Callable[[Progress], None] | None = None) -> Progress:
        """Send until nothing is due (or, with `stop_when_idle=False`, until nothing waits),
        the campaign is paused or cancelled (by anyone), or the error budget runs out.
        Starts a draft first. Returns the progress at the end."""
        async with self.db.session() as session:
            state = (await Campaigns(session, self.workspace_id).get(campaign_id)).state
        if state == CampaignState.DRAFT.value:
            await self.start(campaign_id)
        await self._take_over(campaign_id)
        in_flight: asyncio.Task[None] | None = None
        try:
            while True:
                batch = await self._claim(campaign_id)
                if batch is None:
                    break
                campaign, rows = batch
                if not rows:
                    if in_flight is not None:
                        await in_flight
                        in_flight = None
                        continue
                    wait_s = await self._finish_or_wait(campaign_id)
                    if wait_s is None or stop_when_idle:
                        break
                    await asyncio.sleep(min(wait_s, 30.0))
                    continue
                ready = await self._prepare_batch(campaign, rows)
                if in_flight is not None:
                    await in_flight
                    in_flight = None
                    if not await self._still_sending(campaign_id, rows):
                        break
                in_flight = asyncio.create_task(self._send_and_record(campaign, *ready))
                if not self.settings.prefetch:
                    await in_flight
                    in_flight = None
                if on_batch is not None:
                    on_batch(await self.progress(campaign_id))
        finally:
            if in_flight is not None:
                await in_flight
            async with self.db.session() as session:
                campaigns = Campaigns(session, self.workspace_id)
                await campaigns.release_lease(await campaigns.get(campaign_id), owner=self.owner)
        return await self.progress(campaign_id)

    async def _still_sending(self, campaign_id: int, claimed: list[CampaignRecipient]) -> bool:
        """After a prefetched batch: if the campaign was paused or cancelled meanwhile, put
        the rows claimed ahead (never handed to SMTP) back, and say so."""
        async with self.db.session() as session:
            campaigns = Campaigns(session, self.workspace_id)
            if (await campaigns.get(campaign_id)).state == CampaignState.SENDING.value:
                return True
            await campaigns.unclaim([r.id for r in claimed], at=self.clock.now())
            return False

    async def progress(self, campaign_id: int) -> Progress:
        async with self.db.session() as session:
            campaigns = Campaigns(session, self.workspace_id)
            campaign = await campaigns.get(campaign_id)
            return Progress(campaign.state, campaign.state_reason,
                            await campaigns.counts(campaign_id))

    async def _take_over(self, campaign_id: int) -> None:
        now = self.clock.now()
        async with self.db.session() as session:
            campaigns = Campaigns(session, self.workspace_id)
            campaign = await campaigns.get(campaign_id)
            if campaign.state != CampaignState.SENDING.value:
                raise CampaignError(f"campaign {campaign_id} is {campaign.state}, not sending;"
                                    " resume it first")
            if not await campaigns.take_lease(campaign, owner=self.owner, now=now,
                                              lease_s=self.settings.lease_s):
                raise CampaignError(f"campaign {campaign_id} is being sent by "
                                    f"{campaign.lease_owner} (lease until "
                                    f"{campaign.lease_expires_at:%H:%M:%S} UTC)")
            orphans = await campaigns.orphans_to_unknown(campaign, at=now)
            if orphans:
                await record_event(session, type="campaign.unknown_outcomes",
                                   workspace_id=self.workspace_id,
                                   payload={"campaign_id": campaign_id, "count": orphans},
                                   at=now)

    async def _claim(self, campaign_id: int) -> tuple[Campaign, list[CampaignRecipient]] | None:
        now = self.clock.now()
        async with self.db.session() as session:
            campaigns = Campaigns(session, self.workspace_id)
            campaign = await campaigns.get(campaign_id)
            if campaign.state != CampaignState.SENDING.value:
                return None
            if not await campaigns.take_lease(campaign, owner=self.owner, now=now,
                                              lease_s=self.settings.lease_s):
                return None
            rows = await campaigns.claim(campaign, now=now, limit=self.settings.batch_size)
            return campaign, rows

    async def _finish_or_wait(self, campaign_id: int) -> float | None:
        """Mark the campaign done if nothing waits; else seconds until the next due row."""
        now = self.clock.now()
        async with self.db.session() as session:
            campaigns = Campaigns(session, self.workspace_id)
            campaign = await campaigns.get(campaign_id)
            due = await campaigns.next_due(campaign)
            if due is not None:
                return max(0.0, (due - now).total_seconds())
            counts = await campaigns.counts(campaign_id)
            if counts.get(RecipientState.SENDING.value):
                return 1.0
            if campaign.state == CampaignState.SENDING.value:
                await campaigns.transition(campaign, CampaignState.DONE,
                                           reason=_summary(counts), at=now, finished_at=now)
            return None

    async def _prepare_batch(
            self, campaign: Campaign, rows: list[CampaignRecipient],
    ) -> tuple[str, list[_Prepared], list[bytes], list[dict[str, Any]]]:
        """Check, render, build and sign a claimed batch; nothing is sent here."""
        allowed = await self._still_allowed(campaign, rows)
        results: list[dict[str, Any]] = []
        prepared: list[_Prepared] = []
        templates = compile_templates(campaign.subject_tpl, campaign.html_tpl, campaign.text_tpl)
        for row in rows:
            subscriber = allowed.get(row.id)
            if subscriber is None:
                results.append(self._result(row, RecipientState.SKIPPED_SUPPRESSED, None,
                                            "suppressed or unsubscribed before sending"))
                continue
            try:
                prepared.append(self._prepare(campaign, row, subscriber, templates))
            except (TemplateError, MessageError) as exc:
                results.append(self._result(row, RecipientState.FAILED, None, str(exc)))
        messages = [p.message for p in prepared]
        if self.signer is not None and messages:
            messages = await self.signer(messages)
        sender = self.settings.bounce_address or campaign.from_email
        return sender, prepared, messages, results

    async def _send_and_record(self, campaign: Campaign, sender: str,
                               prepared: list[_Prepared], messages: list[bytes],
                               settled: list[dict[str, Any]]) -> None:
        """Send concurrently; a writer records results as they arrive (group commit).

        Why not once per batch: a result written only when the whole batch is done would
        leave messages the server already accepted in `sending` if the process died
        meanwhile, and they would come back `unknown`. Written in small groups as they
        arrive (one transaction per `record_window_s` or `record_batch` replies, whichever
        comes first), only the messages in flight or answered within that window at a crash
        are left uncertain; one commit per reply cost more than the sending itself.
        """
        buffer: list[tuple[dict[str, Any], tuple[str, str] | None]] = [
            (r, None) for r in settled]
        wake = asyncio.Event()
        wake.set()
        remaining = len(prepared)

        async def one(item: _Prepared, message: bytes) -> None:
            nonlocal remaining
            try:
                sent = await self.mailer.send(sender=sender, recipient=item.row.email,
                                              message=message)
                bounce = (item.row.email, sent.reply) if sent.hard_bounce else None
                buffer.append((self._settle(item, sent), bounce))
            finally:
                remaining -= 1
                wake.set()

        async def writer() -> None:
            window = self.settings.record_window_s
            while True:
                await wake.wait()
                wake.clear()
                if remaining and window > 0 and len(buffer) < self.settings.record_batch:
                    await asyncio.sleep(window)
                taken = buffer[:]
                del buffer[:]
                if taken:
                    await self._record(campaign, [r for r, _ in taken],
                                       [b for _, b in taken if b is not None])
                if remaining == 0 and not buffer:
                    return

        await asyncio.gather(writer(), *(one(p, m) for p, m in
                                         zip(prepared, messages, strict=True)))

    async def _still_allowed(self, campaign: Campaign,
                             rows: Sequence[CampaignRecipient]) -> dict[int, Subscriber]:
        """The rows that may still be mailed now, with their subscribers."""
        async with self.db.session() as session:
            # Snapshot addresses are the subscribers' stored (normalised) ones, so an exact
            # match is the suppression check; `suppressed_among` would re-validate each one.
            suppressed = set(await session.scalars(select(Suppression.email).where(
                Suppression.workspace_id == self.workspace_id,
                Suppression.email.in_([r.email for r in rows]))))
            ids = [r.subscriber_id for r in rows if r.subscriber_id is not None]
            subscribers = {s.id: s for s in await session.scalars(select(Subscriber).where(
                Subscriber.workspace_id == self.workspace_id, Subscriber.id.in_(ids)))}
            members: set[int] | None = None
            if campaign.list_id is not None:
                members = set(await session.scalars(select(ListMembership.subscriber_id).where(
                    ListMembership.list_id == campaign.list_id,
                    ListMembership.subscriber_id.in_(ids),
                    ListMembership.status == "subscribed")))
        allowed = {}
        for row in rows:
            subscriber = subscribers.get(row.subscriber_id or -1)
            if (subscriber is None or row.email in suppressed
                    or subscriber.status != "subscribed" or subscriber.email != row.email
                    or (members is not None and subscriber.id not in members)):
                continue
            allowed[row.id] = subscriber
        return allowed

    def _prepare(self, campaign: Campaign, row: CampaignRecipient, subscriber: Subscriber,
                 templates: CompiledTemplates) -> _Prepared:
        secret = self.settings.links_secret
        token = sign_token(secret, UNSUBSCRIBE, self.workspace_id, subscriber.id,
                           campaign.list_id)
        base = self.settings.base_url
        unsubscribe = unsubscribe_url(base, token)
        context = {**(campaign.context or {}), "unsubscribe_url": unsubscribe,
                   "preferences_url": preferences_url(base, token),
                   "campaign": {"name": campaign.name}}
        rendered = templates.render(subscriber, context)
        text = rendered.text or _TAGS.sub("", rendered.html)
        domain = campaign.from_email.rpartition("@")[2]
        message_id = f"<c{campaign.id}.r{row.id}.a{row.attempts}.{secrets.token_hex(4)}@{domain}>"
        raw, _ = build_message(OutgoingMessage(
            from_name=campaign.from_name, from_address=campaign.from_email,
            to_name=subscriber.name, to_address=row.email, subject=rendered.subject,
            text=text, html=rendered.html or None,
            unsubscribe_url=unsubscribe, date=self.clock.now(),
            reply_to=campaign.reply_to, message_id=message_id,
            tag=recipient_tag(self._tag_secret,
                              RecipientRef(self.workspace_id, campaign.id, row.id))))
        return _Prepared(row, raw, message_id)

    def _settle(self, item: _Prepared, sent: SendResult) -> dict[str, Any]:
        row = item.row
        if sent.outcome is Outcome.SENT:
            result = self._result(row, RecipientState.SENT, sent.code, sent.reply)
            result.update(message_id=item.message_id, sent_at=self.clock.now())
            return result
        if sent.outcome is Outcome.DEFERRED:
            if row.attempts >= self.settings.max_attempts:
                return self._result(row, RecipientState.FAILED, sent.code,
                                    f"still deferred after {row.attempts} attempts: "
                                    f"{sent.reply}")
            delay = min(self.settings.retry_max_s,
                        self.settings.retry_base_s * 2 ** max(0, row.attempts - 1))
            result = self._result(row, RecipientState.DEFERRED, sent.code, sent.reply)
            result["next_at"] = self.clock.now() + timedelta(seconds=delay)
            return result
        state = RecipientState.FAILED if sent.outcome is Outcome.FAILED else RecipientState.UNKNOWN
        result = self._result(row, state, sent.code, sent.reply)
        result["message_id"] = item.message_id
        return result

    def _result(self, row: CampaignRecipient, state: RecipientState, code: int | None,
                reply: str) -> dict[str, Any]:
        now = self.clock.now()
        return {"rid": row.id, "new_state": state.value, "next_at": row.next_at, "code": code,
                "reply": reply[:500], "message_id": row.message_id, "sent_at": None, "at": now}

    async def _record(self, campaign: Campaign, results: list[dict[str, Any]],
                      hard: list[tuple[str, str]]) -> None:
        now = self.clock.now()
        failures = sum(1 for r in results if r["new_state"] in (
            RecipientState.FAILED.value, RecipientState.UNKNOWN.value)
            and not str(r["reply"]).startswith("still deferred"))
        async with self.db.session() as session:
            campaigns = Campaigns(session, self.workspace_id)
            await campaigns.record_results(results)
            suppressions = Suppressions(session, self.workspace_id)
            for email, reply in hard:
                await suppressions.suppress(email, "hard_bounce", reply[:300], at=now)
            if not failures:
                return
            total = await campaigns.add_failures(campaign, failures)
            fresh = await campaigns.get(campaign.id)
            if total >= fresh.error_budget and fresh.state == CampaignState.SENDING.value:
                reason = (f"paused by its error budget: {total} permanent failures or unknown "
                          f"outcomes in this run (budget {fresh.error_budget}); check the "
                          "last replies, then resume")
                await campaigns.transition(fresh, CampaignState.PAUSED, reason=reason, at=now)
                await record_event(session, type="campaign.error_budget_exhausted",
                                   workspace_id=self.workspace_id,
                                   payload={"campaign_id": campaign.id, "failures": total,
                                            "budget": fresh.error_budget}, at=now)


def _summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


async def pause(db: Database, workspace_id: int, campaign_id: int, *, at: datetime,
                reason: str = "paused by a person") -> None:
    async with db.session() as session:
        campaigns = Campaigns(session, workspace_id)
        await campaigns.transition(await campaigns.get(campaign_id), CampaignState.PAUSED,
                                   reason=reason, at=at)


async def resume(db: Database, workspace_id: int, campaign_id: int, *, at: datetime) -> None:
    """Paused → sending with a fresh error budget (a sender must then `run` it)."""
    async with db.session() as session:
        campaigns = Campaigns(session, workspace_id)
        await campaigns.transition(await campaigns.get(campaign_id), CampaignState.SENDING,
                                   reason="resumed", at=at, failures_in_run=0)


async def cancel(db: Database, workspace_id: int, campaign_id: int, *, at: datetime) -> int:
    """Cancel the campaign and every recipient still waiting; returns how many were waiting."""
    async with db.session() as session:
        campaigns = Campaigns(session, workspace_id)
        campaign = await campaigns.get(campaign_id)
        await campaigns.transition(campaign, CampaignState.CANCELLED, reason="cancelled",
                                   at=at, finished_at=at)
        return await campaigns.cancel_waiting(campaign, at=at)


async def resend_unknown(db: Database, workspace_id: int, campaign_id: int, *,
                         at: datetime) -> int:
    """Put unknown outcomes back in the queue (possible duplicates, the owner's choice)."""
    async with db.session() as session:
        campaigns = Campaigns(session, workspace_id)
        campaign = await campaigns.get(campaign_id)
        count = await campaigns.resend_unknown(campaign, at=at)
        if count and campaign.state == CampaignState.DONE.value:
            await campaigns.transition(campaign, CampaignState.SENDING,
                                       reason=f"{count} unknown outcomes resent", at=at)
        return count
