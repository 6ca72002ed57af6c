"""The simulated X API (v2 posts and media, v1.1 chunked upload), driven through its routes."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest
from starlette.applications import Starlette
from starlette.requests import Request

from sidestep.clock import FrozenClock
from sidestep.sim.platforms.x import XProfile, weighted_length
from sidestep.sim.profile import ErrorKind
from sidestep.sim.world import SimWorld

TOKEN = "user-token-1"
BASE = "https://api.x.com"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
SPEC_FILE = Path(__file__).resolve().parents[4] / "shared" / "specs" / "x" / "openapi.json"
SPEC_DICT: dict[str, Any] = json.loads(SPEC_FILE.read_text())
SPEC_DICT["servers"] = [{"url": BASE}]
# The production file fails a strict spec check (duplicate enum values); its schemas work.
SPEC = OpenAPI.from_dict(SPEC_DICT, config=Config(spec_validator_cls=None))  # type: ignore[arg-type]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# The spec's OAuth 1.0a scheme (`http`, scheme `OAuth`) is one openapi-core does not know.
pytestmark = pytest.mark.filterwarnings("ignore:Unsupported scheme type:UserWarning")


def assert_valid_per_spec(request: httpx.Request) -> None:
    """Check a v2 request against the production OpenAPI description.

    openapi-core 0.23 leaves multipart parts as bytes (an integer `segment_index` then fails),
    so multipart bodies are decoded here and checked against the operation's schema.
    """
    ctype = request.headers.get("content-type", "")
    body = request.read()
    if not ctype.startswith("multipart/form-data"):
        SPEC.validate_request(MockRequest(
            BASE, request.method.lower(), request.url.path, args=dict(request.url.params),
            headers=dict(request.headers), data=body or None,
            content_type=ctype or "application/json"))
        return
    fields: dict[str, Any] = {}
    boundary = ctype.split("boundary=", 1)[1].encode()
    for part in body.split(b"--" + boundary)[1:-1]:
        head, _, value = part.strip(b"\r\n").partition(b"\r\n\r\n")
        name = head.split(b'name="', 1)[1].split(b'"', 1)[0].decode()
        fields[name] = int(value) if name == "segment_index" else value.decode("latin-1")
    schema = SPEC_DICT["components"]["schemas"]["AppendMediaUploadRequest"]
    jsonschema.Draft7Validator(schema).validate(fields)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def world(clock: FrozenClock) -> SimWorld:
    world = SimWorld(clock=clock, seed=1)
    world.grant_token("x", TOKEN, "brand")
    world.grant_token("x", "other-token", "someone-else")
    return world


@pytest.fixture
def profile(world: SimWorld) -> XProfile:
    return XProfile(world)


@pytest.fixture
async def client(profile: XProfile) -> AsyncIterator[httpx.AsyncClient]:
    async def check(request: httpx.Request) -> None:
        if request.url.host == "api.x.com":
            assert_valid_per_spec(request)

    app = Starlette(routes=profile.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE,
                                 event_hooks={"request": [check]}) as c:
        yield c


def oauth1_header(token: str = TOKEN, *, timestamp: int | None = None, **override: str) -> str:
    params = {
        "oauth_consumer_key": "xvz1evFS4wEEPTGEFPHBog", "oauth_nonce": "kYjzVBB8Y0ZFabxSWbWovY3u",
        "oauth_signature": "tnnArxj06cWHq44gCs1OSKk%2FjLY%3D", "oauth_signature_method": "HMAC-SHA1",
        "oauth_timestamp": str(timestamp or int(NOW.timestamp())), "oauth_token": token,
        "oauth_version": "1.0",
    } | override
    return "OAuth " + ", ".join(f'{k}="{v}"' for k, v in params.items())


async def post(client: httpx.AsyncClient, body: dict[str, Any], token: str = TOKEN) -> httpx.Response:
    return await client.post("/2/tweets", json=body, headers={"Authorization": f"Bearer {token}"})


async def test_it_creates_a_text_post_and_records_it_once(client: httpx.AsyncClient,
                                                          world: SimWorld) -> None:
    response = await post(client, {"text": "We are live on our own site too."})

    assert response.status_code == 201
    data = response.json()["data"]
    assert len(data["id"]) == 19 and data["id"].isdigit()
    assert data == {"id": data["id"], "text": "We are live on our own site too.",
                    "edit_history_tweet_ids": [data["id"]]}
    assert response.headers["x-rate-limit-remaining"] == "99"
    [recorded] = world.record.all("x")
    assert (recorded.account, recorded.kind, recorded.external_id) == ("brand", "post", data["id"])
    assert recorded.payload == {"text": "We are live on our own site too."}


async def test_it_answers_the_authenticated_user(client: httpx.AsyncClient) -> None:
    response = await client.get("/2/users/me", headers=AUTH)

    assert response.status_code == 200
    user = response.json()["data"]
    assert user["name"] == "brand" and user["username"] == "brand" and user["id"].isdigit()


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer unknown"}])
async def test_it_refuses_missing_and_unknown_tokens(profile: XProfile,
                                                     headers: dict[str, str]) -> None:
    app = Starlette(routes=profile.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        response = await c.post("/2/tweets", json={"text": "hello"}, headers=headers)

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {"title": "Unauthorized", "type": "about:blank", "status": 401,
                               "detail": "Unauthorized"}


async def test_it_refuses_duplicate_text_with_403(client: httpx.AsyncClient,
                                                  world: SimWorld) -> None:
    assert (await post(client, {"text": "Same words"})).status_code == 201
    again = await post(client, {"text": "Same words"})

    assert again.status_code == 403
    assert again.json() == {"detail": "You are not allowed to create a Tweet with duplicate "
                            "content.", "type": "about:blank", "title": "Forbidden", "status": 403}
    assert (await post(client, {"text": "Same words"}, token="other-token")).status_code == 201
    assert len(world.record.all("x")) == 2


async def test_it_counts_text_the_way_twitter_text_does(client: httpx.AsyncClient) -> None:
    assert weighted_length("a" * 280) == 280
    assert weighted_length("日本" * 70) == 280
    assert weighted_length("see https://example.com/a/very/long/path/indeed") == 4 + 23
    assert (await post(client, {"text": "a" * 280})).status_code == 201

    too_long = await post(client, {"text": "日" * 141})

    assert too_long.status_code == 403
    assert too_long.json()["detail"].startswith("Your Tweet text is too long.")


async def test_it_refuses_an_empty_post_with_an_invalid_request_problem(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    response = await post(client, {"text": "  "})

    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "https://api.x.com/2/problems/invalid-request"
    assert body["title"] == "Invalid Request"
    assert body["errors"][0]["parameters"] == {"text": ["  "]}
    assert world.record.all() == []


async def test_it_uploads_a_video_in_chunks_and_attaches_it_once_processed(
        client: httpx.AsyncClient, clock: FrozenClock, world: SimWorld, profile: XProfile) -> None:
    video = bytes(range(256)) * 40
    init = await client.post("/2/media/upload/initialize", headers=AUTH, json={
        "media_type": "video/mp4", "total_bytes": len(video), "media_category": "tweet_video"})
    assert init.status_code == 200
    media_id = init.json()["data"]["id"]
    assert init.json()["data"]["media_key"] == f"7_{media_id}" and len(media_id) == 19

    first = await client.post(f"/2/media/upload/{media_id}/append", headers=AUTH, json={
        "media": base64.b64encode(video[:6000]).decode(), "segment_index": 0})
    second = await client.post(f"/2/media/upload/{media_id}/append", headers=AUTH,
                               data={"segment_index": "1"},
                               files={"media": ("chunk", video[6000:], "application/octet-stream")})
    assert (first.status_code, second.status_code) == (200, 200)
    finalize = await client.post(f"/2/media/upload/{media_id}/finalize", headers=AUTH)
    assert finalize.json()["data"]["processing_info"]["state"] == "in_progress"

    early = await post(client, {"text": "Watch", "media": {"media_ids": [media_id]}})
    assert early.status_code == 400
    assert early.json()["errors"][0]["message"] == "Your media IDs are invalid."

    clock.advance(seconds=3)
    status = await client.get("/2/media/upload", headers=AUTH,
                              params={"command": "STATUS", "media_id": media_id})
    assert status.json()["data"]["processing_info"] == {"state": "succeeded",
                                                        "progress_percent": 100}
    created = await post(client, {"text": "Watch", "media": {"media_ids": [media_id]}})
    assert created.status_code == 201
    assert world.record.all("x")[0].payload["media"] == {"media_ids": [media_id]}
    assert bytes(profile._uploads[media_id].content or b"") == video


async def test_it_refuses_finalize_when_segments_do_not_add_up(client: httpx.AsyncClient) -> None:
    init = await client.post("/2/media/upload/initialize", headers=AUTH,
                             json={"media_type": "image/png", "total_bytes": 100})
    media_id = init.json()["data"]["id"]
    await client.post(f"/2/media/upload/{media_id}/append", headers=AUTH,
                      json={"media": base64.b64encode(b"x" * 40).decode(), "segment_index": 0})

    response = await client.post(f"/2/media/upload/{media_id}/finalize", headers=AUTH)

    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == (
        "Segments do not add up to provided total file size.")


async def test_it_refuses_an_image_larger_than_5_mb(client: httpx.AsyncClient) -> None:
    response = await client.post("/2/media/upload/initialize", headers=AUTH, json={
        "media_type": "image/jpeg", "total_bytes": 5 * 1024 * 1024 + 1})

    assert response.status_code == 400
    assert response.json()["errors"][0]["parameters"] == {"total_bytes": ["5242881"]}


async def test_it_uploads_an_image_through_v11_with_an_oauth1_header(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    image = b"\x89PNG" + b"\0" * 300
    url = "https://upload.twitter.com/1.1/media/upload.json"
    headers = {"Authorization": oauth1_header()}
    init = await client.post(url, headers=headers, data={
        "command": "INIT", "total_bytes": str(len(image)), "media_type": "image/png"})
    assert init.status_code == 202
    media_id = init.json()["media_id_string"]
    assert init.json()["media_id"] == int(media_id)

    append = await client.post(url, headers=headers,
                               data={"command": "APPEND", "media_id": media_id, "segment_index": "0"},
                               files={"media": ("blob", image, "application/octet-stream")})
    finalize = await client.post(url, headers=headers,
                                 data={"command": "FINALIZE", "media_id": media_id})
    status = await client.get(url, headers=headers,
                              params={"command": "STATUS", "media_id": media_id})

    assert append.status_code == 204
    assert finalize.status_code == 201
    assert finalize.json()["size"] == len(image) and "processing_info" not in finalize.json()
    assert status.json()["image"] == {"image_type": "image/png"}
    created = await post(client, {"text": "A picture", "media": {"media_ids": [media_id]}})
    assert created.status_code == 201
    assert len(world.record.all("x")) == 1


@pytest.mark.parametrize(("header", "status", "body"), [
    (None, 400, {"errors": [{"code": 215, "message": "Bad Authentication data."}]}),
    ("Bearer user-token-1", 400, {"errors": [{"code": 215, "message": "Bad Authentication data."}]}),
    (oauth1_header(oauth_signature_method="PLAINTEXT"), 400,
     {"errors": [{"code": 215, "message": "Bad Authentication data."}]}),
    ('OAuth oauth_consumer_key=unquoted', 400,
     {"errors": [{"code": 215, "message": "Bad Authentication data."}]}),
    (oauth1_header("revoked"), 401, {"errors": [{"code": 89, "message": "Invalid or expired token."}]}),
    (oauth1_header(timestamp=int(NOW.timestamp()) - 3600), 401,
     {"errors": [{"code": 135, "message": "Timestamp out of bounds."}]}),
])
async def test_it_checks_the_oauth1_header_of_v11_uploads(
        client: httpx.AsyncClient, header: str | None, status: int, body: dict[str, Any]) -> None:
    headers = {"Authorization": header} if header else {}
    response = await client.post("https://upload.twitter.com/1.1/media/upload.json",
                                 headers=headers, data={"command": "INIT", "total_bytes": "10",
                                                        "media_type": "image/png"})

    assert (response.status_code, response.json()) == (status, body)


async def test_it_answers_v11_media_errors_in_the_request_error_shape(
        client: httpx.AsyncClient) -> None:
    response = await client.post("https://upload.twitter.com/1.1/media/upload.json",
                                 headers={"Authorization": oauth1_header()},
                                 data={"command": "FINALIZE", "media_id": "123"})

    assert response.status_code == 400
    assert response.json() == {"request": "/1.1/media/upload.json", "error": "Invalid mediaId."}


async def test_it_deletes_only_the_accounts_own_posts(client: httpx.AsyncClient) -> None:
    tweet_id = (await post(client, {"text": "Short-lived"})).json()["data"]["id"]

    foreign = await client.delete(f"/2/tweets/{tweet_id}",
                                  headers={"Authorization": "Bearer other-token"})
    own = await client.delete(f"/2/tweets/{tweet_id}", headers=AUTH)
    gone = await client.delete(f"/2/tweets/{tweet_id}", headers=AUTH)

    assert foreign.status_code == 403
    assert (own.status_code, own.json()) == (200, {"data": {"deleted": True}})
    assert gone.status_code == 404
    assert gone.json()["type"] == "https://api.x.com/2/problems/resource-not-found"


async def test_it_rate_limits_posts_per_user_every_15_minutes(
        client: httpx.AsyncClient, clock: FrozenClock) -> None:
    for n in range(100):
        assert (await post(client, {"text": f"post {n}"})).status_code == 201

    limited = await post(client, {"text": "one too many"})

    assert limited.status_code == 429
    assert limited.json() == {"title": "Too Many Requests", "detail": "Too Many Requests",
                              "type": "about:blank", "status": 429}
    assert limited.headers["x-rate-limit-remaining"] == "0"
    assert int(limited.headers["x-rate-limit-reset"]) == int(NOW.timestamp()) + 900
    clock.advance(seconds=900)
    assert (await post(client, {"text": "next window"})).status_code == 201


EXPECTED_V2 = {
    ErrorKind.SERVER_ERROR: (500, "about:blank"),
    ErrorKind.UNAVAILABLE: (503, "about:blank"),
    ErrorKind.RATE_LIMITED: (429, "about:blank"),
    ErrorKind.AUTH_EXPIRED: (401, "about:blank"),
    ErrorKind.AUTH_MISSING: (401, "about:blank"),
    ErrorKind.INVALID_REQUEST: (400, "https://api.x.com/2/problems/invalid-request"),
    ErrorKind.NOT_FOUND: (404, "about:blank"),
    ErrorKind.DUPLICATE: (403, "about:blank"),
    ErrorKind.MEDIA_FAILED: (400, "about:blank"),
}


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_it_answers_every_error_kind_as_a_v2_problem(profile: XProfile, kind: ErrorKind) -> None:
    response = profile.error(kind, "text: too long", retry_after_s=60)

    status, problem_type = EXPECTED_V2[kind]
    body = json.loads(bytes(response.body))
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert body["type"] == problem_type and body["title"] and body["detail"]
    if kind is ErrorKind.RATE_LIMITED:
        assert response.headers["x-rate-limit-remaining"] == "0"
        assert response.headers["x-rate-limit-reset"] == str(int(NOW.timestamp()) + 60)
    if kind is ErrorKind.DUPLICATE:
        assert body["detail"] == "You are not allowed to create a Tweet with duplicate content."


EXPECTED_V11 = {
    ErrorKind.SERVER_ERROR: (500, {"errors": [{"code": 131, "message": "Internal error."}]}),
    ErrorKind.UNAVAILABLE: (503, {"errors": [{"code": 130, "message": "Over capacity."}]}),
    ErrorKind.RATE_LIMITED: (429, {"errors": [{"code": 88, "message": "Rate limit exceeded"}]}),
    ErrorKind.AUTH_EXPIRED: (401, {"errors": [{"code": 89, "message": "Invalid or expired token."}]}),
    ErrorKind.AUTH_MISSING: (400, {"errors": [{"code": 215, "message": "Bad Authentication data."}]}),
    ErrorKind.INVALID_REQUEST: (400, {"request": "/1.1/media/upload.json", "error": "bad"}),
    ErrorKind.NOT_FOUND: (400, {"request": "/1.1/media/upload.json", "error": "bad"}),
    ErrorKind.DUPLICATE: (400, {"request": "/1.1/media/upload.json", "error": "bad"}),
    ErrorKind.MEDIA_FAILED: (400, {"request": "/1.1/media/upload.json", "error": "bad"}),
}


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_it_answers_every_error_kind_in_v11_words_on_the_upload_host(
        profile: XProfile, kind: ErrorKind) -> None:
    request = Request({"type": "http", "method": "POST", "path": "/1.1/media/upload.json",
                       "headers": [(b"host", b"upload.twitter.com")], "query_string": b""})

    response = profile.error_for(request, kind, "bad", retry_after_s=30)

    assert (response.status_code, json.loads(bytes(response.body))) == EXPECTED_V11[kind]
    if kind is ErrorKind.RATE_LIMITED:
        assert response.headers["x-rate-limit-reset"] == str(int(NOW.timestamp()) + 30)
