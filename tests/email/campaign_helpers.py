"""Helpers for the campaign tests: a workspace with a list of subscribed people, a sender."""

from __future__ import annotations

from collections.abc import Sequence

from sidestep.clock import FrozenClock
from sidestep.email.campaign import CampaignSender, SendSettings
from sidestep.email.smtp_pool import PoolPolicy, SmtpPool, SmtpServer
from sidestep.store.accounts import Accounts
from sidestep.store.campaigns import Campaigns, NewCampaign
from sidestep.store.db import Database
from sidestep.store.subscribers import (
    MailingLists,
    MembershipStatus,
    Subscribers,
    SubscriberStatus,
)

SECRET = b"s" * 32
HTML = ('<p>Hello {{ subscriber.name }}</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a>'
        "</p>")
TEXT = "Hello {{ subscriber.name }}\nUnsubscribe: {{ unsubscribe_url }}\n"


async def audience(db: Database, clock: FrozenClock, emails: Sequence[str],
                   *, slug: str = "brand") -> tuple[int, int]:
    """A workspace and a list with `emails` subscribed; returns (workspace_id, list_id)."""
    now = clock.now()
    async with db.session() as session:
        workspace = await Accounts(session).create_workspace(slug=slug, name=slug, at=now)
        lists = MailingLists(session, workspace.id)
        mailing_list = await lists.add("news", double_opt_in=False, at=now)
        subscribers = Subscribers(session, workspace.id)
        for i, email in enumerate(emails):
            row = await subscribers.add(email, name=f"Person {i}",
                                        status=SubscriberStatus.SUBSCRIBED, at=now)
            await subscribers.set_membership(row, mailing_list, MembershipStatus.SUBSCRIBED,
                                             at=now)
        return workspace.id, mailing_list.id


async def campaign(db: Database, clock: FrozenClock, workspace_id: int, list_id: int,
                   *, error_budget: int = 50, subject: str = "News for {{ subscriber.name }}",
                   ) -> int:
    async with db.session() as session:
        row = await Campaigns(session, workspace_id).create(NewCampaign(
            name="November", subject_tpl=subject, html_tpl=HTML, text_tpl=TEXT,
            from_name="Brand", from_email="news@brand.example", list_id=list_id,
            error_budget=error_budget), at=clock.now())
        return row.id


def pool(port: int, **policy: object) -> SmtpPool:
    options: dict[str, object] = {"connections": 3, "timeout_s": 2.0,
                                  "slowdown_initial_s": 0.0, "slowdown_max_s": 0.0}
    options.update(policy)
    return SmtpPool([SmtpServer("127.0.0.1", port, tls="none")],
                    policy=PoolPolicy(**options))  # type: ignore[arg-type]


def sender(db: Database, clock: FrozenClock, workspace_id: int, mailer: SmtpPool,
           **settings: object) -> CampaignSender:
    options: dict[str, object] = {"base_url": "https://brand.example", "links_secret": SECRET,
                                  "batch_size": 7}
    options.update(settings)
    return CampaignSender(db, workspace_id=workspace_id, mailer=mailer, clock=clock,
                          settings=SendSettings(**options))  # type: ignore[arg-type]
