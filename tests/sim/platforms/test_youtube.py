"""The simulated YouTube Data API (resumable upload, videos, channels), driven through routes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from sidestep.clock import FrozenClock
from sidestep.sim.platforms.youtube import YouTubeProfile
from sidestep.sim.profile import ErrorKind
from sidestep.sim.world import SimWorld

TOKEN = "ya29.brand-token"
BASE = "https://www.googleapis.com"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
START = "/upload/youtube/v3/videos"
KIB = 1024
MP4 = b"\0\0\0\x20ftypisom" + b"\x33" * (600 * KIB)
DISCOVERY_FILE = Path(__file__).resolve().parents[4] / "shared" / "specs" / "youtube" / "youtube-v3.json"
DISCOVERY: dict[str, Any] = json.loads(DISCOVERY_FILE.read_text())
JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str, "boolean": bool, "array": list, "object": dict, "integer": int}


def assert_valid_per_discovery(resource: dict[str, Any]) -> None:
    """Check a video resource against the Discovery document's schemas (it is not OpenAPI).

    Each property of `snippet` and `status` must exist in VideoSnippet / VideoStatus, have the
    declared JSON type and, where the schema has one, a value of its enum. The length rules the
    schema does not carry (title <= 100 characters, description <= 5000 bytes) come from the
    videos resource documentation.
    """
    schemas = DISCOVERY["schemas"]
    for part, schema_name in (("snippet", "VideoSnippet"), ("status", "VideoStatus")):
        properties = schemas[schema_name]["properties"]
        for name, value in resource.get(part, {}).items():
            assert name in properties, f"{part}.{name} is not in {schema_name}"
            declared = properties[name]
            if "type" in declared:
                assert isinstance(value, JSON_TYPES[declared["type"]]), f"{part}.{name}: type"
            if "enum" in declared:
                assert value in declared["enum"], f"{part}.{name}: {value!r} not in enum"
    assert 0 < len(resource["snippet"]["title"]) <= 100
    assert len(resource["snippet"].get("description", "").encode()) <= 5000


def metadata(**snippet: Any) -> dict[str, Any]:
    resource = {"snippet": {"title": "Where to find us during the outage",
                            "description": "Our own site keeps working.", "tags": ["status"],
                            "categoryId": "22"} | snippet,
                "status": {"privacyStatus": "unlisted", "selfDeclaredMadeForKids": False}}
    assert_valid_per_discovery(resource)
    return resource


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 1, 1, 12, tzinfo=UTC))


@pytest.fixture
def world(clock: FrozenClock) -> SimWorld:
    world = SimWorld(clock=clock, seed=1)
    world.grant_token("youtube", TOKEN, "Brand Channel")
    return world


@pytest.fixture
def profile(world: SimWorld) -> YouTubeProfile:
    return YouTubeProfile(world)


@pytest.fixture
async def client(profile: YouTubeProfile) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=profile.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


async def start(client: httpx.AsyncClient, size: int = len(MP4),
                resource: dict[str, Any] | None = None) -> httpx.Response:
    return await client.post(
        START, params={"uploadType": "resumable", "part": "snippet,status"}, json=resource or
        metadata(), headers=AUTH | {"X-Upload-Content-Length": str(size),
                                    "X-Upload-Content-Type": "video/mp4"})


async def test_it_uploads_a_whole_video_and_records_it_once(client: httpx.AsyncClient,
                                                            world: SimWorld) -> None:
    session = await start(client)
    assert session.status_code == 200
    location = session.headers["Location"]
    assert location.startswith(f"{BASE}{START}?uploadType=resumable&part=snippet%2Cstatus"
                                "&upload_id=")

    done = await client.put(location, content=MP4, headers=AUTH | {"Content-Type": "video/mp4"})

    assert done.status_code == 201
    video = done.json()
    assert video["kind"] == "youtube#video" and len(video["id"]) == 11
    assert video["snippet"]["title"] == "Where to find us during the outage"
    assert video["status"] == {"uploadStatus": "uploaded", "privacyStatus": "unlisted",
                               "license": "youtube", "embeddable": True,
                               "publicStatsViewable": True, "madeForKids": False}
    [recorded] = world.record.all("youtube")
    assert (recorded.account, recorded.kind, recorded.external_id) == (
        "Brand Channel", "video", video["id"])


async def test_it_resumes_a_chunked_upload_from_the_range_it_reports(
        client: httpx.AsyncClient, world: SimWorld, profile: YouTubeProfile) -> None:
    location = (await start(client)).headers["Location"]
    total = len(MP4)

    nothing_yet = await client.put(location, headers=AUTH | {"Content-Range": f"bytes */{total}"})
    first = await client.put(location, content=MP4[:512 * KIB], headers=AUTH | {
        "Content-Range": f"bytes 0-{512 * KIB - 1}/{total}"})
    asked = await client.put(location, headers=AUTH | {"Content-Range": f"bytes */{total}"})
    rest = await client.put(location, content=MP4[512 * KIB:], headers=AUTH | {
        "Content-Range": f"bytes {512 * KIB}-{total - 1}/{total}"})
    after = await client.put(location, headers=AUTH | {"Content-Range": f"bytes */{total}"})

    assert (nothing_yet.status_code, "range" in nothing_yet.headers) == (308, False)
    assert (first.status_code, first.headers["Range"]) == (308, f"bytes=0-{512 * KIB - 1}")
    assert asked.headers["Range"] == f"bytes=0-{512 * KIB - 1}"
    assert rest.status_code == 201
    assert (after.status_code, after.json()["id"]) == (201, rest.json()["id"])
    assert len(world.record.all("youtube")) == 1
    assert bytes(profile._sessions[location.rsplit("=", 1)[1]].content or b"") == MP4


async def test_it_refuses_a_middle_chunk_that_is_not_a_multiple_of_256_kib(
        client: httpx.AsyncClient) -> None:
    location = (await start(client)).headers["Location"]

    response = await client.put(location, content=MP4[:1000], headers=AUTH | {
        "Content-Range": f"bytes 0-999/{len(MP4)}"})

    assert response.status_code == 400
    assert response.json()["error"]["errors"][0]["reason"] == "badContent"


async def test_it_reports_processing_then_processed_or_failed(
        client: httpx.AsyncClient, clock: FrozenClock) -> None:
    good = await client.put((await start(client)).headers["Location"], content=MP4, headers=AUTH)
    junk = b"not a video" * 10
    bad = await client.put((await start(client, len(junk))).headers["Location"], content=junk,
                           headers=AUTH)
    ids = f"{good.json()['id']},{bad.json()['id']}"

    before = await client.get("/youtube/v3/videos", params={"id": ids, "part": "status"},
                              headers=AUTH)
    clock.advance(seconds=5)
    after = await client.get("/youtube/v3/videos", params={"id": ids, "part": "status"},
                             headers=AUTH)

    assert [v["status"]["uploadStatus"] for v in before.json()["items"]] == ["uploaded"] * 2
    good_now, bad_now = after.json()["items"]
    assert good_now["status"]["uploadStatus"] == "processed" and "snippet" not in good_now
    assert (bad_now["status"]["uploadStatus"], bad_now["status"]["failureReason"]) == (
        "failed", "invalidFile")
    assert after.json()["pageInfo"] == {"totalResults": 2, "resultsPerPage": 2}


async def test_it_names_the_callers_channel(client: httpx.AsyncClient) -> None:
    response = await client.get("/youtube/v3/channels", params={"part": "snippet",
                                                                "mine": "true"}, headers=AUTH)

    [channel] = response.json()["items"]
    assert channel["kind"] == "youtube#channel" and channel["id"].startswith("UC")
    assert len(channel["id"]) == 24 and channel["snippet"]["title"] == "Brand Channel"


async def test_it_refuses_missing_and_unknown_tokens_in_googles_words(
        client: httpx.AsyncClient) -> None:
    missing = await client.post(START, params={"uploadType": "resumable", "part": "snippet"},
                                json=metadata())
    unknown = await client.post(START, params={"uploadType": "resumable", "part": "snippet"},
                                json=metadata(), headers={"Authorization": "Bearer ya29.old"})

    assert missing.status_code == unknown.status_code == 401
    assert missing.json()["error"]["errors"][0]["reason"] == "required"
    error = unknown.json()["error"]
    assert error["status"] == "UNAUTHENTICATED" and error["code"] == 401
    assert error["errors"] == [{"message": "Invalid Credentials", "domain": "global",
                                "reason": "authError", "location": "Authorization",
                                "locationType": "header"}]
    assert unknown.headers["WWW-Authenticate"].startswith('Bearer realm="https://accounts.google')


@pytest.mark.parametrize("title", ["", "t" * 101, "a <b>bold</b> title"])
async def test_it_refuses_an_invalid_title_before_the_upload(client: httpx.AsyncClient,
                                                             world: SimWorld, title: str) -> None:
    resource = {"snippet": {"title": title}, "status": {"privacyStatus": "public"}}

    response = await start(client, resource=resource)

    assert response.status_code == 400
    assert response.json() == {"error": {
        "code": 400, "message": "The request metadata specifies an invalid or empty video title.",
        "errors": [{"message": "The request metadata specifies an invalid or empty video title.",
                    "domain": "youtube.video", "reason": "invalidTitle"}],
        "status": "INVALID_ARGUMENT"}}
    assert world.record.all() == []


def test_the_discovery_check_tells_a_wrong_privacy_status() -> None:
    with pytest.raises(AssertionError, match="privacyStatus"):
        assert_valid_per_discovery({"snippet": {"title": "x"},
                                    "status": {"privacyStatus": "friends"}})


async def test_it_answers_quota_exceeded_after_the_daily_insert_bucket(
        client: httpx.AsyncClient, clock: FrozenClock) -> None:
    for _ in range(100):
        assert (await start(client)).status_code == 200

    refused = await start(client)

    assert refused.status_code == 403
    assert refused.json()["error"]["errors"][0] == {
        "message": refused.json()["error"]["message"], "domain": "youtube.quota",
        "reason": "quotaExceeded"}
    clock.advance(seconds=20 * 3600 - 60)  # 23:59 Pacific (already the next day in UTC)
    assert (await start(client)).status_code == 403
    clock.advance(seconds=60)  # midnight Pacific: the bucket is refilled
    assert (await start(client)).status_code == 200


async def test_it_deletes_a_video(client: httpx.AsyncClient) -> None:
    video_id = (await client.put((await start(client)).headers["Location"], content=MP4,
                                 headers=AUTH)).json()["id"]

    deleted = await client.delete("/youtube/v3/videos", params={"id": video_id}, headers=AUTH)
    again = await client.delete("/youtube/v3/videos", params={"id": video_id}, headers=AUTH)

    assert deleted.status_code == 204
    assert again.status_code == 404
    assert again.json()["error"]["errors"][0]["reason"] == "videoNotFound"


EXPECTED = {
    ErrorKind.SERVER_ERROR: (500, "backendError", "global"),
    ErrorKind.UNAVAILABLE: (503, "backendError", "global"),
    ErrorKind.RATE_LIMITED: (403, "quotaExceeded", "youtube.quota"),
    ErrorKind.AUTH_EXPIRED: (401, "authError", "global"),
    ErrorKind.AUTH_MISSING: (401, "required", "global"),
    ErrorKind.INVALID_REQUEST: (400, "invalidVideoMetadata", "youtube.video"),
    ErrorKind.NOT_FOUND: (404, "videoNotFound", "youtube.video"),
    ErrorKind.DUPLICATE: (400, "invalidVideoMetadata", "youtube.video"),
    ErrorKind.MEDIA_FAILED: (503, "backendError", "global"),
}


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_it_answers_every_error_kind_in_googles_format(profile: YouTubeProfile,
                                                       kind: ErrorKind) -> None:
    response = profile.error(kind, "", retry_after_s=30)

    error = json.loads(bytes(response.body))["error"]
    status, reason, domain = EXPECTED[kind]
    assert (response.status_code, error["code"]) == (status, status)
    assert (error["errors"][0]["reason"], error["errors"][0]["domain"]) == (reason, domain)
    assert error["message"] and error["status"]
