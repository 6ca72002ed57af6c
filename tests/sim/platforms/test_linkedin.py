"""The simulated LinkedIn Posts, Images and userinfo APIs, driven through their routes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from starlette.applications import Starlette

from sidestep.clock import FrozenClock
from sidestep.sim.platforms.linkedin import LinkedInProfile
from sidestep.sim.profile import ErrorKind
from sidestep.sim.world import SimWorld

TOKEN = "AQX-member-token"
BASE = "https://api.linkedin.com"
REST = {"Authorization": f"Bearer {TOKEN}", "LinkedIn-Version": "202511",
        "X-Restli-Protocol-Version": "2.0.0"}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))


@pytest.fixture
def world(clock: FrozenClock) -> SimWorld:
    world = SimWorld(clock=clock, seed=1)
    world.grant_token("linkedin", TOKEN, "Ada Brand")
    return world


@pytest.fixture
def profile(world: SimWorld) -> LinkedInProfile:
    return LinkedInProfile(world)


@pytest.fixture
async def client(profile: LinkedInProfile) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=profile.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


def post_body(author: str, commentary: str = "Our site stays up.", **extra: Any) -> dict[str, Any]:
    return {"author": author, "commentary": commentary, "visibility": "PUBLIC",
            "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [],
                             "thirdPartyDistributionChannels": []},
            "lifecycleState": "PUBLISHED", "isReshareDisabledByAuthor": False} | extra


async def test_it_publishes_a_text_post_and_records_it_once(
        client: httpx.AsyncClient, profile: LinkedInProfile, world: SimWorld) -> None:
    author = profile.person_urn("Ada Brand")

    response = await client.post("/rest/posts", headers=REST, json=post_body(author))

    assert response.status_code == 201
    assert response.content == b""
    urn = response.headers["x-restli-id"]
    assert urn.startswith("urn:li:share:") and len(urn.rsplit(":", 1)[1]) == 19
    [recorded] = world.record.all("linkedin")
    assert (recorded.account, recorded.kind, recorded.external_id) == ("Ada Brand", "post", urn)
    assert recorded.payload["commentary"] == "Our site stays up."


async def test_it_names_the_member_in_userinfo(client: httpx.AsyncClient,
                                               profile: LinkedInProfile) -> None:
    response = await client.get("/v2/userinfo", headers={"Authorization": f"Bearer {TOKEN}"})

    assert response.status_code == 200
    info = response.json()
    assert info["name"] == "Ada Brand" and info["given_name"] == "Ada"
    assert f"urn:li:person:{info['sub']}" == profile.person_urn("Ada Brand")


@pytest.mark.parametrize("auth", [None, "Bearer nobody"])
async def test_it_refuses_missing_and_unknown_tokens(client: httpx.AsyncClient,
                                                     auth: str | None) -> None:
    headers = {k: v for k, v in REST.items() if k != "Authorization"}
    if auth:
        headers["Authorization"] = auth

    response = await client.post("/rest/posts", headers=headers, json=post_body("urn:li:person:x"))

    assert response.status_code == 401
    assert response.json() == {"status": 401, "serviceErrorCode": 65600,
                               "code": "INVALID_ACCESS_TOKEN", "message": "Invalid access token"}


async def test_it_requires_an_active_linkedin_version(client: httpx.AsyncClient,
                                                      profile: LinkedInProfile) -> None:
    body = post_body(profile.person_urn("Ada Brand"))
    missing = await client.post("/rest/posts", json=body,
                                headers={k: v for k, v in REST.items() if k != "LinkedIn-Version"})
    retired = await client.post("/rest/posts", json=body, headers=REST | {"LinkedIn-Version": "202401"})
    future = await client.post("/rest/posts", json=body, headers=REST | {"LinkedIn-Version": "202602"})

    assert missing.status_code == 400 and missing.json()["code"] == "VERSION_MISSING"
    assert retired.status_code == 426
    assert retired.json() == {"status": 426, "code": "NONEXISTENT_VERSION",
                              "message": "Requested version 20240101 is not active"}
    assert future.status_code == 426


async def test_it_lists_every_missing_field_in_one_422(client: httpx.AsyncClient,
                                                       world: SimWorld) -> None:
    response = await client.post("/rest/posts", headers=REST, json={"commentary": "hello"})

    assert response.status_code == 422
    assert response.json() == {"status": 422, "message": (
        "ERROR :: /author :: field is required but not found and has no default value\n"
        "ERROR :: /visibility :: field is required but not found and has no default value\n"
        "ERROR :: /distribution :: field is required but not found and has no default value\n"
        "ERROR :: /lifecycleState :: field is required but not found and has no default value\n")}
    assert world.record.all() == []


async def test_it_refuses_commentary_over_3000_characters(client: httpx.AsyncClient,
                                                          profile: LinkedInProfile) -> None:
    author = profile.person_urn("Ada Brand")
    response = await client.post("/rest/posts", headers=REST,
                                 json=post_body(author, "x" * 3001))

    assert response.status_code == 422
    assert "/commentary" in response.json()["message"]


async def test_it_refuses_posting_as_someone_else(client: httpx.AsyncClient,
                                                  profile: LinkedInProfile) -> None:
    stranger = await client.post("/rest/posts", headers=REST,
                                 json=post_body("urn:li:organization:5515715"))
    profile.grant_organization("Ada Brand", "5515715")
    admin = await client.post("/rest/posts", headers=REST,
                              json=post_body("urn:li:organization:5515715"))

    assert stranger.status_code == 403 and stranger.json()["code"] == "ACCESS_DENIED"
    assert admin.status_code == 201


async def test_it_refuses_a_duplicate_post_with_its_urn(client: httpx.AsyncClient,
                                                        profile: LinkedInProfile,
                                                        world: SimWorld) -> None:
    body = post_body(profile.person_urn("Ada Brand"))
    first = await client.post("/rest/posts", headers=REST, json=body)

    again = await client.post("/rest/posts", headers=REST, json=body)

    assert again.status_code == 422
    detail = again.json()
    assert detail["message"].endswith(f"Content is a duplicate of {first.headers['x-restli-id']}")
    assert detail["errorDetails"]["inputErrors"][0]["code"] == "DUPLICATE_POST"
    assert len(world.record.all("linkedin")) == 1


async def test_it_publishes_an_image_post_after_upload_and_processing(
        client: httpx.AsyncClient, profile: LinkedInProfile, clock: FrozenClock,
        world: SimWorld) -> None:
    author = profile.person_urn("Ada Brand")
    init = await client.post("/rest/images", params={"action": "initializeUpload"}, headers=REST,
                             json={"initializeUploadRequest": {"owner": author}})
    assert init.status_code == 200
    value = init.json()["value"]
    image = value["image"]
    assert image.startswith("urn:li:image:")
    assert value["uploadUrl"].startswith("https://www.linkedin.com/dms-uploads/")
    image_path = f"/rest/images/{quote(image, safe='')}"
    assert (await client.get(image_path, headers=REST)).json()["status"] == "WAITING_UPLOAD"

    upload = await client.put(value["uploadUrl"], content=b"\xff\xd8\xff" + b"\0" * 500,
                              headers={"Authorization": f"Bearer {TOKEN}"})
    assert upload.status_code == 201
    early = await client.post("/rest/posts", headers=REST, json=post_body(
        author, content={"media": {"id": image, "title": "Banner"}}))
    assert early.status_code == 400

    clock.advance(seconds=1)
    status = (await client.get(image_path, headers=REST)).json()
    assert status["status"] == "AVAILABLE" and status["owner"] == author
    created = await client.post("/rest/posts", headers=REST, json=post_body(
        author, content={"media": {"id": image, "title": "Banner"}}))
    assert created.status_code == 201
    assert world.record.all("linkedin")[0].payload["content"]["media"]["id"] == image


async def test_it_refuses_an_upload_to_a_forged_url(client: httpx.AsyncClient,
                                                    profile: LinkedInProfile) -> None:
    init = await client.post("/rest/images?action=initializeUpload", headers=REST,
                             json={"initializeUploadRequest": {
                                 "owner": profile.person_urn("Ada Brand")}})
    url = init.json()["value"]["uploadUrl"].replace("ut=", "ut=forged")

    response = await client.put(url, content=b"image")

    assert response.status_code == 403


async def test_it_deletes_a_post_with_204(client: httpx.AsyncClient,
                                          profile: LinkedInProfile) -> None:
    created = await client.post("/rest/posts", headers=REST,
                                json=post_body(profile.person_urn("Ada Brand")))
    path = f"/rest/posts/{quote(created.headers['x-restli-id'], safe='')}"

    deleted = await client.delete(path, headers=REST)
    again = await client.delete(path, headers=REST)

    assert deleted.status_code == 204
    assert again.status_code == 404


EXPECTED = {
    ErrorKind.SERVER_ERROR: (500, {"status": 500, "code": "INTERNAL_SERVER_ERROR",
                                   "message": "Internal Server Error"}),
    ErrorKind.UNAVAILABLE: (503, {"status": 503, "code": "SERVICE_UNAVAILABLE",
                                  "message": "Service Unavailable"}),
    ErrorKind.RATE_LIMITED: (429, {"status": 429, "message": "Resource level throttle limit for "
                                   "calls to this resource is reached."}),
    ErrorKind.AUTH_EXPIRED: (401, {"status": 401, "serviceErrorCode": 65602,
                                   "code": "EXPIRED_ACCESS_TOKEN",
                                   "message": "The token used in the request has expired"}),
    ErrorKind.AUTH_MISSING: (401, {"status": 401, "serviceErrorCode": 65600,
                                   "code": "INVALID_ACCESS_TOKEN",
                                   "message": "Invalid access token"}),
    ErrorKind.INVALID_REQUEST: (422, {"message": "ERROR :: /commentary :: bad\n", "status": 422}),
    ErrorKind.NOT_FOUND: (404, {"status": 404, "code": "NOT_FOUND",
                                "message": "/commentary :: bad"}),
    ErrorKind.MEDIA_FAILED: (400, {"status": 400, "code": "ILLEGAL_ARGUMENT",
                                   "message": "/commentary :: bad"}),
}


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_it_answers_every_error_kind_in_linkedin_words(profile: LinkedInProfile,
                                                       kind: ErrorKind) -> None:
    response = profile.error(kind, "/commentary :: bad", retry_after_s=60)

    body = json.loads(bytes(response.body))
    if kind is ErrorKind.DUPLICATE:
        assert response.status_code == 422
        assert body["errorDetails"]["inputErrors"][0]["code"] == "DUPLICATE_POST"
        return
    assert (response.status_code, body) == EXPECTED[kind]
    assert "retry-after" not in response.headers  # LinkedIn sends no rate-limit headers
