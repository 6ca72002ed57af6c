"""The simulated Bluesky PDS (bsky.social), driven directly through its XRPC routes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from sidestep.clock import FrozenClock
from sidestep.sim.platforms.bluesky import TID_ALPHABET, BlueskyProfile, did_for
from sidestep.sim.profile import ErrorKind
from sidestep.sim.world import SimWorld

HANDLE = "brand.bsky.social"
APP_PASSWORD = "abcd-efgh-ijkl-mnop"
BASE = "https://bsky.social"
DID = did_for(HANDLE)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))


@pytest.fixture
def world(clock: FrozenClock) -> SimWorld:
    world = SimWorld(clock=clock, seed=1)
    world.grant_token("bluesky", APP_PASSWORD, HANDLE)
    return world


@pytest.fixture
def profile(world: SimWorld) -> BlueskyProfile:
    return BlueskyProfile(world)


@pytest.fixture
async def client(profile: BlueskyProfile) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=profile.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


async def login(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post("/xrpc/com.atproto.server.createSession",
                                 json={"identifier": HANDLE, "password": APP_PASSWORD})
    assert response.status_code == 200
    session: dict[str, Any] = response.json()
    return session


def post(text: str, **extra: Any) -> dict[str, Any]:
    return {"repo": DID, "collection": "app.bsky.feed.post",
            "record": {"$type": "app.bsky.feed.post", "text": text,
                       "createdAt": "2026-01-01T00:00:00.000Z", **extra}}


def bearer(session: dict[str, Any], kind: str = "accessJwt") -> dict[str, str]:
    return {"Authorization": f"Bearer {session[kind]}"}


async def test_it_opens_a_session_with_an_app_password(client: httpx.AsyncClient) -> None:
    session = await login(client)
    assert session["did"] == DID and session["did"].startswith("did:plc:")
    assert session["handle"] == HANDLE
    assert session["accessJwt"].count(".") == 2 and session["refreshJwt"] != session["accessJwt"]


async def test_it_refuses_a_wrong_password(client: httpx.AsyncClient) -> None:
    response = await client.post("/xrpc/com.atproto.server.createSession",
                                 json={"identifier": HANDLE, "password": "wrong"})
    assert response.status_code == 401
    assert response.json() == {"error": "AuthenticationRequired",
                               "message": "Invalid identifier or password"}


async def test_it_creates_a_post_with_a_tid_and_a_cid(
    client: httpx.AsyncClient, world: SimWorld
) -> None:
    session = await login(client)
    text = "🎉 Moved: https://brand.example"
    start = len("🎉 Moved: ".encode())  # byte offsets, not character offsets
    link = {"index": {"byteStart": start, "byteEnd": start + len("https://brand.example")},
            "features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://brand.example"}]}
    response = await client.post("/xrpc/com.atproto.repo.createRecord", headers=bearer(session),
                                 json=post(text, facets=[link]))
    assert response.status_code == 200
    body = response.json()
    prefix = f"at://{DID}/app.bsky.feed.post/"
    assert body["uri"].startswith(prefix)
    rkey = body["uri"].removeprefix(prefix)
    assert len(rkey) == 13 and set(rkey) <= set(TID_ALPHABET)
    assert body["cid"].startswith("bafyrei")
    posts = world.record.all("bluesky")
    assert [(p.external_id, p.account, p.kind) for p in posts] == [(body["uri"], HANDLE, "post")]
    fetched = await client.get("/xrpc/com.atproto.repo.getRecord", params={
        "repo": DID, "collection": "app.bsky.feed.post", "rkey": rkey})
    assert fetched.json()["value"]["text"] == text


async def test_tids_sort_in_creation_order(client: httpx.AsyncClient) -> None:
    session = await login(client)
    uris = []
    for n in range(3):
        response = await client.post("/xrpc/com.atproto.repo.createRecord",
                                     headers=bearer(session), json=post(f"post {n}"))
        uris.append(response.json()["uri"])
    assert uris == sorted(uris)


async def test_it_refuses_text_over_300_graphemes(client: httpx.AsyncClient) -> None:
    session = await login(client)
    ok = await client.post("/xrpc/com.atproto.repo.createRecord", headers=bearer(session),
                           json=post("👍🏽" * 300))  # 300 graphemes, 2400 bytes
    assert ok.status_code == 200
    response = await client.post("/xrpc/com.atproto.repo.createRecord", headers=bearer(session),
                                 json=post("a" * 301))
    assert response.status_code == 400
    assert response.json() == {
        "error": "InvalidRequest",
        "message": "Invalid app.bsky.feed.post record: "
                   "Record/text must not be longer than 300 graphemes",
    }


async def test_it_refuses_a_facet_outside_the_text(client: httpx.AsyncClient) -> None:
    session = await login(client)
    facet = {"index": {"byteStart": 0, "byteEnd": 99},
             "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "x"}]}
    response = await client.post("/xrpc/com.atproto.repo.createRecord", headers=bearer(session),
                                 json=post("short", facets=[facet]))
    assert response.status_code == 400
    assert "facets/0/index" in response.json()["message"]


async def test_it_embeds_an_uploaded_image_and_enforces_the_2_mb_limit(
    client: httpx.AsyncClient
) -> None:
    session = await login(client)
    upload = await client.post("/xrpc/com.atproto.repo.uploadBlob", content=b"\x89PNG" * 100,
                               headers=bearer(session) | {"Content-Type": "image/png"})
    blob = upload.json()["blob"]
    assert blob["ref"]["$link"].startswith("bafkrei") and blob["size"] == 400
    images = {"$type": "app.bsky.embed.images", "images": [{"alt": "logo", "image": blob}]}
    ok = await client.post("/xrpc/com.atproto.repo.createRecord", headers=bearer(session),
                           json=post("with image", embed=images))
    assert ok.status_code == 200
    big = (await client.post("/xrpc/com.atproto.repo.uploadBlob", content=b"0" * 2_000_001,
                             headers=bearer(session) | {"Content-Type": "image/jpeg"})).json()
    too_big = {"$type": "app.bsky.embed.images", "images": [{"alt": "x", "image": big["blob"]}]}
    refused = await client.post("/xrpc/com.atproto.repo.createRecord", headers=bearer(session),
                                json=post("big", embed=too_big))
    assert refused.status_code == 400
    assert "file is too large" in refused.json()["message"]


async def test_it_refuses_a_blob_that_was_never_uploaded(client: httpx.AsyncClient) -> None:
    session = await login(client)
    ghost = {"$type": "blob", "ref": {"$link": "bafkreighost"}, "mimeType": "image/png",
             "size": 10}
    images = {"$type": "app.bsky.embed.images", "images": [{"alt": "x", "image": ghost}]}
    response = await client.post("/xrpc/com.atproto.repo.createRecord", headers=bearer(session),
                                 json=post("ghost", embed=images))
    assert response.json() == {"error": "InvalidRequest",
                               "message": "Could not find blob: bafkreighost"}


async def test_an_expired_access_token_is_refreshed(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    session = await login(client)
    clock.advance(seconds=2 * 3600 + 1)
    expired = await client.post("/xrpc/com.atproto.repo.createRecord", headers=bearer(session),
                                json=post("late"))
    assert expired.status_code == 400
    assert expired.json() == {"error": "ExpiredToken", "message": "Token has expired"}
    refreshed = await client.post("/xrpc/com.atproto.server.refreshSession",
                                  headers=bearer(session, "refreshJwt"))
    assert refreshed.status_code == 200
    again = await client.post("/xrpc/com.atproto.repo.createRecord",
                              headers=bearer(refreshed.json()), json=post("late"))
    assert again.status_code == 200
    reused = await client.post("/xrpc/com.atproto.server.refreshSession",
                               headers=bearer(session, "refreshJwt"))
    assert reused.json()["error"] == "InvalidToken"


async def test_it_asks_for_authentication(client: httpx.AsyncClient) -> None:
    response = await client.post("/xrpc/com.atproto.repo.createRecord", json=post("x"))
    assert response.status_code == 401
    assert response.json() == {"error": "AuthMissing", "message": "Authentication Required"}


async def test_a_chosen_rkey_makes_a_retry_safe(
    client: httpx.AsyncClient, world: SimWorld
) -> None:
    session = await login(client)
    body = post("once") | {"rkey": "3lbrandpost22"}
    first = await client.post("/xrpc/com.atproto.repo.createRecord", headers=bearer(session),
                              json=body)
    again = await client.post("/xrpc/com.atproto.repo.createRecord", headers=bearer(session),
                              json=body)
    assert first.status_code == 200 and again.status_code == 400
    assert len(world.record.all("bluesky")) == 1


async def test_it_deletes_a_record(client: httpx.AsyncClient) -> None:
    session = await login(client)
    uri = (await client.post("/xrpc/com.atproto.repo.createRecord", headers=bearer(session),
                             json=post("bye"))).json()["uri"]
    rkey = uri.rsplit("/", 1)[1]
    deleted = await client.post("/xrpc/com.atproto.repo.deleteRecord", headers=bearer(session),
                                json={"repo": DID, "collection": "app.bsky.feed.post",
                                      "rkey": rkey})
    assert deleted.status_code == 200
    gone = await client.get("/xrpc/com.atproto.repo.getRecord", params={
        "repo": DID, "collection": "app.bsky.feed.post", "rkey": rkey})
    assert gone.status_code == 400 and gone.json()["error"] == "RecordNotFound"


async def test_an_unknown_method_is_not_implemented(client: httpx.AsyncClient) -> None:
    response = await client.get("/xrpc/app.bsky.feed.getNothing")
    assert response.status_code == 501


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_it_fails_in_xrpc_words_for_every_error_kind(
    profile: BlueskyProfile, kind: ErrorKind
) -> None:
    response = profile.error(kind, "Record/text is bad", retry_after_s=30)
    body = json.loads(bytes(response.body))
    expected = {
        ErrorKind.SERVER_ERROR: (500, "InternalServerError"),
        ErrorKind.UNAVAILABLE: (503, "NotEnoughResources"),
        ErrorKind.RATE_LIMITED: (429, "RateLimitExceeded"),
        ErrorKind.AUTH_EXPIRED: (400, "ExpiredToken"),
        ErrorKind.AUTH_MISSING: (401, "AuthMissing"),
        ErrorKind.INVALID_REQUEST: (400, "InvalidRequest"),
        ErrorKind.NOT_FOUND: (400, "RecordNotFound"),
        ErrorKind.DUPLICATE: (400, "InvalidRequest"),
        ErrorKind.MEDIA_FAILED: (400, "InvalidRequest"),
    }
    assert (response.status_code, body["error"]) == expected[kind]
    assert isinstance(body["message"], str)
    if kind is ErrorKind.RATE_LIMITED:
        reset = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) + 30
        assert response.headers["ratelimit-reset"] == str(reset)
        assert response.headers["ratelimit-remaining"] == "0"
        assert response.headers["ratelimit-policy"] == "5000;w=3600"
