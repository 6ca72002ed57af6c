"""Campaigns and their recipient snapshots: the named queries the sender uses.

Every campaign state change is a compare-and-set on the state read (`StaleState` if another
process moved it first) with an event row in the same transaction. Recipient rows are the
unit of work: `claim` moves due rows to `sending` (one statement, so two senders never take
the same row), `record_results` settles only rows still in `sending`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.email.dkim import DkimAlgorithm, DkimKey
from sidestep.email.smtp_pool import SmtpServer
from sidestep.store.events import record_event
from sidestep.store.tables_campaign import Campaign, CampaignRecipient, DkimKeyRow, SmtpServerRow
from sidestep.store.tables_email import Subscriber
from sidestep.vault import Vault

__all__ = [
    "CAMPAIGN_TRANSITIONS",
    "CampaignError",
    "CampaignState",
    "Campaigns",
    "NewCampaign",
    "RecipientState",
    "SendingSetup",
    "StaleCampaign",
]


class CampaignError(ValueError):
    """A campaign cannot be created or changed as asked; the text says why."""


class StaleCampaign(CampaignError):
    """The campaign changed state (or is held by another sender) since it was read."""


class CampaignState(StrEnum):
    DRAFT = "draft"
    SENDING = "sending"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    DONE = "done"
    FAILED = "failed"


class RecipientState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    # The connection broke while the message was in flight, or the sender died holding the
    # row: the server may have it. Never resent automatically; see `resend_unknown`.
    UNKNOWN = "unknown"
    SKIPPED_SUPPRESSED = "skipped_suppressed"
    CANCELLED = "cancelled"


_C = CampaignState
CAMPAIGN_TRANSITIONS: dict[CampaignState, frozenset[CampaignState]] = {
    _C.DRAFT: frozenset({_C.SENDING, _C.CANCELLED, _C.FAILED}),
    _C.SENDING: frozenset({_C.PAUSED, _C.CANCELLED, _C.DONE, _C.FAILED}),
    _C.PAUSED: frozenset({_C.SENDING, _C.CANCELLED}),
    _C.DONE: frozenset({_C.SENDING}),  # only to resend unknown outcomes a person chose
    _C.CANCELLED: frozenset(),
    _C.FAILED: frozenset(),
}
_WAITING = (RecipientState.PENDING.value, RecipientState.DEFERRED.value)


@dataclass(frozen=True, slots=True, kw_only=True)
class NewCampaign:
    name: str
    subject_tpl: str
    html_tpl: str
    text_tpl: str
    from_name: str
    from_email: str
    list_id: int | None = None
    tags: Sequence[str] = ()
    reply_to: str | None = None
    error_budget: int = 50
    context: Mapping[str, Any] | None = None


class Campaigns:
    """Campaigns of one workspace; an id from another workspace is "not found"."""

    def __init__(self, session: AsyncSession, workspace_id: int) -> None:
        self.session = session
        self.workspace_id = workspace_id

    async def create(self, new: NewCampaign, *, at: datetime) -> Campaign:
        if not new.name.strip():
            raise CampaignError("a campaign needs a name")
        if new.error_budget < 1:
            raise CampaignError("the error budget must be at least 1")
        row = Campaign(
            workspace_id=self.workspace_id, name=new.name.strip()[:200], list_id=new.list_id,
            tags=list(new.tags), context=dict(new.context or {}), subject_tpl=new.subject_tpl,
            html_tpl=new.html_tpl,
            text_tpl=new.text_tpl, from_name=new.from_name, from_email=new.from_email,
            reply_to=new.reply_to, state=CampaignState.DRAFT.value, state_reason="",
            error_budget=new.error_budget, failures_in_run=0, created_at=at, updated_at=at)
        self.session.add(row)
        await self.session.flush()
        await record_event(self.session, type="campaign.created", workspace_id=self.workspace_id,
                           payload={"campaign_id": row.id}, at=at)
        return row

    async def get(self, campaign_id: int) -> Campaign:
        row = await self.session.scalar(select(Campaign).where(
            Campaign.id == campaign_id, Campaign.workspace_id == self.workspace_id))
        if row is None:
            raise CampaignError(f"no campaign {campaign_id} in this workspace")
        return row

    async def all(self, *, limit: int = 100) -> list[Campaign]:
        return list(await self.session.scalars(select(Campaign).where(
            Campaign.workspace_id == self.workspace_id).order_by(Campaign.id.desc()).limit(limit)))

    async def update_draft(self, campaign: Campaign, changes: Mapping[str, Any], *,
                           at: datetime) -> None:
        if campaign.state != CampaignState.DRAFT.value:
            raise CampaignError("only a draft can be edited; this campaign is "
                                f"{campaign.state}")
        for key, value in changes.items():
            setattr(campaign, key, value)
        campaign.updated_at = at

    async def transition(self, campaign: Campaign, new: CampaignState, *, reason: str,
                         at: datetime, **values: Any) -> None:
        """Move `campaign` to `new` if it is still in the state read; raise `CampaignError`
        for a move the lifecycle forbids and `StaleCampaign` if it changed meanwhile."""
        old = CampaignState(campaign.state)
        if new not in CAMPAIGN_TRANSITIONS[old]:
            raise CampaignError(f"a campaign cannot go from {old} to {new}")
        result = await self.session.execute(
            update(Campaign).where(Campaign.id == campaign.id, Campaign.state == old.value)
            .values(state=new.value, state_reason=reason[:500], updated_at=at, **values)
            .execution_options(synchronize_session=False))
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise StaleCampaign(f"campaign {campaign.id} changed meanwhile; reload it")
        await self.session.refresh(campaign)
        await record_event(self.session, type=f"campaign.{new.value}",
                           workspace_id=self.workspace_id,
                           payload={"campaign_id": campaign.id, "old": old.value,
                                    "reason": reason[:500]}, at=at)

    async def take_lease(self, campaign: Campaign, *, owner: str, now: datetime,
                         lease_s: float) -> bool:
        """Hold the campaign for `owner` until now + lease_s; False if another holds it."""
        result = await self.session.execute(
            update(Campaign).where(
                Campaign.id == campaign.id,
                or_(Campaign.lease_owner.is_(None), Campaign.lease_owner == owner,
                    Campaign.lease_expires_at < now))
            .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_s))
            .execution_options(synchronize_session=False))
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def release_lease(self, campaign: Campaign, *, owner: str) -> None:
        await self.session.execute(
            update(Campaign).where(Campaign.id == campaign.id, Campaign.lease_owner == owner)
            .values(lease_owner=None, lease_expires_at=None)
            .execution_options(synchronize_session=False))

    async def snapshot(self, campaign: Campaign, subscribers: AsyncIterator[Subscriber], *,
                       at: datetime, chunk: int = 1000) -> int:
        """Insert one `pending` row per subscriber; returns how many. Run in the transaction
        that moves the campaign to `sending`, so a crash leaves either all rows or none."""
        count = 0
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        async for subscriber in subscribers:
            if subscriber.email in seen:
                continue
            seen.add(subscriber.email)
            rows.append({"campaign_id": campaign.id, "subscriber_id": subscriber.id,
                         "email": subscriber.email, "state": RecipientState.PENDING.value,
                         "attempts": 0, "next_at": at, "updated_at": at})
            if len(rows) >= chunk:
                await self.session.execute(insert(CampaignRecipient), rows)
                count += len(rows)
                rows = []
        if rows:
            await self.session.execute(insert(CampaignRecipient), rows)
            count += len(rows)
        return count

    async def claim(self, campaign: Campaign, *, now: datetime,
                    limit: int) -> list[CampaignRecipient]:
        """Move up to `limit` due pending/deferred rows to `sending` and return them.

        PostgreSQL picks with `FOR UPDATE SKIP LOCKED`; SQLite runs one UPDATE ... RETURNING
        (one writer at a time, so the statement is atomic). The outer state condition is the
        compare-and-set either way. Served by `ix_campaign_recipient_work`.
        """
        pick = (select(CampaignRecipient.id)
                .where(CampaignRecipient.campaign_id == campaign.id,
                       CampaignRecipient.state.in_(_WAITING), CampaignRecipient.next_at <= now)
                .order_by(CampaignRecipient.next_at, CampaignRecipient.id).limit(limit))
        if self.session.get_bind().dialect.name == "postgresql":
            ids = list(await self.session.scalars(pick.with_for_update(skip_locked=True)))
            if not ids:
                return []
            chosen = CampaignRecipient.id.in_(ids)
        else:
            chosen = CampaignRecipient.id.in_(pick.scalar_subquery())
        statement = (update(CampaignRecipient)
                     .where(chosen, CampaignRecipient.state.in_(_WAITING))
                     .values(state=RecipientState.SENDING.value,
                             attempts=CampaignRecipient.attempts + 1, updated_at=now)
                     .returning(CampaignRecipient)
                     .execution_options(synchronize_session=False, populate_existing=True))
        return sorted((await self.session.scalars(statement)).all(), key=lambda r: r.id)

    async def record_results(self, results: Sequence[Mapping[str, Any]]) -> int:
        """Settle rows still in `sending`. Each result has rid, new_state, next_at, code,
        reply, message_id, sent_at, at. Returns how many rows changed."""
        if not results:
            return 0
        statement = (
            update(CampaignRecipient.__table__)  # type: ignore[arg-type]
            .where(CampaignRecipient.__table__.c.id == bindparam("rid"),
                   CampaignRecipient.__table__.c.state == RecipientState.SENDING.value)
            .values(state=bindparam("new_state"), next_at=bindparam("next_at"),
                    last_code=bindparam("code"), last_reply=bindparam("reply"),
                    message_id=bindparam("message_id"), sent_at=bindparam("sent_at"),
                    updated_at=bindparam("at")))
        result = await self.session.execute(statement, list(results))
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def unclaim(self, ids: Sequence[int], *, at: datetime) -> int:
        """Rows claimed but never handed to SMTP go back to `pending` (attempt uncounted)."""
        if not ids:
            return 0
        result = await self.session.execute(
            update(CampaignRecipient)
            .where(CampaignRecipient.id.in_(list(ids)),
                   CampaignRecipient.state == RecipientState.SENDING.value)
            .values(state=RecipientState.PENDING.value, attempts=CampaignRecipient.attempts - 1,
                    updated_at=at)
            .execution_options(synchronize_session=False))
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def orphans_to_unknown(self, campaign: Campaign, *, at: datetime) -> int:
        """Rows a dead sender left in `sending` become `unknown`; returns how many."""
        result = await self.session.execute(
            update(CampaignRecipient)
            .where(CampaignRecipient.campaign_id == campaign.id,
                   CampaignRecipient.state == RecipientState.SENDING.value)
            .values(state=RecipientState.UNKNOWN.value, updated_at=at,
                    last_reply="the sender stopped while this message was being sent; "
                               "it may or may not have been delivered")
            .execution_options(synchronize_session=False))
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def cancel_waiting(self, campaign: Campaign, *, at: datetime) -> int:
        result = await self.session.execute(
            update(CampaignRecipient)
            .where(CampaignRecipient.campaign_id == campaign.id,
                   CampaignRecipient.state.in_(_WAITING))
            .values(state=RecipientState.CANCELLED.value, updated_at=at)
            .execution_options(synchronize_session=False))
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def resend_unknown(self, campaign: Campaign, *, at: datetime) -> int:
        """Put `unknown` rows back to `pending`: a person accepts a possible duplicate."""
        result = await self.session.execute(
            update(CampaignRecipient)
            .where(CampaignRecipient.campaign_id == campaign.id,
                   CampaignRecipient.state == RecipientState.UNKNOWN.value)
            .values(state=RecipientState.PENDING.value, next_at=at, updated_at=at)
            .execution_options(synchronize_session=False))
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def counts(self, campaign_id: int) -> dict[str, int]:
        rows = await self.session.execute(
            select(CampaignRecipient.state, func.count()).where(
                CampaignRecipient.campaign_id == campaign_id).group_by(CampaignRecipient.state))
        return {state: int(n) for state, n in rows.all()}

    async def next_due(self, campaign: Campaign) -> datetime | None:
        return await self.session.scalar(select(func.min(CampaignRecipient.next_at)).where(
            CampaignRecipient.campaign_id == campaign.id,
            CampaignRecipient.state.in_(_WAITING)))

    async def recipients(self, campaign_id: int, *, state: str | None = None,
                         limit: int = 100) -> list[CampaignRecipient]:
        query = select(CampaignRecipient).where(CampaignRecipient.campaign_id == campaign_id)
        if state:
            query = query.where(CampaignRecipient.state == state)
        return list(await self.session.scalars(query.order_by(CampaignRecipient.id)
                                               .limit(limit)))

    async def add_failures(self, campaign: Campaign, count: int) -> int:
        """Add to the run's failure count; returns the new total."""
        await self.session.execute(
            update(Campaign).where(Campaign.id == campaign.id)
            .values(failures_in_run=Campaign.failures_in_run + count)
            .execution_options(synchronize_session=False))
        total = await self.session.scalar(select(Campaign.failures_in_run).where(
            Campaign.id == campaign.id))
        return int(total or 0)


class SendingSetup:
    """A workspace's DKIM keys and SMTP servers; secrets pass through the vault only."""

    def __init__(self, session: AsyncSession, workspace_id: int, vault: Vault) -> None:
        self.session = session
        self.workspace_id = workspace_id
        self.vault = vault

    async def add_dkim_key(self, key: DkimKey, *, at: datetime) -> DkimKeyRow:
        row = DkimKeyRow(workspace_id=self.workspace_id, domain=key.domain,
                         selector=key.selector, algorithm=key.algorithm.value,
                         private_key_encrypted=self.vault.encrypt(
                             {"pem": key.private_pem.decode()}), created_at=at)
        self.session.add(row)
        await self.session.flush()
        return row

    async def dkim_keys(self, domain: str) -> list[DkimKey]:
        rows = await self.session.scalars(select(DkimKeyRow).where(
            DkimKeyRow.workspace_id == self.workspace_id, DkimKeyRow.domain == domain.lower())
            .order_by(DkimKeyRow.id.desc()))
        keys: dict[str, DkimKey] = {}
        for row in rows:  # the newest key of each algorithm
            keys.setdefault(row.algorithm, DkimKey(
                row.domain, row.selector, DkimAlgorithm(row.algorithm),
                self.vault.decrypt(row.private_key_encrypted)["pem"].encode()))
        return list(keys.values())

    async def add_server(self, server: SmtpServer, *, priority: int, at: datetime) -> None:
        sealed = self.vault.encrypt({"password": server.password}) if server.password else None
        self.session.add(SmtpServerRow(
            workspace_id=self.workspace_id, priority=priority, host=server.host,
            port=server.port, tls=server.tls, username=server.username,
            password_encrypted=sealed, created_at=at))
        await self.session.flush()

    async def servers(self) -> list[SmtpServer]:
        rows = await self.session.scalars(select(SmtpServerRow).where(
            SmtpServerRow.workspace_id == self.workspace_id).order_by(
            SmtpServerRow.priority, SmtpServerRow.id))
        return [SmtpServer(
            r.host, r.port, tls=r.tls,  # type: ignore[arg-type]
            username=r.username,
            password=self.vault.decrypt(r.password_encrypted)["password"]
            if r.password_encrypted else None) for r in rows]
