"""The simulated Reddit OAuth API and its image upload host, driven through their routes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from sidestep.clock import FrozenClock
from sidestep.sim.platforms.reddit import RedditProfile
from sidestep.sim.profile import ErrorKind
from sidestep.sim.world import SimWorld

TOKEN = "reddit-access-token"
BASE = "https://oauth.reddit.com"
AGENT = "linux:dev.sidestep.sim-tests:v0.1.0 (by /u/sidestep_bot)"
HEADERS = {"Authorization": f"bearer {TOKEN}", "User-Agent": AGENT}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))


@pytest.fixture
def world(clock: FrozenClock) -> SimWorld:
    world = SimWorld(clock=clock, seed=1)
    world.grant_token("reddit", TOKEN, "brand_account")
    return world


@pytest.fixture
def profile(world: SimWorld) -> RedditProfile:
    profile = RedditProfile(world)
    profile.add_subreddit("BrandNews")
    profile.add_subreddit("TextOnly", kinds=("self",))
    return profile


@pytest.fixture
async def client(profile: RedditProfile) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=profile.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


async def submit(client: httpx.AsyncClient, **form: str) -> httpx.Response:
    body = {"sr": "BrandNews", "kind": "self", "title": "We are posting here while X is down",
            "text": "Updates continue on our own site.", "api_type": "json"} | form
    return await client.post("/api/submit", headers=HEADERS, data=body)


async def test_it_submits_a_self_post_and_records_it_once(client: httpx.AsyncClient,
                                                          world: SimWorld) -> None:
    response = await submit(client)

    assert response.status_code == 200
    body = response.json()["json"]
    assert body["errors"] == []
    data = body["data"]
    assert data["name"] == f"t3_{data['id']}" and data["id"].isalnum() and len(data["id"]) == 7
    assert data["url"] == (f"https://www.reddit.com/r/brandnews/comments/{data['id']}/"
                           "we_are_posting_here_while_x_is_down/")
    assert response.headers["x-ratelimit-used"] == "1"
    assert response.headers["x-ratelimit-remaining"] == "999.0"
    assert response.headers["x-ratelimit-reset"] == "600"
    [recorded] = world.record.all("reddit")
    assert (recorded.account, recorded.kind, recorded.external_id) == (
        "brand_account", "self", data["name"])
    assert recorded.payload["title"] == "We are posting here while X is down"


async def test_it_names_the_caller_and_lists_their_submissions(client: httpx.AsyncClient) -> None:
    name = (await submit(client)).json()["json"]["data"]["name"]

    me = await client.get("/api/v1/me", headers=HEADERS)
    listing = await client.get("/user/brand_account/submitted", headers=HEADERS)

    assert me.json()["name"] == "brand_account"
    [child] = listing.json()["data"]["children"]
    assert child["kind"] == "t3" and child["data"]["name"] == name


@pytest.mark.parametrize(("form", "error"), [
    ({"sr": "NoSuchPlace"}, ["SUBREDDIT_NOEXIST", "that subreddit doesn't exist", "sr"]),
    ({"title": ""}, ["NO_TEXT", "we need something here", "title"]),
    ({"title": "t" * 301}, ["TOO_LONG", "this is too long (max: 300)", "title"]),
    ({"kind": "link", "url": ""}, ["NO_URL", "a url is required", "url"]),
    ({"kind": "link", "url": "not a url"}, ["BAD_URL", "you should check that url", "url"]),
    ({"kind": "link", "url": "https://brand.example/", "sr": "TextOnly"},
     ["NO_LINKS", "this subreddit doesn't allow that kind of post", "kind"]),
])
async def test_it_refuses_bad_submissions_in_the_json_errors_list(
        client: httpx.AsyncClient, world: SimWorld, form: dict[str, str], error: list[str]) -> None:
    response = await submit(client, **form)

    assert response.status_code == 200
    assert response.json() == {"json": {"errors": [error]}}
    assert world.record.all() == []


async def test_it_refuses_a_link_already_submitted_unless_resubmitting(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    link = {"kind": "link", "url": "https://brand.example/status"}
    assert (await submit(client, **link)).json()["json"]["errors"] == []

    again = await submit(client, **link)
    forced = await submit(client, **link, resubmit="true")

    assert again.json() == {"json": {"errors": [
        ["ALREADY_SUB", "that link has already been submitted", "url"]]}}
    assert forced.json()["json"]["errors"] == []
    assert len(world.record.all("reddit")) == 2


@pytest.mark.parametrize("agent", [None, "python-requests/2.32.3", "python-httpx/0.28.1"])
async def test_it_throttles_requests_without_a_descriptive_user_agent(
        profile: RedditProfile, world: SimWorld, agent: str | None) -> None:
    app = Starlette(routes=profile.routes())
    headers = {"Authorization": f"bearer {TOKEN}"} | ({"User-Agent": agent} if agent else {})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        if agent is None:
            c.headers.pop("User-Agent")
        response = await c.post("/api/submit", headers=headers,
                                data={"sr": "BrandNews", "kind": "self", "title": "hi"})

    assert (response.status_code, response.json()) == (429, {"message": "Too Many Requests",
                                                             "error": 429})
    assert world.record.all() == []


@pytest.mark.parametrize("token", [None, "wrong"])
async def test_it_refuses_missing_and_unknown_tokens(client: httpx.AsyncClient,
                                                     token: str | None) -> None:
    headers = {"User-Agent": AGENT} | ({"Authorization": f"bearer {token}"} if token else {})

    response = await client.get("/api/v1/me", headers=headers)

    assert (response.status_code, response.json()) == (401, {"message": "Unauthorized",
                                                             "error": 401})


async def test_it_limits_a_client_to_1000_requests_per_10_minutes(
        client: httpx.AsyncClient, clock: FrozenClock, profile: RedditProfile) -> None:
    profile._windows["brand_account"] = (clock.now().timestamp(), 999)
    clock.advance(seconds=100)

    last = await client.get("/api/v1/me", headers=HEADERS)
    over = await client.get("/api/v1/me", headers=HEADERS)

    assert (last.status_code, last.headers["x-ratelimit-remaining"]) == (200, "0.0")
    assert over.status_code == 429
    assert over.headers["x-ratelimit-reset"] == "500"
    clock.advance(seconds=500)
    assert (await client.get("/api/v1/me", headers=HEADERS)).status_code == 200


async def test_it_takes_an_image_through_the_upload_lease(client: httpx.AsyncClient,
                                                          world: SimWorld,
                                                          profile: RedditProfile) -> None:
    lease = await client.post("/api/media/asset.json", headers=HEADERS,
                              data={"filepath": "banner.png", "mimetype": "image/png"})
    args = lease.json()["args"]
    fields = {f["name"]: f["value"] for f in args["fields"]}
    image = b"\x89PNG\r\n\x1a\n" + b"\0" * 128

    upload = await client.post(f"https:{args['action']}", data=fields,
                               files={"file": ("banner.png", image, "image/png")})
    assert upload.status_code == 201
    location = upload.text.split("<Location>")[1].split("</Location>")[0]
    posted = await submit(client, kind="image", title="Our banner", url=location)

    data = posted.json()["json"]
    assert data["errors"] == []
    assert set(data["data"]) == {"user_submitted_page", "websocket_url"}
    [recorded] = world.record.all("reddit")
    assert recorded.kind == "image"
    asset = lease.json()["asset"]["asset_id"]
    assert profile._images[asset] == image
    listing = await client.get("/user/brand_account/submitted", headers=HEADERS)
    assert listing.json()["data"]["children"][0]["data"]["name"] == recorded.external_id


async def test_it_refuses_an_image_url_that_was_never_uploaded(client: httpx.AsyncClient) -> None:
    lease = await client.post("/api/media/asset.json", headers=HEADERS,
                              data={"filepath": "banner.png", "mimetype": "image/png"})
    asset = lease.json()["asset"]["asset_id"]
    url = f"https://reddit-uploaded-media.s3-accelerate.amazonaws.com/rte_images%2F{asset}"

    response = await submit(client, kind="image", title="Our banner", url=url)

    assert response.json() == {"json": {"errors": [
        ["BAD_URL", "you should check that url", "url"]]}}


async def test_it_deletes_the_callers_post(client: httpx.AsyncClient) -> None:
    name = (await submit(client)).json()["json"]["data"]["name"]

    deleted = await client.post("/api/del", headers=HEADERS, data={"id": name})
    listing = await client.get("/user/brand_account/submitted", headers=HEADERS)

    assert (deleted.status_code, deleted.json()) == (200, {})
    assert listing.json()["data"]["children"] == []


EXPECTED: dict[ErrorKind, tuple[int, Any]] = {
    ErrorKind.SERVER_ERROR: (500, {"message": "Internal Server Error", "error": 500}),
    ErrorKind.RATE_LIMITED: (429, {"message": "Too Many Requests", "error": 429}),
    ErrorKind.AUTH_EXPIRED: (401, {"message": "Unauthorized", "error": 401}),
    ErrorKind.AUTH_MISSING: (401, {"message": "Unauthorized", "error": 401}),
    ErrorKind.NOT_FOUND: (404, {"message": "Not Found", "error": 404}),
    ErrorKind.INVALID_REQUEST: (200, {"json": {"errors": [["INVALID_OPTION", "bad kind",
                                                           "kind"]]}}),
    ErrorKind.DUPLICATE: (200, {"json": {"errors": [[
        "ALREADY_SUB", "that link has already been submitted", "url"]]}}),
    ErrorKind.MEDIA_FAILED: (200, {"json": {"errors": [["BAD_URL", "you should check that url",
                                                        "url"]]}}),
}


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_it_answers_every_error_kind_as_reddit_does(profile: RedditProfile,
                                                    kind: ErrorKind) -> None:
    response = profile.error(kind, "bad kind", retry_after_s=42)

    if kind is ErrorKind.UNAVAILABLE:
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("text/html")
        return
    assert (response.status_code, json.loads(bytes(response.body))) == EXPECTED[kind]
    if kind is ErrorKind.RATE_LIMITED:
        assert response.headers["x-ratelimit-remaining"] == "0.0"
        assert response.headers["x-ratelimit-reset"] == "42"
