"""The simulated Matrix homeserver (matrix-client.matrix.org), driven through its routes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from starlette.applications import Starlette

from sidestep.clock import FrozenClock
from sidestep.sim.platforms.matrix import MatrixProfile
from sidestep.sim.profile import ErrorKind
from sidestep.sim.world import SimWorld

TOKEN = "syt_YnJhbmQ_token"
USER = "@brand:matrix.org"
ROOM = "!audience:matrix.org"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BASE = "https://matrix-client.matrix.org"
SEND = f"/_matrix/client/v3/rooms/{ROOM}/send/m.room.message"


@pytest.fixture
def world() -> SimWorld:
    world = SimWorld(clock=FrozenClock(datetime(2026, 1, 1, tzinfo=UTC)), seed=1)
    world.grant_token("matrix", TOKEN, USER)
    return world


@pytest.fixture
def profile(world: SimWorld) -> MatrixProfile:
    return MatrixProfile(world)


@pytest.fixture
async def client(profile: MatrixProfile) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=profile.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


async def test_it_sends_a_message_and_records_it(
    client: httpx.AsyncClient, world: SimWorld
) -> None:
    response = await client.put(f"{SEND}/txn-1", headers=AUTH,
                                json={"msgtype": "m.text", "body": "We are live elsewhere"})
    assert response.status_code == 200
    event_id = response.json()["event_id"]
    assert event_id.startswith("$") and len(event_id) == 44
    posts = world.record.all("matrix")
    assert [(p.external_id, p.account, p.idempotency_marker) for p in posts] == [
        (event_id, USER, "txn-1")]
    assert posts[0].payload["room_id"] == ROOM


async def test_a_repeated_txn_id_returns_the_same_event(
    client: httpx.AsyncClient, world: SimWorld
) -> None:
    body = {"msgtype": "m.text", "body": "once"}
    first = await client.put(f"{SEND}/txn-7", headers=AUTH, json=body)
    again = await client.put(f"{SEND}/txn-7", headers=AUTH, json=body)
    other = await client.put(f"{SEND}/txn-8", headers=AUTH, json=body)
    assert first.json() == again.json()
    assert other.json() != first.json()
    assert len(world.record.all("matrix")) == 2


async def test_an_unknown_token_is_refused_with_soft_logout_false(
    client: httpx.AsyncClient
) -> None:
    response = await client.put(f"{SEND}/t", json={"msgtype": "m.text", "body": "x"},
                                headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.json() == {"errcode": "M_UNKNOWN_TOKEN",
                               "error": "Invalid access token passed.", "soft_logout": False}


async def test_a_missing_token_is_named(client: httpx.AsyncClient) -> None:
    response = await client.get("/_matrix/client/v3/account/whoami")
    assert response.json()["errcode"] == "M_MISSING_TOKEN"


async def test_a_message_needs_a_body(client: httpx.AsyncClient) -> None:
    response = await client.put(f"{SEND}/t", headers=AUTH, json={"msgtype": "m.text"})
    assert response.status_code == 400
    assert response.json()["errcode"] == "M_BAD_JSON"


async def test_an_oversized_event_is_too_large(client: httpx.AsyncClient) -> None:
    response = await client.put(f"{SEND}/t", headers=AUTH,
                                json={"msgtype": "m.text", "body": "x" * 70000})
    assert response.status_code == 413 and response.json()["errcode"] == "M_TOO_LARGE"


async def test_a_room_not_joined_is_forbidden(
    client: httpx.AsyncClient, profile: MatrixProfile
) -> None:
    profile.restrict_rooms(USER, ["!other:matrix.org"])
    response = await client.put(f"{SEND}/t", headers=AUTH, json={"msgtype": "m.text", "body": "x"})
    assert response.status_code == 403
    assert response.json() == {"errcode": "M_FORBIDDEN",
                               "error": f"User {USER} not in room {ROOM}"}


async def test_it_uploads_media_and_sends_an_image_event(
    client: httpx.AsyncClient, world: SimWorld
) -> None:
    upload = await client.post("/_matrix/media/v3/upload", params={"filename": "a.png"},
                               content=b"\x89PNG" * 10,
                               headers=AUTH | {"Content-Type": "image/png"})
    uri = upload.json()["content_uri"]
    assert uri.startswith("mxc://matrix.org/")
    download = await client.get(f"/_matrix/client/v1/media/download/{uri[6:]}", headers=AUTH)
    assert download.content == b"\x89PNG" * 10
    sent = await client.put(f"{SEND}/img-1", headers=AUTH,
                            json={"msgtype": "m.image", "body": "a.png", "url": uri})
    assert sent.status_code == 200
    assert world.record.all("matrix")[0].payload["content"]["url"] == uri


async def test_the_upload_limit_is_announced(client: httpx.AsyncClient) -> None:
    response = await client.get("/_matrix/client/v1/media/config", headers=AUTH)
    assert response.json() == {"m.upload.size": 50 * 1024 * 1024}


async def test_whoami_names_the_user(client: httpx.AsyncClient) -> None:
    response = await client.get("/_matrix/client/v3/account/whoami", headers=AUTH)
    assert response.json()["user_id"] == USER and response.json()["is_guest"] is False


async def test_it_redacts_an_own_event(client: httpx.AsyncClient) -> None:
    sent = await client.put(f"{SEND}/t1", headers=AUTH, json={"msgtype": "m.text", "body": "x"})
    event_id = sent.json()["event_id"]
    redact = f"/_matrix/client/v3/rooms/{ROOM}/redact/{event_id}/r1"
    first = await client.put(redact, headers=AUTH, json={"reason": "mistake"})
    again = await client.put(redact, headers=AUTH, json={"reason": "mistake"})
    assert first.status_code == 200 and first.json() == again.json()


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_it_fails_in_matrix_words_for_every_error_kind(
    profile: MatrixProfile, kind: ErrorKind
) -> None:
    response = profile.error(kind, "bad content", retry_after_s=2.5)
    body = json.loads(bytes(response.body))
    expected = {
        ErrorKind.SERVER_ERROR: (500, "M_UNKNOWN"), ErrorKind.UNAVAILABLE: (503, "M_UNKNOWN"),
        ErrorKind.RATE_LIMITED: (429, "M_LIMIT_EXCEEDED"),
        ErrorKind.AUTH_EXPIRED: (401, "M_UNKNOWN_TOKEN"),
        ErrorKind.AUTH_MISSING: (401, "M_UNKNOWN_TOKEN"),
        ErrorKind.INVALID_REQUEST: (400, "M_BAD_JSON"),
        ErrorKind.NOT_FOUND: (404, "M_UNRECOGNIZED"), ErrorKind.DUPLICATE: (400, "M_BAD_JSON"),
        ErrorKind.MEDIA_FAILED: (500, "M_UNKNOWN"),
    }
    assert (response.status_code, body["errcode"]) == expected[kind]
    assert isinstance(body["error"], str)
    if kind is ErrorKind.RATE_LIMITED:
        assert body["retry_after_ms"] == 2500 and response.headers["retry-after"] == "3"
    if kind is ErrorKind.AUTH_EXPIRED:
        assert body["soft_logout"] is True
