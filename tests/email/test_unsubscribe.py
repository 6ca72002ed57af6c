"""RFC 8058 one-click unsubscribe, end to end through the real app, with no cookie, login or
CSRF token: the signed token in the path is the only credential."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from sidestep.clock import FrozenClock
from sidestep.email import links
from sidestep.runtime import Runtime
from sidestep.store.subscribers import (
    MailingLists,
    MembershipStatus,
    Subscribers,
    SubscriberStatus,
    Suppressions,
)
from sidestep.store.tables_email import ConsentRecord

from . import audience_fixtures
from .audience_fixtures import Audience, secret_of

# The audience fixtures, used by name in the tests below.
audience = audience_fixtures.audience
client = audience_fixtures.client
settings = audience_fixtures.settings


async def _subscribed(runtime: Runtime, clock: FrozenClock, workspace_id: int, list_id: int,
                      email: str) -> int:
    async with runtime.db.session() as s:
        subs = Subscribers(s, workspace_id)
        row = await subs.add(email, status=SubscriberStatus.SUBSCRIBED, at=clock.now())
        lst = await MailingLists(s, workspace_id).get(list_id)
        assert lst is not None
        await subs.set_membership(row, lst, MembershipStatus.SUBSCRIBED, at=clock.now())
        return row.id


async def test_one_click_post_unsubscribes_at_once_without_cookies(
    runtime: Runtime, clock: FrozenClock, audience: Audience, client: httpx.AsyncClient
) -> None:
    sub_id = await _subscribed(runtime, clock, audience.acme, audience.news, "ann@example.com")
    token = links.sign_token(secret_of(runtime), links.UNSUBSCRIBE, audience.acme, sub_id,
                             audience.news)
    url = links.unsubscribe_url("https://news.example", token)
    assert not client.cookies
    answer = await client.post(url, content=b"List-Unsubscribe=One-Click",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200
    assert "unsubscribed" in answer.text
    async with runtime.db.session() as s:
        assert await Suppressions(s, audience.acme).is_suppressed("ann@example.com")
        row = await Subscribers(s, audience.acme).get(sub_id)
        assert row is not None and row.status == "unsubscribed"
        [(_, member)] = await Subscribers(s, audience.acme).memberships(sub_id)
        assert member.status == "unsubscribed"
        assert [r async for r in Subscribers(s, audience.acme).segment(audience.news)] == []
        records = list(await s.scalars(select(ConsentRecord)))
        assert [(r.action, r.source, r.list_id) for r in records] == [
            ("unsubscribe", "one-click", audience.news)]
    # A second POST (mailers retry) changes nothing and still answers 200.
    again = await client.post(url, content=b"List-Unsubscribe=One-Click",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert again.status_code == 200
    async with runtime.db.session() as s:
        assert len(list(await s.scalars(select(ConsentRecord)))) == 1


async def test_one_click_works_with_a_multipart_body_and_with_none(
    runtime: Runtime, clock: FrozenClock, audience: Audience, client: httpx.AsyncClient
) -> None:
    for n, kwargs in enumerate([{"files": {"List-Unsubscribe": (None, "One-Click")}}, {}]):
        email = f"m{n}@example.com"
        sub_id = await _subscribed(runtime, clock, audience.acme, audience.news, email)
        token = links.sign_token(secret_of(runtime), links.UNSUBSCRIBE, audience.acme, sub_id,
                                 None)
        answer = await client.post(f"/u/{token}", **kwargs)  # type: ignore[arg-type]
        assert answer.status_code == 200
        async with runtime.db.session() as s:
            assert await Suppressions(s, audience.acme).is_suppressed(email)


async def test_get_only_shows_a_button_and_changes_nothing(
    runtime: Runtime, clock: FrozenClock, audience: Audience, client: httpx.AsyncClient
) -> None:
    sub_id = await _subscribed(runtime, clock, audience.acme, audience.news, "bo@example.com")
    token = links.sign_token(secret_of(runtime), links.UNSUBSCRIBE, audience.acme, sub_id, None)
    page = await client.get(f"/u/{token}")
    assert page.status_code == 200
    assert f'action="/u/{token}"' in page.text and 'value="One-Click"' in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    async with runtime.db.session() as s:
        assert not await Suppressions(s, audience.acme).is_suppressed("bo@example.com")


async def test_forged_or_foreign_purpose_tokens_are_refused(
    runtime: Runtime, clock: FrozenClock, audience: Audience, client: httpx.AsyncClient
) -> None:
    sub_id = await _subscribed(runtime, clock, audience.acme, audience.news, "cy@example.com")
    good = links.sign_token(secret_of(runtime), links.UNSUBSCRIBE, audience.acme, sub_id, None)
    forged = links.sign_token(b"another key" * 3, links.UNSUBSCRIBE, audience.acme, sub_id, None)
    confirm = links.sign_token(secret_of(runtime), links.CONFIRM, audience.acme, sub_id,
                               audience.news, issued_at=clock.now())
    tampered = good[:-2] + ("A" if good[-2] != "A" else "B") + good[-1]
    for bad in (forged, confirm, tampered, "nonsense", good.split(".")[0]):
        answer = await client.post(f"/u/{bad}")
        assert answer.status_code == 400, bad
    async with runtime.db.session() as s:
        assert not await Suppressions(s, audience.acme).is_suppressed("cy@example.com")


async def test_a_token_cannot_reach_another_workspaces_subscriber(
    runtime: Runtime, clock: FrozenClock, audience: Audience, client: httpx.AsyncClient
) -> None:
    victim = await _subscribed(runtime, clock, audience.globex, audience.globex_list,
                               "dee@example.com")
    # A genuine token of acme naming globex's subscriber id finds nothing in acme.
    token = links.sign_token(secret_of(runtime), links.UNSUBSCRIBE, audience.acme, victim, None)
    assert (await client.post(f"/u/{token}")).status_code == 200
    async with runtime.db.session() as s:
        assert not await Suppressions(s, audience.globex).is_suppressed("dee@example.com")
        assert not await Suppressions(s, audience.acme).is_suppressed("dee@example.com")


async def test_preferences_leave_one_list_and_keep_the_other(
    runtime: Runtime, clock: FrozenClock, audience: Audience, client: httpx.AsyncClient
) -> None:
    sub_id = await _subscribed(runtime, clock, audience.acme, audience.news, "eve@example.com")
    async with runtime.db.session() as s:
        subs = Subscribers(s, audience.acme)
        row = await subs.get(sub_id)
        deals = await MailingLists(s, audience.acme).get(audience.deals)
        assert row is not None and deals is not None
        await subs.set_membership(row, deals, MembershipStatus.SUBSCRIBED, at=clock.now())
    token = links.sign_token(secret_of(runtime), links.UNSUBSCRIBE, audience.acme, sub_id, None)
    page = await client.get(f"/p/{token}")
    assert "News" in page.text and "Deals" in page.text
    saved = await client.post(f"/p/{token}", data={"keep": str(audience.news)})
    assert saved.status_code == 303
    async with runtime.db.session() as s:
        subs = Subscribers(s, audience.acme)
        status = {lst.name: m.status for lst, m in await subs.memberships(sub_id)}
        assert status == {"News": "subscribed", "Deals": "unsubscribed"}
        assert not await Suppressions(s, audience.acme).is_suppressed("eve@example.com")
        assert [r.email async for r in subs.segment(audience.news)] == ["eve@example.com"]
    await client.post(f"/p/{token}", data={"everything": "1"})
    async with runtime.db.session() as s:
        assert await Suppressions(s, audience.acme).is_suppressed("eve@example.com")


def test_unsubscribe_tokens_do_not_expire_but_confirmation_tokens_do() -> None:
    from datetime import UTC, datetime, timedelta

    import pytest

    secret = b"s" * 32  # any derived secret
    then = datetime(2026, 1, 1, tzinfo=UTC)
    unsub = links.sign_token(secret, links.UNSUBSCRIBE, 1, 2, 3)
    claims = links.verify_token(secret, unsub, purpose=links.UNSUBSCRIBE)
    assert (claims.workspace_id, claims.subscriber_id, claims.list_id) == (1, 2, 3)
    confirm = links.sign_token(secret, links.CONFIRM, 1, 2, None, issued_at=then)
    links.verify_token(secret, confirm, purpose=links.CONFIRM, max_age_s=3600,
                       now=then + timedelta(minutes=59))
    with pytest.raises(links.LinkError, match="expired"):
        links.verify_token(secret, confirm, purpose=links.CONFIRM, max_age_s=3600,
                           now=then + timedelta(minutes=61))
    with pytest.raises(links.LinkError):
        links.verify_token(secret, unsub, purpose=links.CONFIRM, max_age_s=3600, now=then)
    assert set(unsub) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
