"""The dashboard pages for lists and subscribers: roles, CSRF, search, consent history,
escaping, and workspace isolation."""

from __future__ import annotations

import re

import httpx

from sidestep.clock import FrozenClock
from sidestep.domain.states import Role
from sidestep.runtime import Runtime
from sidestep.store.accounts import Accounts
from sidestep.store.subscribers import (
    ConsentAction,
    MailingLists,
    MembershipStatus,
    Subscribers,
    SubscriberStatus,
)
from sidestep.web.deps import SESSION_COOKIE

from . import audience_fixtures
from .audience_fixtures import Audience

# The audience fixtures, used by name in the tests below.
audience = audience_fixtures.audience
client = audience_fixtures.client
settings = audience_fixtures.settings


async def _sign_in(runtime: Runtime, client: httpx.AsyncClient, workspace_id: int,
                   role: Role) -> str:
    now = runtime.clock.now()
    async with runtime.db.session() as s:
        accounts = Accounts(s)
        user = await accounts.create_user(email=f"{role.value}@example.org",
                                          password="long enough pw", display_name="U", at=now)
        await accounts.add_member(workspace_id=workspace_id, user_id=user.id, role=role, at=now)
        token, row = await accounts.start_session(user_id=user.id, at=now, max_age_s=3600)
    client.cookies.set(SESSION_COOKIE, token, domain=f"{client.base_url.host}")
    return row.csrf_token


async def test_viewer_sees_lists_subscribers_and_consent_history(
    runtime: Runtime, clock: FrozenClock, audience: Audience, client: httpx.AsyncClient
) -> None:
    async with runtime.db.session() as s:
        subs = Subscribers(s, audience.acme)
        row = await subs.add("ann@example.com", name="<img src=x onerror=alert(1)>",
                             status=SubscriberStatus.SUBSCRIBED, at=clock.now())
        news = await MailingLists(s, audience.acme).get(audience.news)
        assert news is not None
        await subs.set_membership(row, news, MembershipStatus.SUBSCRIBED, at=clock.now())
        await subs.record_consent(row, action=ConsentAction.IMPORT, source="csv:fair.csv",
                                  list_id=news.id, text_shown="Sign me up", at=clock.now())
        other = await Subscribers(s, audience.globex).add("zed@example.com", at=clock.now())
    await _sign_in(runtime, client, audience.acme, Role.VIEWER)
    page = await client.get("/w/acme/email")
    assert page.status_code == 200 and "News" in page.text and "Deals" in page.text
    assert "/s/acme/" in page.text and "New list" not in page.text  # viewers cannot create
    listing = await client.get("/w/acme/email/subscribers", params={"q": "ANN"})
    assert "ann@example.com" in listing.text and "<img src=x" not in listing.text
    assert "zed@example.com" not in (await client.get("/w/acme/email/subscribers")).text
    detail = await client.get(f"/w/acme/email/subscribers/{row.id}")
    assert "csv:fair.csv" in detail.text and "Sign me up" in detail.text
    assert (await client.get(f"/w/acme/email/subscribers/{other.id}")).status_code == 404
    assert (await client.get("/w/globex/email")).status_code == 404


async def test_editor_creates_a_list_with_the_csrf_token_only(
    runtime: Runtime, audience: Audience, client: httpx.AsyncClient
) -> None:
    csrf = await _sign_in(runtime, client, audience.acme, Role.EDITOR)
    page = await client.get("/w/acme/email")
    assert re.search(r'name="csrf_token" value="[^"]+"', page.text)
    refused = await client.post("/w/acme/email/lists", data={"name": "Forged"})
    assert refused.status_code == 403
    made = await client.post("/w/acme/email/lists", data={
        "name": "Launches", "double_opt_in": "1", "consent_text": "ok", "csrf_token": csrf})
    assert made.status_code == 303
    again = await client.post("/w/acme/email/lists", data={"name": "Launches",
                                                           "csrf_token": csrf})
    assert again.status_code == 400 and "already" in again.text
    async with runtime.db.session() as s:
        names = [lst.name for lst in await MailingLists(s, audience.acme).all()]
    assert names == ["Deals", "Launches", "News"]
