"""Routes for the campaign editor, its progress, and the bounce webhook (issue 8).

Dashboard pages admit members through `require_role` (CSRF enforced there): viewers see
campaigns and progress, editors create drafts and pause, resume or cancel. The editor's
preview renders the templates for a sample subscriber; the HTML is shown in an iframe with
an empty `sandbox` (no scripts, no same-origin), so a template can never act on the page.

`POST /hooks/email/{slug}/bounces` takes one DSN or ARF message as the raw body, with
`Authorization: Bearer <secret>`, the workspace's derived secret
(`sidestep.email.bounces.webhook_secret`, shown to owners on the campaigns page). No cookie,
no CSRF: the secret is the only credential, compared in constant time.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import FastAPI, Form, HTTPException, Request, status
from fastapi.responses import JSONResponse, RedirectResponse, Response

from sidestep.email.bounces import MAX_REPORT_BYTES, apply_report, parse_report, webhook_secret
from sidestep.email.campaign import tag_secret
from sidestep.email.links import links_secret
from sidestep.email.templates import TemplateError, lint, preview
from sidestep.store.accounts import Accounts
from sidestep.store.campaigns import CampaignError, Campaigns, CampaignState, NewCampaign
from sidestep.store.subscribers import MailingLists
from sidestep.web.deps import AsEditor, AsViewer, UnitOfWork, WorkspaceAccess, get_runtime
from sidestep.web.pages import chrome
from sidestep.web.views import render

FIELDS = ("name", "list_id", "subject_tpl", "html_tpl", "text_tpl", "from_name", "from_email")
DEFAULT_TEXT = "Hello {{ subscriber.name }},\n\n\n\nUnsubscribe: {{ unsubscribe_url }}\n"


def _secret(request: Request) -> bytes:
    return links_secret(get_runtime(request).settings)


async def campaigns_page(request: Request, access: AsViewer) -> Response:
    campaigns = Campaigns(access.session, access.workspace.id)
    rows = [{"campaign": c, "counts": await campaigns.counts(c.id)}
            for c in await campaigns.all()]
    hook = f"{get_runtime(request).settings.public_url}/hooks/email/{access.workspace.slug}/bounces"
    secret = webhook_secret(_secret(request), access.workspace.id) \
        if access.role.value == "owner" else ""
    return render(request, "campaigns.html", {**await chrome(access, "email"), "rows": rows,
                                              "hook_url": hook, "hook_secret": secret})


async def _editor(request: Request, access: WorkspaceAccess, form: dict[str, str], *,
                  problems: list[Any], sample: Any = None, status_code: int = 200) -> Response:
    lists = await MailingLists(access.session, access.workspace.id).all()
    return render(request, "campaign_editor.html", {
        **await chrome(access, "email"), "form": form, "lists": lists, "problems": problems,
        "sample": sample}, status_code=status_code)


async def new_campaign_page(request: Request, access: AsEditor) -> Response:
    form = {"name": "", "list_id": "", "subject_tpl": "", "html_tpl": "",
            "text_tpl": DEFAULT_TEXT, "from_name": access.workspace.name, "from_email": ""}
    return await _editor(request, access, form, problems=[])


async def save_campaign(
    request: Request, access: AsEditor, action: Annotated[str, Form()] = "preview",
    name: Annotated[str, Form()] = "", list_id: Annotated[str, Form()] = "",
    subject_tpl: Annotated[str, Form()] = "", html_tpl: Annotated[str, Form()] = "",
    text_tpl: Annotated[str, Form()] = "", from_name: Annotated[str, Form()] = "",
    from_email: Annotated[str, Form()] = "",
) -> Response:
    """Preview (render for a sample subscriber) or save the draft; errors keep the form."""
    form = {"name": name, "list_id": list_id, "subject_tpl": subject_tpl,
            "html_tpl": html_tpl, "text_tpl": text_tpl, "from_name": from_name,
            "from_email": from_email}
    problems: list[Any] = lint(subject_tpl, html_tpl, text_tpl, known=["campaign"])
    base = get_runtime(request).settings.public_url
    sample = None
    if not any(p.level == "error" for p in problems):
        try:
            sample = preview(subject_tpl, html_tpl, text_tpl, base_url=base,
                             context={"campaign": {"name": name}})
        except TemplateError as exc:
            problems.insert(0, exc)
    lists = {str(lst.id): lst for lst in
             await MailingLists(access.session, access.workspace.id).all()}
    if action != "save":
        return await _editor(request, access, form, problems=problems, sample=sample)
    errors = [p for p in problems if getattr(p, "level", "error") == "error"]
    if list_id not in lists:
        errors.append(_Problem("list", "choose the list to send to"))
    if "@" not in from_email or not name.strip():
        errors.append(_Problem("from", "a campaign needs a name and a From address"))
    if errors:
        return await _editor(request, access, form, problems=errors, sample=sample,
                             status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    row = await Campaigns(access.session, access.workspace.id).create(NewCampaign(
        name=name, subject_tpl=subject_tpl, html_tpl=html_tpl, text_tpl=text_tpl,
        from_name=from_name, from_email=from_email.strip(), list_id=int(list_id)),
        at=get_runtime(request).clock.now())
    return RedirectResponse(f"/w/{access.workspace.slug}/campaigns/{row.id}",
                            status_code=status.HTTP_303_SEE_OTHER)


class _Problem:
    level = "error"

    def __init__(self, part: str, message: str) -> None:
        self.part, self.message = part, message


async def progress_page(request: Request, access: AsViewer, campaign_id: int,
                        error: str = "") -> Response:
    campaigns = Campaigns(access.session, access.workspace.id)
    try:
        campaign = await campaigns.get(campaign_id)
    except CampaignError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such campaign") from exc
    counts = await campaigns.counts(campaign_id)
    total = sum(counts.values())
    settled = total - sum(counts.get(s, 0) for s in ("pending", "deferred", "sending"))
    problems = [r for state in ("failed", "unknown", "deferred")
                for r in await campaigns.recipients(campaign_id, state=state, limit=20)]
    return render(request, "campaign_progress.html", {
        **await chrome(access, "email"), "campaign": campaign, "counts": counts,
        "total": total, "settled": settled, "problems": problems, "error": error,
        "percent": round(100 * settled / total) if total else 0})


async def campaign_action(request: Request, access: AsEditor, campaign_id: int,
                          action: str) -> Response:
    now = get_runtime(request).clock.now()
    campaigns = Campaigns(access.session, access.workspace.id)
    try:
        campaign = await campaigns.get(campaign_id)
    except CampaignError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such campaign") from exc
    who = access.principal.user.email
    try:
        if action == "pause":
            await campaigns.transition(campaign, CampaignState.PAUSED,
                                       reason=f"paused by {who}", at=now)
        elif action == "resume":
            await campaigns.transition(campaign, CampaignState.SENDING,
                                       reason=f"resumed by {who}", at=now, failures_in_run=0)
        elif action == "cancel":
            await campaigns.transition(campaign, CampaignState.CANCELLED,
                                       reason=f"cancelled by {who}", at=now, finished_at=now)
            await campaigns.cancel_waiting(campaign, at=now)
        else:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such action")
    except CampaignError as exc:
        return await progress_page(request, access, campaign_id, error=str(exc))
    return RedirectResponse(f"/w/{access.workspace.slug}/campaigns/{campaign_id}",
                            status_code=status.HTTP_303_SEE_OTHER)


async def bounce_webhook(request: Request, slug: str, session: UnitOfWork) -> Response:
    workspace = await Accounts(session).workspace_by_slug(slug)
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    secret = _secret(request)
    expected = webhook_secret(secret, workspace.id) if workspace else "x" * 64
    if workspace is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong or missing webhook secret")
    body = await request.body()
    if len(body) > MAX_REPORT_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "one report of at most 2 MB")
    report = parse_report(body)
    done = await apply_report(session, workspace_id=workspace.id, report=report,
                              tag_key=tag_secret(secret), at=get_runtime(request).clock.now())
    return JSONResponse({"kind": report.kind, "done": done})


def install(app: FastAPI) -> None:
    """Add this module's routes to `app`."""
    add = app.add_api_route
    add("/w/{slug}/campaigns", campaigns_page, methods=["GET"], include_in_schema=False)
    add("/w/{slug}/campaigns/new", new_campaign_page, methods=["GET"], include_in_schema=False)
    add("/w/{slug}/campaigns", save_campaign, methods=["POST"], include_in_schema=False)
    add("/w/{slug}/campaigns/{campaign_id}", progress_page, methods=["GET"],
        include_in_schema=False)
    add("/w/{slug}/campaigns/{campaign_id}/{action}", campaign_action, methods=["POST"],
        include_in_schema=False)
    add("/hooks/email/{slug}/bounces", bounce_webhook, methods=["POST"],
        include_in_schema=False)
