"""The simulated Pinterest API v5 and its S3 upload host, driven through their routes."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest
from starlette.applications import Starlette

from sidestep.clock import FrozenClock
from sidestep.sim.platforms.pinterest import UPLOAD_HOST, PinterestProfile
from sidestep.sim.profile import ErrorKind
from sidestep.sim.world import SimWorld

TOKEN = "pina_brand_token"
BASE = "https://api.pinterest.com"
SERVER = "https://api.pinterest.com/v5"
BOARD = "549755885175"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
pytestmark = pytest.mark.filterwarnings("ignore:Unsupported scheme type:UserWarning")
SPEC_FILE = Path(__file__).resolve().parents[4] / "shared" / "specs" / "pinterest" / "openapi.yaml"


def _string_keys(node: Any) -> Any:
    """YAML integer keys (response codes) as strings, which openapi-core requires."""
    if isinstance(node, dict):
        return {str(k): _string_keys(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_string_keys(v) for v in node]
    return node


SPEC_DICT: dict[str, Any] = _string_keys(yaml.safe_load(SPEC_FILE.read_text()))
SPEC_DICT["servers"] = [{"url": SERVER}]
# Loaded once for the module: the 1.6 MB description takes about 4 s.
SPEC = OpenAPI.from_dict(SPEC_DICT, config=Config(spec_validator_cls=None))  # type: ignore[arg-type]


def assert_valid_per_spec(request: httpx.Request) -> None:
    SPEC.validate_request(MockRequest(
        BASE, request.method.lower(), request.url.path,
        args=dict(request.url.params), headers=dict(request.headers),
        data=request.read() or None,
        content_type=request.headers.get("content-type", "application/json")))


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))


@pytest.fixture
def world(clock: FrozenClock) -> SimWorld:
    world = SimWorld(clock=clock, seed=1)
    world.grant_token("pinterest", TOKEN, "Brand Shop")
    world.grant_token("pinterest", "other", "Someone Else")
    return world


@pytest.fixture
def profile(world: SimWorld) -> PinterestProfile:
    profile = PinterestProfile(world)
    profile.add_board("Brand Shop", BOARD)
    return profile


@pytest.fixture
async def client(profile: PinterestProfile) -> AsyncIterator[httpx.AsyncClient]:
    async def check(request: httpx.Request) -> None:
        if request.url.host == "api.pinterest.com":
            assert_valid_per_spec(request)

    app = Starlette(routes=profile.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE,
                                 event_hooks={"request": [check]}) as c:
        yield c


def pin(**extra: Any) -> dict[str, Any]:
    return {"board_id": BOARD, "title": "Open today", "description": "Find us on our own site.",
            "link": "https://brand.example/", "media_source": {
                "source_type": "image_url", "url": "https://brand.example/banner.jpg"}} | extra


async def test_it_creates_an_image_pin_and_records_it_once(client: httpx.AsyncClient,
                                                           world: SimWorld) -> None:
    response = await client.post("/v5/pins", headers=AUTH, json=pin())

    assert response.status_code == 201
    created = response.json()
    assert created["id"].isdigit() and len(created["id"]) == 18
    assert created["board_id"] == BOARD and created["title"] == "Open today"
    assert created["media"]["media_type"] == "image"
    assert created["creative_type"] == "REGULAR" and created["is_owner"] is True
    [recorded] = world.record.all("pinterest")
    assert (recorded.account, recorded.kind, recorded.external_id) == (
        "Brand Shop", "pin", created["id"])
    fetched = await client.get(f"/v5/pins/{created['id']}", headers=AUTH)
    assert fetched.json() == created


async def test_it_accepts_a_base64_image(client: httpx.AsyncClient) -> None:
    data = base64.b64encode(b"\x89PNG\r\n" + b"\0" * 64).decode()

    response = await client.post("/v5/pins", headers=AUTH, json=pin(media_source={
        "source_type": "image_base64", "content_type": "image/png", "data": data}))

    assert response.status_code == 201
    assert response.json()["media"]["images"]["600x"]["url"].startswith("https://i.pinimg.com/")


async def test_it_answers_the_user_account(client: httpx.AsyncClient) -> None:
    await client.post("/v5/pins", headers=AUTH, json=pin())

    response = await client.get("/v5/user_account", headers=AUTH)

    account = response.json()
    assert response.status_code == 200
    assert account["username"] == "brandshop" and account["account_type"] == "BUSINESS"
    assert (account["board_count"], account["pin_count"]) == (1, 1)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}])
async def test_it_refuses_missing_and_unknown_tokens(profile: PinterestProfile,
                                                     headers: dict[str, str]) -> None:
    app = Starlette(routes=profile.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        response = await c.post("/v5/pins", headers=headers, json=pin())

    assert response.status_code == 401
    assert response.json() == {"code": 2, "message": "Authentication failed."}


async def test_it_refuses_a_title_over_100_characters_as_the_spec_does(
        profile: PinterestProfile, world: SimWorld) -> None:
    app = Starlette(routes=profile.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        response = await c.post("/v5/pins", headers=AUTH, json=pin(title="t" * 101))

    with pytest.raises(Exception, match="is too long"):
        assert_valid_per_spec(response.request)
    assert response.status_code == 400
    assert response.json() == {"code": 1, "message": "'title' must be a string of at most "
                                                     "100 characters"}
    assert world.record.all() == []


async def test_it_refuses_a_board_the_user_does_not_own(client: httpx.AsyncClient) -> None:
    response = await client.post("/v5/pins", headers=AUTH, json=pin(board_id="1234"))

    assert (response.status_code, response.json()) == (404, {"code": 40,
                                                             "message": "Board not found."})


async def test_it_keeps_duplicate_pins_as_pinterest_does(client: httpx.AsyncClient,
                                                         world: SimWorld) -> None:
    first = await client.post("/v5/pins", headers=AUTH, json=pin())
    second = await client.post("/v5/pins", headers=AUTH, json=pin())

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]
    assert len(world.record.all("pinterest")) == 2


async def test_it_publishes_a_video_pin_through_the_s3_upload(
        client: httpx.AsyncClient, clock: FrozenClock, world: SimWorld,
        profile: PinterestProfile) -> None:
    registered = await client.post("/v5/media", headers=AUTH, json={"media_type": "video"})
    assert registered.status_code == 201
    media = registered.json()
    media_id, params = media["media_id"], media["upload_parameters"]
    assert media["upload_url"] == f"https://{UPLOAD_HOST}/"
    status = await client.get(f"/v5/media/{media_id}", headers=AUTH)
    assert status.json() == {"media_id": media_id, "media_type": "video", "status": "registered"}

    video = b"\0\0\0\x18ftypmp42" + b"v" * 2000
    form = {k: v for k, v in params.items() if k != "Content-Type"}
    uploaded = await client.post(media["upload_url"], data=form,
                                 files={"file": ("clip.mp4", video, "video/mp4")})
    assert uploaded.status_code == 204
    assert (await client.get(f"/v5/media/{media_id}", headers=AUTH)).json()["status"] == \
        "processing"
    early = await client.post("/v5/pins", headers=AUTH, json=pin(media_source={
        "source_type": "video_id", "media_id": media_id,
        "cover_image_url": "https://brand.example/cover.jpg"}))
    assert early.status_code == 400

    clock.advance(seconds=2)
    assert (await client.get(f"/v5/media/{media_id}", headers=AUTH)).json()["status"] == \
        "succeeded"
    created = await client.post("/v5/pins", headers=AUTH, json=pin(media_source={
        "source_type": "video_id", "media_id": media_id,
        "cover_image_url": "https://brand.example/cover.jpg"}))
    assert created.status_code == 201
    assert created.json()["creative_type"] == "VIDEO"
    assert profile._videos[media_id].content == video
    assert len(world.record.all("pinterest")) == 1


async def test_it_refuses_an_upload_with_a_forged_signature(client: httpx.AsyncClient) -> None:
    media = (await client.post("/v5/media", headers=AUTH, json={"media_type": "video"})).json()
    form = media["upload_parameters"] | {"x-amz-signature": "0" * 64}

    response = await client.post(media["upload_url"], data=form,
                                 files={"file": ("clip.mp4", b"video", "video/mp4")})

    assert response.status_code == 403
    assert b"<Code>AccessDenied</Code>" in response.content


async def test_it_deletes_a_pin_and_then_no_longer_finds_it(client: httpx.AsyncClient) -> None:
    pin_id = (await client.post("/v5/pins", headers=AUTH, json=pin())).json()["id"]

    foreign = await client.delete(f"/v5/pins/{pin_id}", headers={"Authorization": "Bearer other"})
    deleted = await client.delete(f"/v5/pins/{pin_id}", headers=AUTH)
    missing = await client.get(f"/v5/pins/{pin_id}", headers=AUTH)

    assert foreign.status_code == 403
    assert deleted.status_code == 204
    assert (missing.status_code, missing.json()) == (404, {"code": 50,
                                                           "message": "Pin not found."})


def test_the_spec_tells_a_wrong_pin_from_a_right_one() -> None:
    request = httpx.Request("POST", f"{SERVER}/pins", headers=AUTH,
                            json=pin(title=7))

    with pytest.raises(Exception, match="body"):
        assert_valid_per_spec(request)


EXPECTED = {
    ErrorKind.SERVER_ERROR: (500, 500),
    ErrorKind.UNAVAILABLE: (503, 4197),
    ErrorKind.RATE_LIMITED: (429, 8),
    ErrorKind.AUTH_EXPIRED: (401, 2),
    ErrorKind.AUTH_MISSING: (401, 2),
    ErrorKind.INVALID_REQUEST: (400, 1),
    ErrorKind.NOT_FOUND: (404, 50),
    ErrorKind.DUPLICATE: (400, 1),
    ErrorKind.MEDIA_FAILED: (400, 1),
}


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_it_answers_every_error_kind_with_a_code_and_message(profile: PinterestProfile,
                                                             kind: ErrorKind) -> None:
    response = profile.error(kind, "", retry_after_s=5)

    body = json.loads(bytes(response.body))
    assert (response.status_code, body["code"]) == EXPECTED[kind]
    assert set(body) == {"code", "message"} and body["message"]
