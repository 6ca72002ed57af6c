"""The actions that reach outside (email, team alerts, partners, webhooks).

Each is claimed (`running`, committed) before it acts and settled after, so a crash leaves a
visible `running` step that is never redone rather than a second email to everyone. What
they send goes through the email package (`crisis_campaign`, `CampaignSender`), the team's
Apprise targets (`store.alerting`, only targets the incident does not touch) and a webhook
POST to a public address (`netguard`).
"""

from __future__ import annotations

import email.utils
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from typing import Any

import httpx
from sqlalchemy import select

from sidestep.domain.states import DeliverableStatus
from sidestep.email.campaign import CampaignSender
from sidestep.email.crisis import crisis_campaign
from sidestep.playbooks.context import ActionFailed, Result, RunContext
from sidestep.playbooks.model import Action
from sidestep.playbooks.netguard import PrivateAddress, check_public_url
from sidestep.playbooks.templates import MessageTemplateError, render
from sidestep.store.alerting import AlertTargets
from sidestep.store.campaigns import CampaignError, Campaigns
from sidestep.store.subscribers import MailingLists
from sidestep.store.tables import Workspace
from sidestep.store.tables_dispatch import Deliverable
from sidestep.vault import VaultError

__all__ = ["REMOTE_ACTIONS", "RemoteAction"]

RemoteAction = Callable[[RunContext, Action], Awaitable[Result]]
WEBHOOK_TIMEOUT_S = 10.0


async def _crisis_email(ctx: RunContext, action: Action) -> Result:
    setup = await ctx.deps.mail_for(ctx.workspace_id)
    if setup is None:
        raise ActionFailed("the workspace has no SMTP server; add one with "
                           "`sidestep campaign smtp-add`")
    try:
        async with ctx.deps.db.session() as session:
            assert action.list_name is not None
            mailing_list = await MailingLists(session, ctx.workspace_id).by_name(action.list_name)
            if mailing_list is None:
                raise ActionFailed(f"no mailing list named {action.list_name!r}")
            workspace = await session.get_one(Workspace, ctx.workspace_id)
            new = await crisis_campaign(
                session, ctx.workspace_id, down_platform=ctx.platforms[0],
                from_name=workspace.name, from_email=action.from_email or setup.from_email,
                list_id=mailing_list.id,
                note=f"since {ctx.since.strftime('%H:%M UTC')}")
            campaign = await Campaigns(session, ctx.workspace_id).create(
                new, at=ctx.deps.clock.now())
        sender = CampaignSender(ctx.deps.db, workspace_id=ctx.workspace_id,
                                mailer=setup.mailer, settings=setup.settings,
                                clock=ctx.deps.clock)
        await sender.start(campaign.id)
        progress = await sender.run(campaign.id)
    except CampaignError as exc:
        raise ActionFailed(f"the crisis email could not be sent: {exc}") from exc
    finally:
        await setup.close()
    sent = progress.counts.get("sent", 0)
    return Result("done" if sent else "failed",
                  f"crisis email (campaign {campaign.id}) to list {action.list_name!r}: "
                  + ", ".join(f"{n} {state}" for state, n in sorted(progress.counts.items())),
                  {"campaign_id": campaign.id, "counts": progress.counts})


async def _alert_team(ctx: RunContext, action: Action) -> Result:
    async with ctx.deps.db.session() as session:
        context = await ctx.message_context(session)
        targets = await AlertTargets(session, workspace_id=ctx.workspace_id,
                                     vault=ctx.deps.vault).all()
        urls: dict[int, str | None] = {}
        for target in targets:
            try:
                urls[target.id] = AlertTargets(session, workspace_id=ctx.workspace_id,
                                               vault=ctx.deps.vault).url(target)
            except VaultError:
                urls[target.id] = None
    if action.message:
        try:
            body = render(ctx.playbook.text(action.message), context)
        except MessageTemplateError as exc:
            raise ActionFailed(f"message {action.message!r}: {exc}") from exc
    else:
        body = (f"{context['platform']} is {ctx.status} since {context['since']}. "
                f"Playbook \"{ctx.playbook.title}\" is running (run {ctx.run_id}). "
                f"Timeline: {ctx.deps.public_url}/w/status/{ctx.platforms[0]}")
    title = f"Playbook: {ctx.playbook.title}"
    outcomes: dict[str, str] = {}
    for target in targets:
        url = urls[target.id]
        if ctx.touched(target.platform):
            outcomes[target.label] = f"skipped: {target.platform} is affected by the incident"
        elif url is None:
            outcomes[target.label] = "failed: the URL cannot be decrypted"
        else:
            try:
                await ctx.deps.alert_sender.send(url, title=title, body=body)
                outcomes[target.label] = "sent"
            except Exception as exc:  # noqa: BLE001 - any sender failure is recorded as is
                outcomes[target.label] = f"failed: {exc}"[:200]
    sent = sum(v == "sent" for v in outcomes.values())
    if not targets:
        return Result("skipped", "the workspace has no alert target", {})
    return Result("done" if sent else ("skipped" if all(v.startswith("skipped")
                                                         for v in outcomes.values())
                                       else "failed"),
                  f"{sent} of {len(targets)} alert targets told", {"targets": outcomes})


async def _notify_partners(ctx: RunContext, action: Action) -> Result:
    async with ctx.deps.db.session() as session:
        workspace = await session.get_one(Workspace, ctx.workspace_id)
        rows = list((await session.scalars(select(Deliverable).where(
            Deliverable.workspace_id == ctx.workspace_id,
            Deliverable.status == DeliverableStatus.AT_RISK.value))).all())
    told = [d for d in rows if d.partner_email]
    if not told:
        return Result("skipped", "no deliverable at risk with a partner address", {})
    setup = await ctx.deps.mail_for(ctx.workspace_id)
    if setup is None:
        raise ActionFailed("the workspace has no SMTP server to tell partners")
    outcomes: dict[str, str] = {}
    try:
        for deliverable in told:
            message = EmailMessage()
            message["From"] = email.utils.formataddr((workspace.name, setup.from_email))
            message["To"] = deliverable.partner_email
            message["Subject"] = f"{deliverable.title}: delayed by a platform outage"
            message["Date"] = email.utils.format_datetime(ctx.deps.clock.now())
            message["Message-ID"] = email.utils.make_msgid(domain=setup.from_email.split("@")[-1])
            names = ", ".join(ctx.name(p) for p in ctx.platforms)
            message.set_content(
                f"Hello {deliverable.partner_name},\n\n\"{deliverable.title}\", due "
                f"{deliverable.due_at:%Y-%m-%d %H:%M UTC}, is at risk: {names} is "
                f"{ctx.status} since {ctx.since:%H:%M UTC}. We will publish it as soon as we "
                f"can and tell you when it is out.\n\n{workspace.name}\n")
            sent = await setup.mailer.send(sender=setup.from_email,
                                           recipient=deliverable.partner_email,
                                           message=bytes(message))
            outcomes[str(deliverable.id)] = str(getattr(sent, "outcome", sent))
    finally:
        await setup.close()
    return Result("done", f"{len(told)} partners told", {"deliverables": outcomes})


async def _webhook(ctx: RunContext, action: Action) -> Result:
    assert action.url is not None
    try:
        await check_public_url(action.url)
    except PrivateAddress as exc:
        raise ActionFailed(f"webhook refused: {exc}") from exc
    body: dict[str, Any] = {"playbook": ctx.playbook.name, "run_id": ctx.run_id,
                            "platforms": list(ctx.platforms), "status": ctx.status,
                            "since": ctx.since.isoformat(),
                            "at": ctx.deps.clock.now().isoformat()}
    client = ctx.deps.http or httpx.AsyncClient()
    try:
        response = await client.post(action.url, json=body, timeout=WEBHOOK_TIMEOUT_S,
                                     follow_redirects=False)
    except httpx.HTTPError as exc:
        raise ActionFailed(f"webhook failed: {type(exc).__name__}: {exc}"[:300]) from exc
    finally:
        if ctx.deps.http is None:
            await client.aclose()
    if response.status_code >= 300:
        raise ActionFailed(f"webhook answered {response.status_code}")
    return Result("done", f"webhook answered {response.status_code}",
                  {"status": response.status_code})


REMOTE_ACTIONS: dict[str, RemoteAction] = {
    "send_crisis_email": _crisis_email, "alert_team": _alert_team,
    "notify_partners": _notify_partners, "webhook": _webhook,
}
