from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from sidestep.clock import FrozenClock
from sidestep.domain.states import PlatformStatus
from sidestep.runtime import Runtime
from sidestep.store.accounts import Accounts
from sidestep.store.health import Health
from sidestep.store.tables import ApiToken, Channel
from tests.web.conftest import SECRET, World, api_token, bearer, sign_in

API_PATHS = {
    "/api/v1/workspaces": {"get"},
    "/api/v1/workspaces/{slug}/channels": {"get"},
    "/api/v1/workspaces/{slug}/posts": {"get", "post"},
    "/api/v1/workspaces/{slug}/posts/{post_id}": {"get"},
    "/api/v1/platforms/states": {"get"},
    "/api/v1/pause": {"post"},
    "/api/v1/resume": {"post"},
}


def new_post(world: World, clock: FrozenClock, **changes: object) -> dict[str, object]:
    return {"body": "Launch day", "due_at": (clock.now() + timedelta(hours=3)).isoformat(),
            "channel_ids": [world.instagram_id, world.newsletter_id], **changes}


async def test_an_api_token_lists_the_callers_workspaces_with_roles(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock
) -> None:
    token = await api_token(runtime, world.owner)
    response = await client.get("/api/v1/workspaces", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == [
        {"slug": "acme", "name": "Acme Coffee", "role": "owner"},
        {"slug": "globex", "name": "Globex", "role": "owner"},
    ]
    async with runtime.db.session() as s:
        row = await s.scalar(select(ApiToken).where(ApiToken.user_id == world.owner.id))
    assert row is not None and row.last_used_at == clock.now()


@pytest.mark.parametrize("header", [None, "Bearer sst_not-a-real-token", "Basic b3duZXI6cHc=",
                                    "Bearer "])
async def test_it_answers_401_with_www_authenticate_without_a_valid_token(
    client: httpx.AsyncClient, world: World, header: str | None
) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = await client.get("/api/v1/workspaces", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"].startswith("application/json")


async def test_a_revoked_token_gets_401(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock
) -> None:
    token = await api_token(runtime, world.owner)
    assert (await client.get("/api/v1/workspaces", headers=bearer(token))).status_code == 200
    async with runtime.db.session() as s:
        assert await Accounts(s).revoke_api_token(user_id=world.owner.id, prefix=token[:8],
                                                  at=clock.now())
    response = await client.get("/api/v1/workspaces", headers=bearer(token))
    assert response.status_code == 401
    assert response.json() == {"detail": "the API token is invalid or revoked"}


async def test_it_lists_channels_without_credentials(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    token = await api_token(runtime, world.viewer)
    channels = (await client.get("/api/v1/workspaces/acme/channels", headers=bearer(token))).json()
    assert [c["name"] for c in channels] == ["Instagram main", "Newsletter"]
    assert set(channels[0]) == {"id", "platform", "name", "handle", "status", "audience_size",
                                "created_at"}
    assert channels[0]["audience_size"] == 12500 and channels[0]["status"] == "active"


async def test_it_creates_a_post_and_returns_it_with_its_deliveries(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock
) -> None:
    token = await api_token(runtime, world.editor)
    response = await client.post("/api/v1/workspaces/acme/posts", headers=bearer(token),
                                 json=new_post(world, clock, link="https://acme.example/launch"))
    assert response.status_code == 201
    created = response.json()
    assert response.headers["location"] == f"/api/v1/workspaces/acme/posts/{created['id']}"
    assert created["body"] == "Launch day" and created["link"] == "https://acme.example/launch"
    assert [(d["channel_id"], d["state"]) for d in created["deliveries"]] == [
        (world.instagram_id, "scheduled"), (world.newsletter_id, "scheduled")]
    fetched = await client.get(response.headers["location"], headers=bearer(token))
    assert fetched.json() == created
    listed = await client.get("/api/v1/workspaces/acme/posts", headers=bearer(token))
    assert [p["id"] for p in listed.json()] == [created["id"], world.post_id]


@pytest.mark.parametrize("changes, problem", [
    ({"due_at": "2026-11-23T10:00:00+00:00"}, "the due time is in the past"),
    ({"due_at": "2026-11-24T10:00:00"}, "timezone"),
    ({"channel_ids": []}, "at least 1"),
    ({"channel_ids": [1, 1]}, "a channel is named twice"),
    ({"body": ""}, "at least 1"),
    ({"link": "javascript:alert(1)"}, "absolute http(s) URL"),
    ({"credentials": {"x": "y"}}, "Extra inputs"),
])
async def test_it_refuses_a_post_it_cannot_create_with_422(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock,
    changes: dict[str, object], problem: str,
) -> None:
    token = await api_token(runtime, world.editor)
    response = await client.post("/api/v1/workspaces/acme/posts", headers=bearer(token),
                                 json=new_post(world, clock, **changes))
    assert response.status_code == 422
    assert problem in response.text


async def test_it_answers_404_for_a_post_that_is_not_there(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    token = await api_token(runtime, world.viewer)
    response = await client.get("/api/v1/workspaces/acme/posts/9999", headers=bearer(token))
    assert response.status_code == 404
    assert response.json() == {"detail": "no such post in this workspace"}


async def test_it_lists_platform_states_with_unknown_for_unchecked_platforms(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock
) -> None:
    async with runtime.db.session() as s:
        await Health(s).set_state(platform="facebook", status=PlatformStatus.DEGRADED,
                                  features=["media"], reason="uploads fail", at=clock.now())
    token = await api_token(runtime, world.outsider)  # any signed-in user may see platforms
    states = (await client.get("/api/v1/platforms/states", headers=bearer(token))).json()
    by_key = {s["platform"]: s for s in states}
    assert set(by_key) == {"instagram", "facebook", "x"}
    assert by_key["facebook"]["status"] == "degraded"
    assert by_key["facebook"]["features"] == ["media"]
    assert by_key["facebook"]["owner"] == "Meta"
    assert by_key["x"] == {"platform": "x", "name": "X", "owner": "X Corp", "status": "unknown",
                           "features": [], "reason": "", "since": None, "updated_at": None}


async def test_the_openapi_document_lists_the_api_and_nothing_else(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    paths = {path: set(ops) for path, ops in schema["paths"].items()}
    assert paths == API_PATHS
    assert schema["components"]["securitySchemes"]["apiToken"]["scheme"] == "bearer"
    channel = schema["components"]["schemas"]["ChannelOut"]["properties"]
    assert not any("credential" in name for name in channel)


async def test_no_response_ever_contains_channel_credentials(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    async with runtime.db.session() as s:
        sealed = await s.scalar(select(Channel.credentials_encrypted)
                                .where(Channel.id == world.instagram_id))
    assert sealed is not None
    token = await api_token(runtime, world.owner)
    await sign_in(client, runtime, world.owner)
    api_paths = ["/api/v1/workspaces", "/api/v1/workspaces/acme/channels",
                 "/api/v1/workspaces/acme/posts", f"/api/v1/workspaces/acme/posts/{world.post_id}",
                 "/api/v1/platforms/states", "/api/v1/openapi.json"]
    pages = ["/w/acme/status", "/w/acme/posts", "/w/acme/channels", "/metrics", "/healthz"]
    for path in api_paths + pages:
        headers = bearer(token) if path.startswith("/api/") else {}
        response = await client.get(path, headers=headers)
        assert response.status_code == 200, path
        assert SECRET not in response.text, path
        assert "access_token" not in response.text, path
        assert sealed.decode() not in response.text, path
