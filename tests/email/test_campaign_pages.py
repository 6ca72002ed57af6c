"""Campaign pages (editor with preview, progress, pause/resume/cancel) and the bounce webhook,
through the real app."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from sidestep.domain.states import Role
from sidestep.email.bounces import webhook_secret
from sidestep.email.links import links_secret
from sidestep.runtime import Runtime
from sidestep.store.accounts import Accounts
from sidestep.store.campaigns import Campaigns, NewCampaign
from sidestep.store.subscribers import MailingLists, Subscribers, SubscriberStatus, Suppressions
from sidestep.web.app import create_app

from ..web.conftest import sign_in
from .test_bounces import arf

HTML = '<p>Hi {{ subscriber.name }}</p><script>alert(1)</script><a href="{{ unsubscribe_url }}">x</a>'


@pytest.fixture
async def site(runtime: Runtime) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, int]]]:
    now = runtime.clock.now()
    async with runtime.db.session() as s:
        accounts = Accounts(s)
        ws = await accounts.create_workspace(slug="acme", name="Acme", at=now)
        ids = {"ws": ws.id}
        for name, role in (("owner", Role.OWNER), ("viewer", Role.VIEWER)):
            user = await accounts.create_user(email=f"{name}@example.org",
                                              password="long enough pw", display_name=name,
                                              at=now)
            await accounts.add_member(workspace_id=ws.id, user_id=user.id, role=role, at=now)
            ids[name] = user.id
        ids["list"] = (await MailingLists(s, ws.id).add("News", at=now)).id
        await Subscribers(s, ws.id).add("fan@example.org", status=SubscriberStatus.SUBSCRIBED,
                                        at=now)
    app = create_app(runtime, catalogue=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver") as client:
        yield client, ids


async def as_user(client: httpx.AsyncClient, runtime: Runtime, user_id: int) -> str:
    async with runtime.db.session() as s:
        user = await Accounts(s).user(user_id)
    assert user is not None
    return await sign_in(client, runtime, user)


async def test_the_editor_previews_for_a_sample_subscriber_then_saves_a_draft(
        site: tuple[httpx.AsyncClient, dict[str, int]], runtime: Runtime) -> None:
    client, ids = site
    csrf = await as_user(client, runtime, ids["owner"])
    form = {"csrf_token": csrf, "name": "Nov", "list_id": str(ids["list"]),
            "subject_tpl": "News for {{ subscriber.name }}", "html_tpl": HTML,
            "text_tpl": "Hi\n{{ unsubscribe_url }}", "from_name": "Acme",
            "from_email": "news@acme.example"}
    page = await client.post("/w/acme/campaigns", data={**form, "action": "preview"})
    assert page.status_code == 200
    assert "Preview: News for" in page.text
    assert '<iframe sandbox="" title="HTML preview" srcdoc="&lt;p&gt;Hi' in page.text
    assert "<script>alert(1)</script>" not in page.text

    bad = await client.post("/w/acme/campaigns", data={
        **form, "text_tpl": "no link", "html_tpl": "", "action": "save"})
    assert bad.status_code == 422 and "no unsubscribe link" in bad.text

    hostile = await client.post("/w/acme/campaigns", data={
        **form, "subject_tpl": "{{ ''.__class__.__mro__ }}", "action": "preview"})
    assert hostile.status_code == 200 and "object" not in hostile.text.split("Preview")[-1][:50]

    saved = await client.post("/w/acme/campaigns", data={**form, "action": "save"})
    assert saved.status_code == 303
    progress = await client.get(saved.headers["location"])
    assert "draft" in progress.text and "sidestep campaign send" in progress.text


async def test_progress_and_pause_resume_cancel(
        site: tuple[httpx.AsyncClient, dict[str, int]], runtime: Runtime) -> None:
    client, ids = site
    async with runtime.db.session() as s:
        campaigns = Campaigns(s, ids["ws"])
        row = await campaigns.create(NewCampaign(
            name="Nov", subject_tpl="s", html_tpl="", text_tpl="{{ unsubscribe_url }}",
            from_name="A", from_email="n@acme.example", list_id=ids["list"]),
            at=runtime.clock.now())
        from sidestep.store.campaigns import CampaignState
        await campaigns.transition(row, CampaignState.SENDING, reason="started",
                                   at=runtime.clock.now())
    csrf = await as_user(client, runtime, ids["viewer"])
    page = await client.get(f"/w/acme/campaigns/{row.id}")
    assert page.status_code == 200 and "sending" in page.text and "Pause" not in page.text
    refused = await client.post(f"/w/acme/campaigns/{row.id}/pause", data={"csrf_token": csrf})
    assert refused.status_code == 403

    csrf = await as_user(client, runtime, ids["owner"])
    assert "<code>http://" in (await client.get("/w/acme/campaigns")).text
    for action, state in (("pause", "paused"), ("resume", "sending"), ("cancel", "cancelled")):
        done = await client.post(f"/w/acme/campaigns/{row.id}/{action}",
                                 data={"csrf_token": csrf})
        assert done.status_code == 303, done.text
        assert state in (await client.get(done.headers["location"])).text
    again = await client.post(f"/w/acme/campaigns/{row.id}/resume", data={"csrf_token": csrf})
    assert again.status_code == 200 and "cannot go from cancelled" in again.text
    no_csrf = await client.post(f"/w/acme/campaigns/{row.id}/pause")
    assert no_csrf.status_code == 403
    assert (await client.get("/w/acme/campaigns/9999")).status_code == 404


async def test_the_bounce_webhook_needs_the_workspace_secret_and_applies_reports(
        site: tuple[httpx.AsyncClient, dict[str, int]], runtime: Runtime) -> None:
    client, ids = site
    url = "/hooks/email/acme/bounces"
    body = arf(recipient="fan@example.org")
    assert (await client.post(url, content=body)).status_code == 401
    wrong = {"Authorization": "Bearer " + "0" * 64}
    assert (await client.post(url, content=body, headers=wrong)).status_code == 401
    assert (await client.post("/hooks/email/nope/bounces", content=body,
                              headers=wrong)).status_code == 401
    secret = webhook_secret(links_secret(runtime.settings), ids["ws"])
    good = {"Authorization": f"Bearer {secret}"}
    answer = await client.post(url, content=body, headers=good)
    assert answer.status_code == 200
    assert answer.json() == {"kind": "complaint", "done": "suppressed (complaint)"}
    async with runtime.db.session() as s:
        assert await Suppressions(s, ids["ws"]).is_suppressed("fan@example.org")
    junk = await client.post(url, content=b"not a report", headers=good)
    assert junk.json()["kind"] == "ignored"
    assert re.fullmatch(r"[0-9a-f]{64}", secret)
