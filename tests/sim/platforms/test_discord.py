"""The simulated Discord API v10 (webhooks and bot messages), driven through its routes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest
from starlette.applications import Starlette

from sidestep.clock import FrozenClock
from sidestep.sim.platforms.discord import DISCORD_EPOCH_MS, DiscordProfile
from sidestep.sim.profile import ErrorKind
from sidestep.sim.world import SimWorld

HOOK_ID = "1100000000000000001"
HOOK_TOKEN = "hook-token-abc"
HOOK = f"/api/v10/webhooks/{HOOK_ID}/{HOOK_TOKEN}"
BOT_TOKEN = "bot-token-xyz"
BASE = "https://discord.com"
SPEC_FILE = Path(__file__).resolve().parents[4] / "shared" / "specs" / "discord" / "openapi.json"
SPEC_DICT: dict[str, Any] = json.loads(SPEC_FILE.read_text())
SPEC_DICT["servers"] = [{"url": DiscordProfile.spec.server}]
SPEC = OpenAPI.from_dict(SPEC_DICT, config=Config(spec_validator_cls=None))  # type: ignore[arg-type]


def assert_valid_per_spec(request: httpx.Request) -> None:
    """Check a request against Discord's published OpenAPI description.

    A multipart body is checked as its `payload_json` part, which Discord documents as the
    JSON body of the non-file parameters: openapi-core 0.23 raises TypeError when it decodes
    a multipart part whose schema type is a list (OpenAPI 3.1 `["string", "null"]`).
    """
    ctype = request.headers.get("content-type", "")
    body = request.read()
    if ctype.startswith("multipart/form-data"):
        marker = b'name="payload_json"\r\n\r\n'
        body = body.split(marker, 1)[1].split(b"\r\n--", 1)[0]
        ctype = "application/json"
    SPEC.validate_request(MockRequest(
        BASE, request.method.lower(), request.url.path, args=dict(request.url.params),
        data=body, content_type=ctype, headers=dict(request.headers),
    ))


@pytest.fixture
def world() -> SimWorld:
    world = SimWorld(clock=FrozenClock(datetime(2026, 1, 1, tzinfo=UTC)), seed=1)
    world.grant_token("discord", f"{HOOK_ID}/{HOOK_TOKEN}", "brand")
    world.grant_token("discord", BOT_TOKEN, "brand")
    return world


@pytest.fixture
def profile(world: SimWorld) -> DiscordProfile:
    return DiscordProfile(world)


@pytest.fixture
async def client(profile: DiscordProfile) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=profile.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


def assert_rate_headers(response: httpx.Response) -> None:
    for name in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
                 "x-ratelimit-reset-after", "x-ratelimit-bucket"):
        assert name in response.headers, name


async def test_it_executes_a_webhook_and_returns_the_message_when_waiting(
    client: httpx.AsyncClient, world: SimWorld
) -> None:
    request = client.build_request(
        "POST", HOOK, params={"wait": "true"},
        json={"content": "We are live on the site", "username": "Brand"},
    )
    assert_valid_per_spec(request)
    response = await client.send(request)
    assert response.status_code == 200
    assert_rate_headers(response)
    message = response.json()
    assert message["content"] == "We are live on the site"
    assert message["webhook_id"] == HOOK_ID and message["author"]["username"] == "Brand"
    created_ms = (int(message["id"]) >> 22) + DISCORD_EPOCH_MS
    assert created_ms == int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
    posts = world.record.all("discord")
    assert [(p.external_id, p.account, p.kind) for p in posts] == [(message["id"], "brand", "message")]


async def test_it_answers_204_without_wait_and_still_records(
    client: httpx.AsyncClient, world: SimWorld
) -> None:
    response = await client.post(HOOK, json={"content": "hi"})
    assert response.status_code == 204
    assert_rate_headers(response)
    assert len(world.record.all("discord")) == 1


async def test_it_counts_down_the_remaining_rate_limit(client: httpx.AsyncClient) -> None:
    first = await client.post(HOOK, json={"content": "1"})
    second = await client.post(HOOK, json={"content": "2"})
    assert int(first.headers["x-ratelimit-remaining"]) == 4
    assert int(second.headers["x-ratelimit-remaining"]) == 3


async def test_it_uploads_files_with_payload_json(
    client: httpx.AsyncClient, world: SimWorld
) -> None:
    request = client.build_request(
        "POST", HOOK, params={"wait": "true"},
        data={"payload_json": json.dumps({"content": "Poster"})},
        files={"files[0]": ("poster.png", b"\x89PNG" + b"0" * 512, "image/png")},
    )
    assert_valid_per_spec(request)
    response = await client.send(request)
    assert response.status_code == 200
    attachment = response.json()["attachments"][0]
    assert attachment["filename"] == "poster.png" and attachment["size"] == 516
    assert attachment["url"].startswith("https://cdn.discordapp.com/attachments/")
    cdn = await client.get(httpx.URL(attachment["url"]).path)
    assert cdn.content == b"\x89PNG" + b"0" * 512
    assert world.record.all("discord")[0].kind == "media"


async def test_it_refuses_a_file_over_the_10_mib_default_limit(client: httpx.AsyncClient) -> None:
    response = await client.post(
        HOOK, data={"payload_json": json.dumps({"content": "big"})},
        files={"files[0]": ("big.mp4", b"0" * (10 * 1024 * 1024 + 1), "video/mp4")},
    )
    assert response.status_code == 413
    assert response.json() == {"message": "Request entity too large", "code": 40005}


async def test_it_refuses_long_content_with_an_invalid_form_body(client: httpx.AsyncClient) -> None:
    response = await client.post(HOOK, json={"content": "x" * 2001})
    assert response.status_code == 400
    assert response.json() == {
        "code": 50035, "message": "Invalid Form Body",
        "errors": {"content": {"_errors": [
            {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]}},
    }


async def test_it_refuses_an_empty_message(client: httpx.AsyncClient) -> None:
    response = await client.post(HOOK, json={"content": ""})
    assert response.json() == {"message": "Cannot send an empty message", "code": 50006}


async def test_it_answers_unknown_webhook_and_invalid_token(client: httpx.AsyncClient) -> None:
    unknown = await client.post("/api/v10/webhooks/42/whatever", json={"content": "x"})
    assert unknown.status_code == 404
    assert unknown.json() == {"message": "Unknown Webhook", "code": 10015}
    wrong = await client.post(f"/api/v10/webhooks/{HOOK_ID}/wrong", json={"content": "x"})
    assert wrong.status_code == 401
    assert wrong.json() == {"message": "Invalid Webhook Token", "code": 50027}


async def test_it_answers_the_unversioned_webhook_url_too(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/api/webhooks/{HOOK_ID}/{HOOK_TOKEN}", json={"content": "x"})
    assert response.status_code == 204


async def test_it_reads_and_deletes_a_webhook_message(client: httpx.AsyncClient) -> None:
    sent = (await client.post(HOOK, params={"wait": "true"}, json={"content": "x"})).json()
    got = await client.get(f"{HOOK}/messages/{sent['id']}")
    assert got.json()["id"] == sent["id"]
    deleted = await client.delete(f"{HOOK}/messages/{sent['id']}")
    assert deleted.status_code == 204
    gone = await client.get(f"{HOOK}/messages/{sent['id']}")
    assert gone.json() == {"message": "Unknown Message", "code": 10008}


async def test_it_describes_the_webhook(client: httpx.AsyncClient) -> None:
    response = await client.get(HOOK)
    assert response.json()["id"] == HOOK_ID and response.json()["type"] == 1


async def test_a_bot_needs_its_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v10/channels/55/messages", json={"content": "x"},
                                 headers={"Authorization": "Bot nope"})
    assert response.status_code == 401
    assert response.json() == {"message": "401: Unauthorized", "code": 0}


async def test_a_bot_message_with_an_enforced_nonce_is_created_once(
    client: httpx.AsyncClient, world: SimWorld
) -> None:
    headers = {"Authorization": f"Bot {BOT_TOKEN}"}
    body = {"content": "Launch", "nonce": "post-17", "enforce_nonce": True}
    request = client.build_request("POST", "/api/v10/channels/55/messages", json=body,
                                   headers=headers)
    assert_valid_per_spec(request)
    first = await client.send(request)
    again = await client.post("/api/v10/channels/55/messages", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    posts = world.record.all("discord")
    assert len(posts) == 1 and posts[0].idempotency_marker == "post-17"


async def test_a_bot_gets_missing_access_outside_its_channels(
    client: httpx.AsyncClient, profile: DiscordProfile
) -> None:
    profile.restrict_channels("brand", ["55"])
    response = await client.post("/api/v10/channels/66/messages", json={"content": "x"},
                                 headers={"Authorization": f"Bot {BOT_TOKEN}"})
    assert response.status_code == 403
    assert response.json() == {"message": "Missing Access", "code": 50001}


def test_the_spec_check_itself_rejects_a_bad_request() -> None:
    bad = httpx.Request("POST", f"{BASE}{HOOK}", json={"content": "x" * 2001})
    with pytest.raises(Exception, match="Request body validation error"):
        assert_valid_per_spec(bad)


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_it_fails_in_discords_words_for_every_error_kind(
    profile: DiscordProfile, kind: ErrorKind
) -> None:
    response = profile.error(kind, "Must be 2000 or fewer in length.", retry_after_s=2.5)
    body = json.loads(bytes(response.body))
    expected = {
        ErrorKind.SERVER_ERROR: 500, ErrorKind.UNAVAILABLE: 503, ErrorKind.RATE_LIMITED: 429,
        ErrorKind.AUTH_EXPIRED: 401, ErrorKind.AUTH_MISSING: 401, ErrorKind.INVALID_REQUEST: 400,
        ErrorKind.NOT_FOUND: 404, ErrorKind.DUPLICATE: 400, ErrorKind.MEDIA_FAILED: 500,
    }
    assert response.status_code == expected[kind]
    assert "x-ratelimit-bucket" in response.headers
    assert isinstance(body["message"], str)
    if kind is ErrorKind.RATE_LIMITED:
        assert body == {"message": "You are being rate limited.", "retry_after": 2.5,
                        "global": False}
        assert response.headers["retry-after"] == "3"
        assert response.headers["x-ratelimit-scope"] == "user"
        assert response.headers["x-ratelimit-remaining"] == "0"
    else:
        assert isinstance(body["code"], int)
    if kind is ErrorKind.INVALID_REQUEST:
        assert body["code"] == 50035 and "_errors" in body["errors"]["content"]
