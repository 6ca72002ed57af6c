"""The threads profile: containers and publishing on graph.threads.net."""

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
from sidestep.sim.platforms import threads
from sidestep.sim.platforms.threads import ThreadsProfile, text_length
from sidestep.sim.profile import ErrorKind
from sidestep.sim.world import Fault, SimWorld

USER = "26000000000000001"
TOKEN = "THAAToken"
IMAGE = "https://cdn.brand.example/banner.jpg"
VIDEO = "https://cdn.brand.example/clip.mp4"


@pytest.fixture
def world() -> SimWorld:
    world = SimWorld(clock=FrozenClock(datetime(2026, 1, 1, tzinfo=UTC)), seed=1)
    world.grant_token("threads", TOKEN, USER)
    return world


@pytest.fixture
async def client(world: SimWorld) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=ThreadsProfile(world).routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://graph.threads.net",
                                 params={"access_token": TOKEN}) as client:
        yield client


async def create(client: httpx.AsyncClient, **params: Any) -> httpx.Response:
    return await client.post(f"/v1.0/{USER}/threads", data=params)


async def publish(client: httpx.AsyncClient, container_id: str) -> httpx.Response:
    return await client.post(f"/v1.0/{USER}/threads_publish", data={"creation_id": container_id})


async def status(client: httpx.AsyncClient, container_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1.0/{container_id}", params={"fields": "status,error_message"})
    return dict(response.json())


async def test_it_publishes_a_text_post_in_two_steps(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    created = await create(client, media_type="TEXT", text="We are also on the newsletter")
    container_id = created.json()["id"]
    assert created.status_code == 200 and re.fullmatch(r"\d{17}", container_id)
    assert await status(client, container_id) == {"id": container_id, "status": "FINISHED"}
    published = await publish(client, container_id)
    media_id = published.json()["id"]
    assert published.status_code == 200 and re.fullmatch(r"\d{17}", media_id)
    [recorded] = world.record.all("threads")
    assert (recorded.account, recorded.kind, recorded.external_id) == (USER, "post", media_id)
    assert recorded.payload == {"media_type": "TEXT", "text": "We are also on the newsletter"}
    media = await client.get(f"/v1.0/{media_id}",
                             params={"fields": "id,media_type,permalink,text"})
    assert media.json()["media_type"] == "TEXT_POST"
    assert re.fullmatch(rf"https://www\.threads\.net/@threads_{USER}/post/[\w-]{{11}}",
                        media.json()["permalink"])
    assert await status(client, container_id) == {"id": container_id, "status": "PUBLISHED"}


def test_it_counts_emojis_as_their_utf8_bytes() -> None:
    assert text_length("abc") == 3
    assert text_length("é") == 1
    assert text_length("\U0001f600") == 4
    assert text_length("\u2764\ufe0f") == 6  # heart + variation selector: 3 + 3 bytes


async def test_it_refuses_text_over_500_characters(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    assert (await create(client, media_type="TEXT", text="x" * 500)).status_code == 200
    too_long = await create(client, media_type="TEXT", text="x" * 497 + "\U0001f600")
    assert too_long.status_code == 400
    error = too_long.json()["error"]
    assert (error["code"], error["type"]) == (100, "THApiException")
    assert error["message"] == "(#100) Param text must be at most 500 characters long."


async def test_it_refuses_a_missing_media_type(client: httpx.AsyncClient) -> None:
    response = await create(client, text="hello")
    assert response.json()["error"]["message"] == "(#100) The parameter media_type is required."


async def test_it_publishes_an_image_post(client: httpx.AsyncClient, world: SimWorld) -> None:
    container_id = (await create(client, media_type="IMAGE", image_url=IMAGE,
                                 text="Status")).json()["id"]
    assert (await publish(client, container_id)).status_code == 200
    assert world.record.all("threads")[0].payload["image_url"] == IMAGE


async def test_it_refuses_to_publish_a_video_still_processing(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    container_id = (await create(client, media_type="VIDEO", video_url=VIDEO)).json()["id"]
    early = await publish(client, container_id)
    assert early.status_code == 400
    assert early.json()["error"]["code"] == 24
    assert early.json()["error"]["message"] == "The requested resource does not exist"
    for _ in range(threads.VIDEO_POLLS_TO_FINISH):
        last = await status(client, container_id)
    assert last["status"] == "FINISHED"
    assert (await publish(client, container_id)).status_code == 200
    assert len(world.record.all("threads")) == 1


async def test_it_publishes_a_carousel(client: httpx.AsyncClient, world: SimWorld) -> None:
    children = [(await create(client, media_type="IMAGE", image_url=IMAGE,
                              is_carousel_item="true")).json()["id"] for _ in range(3)]
    carousel = await create(client, media_type="CAROUSEL", children=",".join(children))
    assert (await publish(client, carousel.json()["id"])).status_code == 200
    assert len(world.record.all("threads")[0].payload["children"]) == 3
    too_few = await create(client, media_type="CAROUSEL", children=children[0])
    assert too_few.status_code == 400


async def test_it_fails_media_containers_under_a_partial_media_fault(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    video = (await create(client, media_type="VIDEO", video_url=VIDEO)).json()["id"]
    world.faults.set("threads", Fault.PARTIAL, feature="media")
    image = (await create(client, media_type="IMAGE", image_url=IMAGE)).json()["id"]
    text = (await create(client, media_type="TEXT", text="still here")).json()["id"]
    assert await status(client, image) == {"id": image, "status": "ERROR",
                                           "error_message": "UNKNOWN"}
    assert await status(client, video) == {"id": video, "status": "ERROR",
                                           "error_message": "FAILED_DOWNLOADING_VIDEO"}
    assert (await publish(client, image)).status_code == 400
    assert (await publish(client, text)).status_code == 200
    assert [p.payload["media_type"] for p in world.record.all()] == ["TEXT"]


async def test_it_never_publishes_a_container_twice(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    container_id = (await create(client, media_type="TEXT", text="once")).json()["id"]
    await publish(client, container_id)
    again = await publish(client, container_id)
    assert again.status_code == 400
    assert len(world.record.all("threads")) == 1


async def test_it_asks_for_a_token_and_refuses_unknown_ones(world: SimWorld) -> None:
    app = Starlette(routes=ThreadsProfile(world).routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://graph.threads.net") as anonymous:
        missing = await anonymous.post(f"/v1.0/{USER}/threads", data={"media_type": "TEXT"})
        unknown = await anonymous.post(f"/v1.0/{USER}/threads", headers={
            "Authorization": "Bearer THAAnope"}, data={"media_type": "TEXT", "text": "x"})
    assert missing.json()["error"]["code"] == 104
    assert unknown.json()["error"]["code"] == 190
    assert unknown.json()["error"]["type"] == "OAuthException"


async def test_it_says_who_the_user_is(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1.0/me", params={"fields": "id,username"})
    assert response.json() == {"id": USER, "username": f"threads_{USER}"}


EXPECTED = {  # kind -> (status, code, subcode)
    ErrorKind.SERVER_ERROR: (500, 1, None),
    ErrorKind.UNAVAILABLE: (503, 2, None),
    ErrorKind.RATE_LIMITED: (400, 4, None),
    ErrorKind.AUTH_EXPIRED: (400, 190, 463),
    ErrorKind.AUTH_MISSING: (400, 190, 467),
    ErrorKind.INVALID_REQUEST: (400, 100, None),
    ErrorKind.NOT_FOUND: (400, 100, 33),
    ErrorKind.DUPLICATE: (400, 506, None),
    ErrorKind.MEDIA_FAILED: (400, 9004, 2207052),
}


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_it_answers_every_error_kind_in_threads_words(world: SimWorld, kind: ErrorKind) -> None:
    assert set(EXPECTED) == set(ErrorKind)
    response = ThreadsProfile(world).error(kind, "injected", retry_after_s=120)
    error = json.loads(bytes(response.body))["error"]
    assert (response.status_code, error["code"], error.get("error_subcode")) == EXPECTED[kind]
    token_error = kind in (ErrorKind.AUTH_EXPIRED, ErrorKind.AUTH_MISSING)
    assert error["type"] == ("OAuthException" if token_error else "THApiException")
    if kind is ErrorKind.RATE_LIMITED:
        assert json.loads(response.headers["x-app-usage"])["call_count"] == 100
        assert "x-business-use-case-usage" not in response.headers
