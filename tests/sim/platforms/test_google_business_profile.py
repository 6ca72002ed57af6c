"""The simulated Google Business Profile localPosts API, driven through its routes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from sidestep.clock import FrozenClock
from sidestep.sim.platforms.google_business_profile import GoogleBusinessProfile
from sidestep.sim.profile import ErrorKind
from sidestep.sim.world import SimWorld

TOKEN = "ya29.shop-token"
BASE = "https://mybusiness.googleapis.com"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
POSTS = "/v4/accounts/107/locations/4242/localPosts"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))


@pytest.fixture
def world(clock: FrozenClock) -> SimWorld:
    world = SimWorld(clock=clock, seed=1)
    world.grant_token("google_business_profile", TOKEN, "Corner Shop")
    world.grant_token("google_business_profile", "ya29.other", "Other Shop")
    return world


@pytest.fixture
def profile(world: SimWorld) -> GoogleBusinessProfile:
    profile = GoogleBusinessProfile(world)
    profile.add_location("Corner Shop", "107", "4242")
    return profile


@pytest.fixture
async def client(profile: GoogleBusinessProfile) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=profile.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


def standard(**extra: Any) -> dict[str, Any]:
    return {"languageCode": "en-US", "topicType": "STANDARD",
            "summary": "Instagram is down; our offers are on our own site.",
            "callToAction": {"actionType": "LEARN_MORE", "url": "https://shop.example/"}} | extra


async def test_it_creates_a_post_that_goes_live_after_review_and_records_it_once(
        client: httpx.AsyncClient, world: SimWorld, clock: FrozenClock) -> None:
    response = await client.post(POSTS, headers=AUTH, json=standard())

    assert response.status_code == 200
    post = response.json()
    assert post["name"].startswith("accounts/107/locations/4242/localPosts/")
    assert post["state"] == "PROCESSING" and post["topicType"] == "STANDARD"
    assert post["createTime"] == "2026-01-01T00:00:00.000000Z" == post["updateTime"]
    assert post["searchUrl"].startswith("https://local.google.com/place?id=4242")
    assert post["callToAction"] == {"actionType": "LEARN_MORE", "url": "https://shop.example/"}
    [recorded] = world.record.all("google_business_profile")
    assert (recorded.account, recorded.kind, recorded.external_id) == (
        "Corner Shop", "post", post["name"])
    clock.advance(seconds=1)
    assert (await client.get(f"/v4/{post['name']}", headers=AUTH)).json()["state"] == "LIVE"


async def test_it_creates_a_photo_post(client: httpx.AsyncClient) -> None:
    response = await client.post(POSTS, headers=AUTH, json=standard(media=[
        {"mediaFormat": "PHOTO", "sourceUrl": "https://shop.example/window.jpg"}]))

    [media] = response.json()["media"]
    assert media["mediaFormat"] == "PHOTO" and media["name"].endswith("/media/0")


async def test_it_gets_lists_and_deletes_posts(client: httpx.AsyncClient) -> None:
    name = (await client.post(POSTS, headers=AUTH, json=standard())).json()["name"]

    fetched = await client.get(f"/v4/{name}", headers=AUTH)
    listed = await client.get(POSTS, headers=AUTH)
    deleted = await client.delete(f"/v4/{name}", headers=AUTH)
    gone = await client.get(f"/v4/{name}", headers=AUTH)

    assert fetched.json()["name"] == name
    assert [p["name"] for p in listed.json()["localPosts"]] == [name]
    assert (deleted.status_code, deleted.json()) == (200, {})
    assert gone.status_code == 404
    assert gone.json()["error"]["status"] == "NOT_FOUND"


async def test_it_requires_event_details_for_event_posts(client: httpx.AsyncClient) -> None:
    bare = await client.post(POSTS, headers=AUTH, json={"topicType": "EVENT",
                                                        "summary": "Pop-up sale"})
    full = await client.post(POSTS, headers=AUTH, json={
        "topicType": "EVENT", "summary": "Pop-up sale", "event": {
            "title": "Pop-up", "schedule": {"startDate": {"year": 2026, "month": 1, "day": 3},
                                            "endDate": {"year": 2026, "month": 1, "day": 4}}}})

    assert bare.status_code == 400
    assert bare.json()["error"]["details"][0]["errorDetails"][0]["field"] == "event"
    assert full.status_code == 200 and full.json()["event"]["title"] == "Pop-up"


async def test_it_rejects_a_post_with_a_phone_number_on_review(
        client: httpx.AsyncClient, clock: FrozenClock) -> None:
    phone = await client.post(POSTS, headers=AUTH,
                              json=standard(summary="Call us on +1 (555) 010-9999"))
    dated = await client.post(POSTS, headers=AUTH,
                              json=standard(summary="Open again from 2026-01-02 09:00"))
    clock.advance(seconds=1)

    states = [(await client.get(f"/v4/{r.json()['name']}", headers=AUTH)).json()["state"]
              for r in (phone, dated)]

    assert states == ["REJECTED", "LIVE"]


async def test_it_refuses_a_summary_over_1500_characters_naming_the_field(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    response = await client.post(POSTS, headers=AUTH, json=standard(summary="s" * 1501))

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["message"] == "Request contains an invalid argument."
    assert error["details"] == [{
        "@type": "type.googleapis.com/google.mybusiness.v4.ValidationError",
        "errorDetails": [{"code": 3, "field": "summary",
                          "message": "The summary must be at most 1500 characters."}]}]
    assert world.record.all() == []


async def test_it_keeps_a_repeated_post_as_the_api_does(client: httpx.AsyncClient,
                                                        world: SimWorld) -> None:
    first = await client.post(POSTS, headers=AUTH, json=standard())
    second = await client.post(POSTS, headers=AUTH, json=standard())

    assert first.json()["name"] != second.json()["name"]
    assert len(world.record.all("google_business_profile")) == 2


async def test_it_refuses_tokens_and_locations_that_do_not_match(
        client: httpx.AsyncClient) -> None:
    missing = await client.post(POSTS, json=standard())
    unknown = await client.post(POSTS, headers={"Authorization": "Bearer nope"}, json=standard())
    foreign = await client.post(POSTS, headers={"Authorization": "Bearer ya29.other"},
                                json=standard())
    nowhere = await client.post("/v4/accounts/107/locations/1/localPosts", headers=AUTH,
                                json=standard())

    assert missing.status_code == unknown.status_code == 401
    assert missing.json()["error"]["errors"][0]["reason"] == "required"
    assert unknown.json()["error"]["errors"][0]["reason"] == "authError"
    assert foreign.status_code == 403
    assert foreign.json()["error"]["status"] == "PERMISSION_DENIED"
    assert nowhere.status_code == 404


EXPECTED = {
    ErrorKind.SERVER_ERROR: (500, "INTERNAL"),
    ErrorKind.UNAVAILABLE: (503, "UNAVAILABLE"),
    ErrorKind.RATE_LIMITED: (429, "RESOURCE_EXHAUSTED"),
    ErrorKind.AUTH_EXPIRED: (401, "UNAUTHENTICATED"),
    ErrorKind.AUTH_MISSING: (401, "UNAUTHENTICATED"),
    ErrorKind.INVALID_REQUEST: (400, "INVALID_ARGUMENT"),
    ErrorKind.NOT_FOUND: (404, "NOT_FOUND"),
    ErrorKind.DUPLICATE: (400, "INVALID_ARGUMENT"),
    ErrorKind.MEDIA_FAILED: (400, "INVALID_ARGUMENT"),
}


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_it_answers_every_error_kind_in_googles_format(profile: GoogleBusinessProfile,
                                                       kind: ErrorKind) -> None:
    response = profile.error(kind, "summary: bad", retry_after_s=60)

    error = json.loads(bytes(response.body))["error"]
    assert (response.status_code, error["status"]) == EXPECTED[kind]
    assert error["code"] == response.status_code and error["message"] and error["errors"]
