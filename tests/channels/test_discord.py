"""The Discord webhook adapter against the simulated Discord API, and its error table."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from sidestep.channels.adapters.discord import DiscordAdapter, flatten_form_errors
from sidestep.channels.errors import (
    AuthExpired,
    PlatformOutage,
    PublishError,
    RateLimited,
    Rejected,
    Transient,
)
from sidestep.clock import FrozenClock, SystemClock
from sidestep.domain.content import Content, MediaItem, MediaKind
from sidestep.sim.server import Simulator
from sidestep.sim.testing import running_simulator
from sidestep.vault import Credentials
from tests.channels.conftest import PNG_1PX

HOOK_ID = "112233445566778899"
TOKEN = "hook-token-ABCdef_123-secret"
URL = f"https://discord.com/api/webhooks/{HOOK_ID}/{TOKEN}"


async def prepare(sim: Simulator) -> dict[str, str]:
    sim.world.grant_token("discord", f"{HOOK_ID}/{TOKEN}", "Brand alerts")
    return {"webhook_url": URL}


def text_content() -> Content:
    return Content(text="We are still here while the other place is down.")


def media_content() -> Content | None:
    return Content(text="Picture of the day", media=(
        MediaItem(MediaKind.IMAGE, "image/png", PNG_1PX, alt="A dot", filename="dot.png"),))


def adapter_for(sim: Simulator, client: httpx.AsyncClient) -> DiscordAdapter:
    return DiscordAdapter(client=client, clock=sim.world.clock, timeout_s=2, poll_interval_s=0.01)


def counting(seen: list[httpx.Request]) -> dict[str, list[Callable[[httpx.Request], object]]]:
    async def hook(request: httpx.Request) -> None:
        seen.append(request)
    return {"request": [hook]}


async def test_it_sends_a_message_once_with_the_link_appended() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            published = await adapter_for(sim, client).publish(
                Content(text="We moved", link="https://example.com/news"), credentials,
                idempotency_key="k")
        [record] = sim.world.record.all("discord")
    assert record.external_id == published.external_id
    assert record.payload["content"] == "We moved\n\nhttps://example.com/news"
    assert record.payload["attachments"] == [] and record.payload["embeds"] == []


async def test_it_attaches_files_with_their_alt_text() -> None:
    seen: list[httpx.Request] = []
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        content = media_content()
        assert content is not None
        async with sim.client(event_hooks=counting(seen)) as client:
            await adapter_for(sim, client).publish(content, credentials, idempotency_key="m")
        [record] = sim.world.record.all("discord")
    assert record.kind == "media"
    assert record.payload["attachments"] == ["dot.png"]
    assert record.payload["content"] == "Picture of the day"
    body = seen[0].read()
    assert b'name="files[0]"; filename="dot.png"' in body
    assert b'"description": "A dot"' in body


async def test_a_reply_goes_out_as_the_next_message_in_the_channel() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            first = await adapter.publish(Content(text="1/2"), credentials, idempotency_key="a")
            await adapter.publish(Content(text="2/2", reply_to=first.external_id), credentials,
                                  idempotency_key="b")
        records = sim.world.record.all("discord")
    assert [r.payload["content"] for r in records] == ["1/2", "2/2"]
    assert records[0].payload["channel_id"] == records[1].payload["channel_id"]


async def test_it_stops_sending_when_the_bucket_is_empty_until_it_refills() -> None:
    clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    seen: list[httpx.Request] = []
    async with running_simulator(clock=clock) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client(event_hooks=counting(seen)) as client:
            adapter = adapter_for(sim, client)
            for n in range(5):  # the simulated webhook bucket holds 5 per 2 seconds
                await adapter.publish(Content(text=f"{n}"), credentials, idempotency_key=f"{n}")
            with pytest.raises(RateLimited) as caught:
                await adapter.publish(Content(text="6"), credentials, idempotency_key="6")
            assert len(seen) == 5, "a request went into an empty bucket"
            assert 0 < caught.value.retry_after_s <= 2
            clock.advance(seconds=2.1)
            await adapter.publish(Content(text="7"), credentials, idempotency_key="7")
        assert len(sim.world.record.all("discord")) == 6


async def test_a_429_empties_the_bucket_for_its_retry_after() -> None:
    clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    seen: list[httpx.Request] = []
    async with running_simulator(clock=clock) as sim:
        credentials = Credentials(await prepare(sim))
        await sim.set_fault("discord", "rate_limited", retry_after_s=7)
        async with sim.client(event_hooks=counting(seen)) as client:
            adapter = adapter_for(sim, client)
            with pytest.raises(RateLimited) as first:
                await adapter.publish(text_content(), credentials, idempotency_key="a")
            await sim.clear_faults()
            with pytest.raises(RateLimited) as second:
                await adapter.publish(text_content(), credentials, idempotency_key="b")
            clock.advance(seconds=7.5)
            await adapter.publish(text_content(), credentials, idempotency_key="c")
    assert first.value.retry_after_s == 7 and first.value.http_status == 429
    assert second.value.retry_after_s == 7 and second.value.http_status is None
    assert len(seen) == 2


def test_it_explains_what_discord_would_refuse() -> None:
    adapter = DiscordAdapter(client=httpx.AsyncClient())
    image = MediaItem(MediaKind.IMAGE, "image/png", PNG_1PX, filename="a.png")
    assert adapter.validate(Content(text="x" * 2000)) == []
    assert [p.code for p in adapter.validate(Content(text="x" * 2001))] == ["too_long"]
    with_link = adapter.validate(Content(text="x" * 1990, link="https://example.com/a"))
    assert [p.code for p in with_link] == ["too_long"] and "link" in with_link[0].message
    assert [p.code for p in adapter.validate(Content(text="x", media=(image,) * 11))] == [
        "too_many_media"]


def test_it_flattens_nested_form_errors() -> None:
    errors = {"content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH",
                                       "message": "Must be 2000 or fewer in length."}]},
              "embeds": {"0": {"title": {"_errors": [{"code": "X", "message": "Too long."}]}}}}
    assert flatten_form_errors(errors) == ["content: Must be 2000 or fewer in length.",
                                           "embeds.0.title: Too long."]


def mocked(handler: Callable[[httpx.Request], httpx.Response]) -> DiscordAdapter:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return DiscordAdapter(client=client, clock=SystemClock(), timeout_s=2)


CREDS = Credentials({"webhook_url": URL})
FORM_ERROR = {"code": 50035, "message": "Invalid Form Body", "errors": {"content": {"_errors": [
    {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]}}}
ERROR_TABLE: list[tuple[int, dict[str, object], type[PublishError], str]] = [
    (429, {"message": "You are being rate limited.", "retry_after": 64.57, "global": True},
     RateLimited, "global"),
    (401, {"message": "Invalid Webhook Token", "code": 50027}, AuthExpired, "50027"),
    (403, {"message": "Missing Permissions", "code": 50013}, AuthExpired, "50013"),
    (404, {"message": "Unknown Webhook", "code": 10015}, AuthExpired, "10015"),
    (400, FORM_ERROR, Rejected, "50035"),
    (400, {"message": "Cannot send an empty message", "code": 50006}, Rejected, "50006"),
    (413, {"message": "Request entity too large", "code": 40005}, Rejected, "40005"),
    (500, {"message": "500: Internal Server Error", "code": 0}, Transient, ""),
    (502, {"message": "502: Bad Gateway", "code": 0}, PlatformOutage, ""),
    (503, {"message": "503: Service Unavailable", "code": 0}, PlatformOutage, ""),
]


@pytest.mark.parametrize(("status", "body", "expected", "code"), ERROR_TABLE,
                         ids=[f"{row[0]}-{row[3]}" for row in ERROR_TABLE])
async def test_it_maps_each_documented_error_to_its_class(
    status: int, body: dict[str, object], expected: type[PublishError], code: str,
) -> None:
    adapter = mocked(lambda _: httpx.Response(status, json=body))
    with pytest.raises(PublishError) as caught:
        await adapter.publish(text_content(), CREDS, idempotency_key="k")
    assert type(caught.value) is expected
    assert caught.value.http_status == status
    assert caught.value.platform_code == (code or None)
    assert TOKEN not in str(caught.value)
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after_s == 64.57
        assert "global" in str(caught.value)
    if code == "50035":
        assert isinstance(caught.value, Rejected) and caught.value.reason == ("Discord refused the message: content: Must be 2000 or "
                                       "fewer in length.")


async def test_it_posts_into_the_thread_the_webhook_url_names() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "1", "channel_id": "77"})

    await mocked(handler).publish(text_content(), Credentials(
        {"webhook_url": f"https://discordapp.com/api/webhooks/{HOOK_ID}/{TOKEN}?thread_id=77"}),
        idempotency_key="k")
    [request] = seen
    assert request.url.host == "discord.com" and request.url.path.startswith("/api/v10/")
    assert request.url.params["thread_id"] == "77" and request.url.params["wait"] == "true"
    assert json.loads(request.content) == {"content": text_content().text}


@pytest.mark.parametrize("url", ["", "https://discord.com/channels/1/2",
                                 f"https://evil.example/api/webhooks/{HOOK_ID}/{TOKEN}",
                                 f"http://discord.com/api/webhooks/{HOOK_ID}/{TOKEN}"])
async def test_a_missing_or_foreign_webhook_url_is_auth_expired_and_nothing_is_sent(
        url: str) -> None:
    adapter = mocked(lambda _: pytest.fail("nothing may be sent"))
    with pytest.raises(AuthExpired, match="webhook_url") as caught:
        await adapter.publish(text_content(), Credentials({"webhook_url": url}),
                              idempotency_key="k")
    assert TOKEN not in str(caught.value)


async def test_it_checks_credentials_and_reports_a_deleted_webhook() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            info = await adapter.check_credentials(credentials)
            del sim.world.tokens["discord"][f"{HOOK_ID}/{TOKEN}"]
            with pytest.raises(AuthExpired) as caught:
                await adapter.check_credentials(credentials)
    assert info.account_id == HOOK_ID and info.name == "Brand alerts"
    assert caught.value.platform_code == "10015"


async def test_it_deletes_a_message_and_a_second_delete_is_harmless() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            published = await adapter.publish(text_content(), credentials, idempotency_key="d")
            await adapter.delete(published.external_id, credentials)
            await adapter.delete(published.external_id, credentials)
            response = await client.get(f"{URL}/messages/{published.external_id}")
    assert response.status_code == 404


async def test_no_error_message_contains_the_webhook_token() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        for fault in ("timeout", "refused", "dns_servfail", "http_5xx", "auth_expired"):
            await sim.set_fault("discord", fault)
            async with sim.client() as client:
                with pytest.raises(PublishError) as caught:
                    await DiscordAdapter(client=client, clock=sim.world.clock,
                                         timeout_s=0.3).publish(
                        text_content(), credentials, idempotency_key="s")
            await sim.clear_faults()
            assert TOKEN not in str(caught.value), fault
            assert TOKEN not in repr(caught.value.__cause__), fault


async def test_a_global_429_stops_every_webhook_of_the_adapter() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(429, json={"message": "You are being rate limited.",
                                         "retry_after": 30, "global": True})

    adapter = mocked(handler)
    with pytest.raises(RateLimited):
        await adapter.publish(text_content(), CREDS, idempotency_key="a")
    other = Credentials({"webhook_url": f"https://discord.com/api/webhooks/99/{TOKEN}x"})
    with pytest.raises(RateLimited) as caught:
        await adapter.publish(text_content(), other, idempotency_key="b")
    assert len(seen) == 1 and 29 < caught.value.retry_after_s <= 30
