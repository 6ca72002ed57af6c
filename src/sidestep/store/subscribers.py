"""Subscribers, lists, suppression and consent records, each scoped to one workspace.

Every method takes or returns stored (normalised) addresses; callers with raw text pass it
through `sidestep.email.addresses.normalise` first, or use the methods that do (`add`,
`merge`, `find_by_email`, `suppress`, `is_suppressed`). Suppression is checked by `segment`
as well as by the sender, so a suppressed address cannot slip into a recipient snapshot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.clock import SystemClock
from sidestep.email.addresses import InvalidAddress, normalise
from sidestep.store.events import record_event
from sidestep.store.tables_email import (
    ConsentRecord,
    ListMembership,
    MailingList,
    Subscriber,
    Suppression,
)

SEGMENT_BATCH = 1000
_LOOKUP_CHUNK = 500


class SubscriberStatus(StrEnum):
    UNCONFIRMED = "unconfirmed"
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class MembershipStatus(StrEnum):
    UNCONFIRMED = "unconfirmed"
    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"


class SuppressionReason(StrEnum):
    UNSUBSCRIBED = "unsubscribed"
    HARD_BOUNCE = "hard_bounce"
    COMPLAINT = "complaint"
    MANUAL = "manual"


class ConsentAction(StrEnum):
    SUBSCRIBE = "subscribe"
    CONFIRM = "confirm"
    UNSUBSCRIBE = "unsubscribe"
    IMPORT = "import"


_STATUS_FOR_REASON = {
    SuppressionReason.UNSUBSCRIBED: SubscriberStatus.UNSUBSCRIBED,
    SuppressionReason.HARD_BOUNCE: SubscriberStatus.BOUNCED,
    SuppressionReason.COMPLAINT: SubscriberStatus.COMPLAINED,
    SuppressionReason.MANUAL: SubscriberStatus.UNSUBSCRIBED,
}


def suppression_key(email: str) -> str:
    """The form suppressions are stored and looked up in; raises `InvalidAddress`."""
    return normalise(email).lower()


class AudienceError(ValueError):
    """A request about lists or subscribers that cannot be carried out, with the reason."""


def _clean_name(name: str) -> str:
    """Names end up in From/To display names and pages: no control characters, one line."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in name).split())[:200]


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class Subscribers:
    """A workspace's subscribers; no method can reach another workspace's rows."""

    def __init__(self, session: AsyncSession, workspace_id: int) -> None:
        self.session = session
        self.workspace_id = workspace_id

    async def add(
        self, email: str, *, name: str = "",
        status: SubscriberStatus = SubscriberStatus.UNCONFIRMED,
        fields: Mapping[str, Any] | None = None, tags: Sequence[str] = (), at: datetime,
    ) -> Subscriber:
        """Create a subscriber; raise `AudienceError` if the address is invalid or taken."""
        address = self._normalise(email)
        if await self.find_by_email(address) is not None:
            raise AudienceError(f"{address} is a subscriber already")
        row = Subscriber(
            workspace_id=self.workspace_id, email=address, name=_clean_name(name),
            status=status.value, fields=dict(fields or {}), tags=sorted(set(tags)),
            soft_bounces=0, created_at=at, updated_at=at,
        )
        self.session.add(row)
        await self.session.flush()
        return row

    async def get(self, subscriber_id: int) -> Subscriber | None:
        return await self.session.scalar(select(Subscriber).where(
            Subscriber.id == subscriber_id, Subscriber.workspace_id == self.workspace_id))

    async def find_by_email(self, email: str) -> Subscriber | None:
        """The subscriber with this address (normalised first), or None."""
        try:
            address = normalise(email)
        except InvalidAddress:
            return None
        return await self.session.scalar(select(Subscriber).where(
            Subscriber.email == address, Subscriber.workspace_id == self.workspace_id))

    async def by_emails(self, addresses: Sequence[str]) -> dict[str, Subscriber]:
        """Existing subscribers among already-normalised `addresses`, keyed by address."""
        found: dict[str, Subscriber] = {}
        for chunk in _chunks(list(dict.fromkeys(addresses)), _LOOKUP_CHUNK):
            rows = await self.session.scalars(select(Subscriber).where(
                Subscriber.workspace_id == self.workspace_id, Subscriber.email.in_(chunk)))
            found.update((row.email, row) for row in rows)
        return found

    async def merge(
        self, email: str, *, name: str = "", fields: Mapping[str, Any] | None = None,
        tags: Sequence[str] = (), at: datetime,
        status_if_new: SubscriberStatus = SubscriberStatus.UNCONFIRMED,
    ) -> tuple[Subscriber, bool]:
        """Create the subscriber or fold the new data into the existing row; return
        `(row, created)`. A non-empty name replaces the old one, fields are merged key by key
        (new values win), tags are united. Status is never changed here."""
        existing = await self.find_by_email(email)
        if existing is None:
            row = await self.add(email, name=name, status=status_if_new, fields=fields,
                                 tags=tags, at=at)
            return row, True
        merge_into(existing, name=name, fields=fields, tags=tags, at=at)
        return existing, False

    async def set_status(self, row: Subscriber, status: SubscriberStatus, *, at: datetime) -> None:
        row.status = status.value
        row.updated_at = at

    async def segment(
        self, list_id: int | None, tags: Sequence[str] = ()
    ) -> AsyncIterator[Subscriber]:
        """Yield subscribed, unsuppressed subscribers in id order: members of `list_id` with a
        subscribed membership (or anyone when None), carrying every tag in `tags`. Rows come in
        batches by id, so a large segment never sits in memory whole."""
        wanted = set(tags)
        after = 0
        while True:
            query = select(Subscriber).where(
                Subscriber.workspace_id == self.workspace_id,
                Subscriber.status == SubscriberStatus.SUBSCRIBED.value,
                Subscriber.id > after,
                ~exists().where(Suppression.workspace_id == self.workspace_id,
                                Suppression.email == func.lower(Subscriber.email)),
            )
            if list_id is not None:
                query = query.join(ListMembership, and_(
                    ListMembership.subscriber_id == Subscriber.id,
                    ListMembership.list_id == list_id,
                    ListMembership.status == MembershipStatus.SUBSCRIBED.value))
            batch = list(await self.session.scalars(
                query.order_by(Subscriber.id).limit(SEGMENT_BATCH)))
            for row in batch:
                if wanted <= set(row.tags or ()):
                    yield row
            if len(batch) < SEGMENT_BATCH:
                return
            after = batch[-1].id

    async def search(
        self, text: str = "", *, list_id: int | None = None, status: str | None = None,
        limit: int = 50, offset: int = 0,
    ) -> tuple[list[Subscriber], int]:
        """A page of subscribers whose address or name contains `text`, and the total count."""
        conditions = [Subscriber.workspace_id == self.workspace_id]
        if text.strip():
            pattern = "%" + text.strip().lower().replace("\\", "\\\\").replace(
                "%", "\\%").replace("_", "\\_") + "%"
            conditions.append(or_(func.lower(Subscriber.email).like(pattern, escape="\\"),
                                  func.lower(Subscriber.name).like(pattern, escape="\\")))
        if status:
            conditions.append(Subscriber.status == status)
        if list_id is not None:
            conditions.append(exists().where(ListMembership.subscriber_id == Subscriber.id,
                                             ListMembership.list_id == list_id))
        total = await self.session.scalar(select(func.count()).select_from(Subscriber).where(
            *conditions)) or 0
        rows = await self.session.scalars(select(Subscriber).where(*conditions).order_by(
            Subscriber.id).limit(limit).offset(offset))
        return list(rows), total

    async def memberships(self, subscriber_id: int) -> list[tuple[MailingList, ListMembership]]:
        rows = await self.session.execute(
            select(MailingList, ListMembership).join(
                ListMembership, ListMembership.list_id == MailingList.id).where(
                ListMembership.subscriber_id == subscriber_id,
                MailingList.workspace_id == self.workspace_id).order_by(MailingList.name))
        return [(lst, member) for lst, member in rows.all()]

    async def set_membership(
        self, subscriber: Subscriber, mailing_list: MailingList, status: MembershipStatus, *,
        at: datetime,
    ) -> ListMembership:
        """Create or update the membership; both rows must belong to this workspace."""
        if (subscriber.workspace_id, mailing_list.workspace_id) != (self.workspace_id,) * 2:
            raise AudienceError("subscriber and list belong to another workspace")
        member = await self.session.get(ListMembership, (mailing_list.id, subscriber.id))
        if member is None:
            member = ListMembership(list_id=mailing_list.id, subscriber_id=subscriber.id,
                                    status=status.value, changed_at=at)
            self.session.add(member)
        elif member.status != status.value:
            member.status = status.value
            member.changed_at = at
        return member

    async def record_consent(
        self, subscriber: Subscriber, *, action: ConsentAction, source: str,
        list_id: int | None = None, ip: str | None = None, user_agent: str | None = None,
        text_shown: str = "", at: datetime,
    ) -> ConsentRecord:
        record = ConsentRecord(
            workspace_id=self.workspace_id, subscriber_id=subscriber.id, list_id=list_id,
            action=action.value, source=source[:200], ip=(ip or None) and ip[:64],
            user_agent=(user_agent or None) and user_agent[:500], text_shown=text_shown,
            created_at=at,
        )
        self.session.add(record)
        return record

    async def consent_history(self, subscriber_id: int) -> list[ConsentRecord]:
        rows = await self.session.scalars(select(ConsentRecord).where(
            ConsentRecord.workspace_id == self.workspace_id,
            ConsentRecord.subscriber_id == subscriber_id).order_by(ConsentRecord.id))
        return list(rows)

    def _normalise(self, email: str) -> str:
        try:
            return normalise(email)
        except InvalidAddress as exc:
            raise AudienceError(f"{email!r} is not a valid address: {exc}") from exc


def merge_into(
    row: Subscriber, *, name: str, fields: Mapping[str, Any] | None, tags: Sequence[str],
    at: datetime,
) -> None:
    """Fold new data into an existing subscriber (see `Subscribers.merge`)."""
    if _clean_name(name):
        row.name = _clean_name(name)
    if fields:
        row.fields = {**(row.fields or {}), **fields}
    if tags:
        row.tags = sorted(set(row.tags or ()) | set(tags))
    row.updated_at = at


class MailingLists:
    def __init__(self, session: AsyncSession, workspace_id: int) -> None:
        self.session = session
        self.workspace_id = workspace_id

    async def add(
        self, name: str, *, double_opt_in: bool = True, consent_text: str = "", at: datetime
    ) -> MailingList:
        clean = _clean_name(name)[:100]
        if not clean:
            raise AudienceError("a list needs a name")
        if await self.by_name(clean) is not None:
            raise AudienceError(f"this workspace has a list named {clean!r} already")
        row = MailingList(workspace_id=self.workspace_id, name=clean,
                          double_opt_in=double_opt_in, consent_text=consent_text, created_at=at)
        self.session.add(row)
        await self.session.flush()
        await record_event(self.session, type="email.list_added", workspace_id=self.workspace_id,
                           payload={"list_id": row.id, "name": clean}, at=at)
        return row

    async def get(self, list_id: int) -> MailingList | None:
        return await self.session.scalar(select(MailingList).where(
            MailingList.id == list_id, MailingList.workspace_id == self.workspace_id))

    async def by_name(self, name: str) -> MailingList | None:
        return await self.session.scalar(select(MailingList).where(
            MailingList.name == _clean_name(name), MailingList.workspace_id == self.workspace_id))

    async def all(self) -> list[MailingList]:
        rows = await self.session.scalars(select(MailingList).where(
            MailingList.workspace_id == self.workspace_id).order_by(MailingList.name))
        return list(rows)

    async def counts(self) -> dict[int, dict[str, int]]:
        """Per list id, the number of memberships in each status."""
        rows = await self.session.execute(
            select(ListMembership.list_id, ListMembership.status, func.count()).join(
                MailingList, MailingList.id == ListMembership.list_id).where(
                MailingList.workspace_id == self.workspace_id).group_by(
                ListMembership.list_id, ListMembership.status))
        result: dict[int, dict[str, int]] = {}
        for list_id, status, count in rows.all():
            result.setdefault(list_id, {})[status] = count
        return result


class Suppressions:
    """Addresses no send may reach. Stored and matched case-insensitively (local parts are
    case-sensitive on paper, nowhere in practice, and refusing is the safe side); an invalid
    address counts as suppressed, since it cannot be mailed anyway."""

    def __init__(self, session: AsyncSession, workspace_id: int) -> None:
        self.session = session
        self.workspace_id = workspace_id

    async def get(self, email: str) -> Suppression | None:
        try:
            address = suppression_key(email)
        except InvalidAddress:
            return None
        return await self.session.scalar(select(Suppression).where(
            Suppression.workspace_id == self.workspace_id, Suppression.email == address))

    async def is_suppressed(self, email: str) -> bool:
        try:
            normalise(email)
        except InvalidAddress:
            return True
        return await self.get(email) is not None

    async def suppressed_among(self, emails: Iterable[str]) -> set[str]:
        """The members of `emails` (as given) that are suppressed or not valid addresses."""
        given = list(dict.fromkeys(emails))
        stored: dict[str, list[str]] = {}
        result: set[str] = set()
        for email in given:
            try:
                stored.setdefault(suppression_key(email), []).append(email)
            except InvalidAddress:
                result.add(email)
        for chunk in _chunks(list(stored), _LOOKUP_CHUNK):
            rows = await self.session.scalars(select(Suppression.email).where(
                Suppression.workspace_id == self.workspace_id, Suppression.email.in_(chunk)))
            for address in rows:
                result.update(stored[address])
        return result

    async def suppress(
        self, email: str, reason: SuppressionReason | str, detail: str = "", *,
        at: datetime | None = None,
    ) -> Suppression:
        """Add (or keep) the suppression and mark the subscriber, if any, with the matching
        status. An existing suppression keeps its first reason; the detail is appended."""
        reason = SuppressionReason(reason)
        try:
            address = suppression_key(email)
        except InvalidAddress as exc:
            raise AudienceError(f"{email!r} is not a valid address: {exc}") from exc
        when = at if at is not None else SystemClock().now()
        row = await self.get(address)
        if row is None:
            row = Suppression(workspace_id=self.workspace_id, email=address,
                              reason=reason.value, detail=detail[:1000], created_at=when)
            self.session.add(row)
            await record_event(self.session, type="email.suppressed",
                               workspace_id=self.workspace_id,
                               payload={"reason": reason.value}, at=when)
        elif detail and detail not in row.detail:
            row.detail = f"{row.detail}; {detail}"[-1000:] if row.detail else detail[:1000]
        for subscriber in await self.session.scalars(select(Subscriber).where(
                Subscriber.workspace_id == self.workspace_id,
                func.lower(Subscriber.email) == address)):
            subscriber.status = _STATUS_FOR_REASON[reason].value
            subscriber.updated_at = when
        await self.session.flush()
        return row

    async def lift(self, email: str) -> bool:
        """Remove the suppression; True if there was one. Only a fresh opt-in may call this."""
        row = await self.get(email)
        if row is None:
            return False
        await self.session.delete(row)
        await self.session.flush()
        return True

    async def page(self, *, limit: int = 50, offset: int = 0) -> tuple[list[Suppression], int]:
        total = await self.session.scalar(select(func.count()).select_from(Suppression).where(
            Suppression.workspace_id == self.workspace_id)) or 0
        rows = await self.session.scalars(select(Suppression).where(
            Suppression.workspace_id == self.workspace_id).order_by(
            Suppression.id.desc()).limit(limit).offset(offset))
        return list(rows), total
