"""The composer: one post for several channels, previewed per channel, scheduled only when
every channel can take it; CSRF, roles and workspace isolation on every form."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select

from sidestep.clock import FrozenClock
from sidestep.runtime import Runtime
from sidestep.store.accounts import Accounts
from sidestep.store.channels import Channels
from sidestep.store.posts import Posts
from sidestep.store.tables import Post
from tests.web.conftest import World, sign_in


@pytest.fixture
async def x_channel(runtime: Runtime, world: World, clock: FrozenClock) -> int:
    """An X channel in acme, and acme's time zone set to Berlin (UTC+1 in November)."""
    async with runtime.db.session() as s:
        acme = await Accounts(s).workspace_by_slug("acme")
        assert acme is not None
        acme.settings = {"timezone": "Europe/Berlin"}
        channel = await Channels(s, workspace_id=acme.id, vault=runtime.vault).add(
            platform="x", name="Acme on X", at=clock.now())
        return channel.id


async def post_count(runtime: Runtime) -> int:
    async with runtime.db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(Post)) or 0)


def form(csrf: str, *channel_ids: int, **fields: str) -> dict[str, object]:
    return {"csrf_token": csrf, "body": "Fresh beans today.", "when": "at",
            "due_at": "2026-11-24T09:30", "tz": "Europe/Berlin",
            "channel_ids": [str(i) for i in channel_ids], **fields}


def previews(page: str) -> dict[str, str]:
    """Each channel's preview card, by channel name."""
    cards = re.findall(r'<article class="card channel-preview[^"]*" data-channel="([^"]+)">'
                       r'(.*?)</article>', page, re.S)
    return dict(cards)


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(out, "PNG")
    return out.getvalue()


async def test_the_composer_suggests_an_hour_ahead_in_the_workspaces_time_zone(
    client: httpx.AsyncClient, world: World, runtime: Runtime, x_channel: int
) -> None:
    await sign_in(client, runtime, world.editor)
    page = (await client.get("/w/acme/posts/new")).text
    assert 'name="due_at" value="2026-11-23T14:00"' in page  # 13:00 UTC is 14:00 in Berlin
    assert 'name="tz" value="Europe/Berlin"' in page
    assert 'value="hold"' in page and 'value="reroute"' in page and 'value="mirror_now"' in page
    assert "The workspace's default (hold)" in page
    assert 'name="hold_max_h" value="" placeholder="6"' in page


async def test_the_preview_shows_each_channel_adapted_and_its_problems(
    client: httpx.AsyncClient, world: World, runtime: Runtime, x_channel: int
) -> None:
    csrf = await sign_in(client, runtime, world.editor)
    body = " ".join(["Our new roastery opens on Monday with free coffee for everyone."] * 6)
    before = await post_count(runtime)
    response = await client.post("/w/acme/posts/new", data=form(
        csrf, x_channel, world.instagram_id, world.newsletter_id, body=body,
        link="https://acme.example/roastery", action="preview"))
    assert response.status_code == 200
    cards = previews(response.text)
    assert set(cards) == {"Acme on X", "Instagram main", "Newsletter"}
    assert "split into a thread of 2 posts" in cards["Acme on X"]
    assert "Post 2 of 2" in cards["Acme on X"] and "ready" in cards["Acme on X"]
    assert "Instagram posts need at least one image or video." in cards["Instagram main"]
    assert "link removed: Instagram does not make links in posts clickable" \
        in cards["Instagram main"]
    assert "takes the post as written" in cards["Newsletter"]
    assert await post_count(runtime) == before


async def test_it_refuses_to_schedule_a_post_some_channel_cannot_take_and_keeps_the_form(
    client: httpx.AsyncClient, world: World, runtime: Runtime, x_channel: int
) -> None:
    csrf = await sign_in(client, runtime, world.editor)
    hashtag = "#" + "coffee" * 50  # one unit longer than an X post: it cannot be cut
    before = await post_count(runtime)
    response = await client.post("/w/acme/posts/new", data=form(
        csrf, x_channel, body=f"Roast day {hashtag}", action="schedule"))
    assert response.status_code == 400
    assert "Not scheduled" in response.text
    assert "is longer than one X post can hold and cannot be cut" in previews(
        response.text)["Acme on X"]
    assert f"Roast day {hashtag}</textarea>" in response.text
    assert await post_count(runtime) == before


async def test_scheduling_creates_the_post_and_its_deliveries_at_the_local_time(
    client: httpx.AsyncClient, world: World, runtime: Runtime, x_channel: int
) -> None:
    csrf = await sign_in(client, runtime, world.editor)
    response = await client.post("/w/acme/posts/new", data=form(
        csrf, x_channel, world.newsletter_id, link="https://acme.example/beans",
        policy="reroute", fallback_ids=[str(world.instagram_id)], reroute_grace_min="20",
        max_age_h="6", catch_up="1", action="schedule"))
    assert response.status_code == 303
    location = response.headers["location"]
    match = re.fullmatch(r"/w/acme/posts/(\d+)\?created=1", location)
    assert match
    async with runtime.db.session() as s:
        post = await s.get_one(Post, int(match.group(1)))
        assert post.due_at == datetime(2026, 11, 24, 8, 30, tzinfo=UTC)
        assert post.link == "https://acme.example/beans"
        assert post.fallback_policy == "reroute"
        assert post.fallback_channel_ids == [world.instagram_id]
        assert (post.reroute_grace_s, post.max_age_s, post.hold_max_s) == (1200, 21600, None)
        assert post.catch_up is True
        assert post.created_by == world.editor.id
        deliveries = await Posts(s, workspace_id=post.workspace_id).deliveries(post.id)
    assert sorted(d.channel_id for d in deliveries) == sorted([x_channel, world.newsletter_id])
    assert {d.state for d in deliveries} == {"scheduled"}
    page = (await client.get(location)).text
    assert f"Post #{post.id} scheduled." in page
    assert "2026-11-24 09:30 Europe/Berlin" in page


async def test_a_post_left_on_the_default_policy_takes_the_workspaces(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    async with runtime.db.session() as s:
        acme = await Accounts(s).workspace_by_slug("acme")
        assert acme is not None
        acme.settings = {"dispatch": {"fallback_policy": "mirror_now"}}
    csrf = await sign_in(client, runtime, world.editor)
    response = await client.post("/w/acme/posts/new", data=form(
        csrf, world.newsletter_id, tz="UTC", due_at="2026-11-24T09:30", action="schedule"))
    assert response.status_code == 303
    post_id = int(response.headers["location"].split("/")[-1].split("?")[0])
    async with runtime.db.session() as s:
        post = await s.get_one(Post, post_id)
    assert post.fallback_policy == "mirror_now" and post.hold_max_s is None


async def test_now_schedules_the_post_for_the_present(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock
) -> None:
    csrf = await sign_in(client, runtime, world.editor)
    response = await client.post("/w/acme/posts/new", data=form(
        csrf, world.newsletter_id, when="now", due_at="", tz="UTC", action="schedule"))
    assert response.status_code == 303
    post_id = int(response.headers["location"].split("/")[-1].split("?")[0])
    async with runtime.db.session() as s:
        assert (await s.get_one(Post, post_id)).due_at == clock.now()


async def test_bad_fields_are_named_and_nothing_is_created(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    csrf = await sign_in(client, runtime, world.editor)
    before = await post_count(runtime)
    response = await client.post("/w/acme/posts/new", data=form(
        csrf, world.other_channel_id, body=" ", link="javascript:alert(1)", tz="Mars/Olympus",
        policy="mirror_now", hold_max_h="-3", max_age_h="soon", action="schedule"))
    assert response.status_code == 400
    text = response.text
    assert "write something to post" in text
    assert "give a full web address starting with https://" in text
    assert "&#39;Mars/Olympus&#39; is not a time zone" in text
    assert "that channel is not one of this workspace&#39;s" in text
    assert "this policy needs at least one fallback channel" in text
    assert text.count("give a whole number above 0, or leave it empty for the default") == 2
    past = form(csrf, world.newsletter_id, due_at="2026-11-23T12:30", action="schedule")
    response = await client.post("/w/acme/posts/new", data=past)  # 11:30 UTC: the past
    assert response.status_code == 400
    assert "the due time is in the past (Europe/Berlin time)" in response.text
    assert await post_count(runtime) == before


async def test_an_uploaded_image_is_kept_resized_for_each_platform_and_scheduled_with_the_post(
    client: httpx.AsyncClient, world: World, runtime: Runtime, x_channel: int
) -> None:
    csrf = await sign_in(client, runtime, world.editor)
    response = await client.post(
        "/w/acme/posts/new", data=form(csrf, x_channel, world.instagram_id, action="preview",
                                       alt="A sack of beans"),
        files={"image": ("beans photo.png", png(5000, 400), "image/png")})
    assert response.status_code == 200
    ref = re.search(r'name="image_ref" value="([0-9a-f]{64}\.png)"', response.text)
    assert ref
    cards = previews(response.text)
    assert "media_required" not in cards["Instagram main"]
    assert "Instagram posts need at least one image" not in cards["Instagram main"]
    assert "image beans-photo.png re-encoded as JPEG 4096px" in cards["Instagram main"]
    assert "image beans-photo.png re-encoded as JPEG 4096px" in cards["Acme on X"]
    shown = re.findall(r'src="(/w/acme/media/[0-9a-f]{64}\.(?:jpg|png))"', cards["Instagram main"])
    assert shown
    image = await client.get(shown[0])
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(image.content)).size == (4096, 328)

    response = await client.post("/w/acme/posts/new", data=form(
        csrf, x_channel, world.instagram_id, image_ref=ref.group(1),
        image_name="beans-photo.png", alt="A sack of beans", action="schedule"))
    assert response.status_code == 303, previews(response.text)
    post_id = int(response.headers["location"].split("/")[-1].split("?")[0])
    async with runtime.db.session() as s:
        post = await s.get_one(Post, post_id)
    assert post.media == [{"kind": "image", "ref": ref.group(1), "filename": "beans-photo.png",
                           "mime_type": "image/png", "size_bytes": len(png(5000, 400)),
                           "alt": "A sack of beans"}]


async def test_a_file_that_is_not_an_image_is_refused_with_a_reason(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    csrf = await sign_in(client, runtime, world.editor)
    before = await post_count(runtime)
    response = await client.post(
        "/w/acme/posts/new", data=form(csrf, world.newsletter_id, action="schedule"),
        files={"image": ("evil.png", b"<?php echo 1; ?>", "image/png")})
    assert response.status_code == 400
    assert "the file is not an image Sidestep can read" in response.text
    assert await post_count(runtime) == before


async def test_uploaded_images_are_not_visible_from_another_workspace(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    csrf = await sign_in(client, runtime, world.owner)  # owner of acme and of globex
    response = await client.post(
        "/w/acme/posts/new", data=form(csrf, world.newsletter_id, action="preview"),
        files={"image": ("a.png", png(400, 400), "image/png")})
    ref = re.search(r'name="image_ref" value="([^"]+)"', response.text)
    assert ref
    assert (await client.get(f"/w/acme/media/{ref.group(1)}")).status_code == 200
    assert (await client.get(f"/w/globex/media/{ref.group(1)}")).status_code == 404
    assert (await client.get("/w/acme/media/..%2F..%2Fsidestep.db")).status_code == 404
    response = await client.post("/w/globex/posts/new", data={
        **form(csrf, world.other_channel_id, action="preview"), "image_ref": ref.group(1)})
    assert "the image uploaded before is gone" in response.text


async def test_a_viewer_cannot_compose(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    csrf = await sign_in(client, runtime, world.viewer)
    before = await post_count(runtime)
    assert (await client.get("/w/acme/posts/new")).status_code == 403
    response = await client.post("/w/acme/posts/new",
                                 data=form(csrf, world.newsletter_id, action="schedule"))
    assert response.status_code == 403
    assert (await client.post("/w/acme/posts/preview",
                              data=form(csrf, world.newsletter_id))).status_code == 403
    assert await post_count(runtime) == before
    page = (await client.get("/w/acme/posts")).text
    assert "/posts/new" not in page


async def test_the_composer_refuses_forms_without_the_sessions_csrf_token(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    csrf = await sign_in(client, runtime, world.editor)
    before = await post_count(runtime)
    for token in ("", csrf[:-1] + ("x" if csrf[-1] != "x" else "y")):
        fields = form(token, world.newsletter_id, action="schedule")
        response = await client.post("/w/acme/posts/new", data=fields,
                                     files={"image": ("a.png", png(10, 10), "image/png")})
        assert response.status_code == 403
        assert (await client.post("/w/acme/posts/preview", data=fields)).status_code == 403
    assert await post_count(runtime) == before


async def test_a_non_member_gets_not_found(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    csrf = await sign_in(client, runtime, world.outsider)
    assert (await client.get("/w/acme/posts/new")).status_code == 404
    response = await client.post("/w/acme/posts/new",
                                 data=form(csrf, world.newsletter_id, action="schedule"))
    assert response.status_code == 404


async def test_post_text_is_escaped_in_the_form_and_the_preview(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    csrf = await sign_in(client, runtime, world.editor)
    response = await client.post("/w/acme/posts/new", data=form(
        csrf, world.newsletter_id, body='<script>alert(1)</script><img src=x onerror="x()">',
        action="preview"))
    assert "<script>alert(1)" not in response.text and "<img src=x" not in response.text
    assert response.text.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 2


async def test_the_live_preview_answers_the_preview_alone(
    client: httpx.AsyncClient, world: World, runtime: Runtime, x_channel: int
) -> None:
    csrf = await sign_in(client, runtime, world.editor)
    response = await client.post("/w/acme/posts/preview", data=form(
        csrf, x_channel, world.instagram_id))
    assert response.status_code == 200
    assert "<html" not in response.text
    assert set(previews(response.text)) == {"Acme on X", "Instagram main"}


async def test_the_posts_pages_quick_form_opens_its_draft_in_the_composer(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    csrf = await sign_in(client, runtime, world.editor)
    page = (await client.get("/w/acme/posts")).text
    assert 'formaction="/w/acme/posts/new" name="action" value="preview"' in page
    response = await client.post("/w/acme/posts/new", data={
        "csrf_token": csrf, "body": "Quick one", "due_at": "2026-11-23T15:00", "tz": "UTC",
        "channel_ids": [str(world.newsletter_id)], "action": "preview"})
    assert response.status_code == 200
    assert 'name="due_at" value="2026-11-23T15:00"' in response.text
    assert set(previews(response.text)) == {"Newsletter"}
