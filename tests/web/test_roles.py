from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import func, select

from sidestep.clock import FrozenClock
from sidestep.runtime import Runtime
from sidestep.store.tables import Post
from tests.web.conftest import World, api_token, bearer, sign_in

PAGES = ("/w/acme/status", "/w/acme/posts", "/w/acme/channels")
API_READS = ("/api/v1/workspaces/acme/channels", "/api/v1/workspaces/acme/posts")


async def post_count(runtime: Runtime) -> int:
    async with runtime.db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(Post)) or 0)


def form(world: World, clock: FrozenClock, csrf: str) -> dict[str, object]:
    return {"body": "Role check", "csrf_token": csrf, "channel_ids": [str(world.newsletter_id)],
            "due_at": (clock.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")}


def payload(world: World, clock: FrozenClock) -> dict[str, object]:
    return {"body": "Role check", "channel_ids": [world.newsletter_id],
            "due_at": (clock.now() + timedelta(hours=1)).isoformat()}


async def test_a_viewer_may_look_at_every_page(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    await sign_in(client, runtime, world.viewer)
    for path in PAGES:
        assert (await client.get(path)).status_code == 200, path


async def test_a_viewer_gets_no_composer_and_403_when_creating_a_post(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock
) -> None:
    csrf = await sign_in(client, runtime, world.viewer)
    page = await client.get("/w/acme/posts")
    assert "New post" not in page.text
    before = await post_count(runtime)
    response = await client.post("/w/acme/posts", data=form(world, clock, csrf))
    assert response.status_code == 403
    assert "editor" in response.text
    assert await post_count(runtime) == before


async def test_an_editor_creates_a_post_through_the_form(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock
) -> None:
    csrf = await sign_in(client, runtime, world.editor)
    response = await client.post("/w/acme/posts", data=form(world, clock, csrf))
    assert response.status_code == 303
    listing = await client.get(response.headers["location"])
    assert "scheduled for 2026-11-23 13:00 UTC." in listing.text
    assert "Role check" in listing.text


async def test_a_viewer_gets_403_creating_a_post_through_the_api(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock
) -> None:
    token = await api_token(runtime, world.viewer)
    response = await client.post("/api/v1/workspaces/acme/posts", json=payload(world, clock),
                                 headers=bearer(token))
    assert response.status_code == 403
    assert response.json()["detail"].startswith("this needs the editor role")


async def test_an_editor_creates_a_post_through_the_api(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock
) -> None:
    token = await api_token(runtime, world.editor)
    response = await client.post("/api/v1/workspaces/acme/posts", json=payload(world, clock),
                                 headers=bearer(token))
    assert response.status_code == 201
    assert response.json()["created_by"] == world.editor.id


@pytest.mark.parametrize("path", PAGES)
async def test_a_non_member_gets_the_same_404_as_for_a_missing_workspace(
    client: httpx.AsyncClient, world: World, runtime: Runtime, path: str
) -> None:
    await sign_in(client, runtime, world.outsider)
    hidden = await client.get(path)
    missing = await client.get(path.replace("acme", "no-such-workspace"))
    assert hidden.status_code == missing.status_code == 404
    assert hidden.text.replace("acme", "") == missing.text.replace("no-such-workspace", "")


async def test_a_non_member_gets_404_from_the_api(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock
) -> None:
    token = await api_token(runtime, world.outsider)
    for path in API_READS:
        response = await client.get(path, headers=bearer(token))
        assert response.status_code == 404, path
        assert response.json() == {"detail": "no such workspace"}
    response = await client.post("/api/v1/workspaces/acme/posts", json=payload(world, clock),
                                 headers=bearer(token))
    assert response.status_code == 404


async def test_a_member_of_one_workspace_cannot_reach_anothers_post(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    token = await api_token(runtime, world.owner)  # owner of both acme and globex
    response = await client.get(f"/api/v1/workspaces/globex/posts/{world.post_id}",
                                headers=bearer(token))
    assert response.status_code == 404


async def test_an_editor_cannot_target_another_workspaces_channel(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock
) -> None:
    token = await api_token(runtime, world.editor)
    body = {**payload(world, clock), "channel_ids": [world.other_channel_id]}
    response = await client.post("/api/v1/workspaces/acme/posts", json=body,
                                 headers=bearer(token))
    assert response.status_code == 422
    assert "no such channel" in response.json()["detail"]
