"""The whatsapp profile: Cloud API messages and media on graph.facebook.com.

The requests sent here are checked against Meta's published OpenAPI file
(`whatsapp/business-messaging-api_v23.0.yaml`) with one adjustment, made in `adjusted_spec`:
the message schemas combine `allOf` with `additionalProperties: false`, which refuses every
correct text message (the common fields `messaging_product`, `to`, `recipient_type` live in
the other `allOf` branch); `additionalProperties: false` is dropped from those branches.
`test_the_published_spec_refuses_a_correct_text_message` shows the defect, so the adjustment
stays visible.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest
from openapi_core.validation.request.exceptions import InvalidRequestBody
from starlette.applications import Starlette

from sidestep.clock import FrozenClock
from sidestep.sim.platforms.facebook import FacebookProfile
from sidestep.sim.platforms.whatsapp import WhatsAppProfile, whatsapp_state
from sidestep.sim.profile import ErrorKind
from sidestep.sim.world import Fault, SimWorld

SPEC = Path("/work/shared/specs/whatsapp/business-messaging-api_v23.0.yaml")
PHONE = "106540352242922"
TOKEN = "EAAWhatsAppSystemUser"
CUSTOMER = "16505551234"
START = datetime(2026, 1, 1, tzinfo=UTC)
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 1024


def _string_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _string_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_string_keys(v) for v in value]
    return value


@functools.cache
def _spec_document() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    document: dict[str, Any] = _string_keys(yaml.load(SPEC.read_text(), Loader=loader))
    document["servers"] = [{"url": "https://graph.facebook.com"}]
    return document


def _load(document: dict[str, Any]) -> OpenAPI:
    # The published file fails openapi-core's strict spec check; its request schemas work.
    config = Config(spec_validator_cls=None)  # type: ignore[arg-type]
    return OpenAPI.from_dict(document, config=config)


@functools.cache
def published_spec() -> OpenAPI:
    return _load(copy.deepcopy(_spec_document()))


@functools.cache
def adjusted_spec() -> OpenAPI:
    document = copy.deepcopy(_spec_document())
    for schema in document["components"]["schemas"].values():
        for branch in schema.get("allOf", []):
            branch.pop("additionalProperties", None)
    return _load(document)


def spec_request(body: dict[str, Any]) -> MockRequest:
    return MockRequest("https://graph.facebook.com", "post", f"/v23.0/{PHONE}/messages",
                       headers={"Authorization": f"Bearer {TOKEN}",
                                "Content-Type": "application/json"},
                       data=json.dumps(body).encode(), content_type="application/json")


def text_message(body: str = "We are back on email and the site", to: str = CUSTOMER
                 ) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
            "type": "text", "text": {"preview_url": False, "body": body}}


def template_message(name: str = "hello_world", params: list[str] | None = None
                     ) -> dict[str, Any]:
    template: dict[str, Any] = {"name": name,
                                "language": {"policy": "deterministic", "code": "en_US"}}
    if params is not None:
        template["components"] = [{"type": "body", "parameters": [
            {"type": "text", "text": p} for p in params]}]
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": CUSTOMER,
            "type": "template", "template": template}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def world(clock: FrozenClock) -> SimWorld:
    world = SimWorld(clock=clock, seed=1)
    world.grant_token("whatsapp", TOKEN, PHONE)
    return world


@pytest.fixture
async def client(world: SimWorld) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=FacebookProfile(world).routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://graph.facebook.com",
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


async def send(client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    adjusted_spec().validate_request(spec_request(body))
    return await client.post(f"/v23.0/{PHONE}/messages", json=body)


def test_the_published_spec_refuses_a_correct_text_message() -> None:
    with pytest.raises(InvalidRequestBody):
        published_spec().validate_request(spec_request(text_message()))


def test_the_adjusted_spec_still_tells_a_wrong_body_from_a_right_one() -> None:
    adjusted_spec().validate_request(spec_request(text_message()))
    wrong = text_message()
    wrong["text"]["body"] = 42
    with pytest.raises(InvalidRequestBody):
        adjusted_spec().validate_request(spec_request(wrong))


async def test_it_sends_a_template_to_a_customer_who_never_wrote(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    response = await send(client, template_message())
    assert response.status_code == 200
    body = response.json()
    [message] = body["messages"]
    assert body["messaging_product"] == "whatsapp"
    assert body["contacts"] == [{"input": CUSTOMER, "wa_id": CUSTOMER}]
    assert message["message_status"] == "accepted"
    assert re.fullmatch(r"wamid\.[A-Za-z0-9+/=]{40,}", message["id"])
    [recorded] = world.record.all("whatsapp")
    assert (recorded.account, recorded.kind, recorded.external_id) == (PHONE, "message",
                                                                      message["id"])
    assert recorded.payload["template"]["name"] == "hello_world"
    assert whatsapp_state(world).statuses[-1]["status"] == "sent"


async def test_it_sends_text_inside_the_24_hour_window(
        client: httpx.AsyncClient, world: SimWorld, clock: FrozenClock) -> None:
    whatsapp_state(world).customer_messaged(PHONE, CUSTOMER, START)
    clock.advance(seconds=23 * 3600)
    response = await send(client, text_message())
    assert response.status_code == 200
    assert [p.kind for p in world.record.all("whatsapp")] == ["message"]
    assert "message_status" not in response.json()["messages"][0]


async def test_it_accepts_text_outside_the_window_but_reports_it_undeliverable(
        client: httpx.AsyncClient, world: SimWorld, clock: FrozenClock) -> None:
    whatsapp_state(world).customer_messaged(PHONE, CUSTOMER, START)
    clock.advance(seconds=25 * 3600)
    response = await send(client, text_message())
    assert response.status_code == 200  # as on the Cloud API: the failure comes by webhook
    wamid = response.json()["messages"][0]["id"]
    [recorded] = world.record.all("whatsapp")
    assert (recorded.kind, recorded.external_id) == ("undeliverable", wamid)
    status = whatsapp_state(world).statuses[-1]
    assert (status["id"], status["status"], status["recipient_id"]) == (wamid, "failed", CUSTOMER)
    assert status["errors"][0]["code"] == 131047
    assert status["errors"][0]["title"] == "Re-engagement message"


async def test_it_refuses_an_unknown_template_with_404(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    response = await send(client, template_message("outage_notice"))
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == 132001
    assert error["message"] == "(#132001) Template name does not exist in the translation"
    assert error["error_data"] == {"messaging_product": "whatsapp",
                                   "details": "template name (outage_notice) does not exist in"
                                              " en_US"}
    assert world.record.all() == []


async def test_it_checks_the_template_parameter_count(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    whatsapp_state(world).add_template("outage_notice", "en_US", body_params=1)
    wrong = await send(client, template_message("outage_notice", []))
    right = await send(client, template_message("outage_notice", ["https://brand.example"]))
    assert wrong.json()["error"]["code"] == 132000
    assert right.status_code == 200


async def test_it_refuses_text_over_4096_characters(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    whatsapp_state(world).customer_messaged(PHONE, CUSTOMER, START)
    response = await send(client, text_message("x" * 4097))
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["message"]) == (100, "(#100) Invalid parameter")
    assert error["error_data"]["details"] == "Param text['body'] must be at most 4096 characters long"


async def test_it_refuses_a_number_that_is_not_a_phone_number(client: httpx.AsyncClient) -> None:
    response = await send(client, text_message(to="not-a-number"))
    assert response.json()["error"]["code"] == 131009


async def test_it_uploads_media_and_sends_it_by_id(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    whatsapp_state(world).customer_messaged(PHONE, CUSTOMER, START)
    upload = await client.post(f"/v23.0/{PHONE}/media",
                               data={"messaging_product": "whatsapp", "type": "image/jpeg"},
                               files={"file": ("status.jpg", JPEG, "image/jpeg")})
    assert upload.status_code == 200
    media_id = upload.json()["id"]
    assert re.fullmatch(r"\d{16}", media_id)
    body = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": CUSTOMER,
            "type": "image", "image": {"id": media_id, "caption": "Where to find us"}}
    response = await send(client, body)
    assert response.status_code == 200
    assert world.record.all("whatsapp")[0].payload["image"]["id"] == media_id


@pytest.mark.parametrize(("data", "declared"), [
    (b"\xff\xd8\xff" + b"\x00" * (5 * 1024 * 1024), "image/jpeg"),  # over 5 MB
    (b"%PDF-1.7 not an image", "image/png"),  # not what it says it is
])
async def test_it_refuses_media_it_cannot_take_with_131053(
        client: httpx.AsyncClient, data: bytes, declared: str) -> None:
    response = await client.post(f"/v23.0/{PHONE}/media",
                                 data={"messaging_product": "whatsapp", "type": declared},
                                 files={"file": ("f", data, declared)})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["message"]) == (131053, "(#131053) Media upload error")
    assert error["error_data"]["messaging_product"] == "whatsapp"


async def test_it_fails_images_but_still_sends_text_under_a_partial_media_fault(
        client: httpx.AsyncClient, world: SimWorld) -> None:
    whatsapp_state(world).customer_messaged(PHONE, CUSTOMER, START)
    world.faults.set("whatsapp", Fault.PARTIAL, feature="media")
    image = await send(client, {"messaging_product": "whatsapp", "recipient_type": "individual",
                                "to": CUSTOMER, "type": "image",
                                "image": {"link": "https://cdn.brand.example/a.jpg"}})
    text = await send(client, text_message())
    assert image.json()["error"]["code"] == 131053
    assert text.status_code == 200
    assert [p.payload["type"] for p in world.record.all()] == ["text"]


async def test_it_refuses_missing_and_unknown_tokens_with_401(world: SimWorld) -> None:
    app = Starlette(routes=FacebookProfile(world).routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://graph.facebook.com") as anonymous:
        missing = await anonymous.post(f"/v23.0/{PHONE}/messages", json=template_message())
        unknown = await anonymous.post(f"/v23.0/{PHONE}/messages", json=template_message(),
                                       headers={"Authorization": "Bearer EAAnope"})
    assert (missing.status_code, missing.json()["error"]["code"]) == (401, 104)
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (401, 190)


async def test_it_answers_on_its_own_hosts_too(world: SimWorld) -> None:
    app = Starlette(routes=WhatsAppProfile(world).routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://web.whatsapp.com") as web:
        assert (await web.get("/")).status_code == 200


EXPECTED = {  # kind -> (status, code)
    ErrorKind.SERVER_ERROR: (500, 1),
    ErrorKind.UNAVAILABLE: (503, 2),
    ErrorKind.RATE_LIMITED: (429, 4),
    ErrorKind.AUTH_EXPIRED: (401, 190),
    ErrorKind.AUTH_MISSING: (401, 190),
    ErrorKind.INVALID_REQUEST: (400, 100),
    ErrorKind.NOT_FOUND: (400, 100),
    ErrorKind.DUPLICATE: (400, 506),
    ErrorKind.MEDIA_FAILED: (400, 131053),
}


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_it_answers_every_error_kind_in_cloud_api_words(world: SimWorld, kind: ErrorKind) -> None:
    assert set(EXPECTED) == set(ErrorKind)
    response = WhatsAppProfile(world).error(kind, "injected fault", retry_after_s=61)
    error = json.loads(bytes(response.body))["error"]
    assert (response.status_code, error["code"]) == EXPECTED[kind]
    assert error["error_data"] == {"messaging_product": "whatsapp", "details": "injected fault"}
    assert error["type"] == "OAuthException" and error["fbtrace_id"]
    if kind is ErrorKind.RATE_LIMITED:
        assert error["message"] == "Rate limit exceeded"  # the spec's TooManyRequests example
        usage = json.loads(response.headers["x-business-use-case-usage"])
        [entry] = next(iter(usage.values()))
        assert (entry["type"], entry["estimated_time_to_regain_access"]) == ("whatsapp", 2)


def test_it_names_the_published_spec() -> None:
    spec = WhatsAppProfile.spec
    assert spec is not None and (Path("/work/shared/specs") / spec.file) == SPEC
    assert spec.server == "https://graph.facebook.com"
