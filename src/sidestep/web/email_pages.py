"""Routes for the email audience: dashboard pages for lists and subscribers, and the public
pages a subscriber reaches: subscribe form, confirmation, unsubscribe, preferences.

Dashboard pages admit members through `require_role` (CSRF enforced there). Public pages
take no login and no cookie: a signed token in the path is their only credential
(`sidestep.email.links`). GET never changes anything, because mail scanners fetch links;
each change is a POST. `POST /u/{token}` is the RFC 8058 one-click target: it works without
cookies or CSRF token, whatever the body, and is carried out before the answer is sent.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import delete

from sidestep.email import consent, links
from sidestep.email.addresses import InvalidAddress, normalise
from sidestep.email.confirm_mail import MailNotSent, send_confirmation
from sidestep.store.accounts import Accounts
from sidestep.store.subscribers import (
    AudienceError,
    MailingLists,
    MembershipStatus,
    Subscribers,
    SubscriberStatus,
    Suppressions,
)
from sidestep.store.tables_email import ConsentRecord, MailingList
from sidestep.web.deps import AsEditor, AsViewer, WorkspaceAccess, get_runtime
from sidestep.web.pages import chrome
from sidestep.web.views import render

PAGE_SIZE = 50


def _secret(request: Request) -> bytes:
    state = request.app.state
    if not hasattr(state, "email_links_secret"):
        state.email_links_secret = links.links_secret(get_runtime(request).settings)
    secret: bytes = state.email_links_secret
    return secret


def _requester(request: Request) -> consent.Requester:
    return consent.Requester(ip=request.client.host if request.client else None,
                             user_agent=request.headers.get("user-agent"))


def _public(request: Request, template: str, context: dict[str, object], *,
            status_code: int = 200) -> HTMLResponse:
    # Links with tokens must not leak through Referer to sites the page links to.
    return render(request, template, context, status_code=status_code,
                  headers={"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})


def _bad_link(request: Request, exc: links.LinkError) -> HTMLResponse:
    return _public(request, "public_message.html", {
        "title": "This link does not work", "message": str(exc)}, status_code=400)


async def lists_page(request: Request, access: AsViewer, created: str = "") -> Response:
    return render(request, "email_lists.html", await _lists_context(request, access, created))


async def _lists_context(
    request: Request, access: WorkspaceAccess, created: str = "", error: str = ""
) -> dict[str, object]:
    lists = await MailingLists(access.session, access.workspace.id).all()
    counts = await MailingLists(access.session, access.workspace.id).counts()
    _, suppressed = await Suppressions(access.session, access.workspace.id).page(limit=0)
    _, subscribers = await Subscribers(access.session, access.workspace.id).search(limit=0)
    base = get_runtime(request).settings.public_url
    rows = [{"list": lst, "counts": counts.get(lst.id, {}),
             "form_url": f"{base}/s/{access.workspace.slug}/subscribe/{lst.id}"} for lst in lists]
    return {**await chrome(access, "email"), "rows": rows, "suppressed": suppressed,
            "subscriber_count": subscribers, "created": created, "error": error}


async def add_list(
    request: Request, access: AsEditor, name: Annotated[str, Form()] = "",
    double_opt_in: Annotated[str, Form()] = "", consent_text: Annotated[str, Form()] = "",
) -> Response:
    try:
        await MailingLists(access.session, access.workspace.id).add(
            name, double_opt_in=bool(double_opt_in), consent_text=consent_text.strip(),
            at=get_runtime(request).clock.now())
    except AudienceError as exc:
        return render(request, "email_lists.html",
                      await _lists_context(request, access, error=str(exc)), status_code=400)
    return RedirectResponse(f"/w/{access.workspace.slug}/email?created={name.strip()}",
                            status_code=303)


async def subscribers_page(
    request: Request, access: AsViewer, q: str = "",
    list_ref: Annotated[str, Query(alias="list")] = "",
    wanted: Annotated[str, Query(alias="status")] = "", page: int = 1,
) -> Response:
    list_id = int(list_ref) if list_ref.isdigit() else None
    page = max(page, 1)
    rows, total = await Subscribers(access.session, access.workspace.id).search(
        q, list_id=list_id, status=wanted if wanted in set(SubscriberStatus) else None,
        limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    return render(request, "email_subscribers.html", {
        **await chrome(access, "email"), "rows": rows, "total": total, "q": q,
        "list_id": list_id, "status": wanted, "page": page,
        "pages": max(1, -(-total // PAGE_SIZE)), "statuses": [s.value for s in SubscriberStatus],
        "lists": await MailingLists(access.session, access.workspace.id).all()})


async def subscriber_page(request: Request, access: AsViewer, subscriber_id: int) -> Response:
    subs = Subscribers(access.session, access.workspace.id)
    row = await subs.get(subscriber_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such subscriber in this workspace")
    history = await subs.consent_history(row.id)
    names = {lst.id: lst.name for lst in await MailingLists(
        access.session, access.workspace.id).all()}
    return render(request, "email_subscriber.html", {
        **await chrome(access, "email"), "sub": row, "memberships": await subs.memberships(row.id),
        "history": [(record, names.get(record.list_id or 0, "")) for record in history],
        "suppression": await Suppressions(access.session, access.workspace.id).get(row.email)})


async def _public_list(request: Request, slug: str, list_id: int) -> tuple[str, MailingList]:
    async with get_runtime(request).db.session() as session:
        workspace = await Accounts(session).workspace_by_slug(slug)
        found = (await MailingLists(session, workspace.id).get(list_id)
                 if workspace is not None else None)
        if workspace is None or found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such list")
        return workspace.name, found


async def subscribe_form(request: Request, slug: str, list_id: int) -> Response:
    workspace_name, mailing_list = await _public_list(request, slug, list_id)
    return _public(request, "public_subscribe.html", {
        "workspace_name": workspace_name, "list": mailing_list, "email": "", "name": "",
        "error": ""})


async def subscribe(
    request: Request, slug: str, list_id: int, email: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
) -> Response:
    workspace_name, mailing_list = await _public_list(request, slug, list_id)
    runtime = get_runtime(request)
    try:
        normalise(email)
    except InvalidAddress as exc:
        return _public(request, "public_subscribe.html", {
            "workspace_name": workspace_name, "list": mailing_list, "email": email,
            "name": name, "error": f"That address does not work: {exc}"}, status_code=400)
    async with runtime.db.session() as session:
        result = await consent.request_subscription(
            session, mailing_list=mailing_list, email=email, name=name, source="form",
            requester=_requester(request), secret=_secret(request),
            base_url=runtime.settings.public_url, at=runtime.clock.now())
    if result.confirmation is not None:
        try:
            await send_confirmation(runtime.settings, result.confirmation,
                                    workspace_name=workspace_name, now=runtime.clock.now())
        except MailNotSent:
            await _forget_request(request, result.record_id)
            return _public(request, "public_message.html", {
                "title": "We could not send the confirmation mail",
                "message": "Our mail server did not take it. Please try again in a few "
                           "minutes."}, status_code=503)
    subscribed = result.outcome in (consent.Outcome.SUBSCRIBED,
                                    consent.Outcome.ALREADY_SUBSCRIBED)
    return _public(request, "public_message.html", {
        "title": "You are subscribed" if subscribed else "Check your inbox",
        "message": (f"You will receive {mailing_list.name} from {workspace_name}." if subscribed
                    else "If this address can receive mail from us, a message with a "
                         "confirmation link is on its way. Open it to finish.")})


async def _forget_request(request: Request, record_id: int | None) -> None:
    """The mail did not go out, so the request proves nothing and must not block a retry."""
    async with get_runtime(request).db.session() as session:
        await session.execute(delete(ConsentRecord).where(ConsentRecord.id == record_id))


async def _target(request: Request, token: str, purpose: str) -> consent.LinkTarget:
    runtime = get_runtime(request)
    async with runtime.db.session() as session:
        return await consent.resolve(session, secret=_secret(request), token=token,
                                     purpose=purpose, at=runtime.clock.now())


async def confirm_page(request: Request, token: str) -> Response:
    try:
        target = await _target(request, token, links.CONFIRM)
    except links.LinkError as exc:
        return _bad_link(request, exc)
    return _public(request, "public_confirm.html", {
        "list_name": target.mailing_list.name if target.mailing_list else "", "token": token})


async def confirm(request: Request, token: str) -> Response:
    runtime = get_runtime(request)
    async with runtime.db.session() as session:
        try:
            target = await consent.resolve(session, secret=_secret(request), token=token,
                                           purpose=links.CONFIRM, at=runtime.clock.now())
        except links.LinkError as exc:
            return _bad_link(request, exc)
        done = await consent.confirm(session, target, requester=_requester(request),
                                     at=runtime.clock.now())
    if not done:
        return _public(request, "public_message.html", {
            "title": "This subscription cannot be confirmed",
            "message": "The list or the subscription no longer exists."}, status_code=410)
    return _public(request, "public_message.html", {
        "title": "Subscription confirmed",
        "message": f"You will receive {target.mailing_list.name if target.mailing_list else ''}."
                   " Every mail has a link to unsubscribe."})


async def unsubscribe_page(request: Request, token: str) -> Response:
    try:
        target = await _target(request, token, links.UNSUBSCRIBE)
    except links.LinkError as exc:
        return _bad_link(request, exc)
    return _public(request, "public_unsubscribe.html", {
        "token": token, "email": target.subscriber.email if target.subscriber else ""})


async def one_click_unsubscribe(request: Request, token: str) -> Response:
    """RFC 8058: authenticated by the token alone; honoured before the answer goes out."""
    runtime = get_runtime(request)
    async with runtime.db.session() as session:
        try:
            target = await consent.resolve(session, secret=_secret(request), token=token,
                                           purpose=links.UNSUBSCRIBE, at=runtime.clock.now())
        except links.LinkError as exc:
            return _bad_link(request, exc)
        await consent.unsubscribe(session, target, source="one-click",
                                  requester=_requester(request), at=runtime.clock.now())
    return _public(request, "public_message.html", {
        "title": "You are unsubscribed",
        "message": "You will not receive any more mail from us at this address."})


async def preferences_page(request: Request, token: str, saved: str = "") -> Response:
    runtime = get_runtime(request)
    async with runtime.db.session() as session:
        try:
            target = await consent.resolve(session, secret=_secret(request), token=token,
                                           purpose=links.UNSUBSCRIBE, at=runtime.clock.now())
        except links.LinkError as exc:
            return _bad_link(request, exc)
        row = target.subscriber
        memberships = (await Subscribers(session, row.workspace_id).memberships(row.id)
                       if row is not None else [])
    return _public(request, "public_preferences.html", {
        "token": token, "email": row.email if row else "", "saved": saved,
        "active": [(lst.id, lst.name, m.status) for lst, m in memberships
                   if m.status != MembershipStatus.UNSUBSCRIBED]})


async def save_preferences(request: Request, token: str) -> Response:
    form = await request.form()
    keep = {int(v) for v in form.getlist("keep") if isinstance(v, str) and v.isdigit()}
    runtime = get_runtime(request)
    async with runtime.db.session() as session:
        try:
            target = await consent.resolve(session, secret=_secret(request), token=token,
                                           purpose=links.UNSUBSCRIBE, at=runtime.clock.now())
        except links.LinkError as exc:
            return _bad_link(request, exc)
        if form.get("everything"):
            await consent.unsubscribe(session, target, source="preferences",
                                      requester=_requester(request), at=runtime.clock.now())
            return RedirectResponse(f"/p/{token}?saved=all", status_code=303)
        try:
            await consent.leave_lists(session, target, keep_list_ids=keep,
                                      requester=_requester(request), at=runtime.clock.now())
        except AudienceError as exc:
            return _public(request, "public_message.html", {
                "title": "Nothing to change", "message": str(exc)}, status_code=410)
    return RedirectResponse(f"/p/{token}?saved=1", status_code=303)


def install(app: FastAPI) -> None:
    """Add this module's routes to `app`."""
    add = app.add_api_route
    add("/w/{slug}/email", lists_page, methods=["GET"], include_in_schema=False)
    add("/w/{slug}/email/lists", add_list, methods=["POST"], include_in_schema=False)
    add("/w/{slug}/email/subscribers", subscribers_page, methods=["GET"],
        include_in_schema=False)
    add("/w/{slug}/email/subscribers/{subscriber_id}", subscriber_page, methods=["GET"],
        include_in_schema=False)
    add("/s/{slug}/subscribe/{list_id}", subscribe_form, methods=["GET"], include_in_schema=False)
    add("/s/{slug}/subscribe/{list_id}", subscribe, methods=["POST"], include_in_schema=False)
    add("/c/{token}", confirm_page, methods=["GET"], include_in_schema=False)
    add("/c/{token}", confirm, methods=["POST"], include_in_schema=False)
    add("/u/{token}", unsubscribe_page, methods=["GET"], include_in_schema=False)
    add("/u/{token}", one_click_unsubscribe, methods=["POST"], include_in_schema=False)
    add("/p/{token}", preferences_page, methods=["GET"], include_in_schema=False)
    add("/p/{token}", save_preferences, methods=["POST"], include_in_schema=False)
