from __future__ import annotations

import re
from datetime import timedelta

import httpx
from fastapi import FastAPI

from sidestep.clock import FrozenClock
from sidestep.domain.states import PlatformStatus
from sidestep.runtime import Runtime
from sidestep.store.accounts import Accounts
from sidestep.store.health import Health
from sidestep.store.posts import NewPost, Posts
from sidestep.web.app import create_app
from tests.web.conftest import World, api_token, bearer, sign_in


def row_of(html: str, platform: str) -> str:
    match = re.search(rf'<tr data-platform="{platform}">(.*?)</tr>', html, re.S)
    assert match, f"no row for {platform}"
    return match.group(1)


async def set_state(runtime: Runtime, platform: str, status: PlatformStatus,
                    features: list[str] | None = None, reason: str = "") -> None:
    async with runtime.db.session() as s:
        await Health(s).set_state(platform=platform, status=status, features=features or [],
                                  reason=reason, at=runtime.clock.now())


async def test_the_status_board_lists_rented_platforms_as_unknown_before_the_monitor_runs(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    await sign_in(client, runtime, world.viewer)
    page = (await client.get("/w/acme/status")).text
    for platform in ("instagram", "facebook", "x"):
        assert ">unknown<" in row_of(page, platform)
    assert 'data-platform="email"' not in page  # owned, not rented
    assert "monitor is not running yet" in page


async def test_the_status_board_shows_the_monitors_states(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock
) -> None:
    await set_state(runtime, "instagram", PlatformStatus.DOWN, reason="DNS SERVFAIL")
    clock.advance(seconds=600)
    await set_state(runtime, "facebook", PlatformStatus.DEGRADED, ["media"])
    await set_state(runtime, "threads", PlatformStatus.UP)  # not in this catalogue
    clock.advance(seconds=300)
    await sign_in(client, runtime, world.viewer)
    page = (await client.get("/w/acme/status")).text
    instagram = row_of(page, "instagram")
    assert "status-down" in instagram and "DNS SERVFAIL" in instagram
    assert "2026-11-23 12:00 UTC" in instagram and "15 min ago" in instagram
    assert "Meta" in instagram and "Instagram" in instagram
    assert "status-degraded" in row_of(page, "facebook") and "media" in row_of(page, "facebook")
    assert ">unknown<" in row_of(page, "x")
    assert "status-up" in row_of(page, "threads")
    assert "monitor is not running yet" not in page
    assert page.index('data-platform="instagram"') < page.index('data-platform="x"')


async def test_the_status_board_works_with_the_default_catalogue(
    runtime: Runtime, world: World
) -> None:
    await set_state(runtime, "instagram", PlatformStatus.DOWN)
    app = create_app(runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver") as client:
        await sign_in(client, runtime, world.viewer)
        response = await client.get("/w/acme/status")
    assert response.status_code == 200
    assert "status-down" in row_of(response.text, "instagram")


async def test_the_posts_page_shows_each_posts_delivery_states(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    await sign_in(client, runtime, world.viewer)
    page = (await client.get("/w/acme/posts")).text
    assert "Opening hours change on Monday" in page
    assert "due 2026-11-23 14:00 UTC (in 2 h)" in page
    deliveries = re.findall(r'class="channel">([^<]+)</span>\s*<span class="badge delivery-(\w+)"',
                            page)
    assert deliveries == [("Instagram main", "scheduled"), ("Newsletter", "scheduled")]


async def test_the_composer_suggests_a_due_time_an_hour_ahead(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    await sign_in(client, runtime, world.editor)
    page = (await client.get("/w/acme/posts")).text
    assert 'name="due_at" value="2026-11-23T13:00"' in page


async def test_the_composer_shows_validation_errors_and_keeps_what_was_typed(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    csrf = await sign_in(client, runtime, world.editor)
    response = await client.post("/w/acme/posts", data={
        "csrf_token": csrf, "body": "   ", "due_at": "tomorrow-ish",
    })
    assert response.status_code == 400
    assert "write something to post" in response.text
    assert "give a date and a time (UTC)" in response.text
    assert "pick at least one channel" in response.text
    assert 'value="tomorrow-ish"' in response.text


async def test_the_composer_refuses_a_due_time_in_the_past_and_foreign_channels(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock
) -> None:
    csrf = await sign_in(client, runtime, world.editor)
    past = (clock.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    response = await client.post("/w/acme/posts", data={
        "csrf_token": csrf, "body": "Late", "due_at": past,
        "channel_ids": [str(world.other_channel_id)],
    })
    assert response.status_code == 400
    assert "the due time is in the past" in response.text
    future = (clock.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    response = await client.post("/w/acme/posts", data={
        "csrf_token": csrf, "body": "Elsewhere", "due_at": future,
        "channel_ids": [str(world.other_channel_id)],
    })
    assert response.status_code == 400
    assert "no such channel in this workspace" in response.text


async def test_the_channels_page_lists_name_platform_status_and_audience(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    await sign_in(client, runtime, world.viewer)
    page = (await client.get("/w/acme/channels")).text
    assert re.search(r"Instagram main</th>\s*<td>instagram</td>\s*<td>@acme</td>\s*"
                     r'<td><span class="badge channel-active">active</span></td>\s*'
                     r'<td class="num">12,500</td>', page)
    assert "Newsletter" in page
    assert "Globex on X" not in page


async def test_the_header_offers_a_workspace_switcher_only_to_members_of_several(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    await sign_in(client, runtime, world.owner)
    page = (await client.get("/w/acme/posts")).text
    assert 'class="switcher"' in page and 'href="/w/globex/posts"' in page
    await sign_in(client, runtime, world.editor)
    page = (await client.get("/w/acme/posts")).text
    assert 'class="switcher"' not in page and "Acme Coffee" in page


async def test_it_escapes_user_text_in_templates(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock
) -> None:
    async with runtime.db.session() as s:
        acme = await Accounts(s).workspace_by_slug("acme")
        assert acme is not None
        await Posts(s, workspace_id=acme.id).create(
            NewPost(body="<script>alert(1)</script>", due_at=clock.now(),
                    channel_ids=[world.instagram_id]),
            created_by=None, at=clock.now(),
        )
        acme.name = 'Acme "<b>bold</b>"'
    await sign_in(client, runtime, world.owner)
    page = (await client.get("/w/acme/posts")).text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>bold</b>" not in page


async def test_pages_api_and_errors_carry_the_security_headers(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    token = await api_token(runtime, world.owner)
    responses = [
        await client.get("/login"),
        await client.get("/static/style.css"),
        await client.get("/no/such/page"),
        await client.get("/api/v1/workspaces", headers=bearer(token)),
    ]
    for response in responses:
        assert "default-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"
        assert response.headers["x-frame-options"] == "DENY"


async def test_errors_are_html_for_pages_and_json_for_the_api(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    await sign_in(client, runtime, world.owner)
    page = await client.get("/no/such/page")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>Not found</h1>" in page.text
    api = await client.get("/api/v1/no/such/thing")
    assert api.status_code == 404
    assert api.json() == {"detail": "Not Found"}
    bad_query = await client.get("/w/acme/posts?created=abc")
    assert bad_query.status_code == 400
    assert bad_query.headers["content-type"].startswith("text/html")


async def test_an_unexpected_error_shows_a_bare_500_page(runtime: Runtime, world: World) -> None:
    app: FastAPI = create_app(runtime)

    @app.get("/boom", include_in_schema=False)
    async def boom() -> None:
        raise RuntimeError("secret internals")

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                 base_url="http://testserver") as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert "secret internals" not in response.text
    assert response.headers["x-frame-options"] == "DENY"
