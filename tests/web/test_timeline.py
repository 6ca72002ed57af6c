"""A post's delivery timeline: attempts, holds, releases, failures, the published address."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx

from sidestep.clock import FrozenClock
from sidestep.domain.states import DeliveryState
from sidestep.runtime import Runtime
from sidestep.store.accounts import Accounts
from sidestep.store.posts import NewPost, Posts, record_attempt, transition_delivery
from tests.web.conftest import World, sign_in

D = DeliveryState


async def play_history(runtime: Runtime, world: World, clock: FrozenClock) -> None:
    """Instagram: a transient error, then sent. Newsletter: held, released, failed."""
    async with runtime.db.session() as s:
        acme = await Accounts(s).workspace_by_slug("acme")
        assert acme is not None
        instagram, newsletter = await Posts(s, workspace_id=acme.id).deliveries(world.post_id)
        t = clock.now() + timedelta(hours=2)
        await transition_delivery(s, instagram, D.DUE, at=t)
        await transition_delivery(s, instagram, D.SENDING, at=t)
        await record_attempt(s, delivery_id=instagram.id, started_at=t,
                             finished_at=t + timedelta(seconds=2), outcome="error",
                             error_class="transient", error_detail="HTTP 503 from graph")
        await transition_delivery(s, instagram, D.RETRY_WAIT, at=t + timedelta(seconds=2),
                                  reason="transient: HTTP 503; retry in 30 s")
        t2 = t + timedelta(minutes=1)
        await transition_delivery(s, instagram, D.DUE, at=t2)
        await transition_delivery(s, instagram, D.SENDING, at=t2)
        await record_attempt(s, delivery_id=instagram.id, started_at=t2, finished_at=t2,
                             outcome="sent")
        await transition_delivery(s, instagram, D.SENT, at=t2, reason="published", changes={
            "external_id": "1789", "external_url": "https://instagram.com/p/1789"})
        await transition_delivery(s, newsletter, D.HELD, at=t,
                                  reason="email is down: <b>SMTP</b> refused")
        await transition_delivery(s, newsletter, D.DUE, at=t + timedelta(minutes=30),
                                  reason="platform back up")
        await transition_delivery(s, newsletter, D.FAILED, at=t + timedelta(minutes=31),
                                  reason="older than its maximum age")


def section(page: str, channel: str) -> str:
    match = re.search(rf'<section class="card timeline"[^>]*data-channel="{channel}">(.*?)'
                      r"</section>", page, re.S)
    assert match, f"no timeline for {channel}"
    return match.group(1)


def entries(html: str) -> list[str]:
    found = re.findall(r'<span class="label">(?:<span[^>]*></span>)?([^<]+)</span>', html)
    return [text.strip() for text in found]


async def test_the_timeline_shows_every_attempt_and_state_change_per_channel(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock
) -> None:
    await play_history(runtime, world, clock)
    await sign_in(client, runtime, world.viewer)
    response = await client.get(f"/w/acme/posts/{world.post_id}")
    assert response.status_code == 200
    page = response.text
    instagram = section(page, "Instagram main")
    assert entries(instagram) == ["due", "attempt 1: error (transient)", "waiting to retry",
                                  "due again", "attempt 2: sent", "sent"]
    assert "HTTP 503 from graph" in instagram
    assert "transient: HTTP 503; retry in 30 s" in instagram
    assert '<a href="https://instagram.com/p/1789"' in instagram
    assert 'class="badge delivery-sent state">sent</span>' in instagram
    newsletter = section(page, "Newsletter")
    assert entries(newsletter) == ["held", "released", "failed"]
    assert "email is down: &lt;b&gt;SMTP&lt;/b&gt; refused" in newsletter
    assert "older than its maximum age" in newsletter
    assert "created: for 2 channel(s)" in page


async def test_another_workspaces_post_is_not_found(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock
) -> None:
    async with runtime.db.session() as s:
        globex = await Accounts(s).workspace_by_slug("globex")
        assert globex is not None
        theirs = await Posts(s, workspace_id=globex.id).create(
            NewPost(body="Globex only", due_at=clock.now(), channel_ids=[world.other_channel_id]),
            created_by=None, at=clock.now())
    await sign_in(client, runtime, world.owner)  # a member of both workspaces
    assert (await client.get(f"/w/acme/posts/{theirs.id}")).status_code == 404
    assert (await client.get(f"/w/globex/posts/{theirs.id}")).status_code == 200
    assert (await client.get(f"/w/globex/posts/{world.post_id}")).status_code == 404
    assert (await client.get("/w/acme/posts/999999")).status_code == 404
    await sign_in(client, runtime, world.outsider)
    assert (await client.get(f"/w/acme/posts/{world.post_id}")).status_code == 404


async def test_post_text_is_escaped_on_the_timeline(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock
) -> None:
    async with runtime.db.session() as s:
        acme = await Accounts(s).workspace_by_slug("acme")
        assert acme is not None
        post = await Posts(s, workspace_id=acme.id).create(
            NewPost(body="<script>alert(1)</script>", due_at=clock.now(),
                    channel_ids=[world.newsletter_id], link="javascript:alert(2)"),
            created_by=None, at=clock.now())
    await sign_in(client, runtime, world.viewer)
    page = (await client.get(f"/w/acme/posts/{post.id}")).text
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'href="javascript:' not in page
