"""The WhatsApp adapter: template broadcasts through the simulated Cloud API, resumable under
retry without messaging anyone twice, and its error table."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sidestep.channels.adapters.whatsapp import MemorySendLedger, WhatsAppAdapter
from sidestep.channels.errors import (
    AuthExpired,
    PlatformOutage,
    PublishError,
    RateLimited,
    Rejected,
    Transient,
    Unknown,
)
from sidestep.clock import SystemClock
from sidestep.domain.content import Content, MediaItem, MediaKind
from sidestep.sim.platforms.whatsapp import whatsapp_state
from sidestep.sim.server import Simulator
from sidestep.sim.testing import running_simulator
from sidestep.vault import Credentials
from tests.channels.conftest import PNG_1PX

TOKEN = "EAAWhatsApp-secret-token-0001"
PHONE = "106540352242922"
TEMPLATE, LANGUAGE = "sidestep_update", "en"
NUMBERS = ["+16505550001", "+16505550002", "+16505550003", "+16505550004"]


def settings(recipients: str = "+16505551234", **overrides: str) -> dict[str, str]:
    return {"access_token": TOKEN, "phone_number_id": PHONE, "template_name": TEMPLATE,
            "template_language": LANGUAGE, "recipients": recipients, **overrides}


async def prepare(sim: Simulator) -> dict[str, str]:
    sim.world.grant_token("whatsapp", TOKEN, PHONE)
    whatsapp_state(sim.world).add_template(TEMPLATE, LANGUAGE, body_params=1)
    return settings()


def text_content() -> Content:
    return Content(text="We are still here: find us at https://brand.example")


def media_content() -> Content | None:
    return Content(text="Picture of the day", media=(
        MediaItem(MediaKind.IMAGE, "image/png", PNG_1PX, filename="dot.png"),))


def adapter_for(sim: Simulator, client: httpx.AsyncClient) -> WhatsAppAdapter:
    return WhatsAppAdapter(client=client, clock=sim.world.clock, timeout_s=2,
                           poll_interval_s=0.01, ledger=MemorySendLedger())


def mocked(handler: Callable[[httpx.Request], httpx.Response],
           ledger: MemorySendLedger | None = None) -> WhatsAppAdapter:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return WhatsAppAdapter(client=client, clock=SystemClock(), timeout_s=2, poll_interval_s=0,
                           ledger=ledger or MemorySendLedger())


def cloud_error(code: int, *, status: int = 400, details: str = "details") -> httpx.Response:
    return httpx.Response(status, json={"error": {
        "message": f"(#{code}) An error", "type": "OAuthException", "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": details},
        "fbtrace_id": "AbCdEf"}})


def recipients_script(answers: dict[str, Callable[[httpx.Request], httpx.Response]],
                      sent: list[str]) -> Callable[[httpx.Request], httpx.Response]:
    """A Cloud API that answers each recipient as `answers` says (default: accepted)."""
    def handler(request: httpx.Request) -> httpx.Response:
        to = json.loads(request.content)["to"]
        sent.append(to)
        answer = answers.get(to)
        if answer is not None:
            return answer(request)
        return httpx.Response(200, json={"messaging_product": "whatsapp",
                                         "contacts": [{"input": to, "wa_id": to[1:]}],
                                         "messages": [{"id": f"wamid.{to[1:]}"}]})
    return handler


async def test_it_sends_the_template_to_each_recipient_once_in_order() -> None:
    async with running_simulator(seed=1) as sim:
        await prepare(sim)
        credentials = Credentials(settings(", ".join(NUMBERS[:3])))
        async with sim.client() as client:
            published = await adapter_for(sim, client).publish(
                Content(text="Line one\n\nLine two", link="https://brand.example"),
                credentials, idempotency_key="k")
        records = sim.world.record.all("whatsapp")
    assert [r.payload["to"] for r in records] == NUMBERS[:3]
    assert {r.kind for r in records} == {"message"}
    first = records[0].payload
    assert first["template"] == {
        "name": TEMPLATE, "language": {"policy": "deterministic", "code": LANGUAGE},
        "components": [{"type": "body", "parameters": [
            {"type": "text", "text": "Line one Line two https://brand.example"}]}]}
    assert first["messaging_product"] == "whatsapp" and first["recipient_type"] == "individual"
    callbacks = [r.payload["biz_opaque_callback_data"] for r in records]
    assert len(set(callbacks)) == 3
    assert all(c.startswith(f"{published.external_id}:") for c in callbacks)


async def test_it_uploads_the_image_once_and_sends_it_as_the_template_header() -> None:
    async with running_simulator(seed=1) as sim:
        await prepare(sim)
        content = media_content()
        assert content is not None
        async with sim.client() as client:
            await adapter_for(sim, client).publish(
                content, Credentials(settings(", ".join(NUMBERS[:2]))), idempotency_key="k")
        records = sim.world.record.all("whatsapp")
    headers = [r.payload["template"]["components"][0] for r in records]
    assert headers[0] == headers[1]
    assert headers[0]["type"] == "header"
    assert set(headers[0]["parameters"][0]["image"]) == {"id"}


async def test_publishing_again_with_the_same_key_messages_nobody_twice() -> None:
    async with running_simulator(seed=1) as sim:
        await prepare(sim)
        credentials = Credentials(settings(", ".join(NUMBERS)))
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            first = await adapter.publish(text_content(), credentials, idempotency_key="k")
            again = await adapter.publish(text_content(), credentials, idempotency_key="k")
        assert len(sim.world.record.all("whatsapp")) == len(NUMBERS)
    assert first == again


async def test_a_retry_after_a_failure_midway_sends_only_to_the_rest() -> None:
    sent: list[str] = []
    throttled = {NUMBERS[2]: lambda request: cloud_error(130429)}
    ledger = MemorySendLedger()
    credentials = Credentials(settings(",".join(NUMBERS)))
    with pytest.raises(RateLimited, match="sent to 2 of 4"):
        await mocked(recipients_script(throttled, sent), ledger).publish(
            text_content(), credentials, idempotency_key="k")
    published = await mocked(recipients_script({}, sent), ledger).publish(
        text_content(), credentials, idempotency_key="k")
    assert sent == [*NUMBERS[:3], *NUMBERS[2:]]
    assert published.external_id.startswith("wa-")


async def test_a_lost_answer_is_never_sent_again_and_leaves_the_broadcast_unknown() -> None:
    sent: list[str] = []

    def lost(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    ledger = MemorySendLedger()
    credentials = Credentials(settings(",".join(NUMBERS)))
    with pytest.raises(Unknown, match="1 uncertain") as first:
        await mocked(recipients_script({NUMBERS[1]: lost}, sent), ledger).publish(
            text_content(), credentials, idempotency_key="k")
    with pytest.raises(Unknown, match="sent to 3 of 4") as second:
        await mocked(recipients_script({}, sent), ledger).publish(
            text_content(), credentials, idempotency_key="k")
    assert first.value.maybe_sent and second.value.maybe_sent
    assert sent == NUMBERS


async def test_a_recipient_who_cannot_receive_is_skipped_and_the_rest_still_get_it() -> None:
    sent: list[str] = []
    ledger = MemorySendLedger()
    answers = {NUMBERS[1]: lambda request: cloud_error(131026)}
    credentials = Credentials(settings(",".join(NUMBERS)))
    await mocked(recipients_script(answers, sent), ledger).publish(
        text_content(), credentials, idempotency_key="k")
    await mocked(recipients_script({}, sent), ledger).publish(
        text_content(), credentials, idempotency_key="k")
    assert sent == NUMBERS


async def test_a_broadcast_that_reaches_nobody_is_rejected() -> None:
    answers = {n: (lambda request: cloud_error(131050)) for n in NUMBERS}
    with pytest.raises(Rejected, match="none of the 4 recipients.*131050"):
        await mocked(recipients_script(answers, [])).publish(
            text_content(), Credentials(settings(",".join(NUMBERS))), idempotency_key="k")


async def test_it_cleans_the_recipient_list_and_refuses_one_without_any_number() -> None:
    sent: list[str] = []
    listed = " +1 650-555-0001, +16505550001,(+1) 650 555 0002, 12345, +0123456789"
    await mocked(recipients_script({}, sent)).publish(
        text_content(), Credentials(settings(listed)), idempotency_key="k")
    assert sent == NUMBERS[:2]
    with pytest.raises(AuthExpired, match="E.164"):
        await mocked(recipients_script({}, sent)).publish(
            text_content(), Credentials(settings("12345, not a number")), idempotency_key="k")


def test_it_lists_what_a_template_broadcast_cannot_carry() -> None:
    adapter = WhatsAppAdapter(client=httpx.AsyncClient())
    audio = MediaItem(MediaKind.AUDIO, "audio/ogg", b"OggS", filename="jingle.ogg")
    gif = MediaItem(MediaKind.IMAGE, "image/gif", b"GIF89a", filename="a.gif")
    problems = adapter.validate(Content(text="x" * 1025, media=(audio, gif), reply_to="w"))
    by_code = {p.code: [q.message for q in problems if q.code == p.code] for p in problems}
    assert "1,024 characters" in by_code["too_long"][0]
    assert any("not audio" in m for m in by_code["media_kind"])
    assert any("image/gif" in m for m in by_code["media_kind"])
    assert "at most 1 media" in by_code["too_many_media"][0]
    assert "no_replies" in by_code
    assert adapter.validate(Content(text="two\nlines\tand   spaces")) == []


@pytest.mark.parametrize(("fault", "params", "expected"), [
    ("http_5xx", {}, Transient),
    ("http_5xx", {"kind": "unavailable"}, PlatformOutage),
    ("rate_limited", {"retry_after_s": 30}, RateLimited),
    ("auth_expired", {}, AuthExpired),
])
async def test_it_reads_each_simulated_fault_as_its_class(
        fault: str, params: dict[str, Any], expected: type[PublishError]) -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        await sim.set_fault("whatsapp", fault, **params)
        async with sim.client() as client:
            with pytest.raises(expected) as caught:
                await adapter_for(sim, client).publish(text_content(), credentials,
                                                       idempotency_key="k")
        assert sim.world.record.all("whatsapp") == []
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after_s == 60


async def test_media_can_fail_while_text_broadcasts_still_go_out() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        await sim.set_fault("whatsapp", "partial", feature="media")
        content = media_content()
        assert content is not None
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            with pytest.raises(Transient):
                await adapter.publish(content, credentials, idempotency_key="a")
            await adapter.publish(text_content(), credentials, idempotency_key="b")
        assert len(sim.world.record.all("whatsapp")) == 1


@pytest.mark.parametrize(("template", "code"), [("no_such_template", "132001"),
                                                ("hello_world", "132000")])
async def test_it_reads_template_problems_as_rejected(template: str, code: str) -> None:
    async with running_simulator(seed=1) as sim:
        await prepare(sim)
        credentials = Credentials(settings(template_name=template, template_language="en_US"))
        async with sim.client() as client:
            with pytest.raises(Rejected) as caught:
                await adapter_for(sim, client).publish(text_content(), credentials,
                                                       idempotency_key="k")
    assert caught.value.platform_code == code


@pytest.mark.parametrize(("code", "status", "expected"), [
    (0, 401, AuthExpired), (190, 401, AuthExpired), (10, 403, AuthExpired),
    (131005, 403, AuthExpired), (133010, 400, AuthExpired), (4, 429, RateLimited),
    (80007, 400, RateLimited), (130429, 400, RateLimited), (131048, 400, RateLimited),
    (131056, 400, RateLimited), (1, 400, Transient), (131000, 500, Transient),
    (131053, 400, Transient), (2, 503, PlatformOutage), (131016, 500, PlatformOutage),
    (133004, 503, PlatformOutage), (368, 403, Rejected), (131031, 403, Rejected),
    (100, 400, Rejected), (131008, 400, Rejected), (132001, 404, Rejected),
    (132015, 400, Rejected), (132016, 400, Rejected),
])
async def test_it_maps_every_documented_cloud_api_code(
        code: int, status: int, expected: type[PublishError]) -> None:
    answers = {NUMBERS[0]: lambda request: cloud_error(code, status=status)}
    with pytest.raises(expected) as caught:
        await mocked(recipients_script(answers, [])).publish(
            text_content(), Credentials(settings(NUMBERS[0])), idempotency_key="k")
    if code == 131048:
        assert isinstance(caught.value, RateLimited) and caught.value.retry_after_s == 3600


async def test_it_checks_credentials_and_tells_an_expired_token() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            account = await adapter.check_credentials(credentials)
            await sim.set_fault("whatsapp", "auth_expired")
            with pytest.raises(AuthExpired):
                await adapter.check_credentials(credentials)
    assert account.account_id == PHONE and "Business" in account.name


async def test_it_says_whatsapp_messages_cannot_be_recalled() -> None:
    with pytest.raises(Rejected, match="recalled"):
        await mocked(recipients_script({}, [])).delete("wa-1", Credentials(settings()))


async def test_it_names_missing_credential_fields_without_sending() -> None:
    sent: list[str] = []
    with pytest.raises(AuthExpired, match="template_name, recipients"):
        await mocked(recipients_script({}, sent)).publish(
            text_content(), Credentials(settings(template_name="", recipients="")),
            idempotency_key="k")
    assert sent == []


async def test_it_keeps_the_token_out_of_urls_and_error_messages() -> None:
    seen: list[httpx.Request] = []

    def echo_token(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return cloud_error(100, details=f"Invalid parameter next to {TOKEN}")

    with pytest.raises(Rejected) as caught:
        await mocked(echo_token).publish(text_content(), Credentials(settings()),
                                         idempotency_key="k")
    assert TOKEN not in str(caught.value)
    assert TOKEN not in str(seen[0].url) and TOKEN not in seen[0].content.decode()
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"
