"""Consent: subscribing (double or single opt-in), confirming, unsubscribing, preferences.

Every change writes a consent record (when, how, from where, the words shown). The rules:

- A subscription through a double opt-in list stays `unconfirmed` until the person opens the
  signed confirmation link and presses the button (GET never changes anything: mail scanners
  fetch links). A suppressed address always needs that confirmation, whatever the list says;
  confirming lifts the suppression, except a `manual` one set by the workspace.
- Unsubscribing by the signed link (RFC 8058 one-click or the page) is honoured at once:
  the address is suppressed workspace-wide and every membership is ended.
- The preferences page can leave single lists; joining needs the subscribe form.

Functions work in the caller's session and transaction; the confirmation mail is returned as
a `PendingConfirmation` to send after the commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.email import links
from sidestep.store.subscribers import (
    AudienceError,
    ConsentAction,
    MailingLists,
    MembershipStatus,
    Subscribers,
    SubscriberStatus,
    SuppressionReason,
    Suppressions,
)
from sidestep.store.tables_email import ConsentRecord, MailingList, Subscriber

# One confirmation mail per address and list in this window, so the public form cannot be
# used to flood someone's inbox.
RESEND_AFTER = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Requester:
    """Where a request came from, for the consent record."""

    ip: str | None = None
    user_agent: str | None = None


class Outcome(StrEnum):
    PENDING = "pending"  # a confirmation mail is to be sent
    ALREADY_PENDING = "already_pending"  # one was sent moments ago
    SUBSCRIBED = "subscribed"
    ALREADY_SUBSCRIBED = "already_subscribed"
    BLOCKED = "blocked"  # manually suppressed; the person is not told


@dataclass(frozen=True, slots=True)
class PendingConfirmation:
    to: str
    name: str
    list_name: str
    url: str


@dataclass(frozen=True, slots=True)
class SubscribeResult:
    outcome: Outcome
    subscriber: Subscriber | None
    confirmation: PendingConfirmation | None = None
    record_id: int | None = None  # the consent record, to withdraw if the mail is not sent


async def request_subscription(
    session: AsyncSession, *, mailing_list: MailingList, email: str, name: str = "",
    source: str, requester: Requester, secret: bytes, base_url: str, at: datetime,
) -> SubscribeResult:
    """Record the person's request to join `mailing_list`; raise `AudienceError` for an
    invalid address. Returns what happened and, for double opt-in, the mail to send."""
    workspace_id = mailing_list.workspace_id
    subscribers = Subscribers(session, workspace_id)
    suppression = await Suppressions(session, workspace_id).get(email)
    if suppression is not None and suppression.reason == SuppressionReason.MANUAL.value:
        return SubscribeResult(Outcome.BLOCKED, None)
    # A stranger can type anyone's address, so an existing subscriber's name is left alone.
    row = await subscribers.find_by_email(email) or await subscribers.add(email, name=name, at=at)
    member = dict((lst.id, m) for lst, m in await subscribers.memberships(row.id)).get(
        mailing_list.id)
    if (member is not None and member.status == MembershipStatus.SUBSCRIBED.value
            and row.status == SubscriberStatus.SUBSCRIBED.value and suppression is None):
        return SubscribeResult(Outcome.ALREADY_SUBSCRIBED, row)
    if mailing_list.double_opt_in or suppression is not None or row.status in (
        SubscriberStatus.BOUNCED.value, SubscriberStatus.COMPLAINED.value,
    ):
        if member is None or member.status != MembershipStatus.UNCONFIRMED.value:
            await subscribers.set_membership(row, mailing_list, MembershipStatus.UNCONFIRMED,
                                             at=at)
        elif await _recent_request(session, row, mailing_list, at=at):
            return SubscribeResult(Outcome.ALREADY_PENDING, row)
        record = await subscribers.record_consent(
            row, action=ConsentAction.SUBSCRIBE, source=source, list_id=mailing_list.id,
            ip=requester.ip, user_agent=requester.user_agent,
            text_shown=mailing_list.consent_text, at=at)
        await session.flush()
        token = links.sign_token(secret, links.CONFIRM, workspace_id, row.id, mailing_list.id,
                                 issued_at=at)
        return SubscribeResult(Outcome.PENDING, row, PendingConfirmation(
            to=row.email, name=row.name, list_name=mailing_list.name,
            url=links.confirm_url(base_url, token)), record.id)
    await subscribers.set_membership(row, mailing_list, MembershipStatus.SUBSCRIBED, at=at)
    await subscribers.set_status(row, SubscriberStatus.SUBSCRIBED, at=at)
    await subscribers.record_consent(
        row, action=ConsentAction.SUBSCRIBE, source=source, list_id=mailing_list.id,
        ip=requester.ip, user_agent=requester.user_agent, text_shown=mailing_list.consent_text,
        at=at)
    return SubscribeResult(Outcome.SUBSCRIBED, row)


async def _recent_request(
    session: AsyncSession, row: Subscriber, mailing_list: MailingList, *, at: datetime
) -> bool:
    last = await session.scalar(select(ConsentRecord.created_at).where(
        ConsentRecord.subscriber_id == row.id, ConsentRecord.list_id == mailing_list.id,
        ConsentRecord.action == ConsentAction.SUBSCRIBE.value,
    ).order_by(ConsentRecord.id.desc()).limit(1))
    return last is not None and at - last < RESEND_AFTER


@dataclass(frozen=True, slots=True)
class LinkTarget:
    """The subscriber and list a verified link points at (list None: the whole workspace)."""

    claims: links.LinkClaims
    subscriber: Subscriber | None
    mailing_list: MailingList | None


async def resolve(
    session: AsyncSession, *, secret: bytes, token: str, purpose: str, at: datetime
) -> LinkTarget:
    """Verify the token and load what it names; raise `links.LinkError` if it is not valid.
    The subscriber is None when it was deleted since the link was sent."""
    max_age = links.CONFIRM_MAX_AGE_S if purpose == links.CONFIRM else None
    claims = links.verify_token(secret, token, purpose=purpose, max_age_s=max_age, now=at)
    subscriber = await Subscribers(session, claims.workspace_id).get(claims.subscriber_id)
    mailing_list = (await MailingLists(session, claims.workspace_id).get(claims.list_id)
                    if claims.list_id is not None else None)
    return LinkTarget(claims, subscriber, mailing_list)


async def confirm(
    session: AsyncSession, target: LinkTarget, *, requester: Requester, at: datetime
) -> bool:
    """Carry out a confirmation link; True when the person is now subscribed to the list."""
    row, mailing_list = target.subscriber, target.mailing_list
    if row is None or mailing_list is None:
        return False
    suppressions = Suppressions(session, row.workspace_id)
    suppression = await suppressions.get(row.email)
    if suppression is not None and suppression.reason == SuppressionReason.MANUAL.value:
        return False
    subscribers = Subscribers(session, row.workspace_id)
    member = dict((lst.id, m) for lst, m in await subscribers.memberships(row.id)).get(
        mailing_list.id)
    already = (member is not None and member.status == MembershipStatus.SUBSCRIBED.value
               and row.status == SubscriberStatus.SUBSCRIBED.value and suppression is None)
    if already:
        return True
    if suppression is not None:
        await suppressions.lift(row.email)
    await subscribers.set_membership(row, mailing_list, MembershipStatus.SUBSCRIBED, at=at)
    await subscribers.set_status(row, SubscriberStatus.SUBSCRIBED, at=at)
    row.soft_bounces = 0
    await subscribers.record_consent(
        row, action=ConsentAction.CONFIRM, source="link", list_id=mailing_list.id,
        ip=requester.ip, user_agent=requester.user_agent, text_shown=mailing_list.consent_text,
        at=at)
    return True


async def unsubscribe(
    session: AsyncSession, target: LinkTarget, *, source: str, requester: Requester,
    at: datetime,
) -> None:
    """Suppress the address and end every membership; repeating it changes nothing more."""
    row = target.subscriber
    if row is None:
        return
    suppressions = Suppressions(session, row.workspace_id)
    first_time = await suppressions.get(row.email) is None
    await suppressions.suppress(row.email, SuppressionReason.UNSUBSCRIBED, f"by {source}", at=at)
    subscribers = Subscribers(session, row.workspace_id)
    for mailing_list, member in await subscribers.memberships(row.id):
        if member.status != MembershipStatus.UNSUBSCRIBED.value:
            await subscribers.set_membership(row, mailing_list, MembershipStatus.UNSUBSCRIBED,
                                             at=at)
    if first_time:
        await subscribers.record_consent(
            row, action=ConsentAction.UNSUBSCRIBE, source=source,
            list_id=target.claims.list_id, ip=requester.ip, user_agent=requester.user_agent,
            at=at)


async def leave_lists(
    session: AsyncSession, target: LinkTarget, *, keep_list_ids: set[int],
    requester: Requester, at: datetime,
) -> list[str]:
    """End the memberships not in `keep_list_ids`; return the names of the lists left."""
    row = target.subscriber
    if row is None:
        raise AudienceError("this subscription no longer exists")
    subscribers = Subscribers(session, row.workspace_id)
    left: list[str] = []
    for mailing_list, member in await subscribers.memberships(row.id):
        if mailing_list.id in keep_list_ids or member.status == MembershipStatus.UNSUBSCRIBED:
            continue
        await subscribers.set_membership(row, mailing_list, MembershipStatus.UNSUBSCRIBED, at=at)
        await subscribers.record_consent(
            row, action=ConsentAction.UNSUBSCRIBE, source="preferences",
            list_id=mailing_list.id, ip=requester.ip, user_agent=requester.user_agent, at=at)
        left.append(mailing_list.name)
    return left
