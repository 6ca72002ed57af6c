"""The owned webhook adapter against the simulated receiver, its errors and its SSRF guard."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from sidestep.channels.adapters.webhook import WebhookAdapter, is_public_address, sign
from sidestep.channels.errors import (
    AuthExpired,
    PlatformOutage,
    PublishError,
    RateLimited,
    Rejected,
    Transient,
)
from sidestep.clock import SystemClock
from sidestep.domain.content import Content, MediaItem, MediaKind
from sidestep.sim.server import Simulator
from sidestep.sim.testing import running_simulator
from sidestep.vault import Credentials
from tests.channels.conftest import PNG_1PX

HOOK = "brand-hook"
SECRET = "whsec-very-secret-value"
URL = f"https://hooks.example.net/in/{HOOK}"
PUBLIC_URL = "https://93.184.215.14/in/hook"  # an IP literal: no DNS needed to check it


async def prepare(sim: Simulator) -> dict[str, str]:
    sim.world.grant_token("webhook", SECRET, HOOK)
    return {"webhook_url": URL, "signing_secret": SECRET}


def text_content() -> Content:
    return Content(text="We are still here while the other place is down.")


def media_content() -> Content | None:
    # Media go as links in the JSON; there is no upload that could fail on its own.
    return None


def adapter_options() -> dict[str, object]:
    """What the fault battery must pass to the constructor: the simulator is on loopback."""
    return {"allow_private_targets": True}


def adapter_for(sim: Simulator, client: httpx.AsyncClient) -> WebhookAdapter:
    return WebhookAdapter(client=client, clock=sim.world.clock, timeout_s=2,
                          allow_private_targets=True)


def mocked(handler: Callable[[httpx.Request], httpx.Response], *,
           allow_private_targets: bool = False) -> WebhookAdapter:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return WebhookAdapter(client=client, clock=SystemClock(), timeout_s=2,
                          allow_private_targets=allow_private_targets)


CREDS = Credentials({"webhook_url": PUBLIC_URL, "signing_secret": SECRET})
IMAGE = MediaItem(MediaKind.IMAGE, "image/png", PNG_1PX, filename="dot.png",
                  url="https://cdn.example.com/dot.png")


async def test_it_delivers_a_signed_post_once_and_a_repeat_is_dropped() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        content = Content(text="Hello", link="https://example.com", media=(IMAGE,),
                          reply_to="earlier-id")
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            first = await adapter.publish(content, credentials, idempotency_key="d-1")
            again = await adapter.publish(content, credentials, idempotency_key="d-1")
        [record] = sim.world.record.all("webhook")
    assert first == again and first.external_id == "d-1"
    assert record.idempotency_marker == "d-1"
    published_at = record.payload.pop("published_at")
    assert published_at.endswith("Z")
    assert record.payload == {
        "id": "d-1", "text": "Hello", "link": "https://example.com", "reply_to": "earlier-id",
        "media": [{"kind": "image", "mime_type": "image/png",
                   "url": "https://cdn.example.com/dot.png", "sha256": IMAGE.sha256}]}


async def test_the_signature_is_the_hmac_of_the_exact_body_sent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    published = await mocked(handler).publish(Content(text="Grüße ✨"), CREDS,
                                              idempotency_key="k")
    [request] = seen
    assert request.headers["x-sidestep-signature"] == sign(SECRET, request.content)
    assert request.headers["x-sidestep-delivery"] == "k"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content)["text"] == "Grüße ✨"
    assert published.external_id == "k"  # no JSON answer: the delivery id is ours


def test_media_without_a_public_url_cannot_go_out() -> None:
    adapter = WebhookAdapter(client=httpx.AsyncClient())
    local = MediaItem(MediaKind.IMAGE, "image/png", PNG_1PX, filename="dot.png")
    [problem] = adapter.validate(Content(text="x", media=(local,)))
    assert problem.code == "media_url" and "dot.png" in problem.message
    assert adapter.validate(Content(text="x", media=(IMAGE,))) == []


async def test_media_without_a_public_url_is_rejected_before_sending() -> None:
    local = MediaItem(MediaKind.IMAGE, "image/png", PNG_1PX, filename="dot.png")
    adapter = mocked(lambda _: pytest.fail("nothing may be sent"))
    with pytest.raises(Rejected, match="dot.png"):
        await adapter.publish(Content(text="x", media=(local,)), CREDS, idempotency_key="k")


@pytest.mark.parametrize("url", [
    "https://127.0.0.1/hook", "http://localhost:8080/hook", "https://10.1.2.3/hook",
    "https://192.168.0.10/hook", "http://169.254.169.254/latest/meta-data",
    "https://[::1]/hook", "https://[::ffff:127.0.0.1]/hook", "https://0.0.0.0/hook",
    "https://[fd00::1]/hook", "https://100.64.0.1/hook",
])
async def test_it_refuses_private_and_loopback_targets_without_sending(url: str) -> None:
    adapter = mocked(lambda _: pytest.fail("nothing may be sent"))
    with pytest.raises(AuthExpired, match="private or local network"):
        await adapter.publish(text_content(), Credentials(
            {"webhook_url": url, "signing_secret": SECRET}), idempotency_key="k")
    with pytest.raises(AuthExpired):
        await adapter.check_credentials(Credentials({"webhook_url": url,
                                                     "signing_secret": SECRET}))


async def test_private_targets_are_allowed_only_when_the_option_says_so() -> None:
    adapter = mocked(lambda _: httpx.Response(200, json={"received": True, "delivery": "x"}),
                     allow_private_targets=True)
    published = await adapter.publish(text_content(), Credentials(
        {"webhook_url": "http://localhost:8080/hook", "signing_secret": SECRET}),
        idempotency_key="k")
    assert published.external_id == "x"


async def test_a_public_address_is_delivered_to() -> None:
    adapter = mocked(lambda _: httpx.Response(200, json={"received": True, "delivery": "k"}))
    assert (await adapter.publish(text_content(), CREDS, idempotency_key="k")).external_id == "k"
    info = await adapter.check_credentials(CREDS)
    assert info.account_id == "93.184.215.14"


async def test_a_host_that_does_not_resolve_is_an_outage() -> None:
    adapter = mocked(lambda _: pytest.fail("nothing may be sent"))
    with pytest.raises(PlatformOutage, match="does not resolve"):
        await adapter.publish(text_content(), Credentials(
            {"webhook_url": "https://nonexistent.invalid/hook", "signing_secret": SECRET}),
            idempotency_key="k")


def test_it_knows_public_from_private_addresses() -> None:
    assert is_public_address("93.184.215.14") and is_public_address("2606:4700::1111")
    for address in ("127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.1.1",
                    "::1", "fe80::1%eth0", "::ffff:10.0.0.1", "0.0.0.0", "224.0.0.1",
                    "240.0.0.1"):
        assert not is_public_address(address), address


ERROR_TABLE: list[tuple[int, dict[str, str], type[PublishError]]] = [
    (401, {"error": "invalid_signature", "message": "The signature does not match"},
     AuthExpired),
    (403, {"error": "forbidden", "message": "Not allowed"}, AuthExpired),
    (404, {"error": "unknown_hook", "message": "No such hook"}, AuthExpired),
    (410, {"error": "gone", "message": "Hook removed"}, AuthExpired),
    (400, {"error": "invalid_json", "message": "The body is not JSON"}, Rejected),
    (413, {"error": "payload_too_large", "message": "The body is over 1 MiB"}, Rejected),
    (415, {"error": "unsupported_media_type", "message": "Send application/json"}, Rejected),
    (429, {"error": "rate_limited", "message": "Too many deliveries"}, RateLimited),
    (500, {"error": "internal_error", "message": "The receiver failed"}, Transient),
    (502, {"error": "bad_gateway", "message": "Upstream down"}, PlatformOutage),
    (503, {"error": "unavailable", "message": "The receiver is unavailable"}, PlatformOutage),
]


@pytest.mark.parametrize(("status", "body", "expected"), ERROR_TABLE,
                         ids=[str(row[0]) for row in ERROR_TABLE])
async def test_it_maps_each_answer_to_its_class(
        status: int, body: dict[str, str], expected: type[PublishError]) -> None:
    adapter = mocked(lambda _: httpx.Response(status, json=body, headers={"Retry-After": "30"}))
    with pytest.raises(PublishError) as caught:
        await adapter.publish(text_content(), CREDS, idempotency_key="k")
    assert type(caught.value) is expected
    assert caught.value.http_status == status
    assert body["message"] in str(caught.value)
    assert SECRET not in str(caught.value)
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after_s == 30


async def test_a_2xx_with_broken_json_is_transient_since_resending_is_safe() -> None:
    adapter = mocked(lambda _: httpx.Response(
        200, content=b'{"received": tr', headers={"content-type": "application/json"}))
    with pytest.raises(Transient, match="resent"):
        await adapter.publish(text_content(), CREDS, idempotency_key="k")


async def test_a_rotated_secret_is_auth_expired() -> None:
    async with running_simulator(seed=1) as sim:
        await prepare(sim)
        async with sim.client() as client:
            with pytest.raises(AuthExpired) as caught:
                await adapter_for(sim, client).publish(text_content(), Credentials(
                    {"webhook_url": URL, "signing_secret": "an-old-secret"}),
                    idempotency_key="k")
        assert sim.world.record.all("webhook") == []
    assert caught.value.http_status == 401


async def test_it_names_missing_credentials_and_sends_nothing() -> None:
    adapter = mocked(lambda _: pytest.fail("nothing may be sent"))
    with pytest.raises(AuthExpired, match="webhook_url and signing_secret"):
        await adapter.publish(text_content(), Credentials({}), idempotency_key="k")
    with pytest.raises(AuthExpired, match="http"):
        await adapter.publish(text_content(), Credentials(
            {"webhook_url": "ftp://example.com/x", "signing_secret": SECRET}),
            idempotency_key="k")


async def test_a_delivery_cannot_be_deleted() -> None:
    with pytest.raises(Rejected, match="cannot be taken back"):
        await mocked(lambda _: pytest.fail("nothing may be sent")).delete("k", CREDS)


async def test_no_error_message_contains_the_secret_or_a_url_token() -> None:
    tokened = f"{URL}?token=url-token-abcdef"
    async with running_simulator(seed=1) as sim:
        await prepare(sim)
        credentials = Credentials({"webhook_url": tokened, "signing_secret": SECRET})
        for fault in ("timeout", "refused", "http_5xx", "auth_expired", "rate_limited"):
            await sim.set_fault("webhook", fault)
            async with sim.client() as client:
                with pytest.raises(PublishError) as caught:
                    await WebhookAdapter(client=client, clock=sim.world.clock, timeout_s=0.3,
                                         allow_private_targets=True).publish(
                        text_content(), credentials, idempotency_key="s")
            await sim.clear_faults()
            for secret in (SECRET, "url-token-abcdef"):
                assert secret not in str(caught.value), fault
