"""The messenger profile: the Send API on graph.facebook.com, and its 24-hour window."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from sidestep.clock import FrozenClock
from sidestep.sim.platforms.facebook import FacebookProfile
from sidestep.sim.platforms.messenger import MessengerProfile, messenger_state
from sidestep.sim.profile import ErrorKind
from sidestep.sim.world import Fault, SimWorld

PAGE = "104000000000001"
TOKEN = "EAAPageToken"
PSID = "7000000000000001"
START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def world(clock: FrozenClock) -> SimWorld:
    world = SimWorld(clock=clock, seed=1)
    world.grant_token("messenger", TOKEN, PAGE)
    messenger_state(world).user_messaged(PAGE, PSID, START)
    return world


@pytest.fixture
async def client(world: SimWorld) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=FacebookProfile(world).routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://graph.facebook.com",
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


def message(text: str = "We answer on email while Instagram is down", **extra: Any
            ) -> dict[str, Any]:
    return {"recipient": {"id": PSID}, "messaging_type": "RESPONSE",
            "message": {"text": text}, **extra}


async def test_it_answers_someone_who_wrote_within_24_hours(
        client: httpx.AsyncClient, world: SimWorld, clock: FrozenClock) -> None:
    clock.advance(seconds=3600)
    response = await client.post(f"/v23.0/{PAGE}/messages", json=message())
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"recipient_id", "message_id"}
    assert body["recipient_id"] == PSID
    assert re.fullmatch(r"m_[\w-]{40,}", body["message_id"])
    [recorded] = world.record.all("messenger")
    assert (recorded.account, recorded.kind, recorded.external_id) == (PAGE, "message",
                                                                      body["message_id"])
    assert recorded.payload["message"] == {"text": "We answer on email while Instagram is down"}


async def test_it_takes_the_form_encoded_request_of_metas_own_example(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    response = await client.post("/v23.0/me/messages", data={
        "recipient": f"{{'id':'{PSID}'}}", "messaging_type": "RESPONSE",
        "message": "{'text':'hello, world'}", "access_token": TOKEN})
    assert response.status_code == 200
    assert world.record.all("messenger")[0].payload["message"] == {"text": "hello, world"}


async def test_it_refuses_a_message_outside_the_24_hour_window(
        client: httpx.AsyncClient, world: SimWorld, clock: FrozenClock) -> None:
    clock.advance(seconds=24 * 3600 + 1)
    response = await client.post(f"/v23.0/{PAGE}/messages", json=message())
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["error_subcode"], error["type"]) == (10, 2018278,
                                                                     "OAuthException")
    assert error["message"].startswith("(#10) This message is sent outside of allowed window.")
    assert world.record.all() == []


async def test_it_lets_non_promotional_tags_through_after_the_window(
        client: httpx.AsyncClient, clock: FrozenClock) -> None:
    clock.advance(seconds=3 * 24 * 3600)
    tagged = message(messaging_type="MESSAGE_TAG", tag="ACCOUNT_UPDATE")
    agent = message(messaging_type="MESSAGE_TAG", tag="HUMAN_AGENT")
    assert (await client.post(f"/v23.0/{PAGE}/messages", json=tagged)).status_code == 200
    assert (await client.post(f"/v23.0/{PAGE}/messages", json=agent)).status_code == 200
    clock.advance(seconds=5 * 24 * 3600)  # 8 days: past the human agent's 7
    late = await client.post(f"/v23.0/{PAGE}/messages", json=agent)
    assert late.json()["error"]["error_subcode"] == 2018278


async def test_it_refuses_a_tag_that_does_not_exist(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/v23.0/{PAGE}/messages",
                                 json=message(messaging_type="MESSAGE_TAG", tag="PROMOTION"))
    assert response.json()["error"]["code"] == 100


async def test_it_cannot_reach_someone_who_never_wrote(client: httpx.AsyncClient) -> None:
    body = message()
    body["recipient"] = {"id": "7000000000000999"}
    response = await client.post(f"/v23.0/{PAGE}/messages", json=body)
    error = response.json()["error"]
    assert (error["code"], error["error_subcode"], error["message"]) == (
        100, 2018001, "(#100) No matching user found")


async def test_it_refuses_text_over_2000_characters(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/v23.0/{PAGE}/messages", json=message("x" * 2001))
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "(#100) Length of param message[text] must be less than or equal to 2000")


async def test_it_refuses_a_message_without_messaging_type(client: httpx.AsyncClient) -> None:
    body = message()
    del body["messaging_type"]
    response = await client.post(f"/v23.0/{PAGE}/messages", json=body)
    assert response.json()["error"]["code"] == 100


async def test_it_fails_attachments_but_sends_text_under_a_partial_media_fault(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    world.faults.set("messenger", Fault.PARTIAL, feature="media")
    image = {"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {
        "attachment": {"type": "image", "payload": {"url": "https://cdn.brand.example/a.jpg"}}}}
    refused = await client.post(f"/v23.0/{PAGE}/messages", json=image)
    sent = await client.post(f"/v23.0/{PAGE}/messages", json=message())
    error = refused.json()["error"]
    assert (error["code"], error["error_subcode"]) == (100, 2018047)
    assert sent.status_code == 200
    assert len(world.record.all("messenger")) == 1


async def test_it_refuses_missing_and_unknown_tokens(world: SimWorld) -> None:
    app = Starlette(routes=FacebookProfile(world).routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://graph.facebook.com") as anonymous:
        missing = await anonymous.post(f"/v23.0/{PAGE}/messages", json=message())
        unknown = await anonymous.post(f"/v23.0/{PAGE}/messages", json=message(),
                                       params={"access_token": "EAAnope"})
    assert missing.json()["error"]["code"] == 104
    assert (unknown.json()["error"]["code"], unknown.json()["error"]["error_subcode"]) == (190,
                                                                                          467)


async def test_it_refuses_another_pages_path(client: httpx.AsyncClient, world: SimWorld) -> None:
    world.grant_token("messenger", "EAAOther", "104000000000002")
    response = await client.post("/v23.0/104000000000002/messages", json=message())
    assert response.json()["error"]["error_subcode"] == 33


EXPECTED = {  # kind -> (status, code, subcode)
    ErrorKind.SERVER_ERROR: (500, 1, None),
    ErrorKind.UNAVAILABLE: (503, 2, None),
    ErrorKind.RATE_LIMITED: (400, 80006, None),
    ErrorKind.AUTH_EXPIRED: (400, 190, 463),
    ErrorKind.AUTH_MISSING: (400, 190, 467),
    ErrorKind.INVALID_REQUEST: (400, 100, None),
    ErrorKind.NOT_FOUND: (400, 100, 33),
    ErrorKind.DUPLICATE: (400, 506, None),
    ErrorKind.MEDIA_FAILED: (400, 100, 2018047),
}


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_it_answers_every_error_kind_in_messenger_words(world: SimWorld, kind: ErrorKind) -> None:
    assert set(EXPECTED) == set(ErrorKind)
    response = MessengerProfile(world).error(kind, "injected", retry_after_s=10)
    error = json.loads(bytes(response.body))["error"]
    assert (response.status_code, error["code"], error.get("error_subcode")) == EXPECTED[kind]
    assert error["type"] == "OAuthException" and error["fbtrace_id"]
    if kind is ErrorKind.RATE_LIMITED:
        usage = json.loads(response.headers["x-business-use-case-usage"])
        [entry] = next(iter(usage.values()))
        assert (entry["type"], entry["estimated_time_to_regain_access"]) == ("messenger", 1)
