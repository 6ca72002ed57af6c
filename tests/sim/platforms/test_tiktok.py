"""The simulated TikTok Content Posting API and its upload host, driven through their routes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from sidestep.clock import FrozenClock
from sidestep.sim.platforms.tiktok import TikTokProfile
from sidestep.sim.profile import ErrorKind
from sidestep.sim.world import SimWorld

TOKEN = "act.brand-token"
BASE = "https://open.tiktokapis.com"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json; charset=UTF-8"}
MP4 = b"\0\0\0\x20ftypisom" + b"\x11" * 3000
MB = 1024 * 1024


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))


@pytest.fixture
def world(clock: FrozenClock) -> SimWorld:
    world = SimWorld(clock=clock, seed=1)
    world.grant_token("tiktok", TOKEN, "Brand Creator")
    return world


@pytest.fixture
def profile(world: SimWorld) -> TikTokProfile:
    profile = TikTokProfile(world)
    profile.verify_url_prefix("https://cdn.brand.example/")
    return profile


@pytest.fixture
async def client(profile: TikTokProfile) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=profile.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


def video_init(size: int, chunk: int | None = None, **post_info: Any) -> dict[str, Any]:
    chunk = chunk or size
    return {"post_info": {"title": "We moved the launch live stream", "privacy_level":
                          "PUBLIC_TO_EVERYONE", "disable_duet": False, "disable_comment": False,
                          "disable_stitch": False, "video_cover_timestamp_ms": 1000} | post_info,
            "source_info": {"source": "FILE_UPLOAD", "video_size": size, "chunk_size": chunk,
                            "total_chunk_count": size // chunk}}


async def status(client: httpx.AsyncClient, publish_id: str) -> dict[str, Any]:
    response = await client.post("/v2/post/publish/status/fetch/", headers=AUTH,
                                 json={"publish_id": publish_id})
    data: dict[str, Any] = response.json()["data"]
    return data


async def test_it_describes_the_creator_with_an_ok_envelope(client: httpx.AsyncClient) -> None:
    response = await client.post("/v2/post/publish/creator_info/query/", headers=AUTH)

    body = response.json()
    assert response.status_code == 200
    assert body["error"]["code"] == "ok" and body["error"]["message"] == ""
    assert len(body["error"]["log_id"]) == 34
    assert body["data"]["creator_nickname"] == "Brand Creator"
    assert "SELF_ONLY" in body["data"]["privacy_level_options"]


async def test_it_posts_a_small_video_uploaded_in_one_chunk(
        client: httpx.AsyncClient, clock: FrozenClock, world: SimWorld,
        profile: TikTokProfile) -> None:
    init = await client.post("/v2/post/publish/video/init/", headers=AUTH,
                             json=video_init(len(MP4)))
    assert init.status_code == 200
    data = init.json()["data"]
    publish_id, upload_url = data["publish_id"], data["upload_url"]
    assert publish_id.startswith("v_pub_file~v2-1.")
    assert upload_url.startswith("https://open-upload.tiktokapis.com/video/?upload_id=")
    assert (await status(client, publish_id)) == {"uploaded_bytes": 0,
                                                  "status": "PROCESSING_UPLOAD"}
    assert world.record.all() == []

    put = await client.put(upload_url, content=MP4, headers={
        "Content-Type": "video/mp4", "Content-Range": f"bytes 0-{len(MP4) - 1}/{len(MP4)}"})

    assert put.status_code == 201
    [recorded] = world.record.all("tiktok")
    assert (recorded.account, recorded.kind, recorded.external_id) == (
        "Brand Creator", "video", publish_id)
    clock.advance(seconds=2)
    done = await status(client, publish_id)
    assert done["status"] == "PUBLISH_COMPLETE" and done["uploaded_bytes"] == len(MP4)
    assert done["publicaly_available_post_id"] == [int(recorded.payload["post_id"])]
    assert bytes(profile._publishes[publish_id].content or b"") == MP4


async def test_it_takes_chunks_in_order_answering_206_until_the_last(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    size, chunk = 11 * MB + 123, 5 * MB  # two chunks; the last carries the trailing bytes
    video = b"\0\0\0\x20ftypmp42" + b"\x22" * (size - 12)
    init = (await client.post("/v2/post/publish/video/init/", headers=AUTH,
                              json=video_init(size, chunk))).json()["data"]
    url = init["upload_url"]

    out_of_order = await client.put(url, content=video[chunk:], headers={
        "Content-Range": f"bytes {chunk}-{size - 1}/{size}", "Content-Type": "video/mp4"})
    first = await client.put(url, content=video[:chunk], headers={
        "Content-Range": f"bytes 0-{chunk - 1}/{size}", "Content-Type": "video/mp4"})
    last = await client.put(url, content=video[chunk:], headers={
        "Content-Range": f"bytes {chunk}-{size - 1}/{size}", "Content-Type": "video/mp4"})

    assert (out_of_order.status_code, first.status_code, last.status_code) == (416, 206, 201)
    assert len(world.record.all("tiktok")) == 1


async def test_it_refuses_chunk_sizes_the_transfer_guide_forbids(
        client: httpx.AsyncClient) -> None:
    small_in_pieces = await client.post("/v2/post/publish/video/init/", headers=AUTH,
                                        json=video_init(3 * MB, MB))
    wrong_count = video_init(20 * MB, 5 * MB)
    wrong_count["source_info"]["total_chunk_count"] = 5
    miscounted = await client.post("/v2/post/publish/video/init/", headers=AUTH,
                                   json=wrong_count)

    for response in (small_in_pieces, miscounted):
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_params"
        assert response.json()["data"] == {}


async def test_it_fails_a_file_that_is_not_a_video(client: httpx.AsyncClient,
                                                   clock: FrozenClock, world: SimWorld) -> None:
    junk = b"not a video at all" * 10
    init = (await client.post("/v2/post/publish/video/init/", headers=AUTH,
                              json=video_init(len(junk)))).json()["data"]
    await client.put(init["upload_url"], content=junk, headers={
        "Content-Range": f"bytes 0-{len(junk) - 1}/{len(junk)}", "Content-Type": "video/mp4"})
    clock.advance(seconds=5)

    assert (await status(client, init["publish_id"]))["status"] == "FAILED"
    assert (await status(client, init["publish_id"]))["fail_reason"] == "file_format_check_failed"
    assert world.record.all() == []


async def test_it_sends_an_inbox_upload_to_the_user(client: httpx.AsyncClient,
                                                    clock: FrozenClock) -> None:
    body = {"source_info": {"source": "FILE_UPLOAD", "video_size": len(MP4),
                            "chunk_size": len(MP4), "total_chunk_count": 1}}
    init = (await client.post("/v2/post/publish/inbox/video/init/", headers=AUTH,
                              json=body)).json()["data"]
    await client.put(init["upload_url"], content=MP4, headers={
        "Content-Range": f"bytes 0-{len(MP4) - 1}/{len(MP4)}", "Content-Type": "video/mp4"})
    clock.advance(seconds=2)

    assert (await status(client, init["publish_id"]))["status"] == "SEND_TO_USER_INBOX"


async def test_it_posts_photos_pulled_from_a_verified_prefix(client: httpx.AsyncClient,
                                                             clock: FrozenClock,
                                                             world: SimWorld) -> None:
    body = {"post_info": {"title": "Open", "description": "We are open", "privacy_level":
                          "SELF_ONLY", "disable_comment": False, "auto_add_music": True},
            "source_info": {"source": "PULL_FROM_URL", "photo_cover_index": 1, "photo_images": [
                "https://cdn.brand.example/1.jpg", "https://cdn.brand.example/2.jpg"]},
            "post_mode": "DIRECT_POST", "media_type": "PHOTO"}
    unverified = json.loads(json.dumps(body))
    unverified["source_info"]["photo_images"][1] = "https://elsewhere.example/2.jpg"

    refused = await client.post("/v2/post/publish/content/init/", headers=AUTH, json=unverified)
    accepted = await client.post("/v2/post/publish/content/init/", headers=AUTH, json=body)

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "url_ownership_unverified"
    publish_id = accepted.json()["data"]["publish_id"]
    assert publish_id.startswith("p_pub_url~v2.")
    assert (await status(client, publish_id))["status"] == "PROCESSING_DOWNLOAD"
    clock.advance(seconds=2)
    done = await status(client, publish_id)
    assert done == {"status": "PUBLISH_COMPLETE", "publicaly_available_post_id": []}
    assert [p.kind for p in world.record.all("tiktok")] == ["photo"]


async def test_it_refuses_a_privacy_level_the_creator_lacks(client: httpx.AsyncClient) -> None:
    response = await client.post("/v2/post/publish/video/init/", headers=AUTH,
                                 json=video_init(len(MP4), privacy_level="public"))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "privacy_level_option_mismatch"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer act.unknown"}])
async def test_it_refuses_missing_and_unknown_tokens(client: httpx.AsyncClient,
                                                     headers: dict[str, str]) -> None:
    response = await client.post("/v2/post/publish/video/init/", headers=headers,
                                 json=video_init(len(MP4)))

    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "access_token_invalid"
    assert error["message"] == "The access token is invalid or not found in the request."


async def test_it_allows_six_init_requests_per_minute_per_token(
        client: httpx.AsyncClient, clock: FrozenClock) -> None:
    codes = [(await client.post("/v2/post/publish/video/init/", headers=AUTH,
                                json=video_init(len(MP4)))).status_code for _ in range(7)]

    assert codes == [200] * 6 + [429]
    clock.advance(seconds=60)
    again = await client.post("/v2/post/publish/video/init/", headers=AUTH,
                              json=video_init(len(MP4)))
    assert again.status_code == 200


async def test_it_caps_posts_per_creator_per_day(client: httpx.AsyncClient,
                                                 clock: FrozenClock) -> None:
    body = {"post_info": {"privacy_level": "SELF_ONLY"}, "post_mode": "DIRECT_POST",
            "media_type": "PHOTO", "source_info": {
                "source": "PULL_FROM_URL", "photo_images": ["https://cdn.brand.example/1.jpg"]}}
    for n in range(15):
        if n % 6 == 5:
            clock.advance(seconds=60)
        ok = await client.post("/v2/post/publish/content/init/", headers=AUTH, json=body)
        assert ok.status_code == 200
    clock.advance(seconds=60)

    capped = await client.post("/v2/post/publish/content/init/", headers=AUTH, json=body)

    assert capped.status_code == 403
    assert capped.json()["error"]["code"] == "spam_risk_too_many_posts"


EXPECTED = {
    ErrorKind.SERVER_ERROR: (500, "internal_error"),
    ErrorKind.UNAVAILABLE: (503, "internal_error"),
    ErrorKind.RATE_LIMITED: (429, "rate_limit_exceeded"),
    ErrorKind.AUTH_EXPIRED: (401, "access_token_invalid"),
    ErrorKind.AUTH_MISSING: (401, "access_token_invalid"),
    ErrorKind.INVALID_REQUEST: (400, "invalid_params"),
    ErrorKind.NOT_FOUND: (400, "invalid_params"),
    ErrorKind.DUPLICATE: (400, "invalid_params"),
    ErrorKind.MEDIA_FAILED: (500, "internal_error"),
}


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_it_answers_every_error_kind_in_the_v2_envelope(profile: TikTokProfile,
                                                        kind: ErrorKind) -> None:
    response = profile.error(kind, "post_info.title is too long", retry_after_s=10)

    body = json.loads(bytes(response.body))
    assert (response.status_code, body["error"]["code"]) == EXPECTED[kind]
    assert body["data"] == {} and body["error"]["message"] and body["error"]["log_id"]
