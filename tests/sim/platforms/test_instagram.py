"""The instagram profile: containers, status polling and publishing, on both Graph hosts."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from sidestep.clock import FrozenClock
from sidestep.sim.platforms import instagram
from sidestep.sim.platforms.facebook import FacebookProfile
from sidestep.sim.platforms.instagram import InstagramProfile
from sidestep.sim.profile import ErrorKind
from sidestep.sim.world import Fault, SimWorld

USER = "17841400000000001"
TOKEN = "IGQVJToken"
IMAGE = "https://cdn.brand.example/outage.jpg"
VIDEO = "https://cdn.brand.example/outage.mp4"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))


@pytest.fixture
def world(clock: FrozenClock) -> SimWorld:
    world = SimWorld(clock=clock, seed=1)
    world.grant_token("instagram", TOKEN, USER)
    world.grant_token("instagram", "IGQVJOther", "17841400000000002")
    return world


@pytest.fixture
async def client(world: SimWorld) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=InstagramProfile(world).routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://graph.instagram.com",
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


async def create(client: httpx.AsyncClient, **params: Any) -> httpx.Response:
    return await client.post(f"/v23.0/{USER}/media", data=params)


async def status(client: httpx.AsyncClient, container_id: str) -> str:
    response = await client.get(f"/v23.0/{container_id}", params={"fields": "status_code"})
    return str(response.json()["status_code"])


async def publish(client: httpx.AsyncClient, container_id: str) -> httpx.Response:
    return await client.post(f"/v23.0/{USER}/media_publish", data={"creation_id": container_id})


async def test_it_publishes_an_image_through_a_container(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    created = await create(client, image_url=IMAGE, caption="We moved to email #status")
    container_id = created.json()["id"]
    assert created.status_code == 200 and re.fullmatch(r"\d{17}", container_id)
    assert await status(client, container_id) == "FINISHED"
    published = await publish(client, container_id)
    assert published.status_code == 200
    media_id = published.json()["id"]
    assert re.fullmatch(r"\d{17}", media_id) and media_id != container_id
    [recorded] = world.record.all("instagram")
    assert (recorded.account, recorded.kind, recorded.external_id) == (USER, "post", media_id)
    assert recorded.payload == {"image_url": IMAGE, "caption": "We moved to email #status"}
    media = await client.get(f"/v23.0/{media_id}",
                             params={"fields": "id,media_type,permalink,caption"})
    assert media.json()["media_type"] == "IMAGE"
    assert re.fullmatch(r"https://www\.instagram\.com/p/[\w-]{11}/", media.json()["permalink"])


async def test_it_keeps_a_reel_in_progress_until_polled_enough(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    container_id = (await create(client, media_type="REELS", video_url=VIDEO)).json()["id"]
    early = await publish(client, container_id)
    assert early.status_code == 400
    error = early.json()["error"]
    assert (error["code"], error["error_subcode"]) == (9007, 2207027)
    assert error["message"] == "Media ID is not available"
    polls = [await status(client, container_id) for _ in range(instagram.VIDEO_POLLS_TO_FINISH)]
    assert polls == ["IN_PROGRESS"] * (instagram.VIDEO_POLLS_TO_FINISH - 1) + ["FINISHED"]
    assert (await publish(client, container_id)).status_code == 200
    assert [p.kind for p in world.record.all("instagram")] == ["post"]


async def test_it_publishes_a_carousel_as_one_post_counting_once_against_the_quota(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    children = [(await create(client, image_url=IMAGE, is_carousel_item="true")).json()["id"]
                for _ in range(2)]
    carousel = await create(client, media_type="CAROUSEL", children=",".join(children),
                            caption="Where to find us")
    assert (await publish(client, carousel.json()["id"])).status_code == 200
    [recorded] = world.record.all("instagram")
    assert recorded.payload["children"] == [{"image_url": IMAGE, "is_carousel_item": "true"}] * 2
    limit = await client.get(f"/v23.0/{USER}/content_publishing_limit",
                             params={"fields": "quota_usage,config"})
    assert limit.json() == {"data": [{"quota_usage": 1, "config": {
        "quota_total": 100, "quota_duration": 86400}}]}


async def test_it_refuses_a_carousel_item_published_on_its_own(client: httpx.AsyncClient) -> None:
    child = (await create(client, image_url=IMAGE, is_carousel_item="true")).json()["id"]
    response = await publish(client, child)
    assert response.json()["error"]["code"] == 24


async def test_it_refuses_a_carousel_with_one_child(client: httpx.AsyncClient) -> None:
    child = (await create(client, image_url=IMAGE, is_carousel_item="true")).json()["id"]
    response = await create(client, media_type="CAROUSEL", children=child)
    error = response.json()["error"]
    assert (response.status_code, error["code"], error["error_subcode"]) == (400, 100, 2207028)


@pytest.mark.parametrize(("params", "code", "subcode"), [
    ({"image_url": "https://cdn.brand.example/a.png"}, 36001, 2207005),
    ({"image_url": IMAGE, "caption": "x" * 2201}, 36004, 2207010),
    ({"image_url": IMAGE, "caption": "#a " * 31}, 36004, 2207010),
    ({"media_type": "REELS", "video_url": "https://cdn.brand.example/a.avi"}, 352, 2207026),
    ({"image_url": "ftp://cdn.brand.example/a.jpg"}, 9004, 2207052),
    ({"media_type": "HOLOGRAM", "image_url": IMAGE}, 100, 2207023),
])
async def test_it_refuses_media_instagram_would_refuse(
        client: httpx.AsyncClient, params: dict[str, str], code: int, subcode: int) -> None:
    response = await create(client, **params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["error_subcode"], error["type"]) == (code, subcode,
                                                                      "OAuthException")
    assert error["fbtrace_id"]


async def test_it_turns_an_in_progress_container_to_error_under_a_partial_media_fault(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    container_id = (await create(client, media_type="REELS", video_url=VIDEO)).json()["id"]
    world.faults.set("instagram", Fault.PARTIAL, feature="media")
    response = await client.get(f"/v23.0/{container_id}", params={"fields": "status_code,status"})
    assert response.json()["status_code"] == "ERROR"
    assert "2207052" in response.json()["status"]
    world.faults.clear("instagram")
    assert await status(client, container_id) == "ERROR"  # an errored container stays so
    assert (await publish(client, container_id)).status_code == 400
    assert world.record.all() == []


async def test_it_expires_a_container_not_published_within_24_hours(
        client: httpx.AsyncClient, clock: FrozenClock) -> None:
    container_id = (await create(client, image_url=IMAGE)).json()["id"]
    clock.advance(seconds=24 * 3600 + 1)
    assert await status(client, container_id) == "EXPIRED"
    error = (await publish(client, container_id)).json()["error"]
    assert (error["code"], error["error_subcode"]) == (-2, 2207020)


async def test_it_never_publishes_a_container_twice(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    container_id = (await create(client, image_url=IMAGE)).json()["id"]
    assert (await publish(client, container_id)).status_code == 200
    again = await publish(client, container_id)
    assert again.status_code == 400
    assert await status(client, container_id) == "PUBLISHED"
    assert len(world.record.all("instagram")) == 1
    listed = await client.get(f"/v23.0/{USER}/media")
    assert listed.json() == {"data": [{"id": world.record.all()[0].external_id}]}


async def test_it_refuses_publishing_past_the_daily_quota(
        client: httpx.AsyncClient, world: SimWorld, clock: FrozenClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(instagram, "QUOTA_TOTAL", 2)
    for _ in range(2):
        assert (await publish(client, (await create(client, image_url=IMAGE)).json()["id"])
                ).status_code == 200
    container_id = (await create(client, image_url=IMAGE)).json()["id"]
    refused = (await publish(client, container_id)).json()["error"]
    assert (refused["code"], refused["error_subcode"]) == (9, 2207042)
    clock.advance(seconds=86_401)  # the window moves on
    assert (await publish(client, (await create(client, image_url=IMAGE)).json()["id"])
            ).status_code == 200


async def test_it_refuses_another_users_container(client: httpx.AsyncClient) -> None:
    response = await client.post("/v23.0/17841400000000002/media", data={"image_url": IMAGE})
    assert response.json()["error"]["error_subcode"] == 33


async def test_it_asks_for_a_token_and_refuses_unknown_ones(world: SimWorld) -> None:
    app = Starlette(routes=InstagramProfile(world).routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://graph.instagram.com") as anonymous:
        missing = await anonymous.post(f"/v23.0/{USER}/media", data={"image_url": IMAGE})
        unknown = await anonymous.post(f"/v23.0/{USER}/media",
                                       data={"image_url": IMAGE, "access_token": "nope"})
    assert missing.json()["error"]["code"] == 104
    assert (unknown.json()["error"]["code"], unknown.json()["error"]["error_subcode"]) == (190, 467)


async def test_it_says_who_the_user_is_on_graph_instagram_com(client: httpx.AsyncClient) -> None:
    response = await client.get("/v23.0/me", params={"fields": "user_id,username"})
    assert response.json() == {"user_id": USER, "username": f"ig_{USER}", "id": USER}


async def test_it_runs_the_same_flow_on_graph_facebook_com(world: SimWorld) -> None:
    app = Starlette(routes=FacebookProfile(world).routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://graph.facebook.com",
                                 params={"access_token": TOKEN}) as client:
        container_id = (await create(client, image_url=IMAGE)).json()["id"]
        assert await status(client, container_id) == "FINISHED"
        assert (await publish(client, container_id)).status_code == 200
    assert [p.platform for p in world.record.all()] == ["instagram"]


EXPECTED = {  # kind -> (status, code, subcode)
    ErrorKind.SERVER_ERROR: (500, 1, None),
    ErrorKind.UNAVAILABLE: (503, 2, None),
    ErrorKind.RATE_LIMITED: (400, 80002, None),
    ErrorKind.AUTH_EXPIRED: (400, 190, 463),
    ErrorKind.AUTH_MISSING: (400, 190, 467),
    ErrorKind.INVALID_REQUEST: (400, 100, None),
    ErrorKind.NOT_FOUND: (400, 100, 33),
    ErrorKind.DUPLICATE: (400, 506, None),
    ErrorKind.MEDIA_FAILED: (400, 9004, 2207052),
}


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_it_answers_every_error_kind_in_instagram_words(world: SimWorld, kind: ErrorKind) -> None:
    assert set(EXPECTED) == set(ErrorKind)
    response = InstagramProfile(world).error(kind, "injected", retry_after_s=30)
    error = json.loads(bytes(response.body))["error"]
    assert (response.status_code, error["code"], error.get("error_subcode")) == EXPECTED[kind]
    assert error["type"] == "OAuthException" and error["fbtrace_id"]
    if kind is ErrorKind.RATE_LIMITED:
        usage = json.loads(response.headers["x-business-use-case-usage"])
        [entry] = next(iter(usage.values()))
        assert (entry["type"], entry["estimated_time_to_regain_access"]) == ("instagram", 1)
