"""The simulated generic webhook receiver (hooks.example.net), driven through its route."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from starlette.applications import Starlette

from sidestep.clock import FrozenClock
from sidestep.sim.platforms.webhook import WebhookProfile, sign
from sidestep.sim.profile import ErrorKind
from sidestep.sim.world import SimWorld

SECRET = "whsec-brand"
HOOK = "brand-site"
BASE = "https://hooks.example.net"


@pytest.fixture
def world() -> SimWorld:
    world = SimWorld(clock=FrozenClock(datetime(2026, 1, 1, tzinfo=UTC)), seed=1)
    world.grant_token("webhook", SECRET, HOOK)
    return world


@pytest.fixture
def profile(world: SimWorld) -> WebhookProfile:
    return WebhookProfile(world)


@pytest.fixture
async def client(profile: WebhookProfile) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=profile.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        yield c


def signed(body: bytes, delivery: str = "d-1", secret: str = SECRET) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Sidestep-Delivery": delivery,
            "X-Sidestep-Signature": sign(secret, body)}


def test_the_signature_is_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert sign(SECRET, body) == f"sha256={expected}"


async def test_it_accepts_a_signed_delivery_and_records_it(
    client: httpx.AsyncClient, world: SimWorld
) -> None:
    body = json.dumps({"text": "We moved", "post_id": 7}).encode()
    response = await client.post(f"/in/{HOOK}", content=body, headers=signed(body))
    assert response.status_code == 200
    assert response.json() == {"received": True, "delivery": "d-1", "duplicate": False}
    posts = world.record.all("webhook")
    assert [(p.external_id, p.account, p.idempotency_marker) for p in posts] == [
        (f"{HOOK}:d-1", HOOK, "d-1")]
    assert posts[0].payload == {"text": "We moved", "post_id": 7}


async def test_a_repeated_delivery_id_is_answered_without_a_new_record(
    client: httpx.AsyncClient, world: SimWorld
) -> None:
    body = b'{"text":"once"}'
    await client.post(f"/in/{HOOK}", content=body, headers=signed(body))
    again = await client.post(f"/in/{HOOK}", content=body, headers=signed(body))
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert len(world.record.all("webhook")) == 1


async def test_a_bad_signature_is_refused(client: httpx.AsyncClient, world: SimWorld) -> None:
    body = b'{"text":"x"}'
    response = await client.post(f"/in/{HOOK}", content=body,
                                 headers=signed(body, secret="wrong"))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_signature"
    assert world.record.all("webhook") == []


async def test_a_tampered_body_is_refused(client: httpx.AsyncClient) -> None:
    headers = signed(b'{"text":"x"}')
    response = await client.post(f"/in/{HOOK}", content=b'{"text":"y"}', headers=headers)
    assert response.status_code == 401


async def test_a_missing_signature_is_named(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/in/{HOOK}", content=b"{}",
                                 headers={"Content-Type": "application/json",
                                          "X-Sidestep-Delivery": "d"})
    assert response.status_code == 401 and response.json()["error"] == "missing_signature"


async def test_a_body_over_one_mib_is_too_large(client: httpx.AsyncClient) -> None:
    body = json.dumps({"blob": "x" * (1024 * 1024)}).encode()
    response = await client.post(f"/in/{HOOK}", content=body, headers=signed(body))
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


async def test_a_delivery_id_is_required(client: httpx.AsyncClient) -> None:
    body = b"{}"
    headers = signed(body)
    del headers["X-Sidestep-Delivery"]
    response = await client.post(f"/in/{HOOK}", content=body, headers=headers)
    assert response.status_code == 400 and response.json()["error"] == "missing_delivery"


async def test_the_body_must_be_json(client: httpx.AsyncClient) -> None:
    body = b"not json"
    response = await client.post(f"/in/{HOOK}", content=body, headers=signed(body))
    assert response.status_code == 400 and response.json()["error"] == "invalid_json"


async def test_an_unknown_hook_is_404(client: httpx.AsyncClient) -> None:
    body = b"{}"
    response = await client.post("/in/nobody", content=body, headers=signed(body))
    assert response.status_code == 404 and response.json()["error"] == "unknown_hook"


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_it_fails_in_its_own_words_for_every_error_kind(
    profile: WebhookProfile, kind: ErrorKind
) -> None:
    response = profile.error(kind, "field missing", retry_after_s=4.2)
    body = json.loads(bytes(response.body))
    expected = {
        ErrorKind.SERVER_ERROR: 500, ErrorKind.UNAVAILABLE: 503, ErrorKind.RATE_LIMITED: 429,
        ErrorKind.AUTH_EXPIRED: 401, ErrorKind.AUTH_MISSING: 401, ErrorKind.INVALID_REQUEST: 400,
        ErrorKind.NOT_FOUND: 404, ErrorKind.DUPLICATE: 409, ErrorKind.MEDIA_FAILED: 413,
    }
    assert response.status_code == expected[kind]
    assert set(body) == {"error", "message"}
    if kind is ErrorKind.RATE_LIMITED:
        assert response.headers["retry-after"] == "5"
