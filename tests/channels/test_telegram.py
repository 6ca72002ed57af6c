"""The Telegram adapter against the simulated Bot API (its requests checked against the
published OpenAPI description), and MockTransport for answers no simulator fault produces."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx
import pytest

from sidestep.channels.adapters.telegram import TelegramAdapter
from sidestep.channels.errors import (
    AuthExpired,
    PlatformOutage,
    PublishError,
    RateLimited,
    Rejected,
    Transient,
    Unknown,
)
from sidestep.domain.content import Content, MediaItem, MediaKind
from sidestep.logs import redact_text
from sidestep.sim.platforms.telegram import TelegramProfile
from sidestep.sim.server import Simulator
from sidestep.sim.specs import load_spec
from sidestep.sim.testing import running_simulator
from sidestep.vault import Credentials
from tests.channels.conftest import PNG_1PX

MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256))
CHANNEL = "@brandchannel"


async def prepare(sim: Simulator) -> dict[str, str]:
    number = 700_000 + sim.world.next_number()
    token = f"{number}:AAHsidestep-test-token-{number}"
    sim.world.grant_token("telegram", token, f"brand{number}")
    # The simulator reads the Bot API's 850 kB OpenAPI file on first use (seconds): do it
    # now, not inside a test's short client timeout. It is cached for the process.
    spec = sim.profiles["telegram"].spec
    assert spec is not None
    await asyncio.to_thread(load_spec, spec)
    return {"bot_token": token, "chat_id": CHANNEL}


def text_content() -> Content:
    return Content(text="We are live on our own site while the platform is down.")


def media_content() -> Content | None:
    return Content(text="The new drop", media=(
        MediaItem(MediaKind.IMAGE, "image/png", PNG_1PX, filename="drop.png"),))


def photo(n: int = 1) -> MediaItem:
    return MediaItem(MediaKind.IMAGE, "image/png", PNG_1PX, filename=f"p{n}.png")


def video() -> MediaItem:
    return MediaItem(MediaKind.VIDEO, "video/mp4", MP4, filename="clip.mp4")


@asynccontextmanager
async def telegram(**adapter_kw: Any) -> AsyncIterator[tuple[Simulator, TelegramAdapter,
                                                              Credentials]]:
    async with running_simulator(seed=1) as sim:
        async with sim.client() as client:
            adapter = TelegramAdapter(client=client, clock=sim.world.clock,
                                      **({"timeout_s": 2} | adapter_kw))
            yield sim, adapter, Credentials(await prepare(sim))


def mocked(response: httpx.Response) -> TelegramAdapter:
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: response))
    return TelegramAdapter(client=client)


def failure(status: int, description: str, **parameters: int) -> httpx.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return httpx.Response(status, json=body)


TOKEN = "123456:AAHmocked-secret-token"
CREDENTIALS = Credentials({"bot_token": TOKEN, "chat_id": "-1001234567890"})


# -- publishing ---------------------------------------------------------------------------


async def test_it_sends_text_with_the_link_after_it_and_previews_the_link() -> None:
    content = Content(text="Find us here", link="https://brand.example/status")
    async with telegram() as (sim, adapter, credentials):
        published = await adapter.publish(content, credentials, idempotency_key="k1")
        [post] = sim.world.record.all("telegram")
    assert post.kind == "message" and published.external_id == post.external_id
    assert post.payload["text"] == "Find us here\n\nhttps://brand.example/status"
    assert published.url == "https://t.me/brandchannel/1"


async def test_it_uploads_one_photo_with_its_caption() -> None:
    async with telegram() as (sim, adapter, credentials):
        await adapter.publish(Content(text="New drop", media=(photo(),)), credentials,
                              idempotency_key="k2")
        [post] = sim.world.record.all("telegram")
    assert post.kind == "photo"
    assert (post.payload["caption"], post.payload["size"]) == ("New drop", len(PNG_1PX))


async def test_it_uploads_one_video_without_a_caption() -> None:
    async with telegram() as (sim, adapter, credentials):
        await adapter.publish(Content(text="", media=(video(),)), credentials,
                              idempotency_key="k3")
        [post] = sim.world.record.all("telegram")
    assert post.kind == "video" and post.payload["caption"] == ""


async def test_it_hands_telegram_the_address_of_a_photo_that_has_one() -> None:
    hosted = MediaItem(MediaKind.IMAGE, "image/jpeg", b"\xff\xd8\xff",
                       url="https://cdn.example/a.jpg")
    async with telegram() as (sim, adapter, credentials):
        await adapter.publish(Content(text="Hosted", media=(hosted,)), credentials,
                              idempotency_key="k4")
        [post] = sim.world.record.all("telegram")
    assert post.payload["size"] == 0  # Telegram fetched it; nothing was uploaded


async def test_it_sends_an_album_of_hosted_photos_by_their_addresses() -> None:
    hosted = tuple(MediaItem(MediaKind.IMAGE, "image/jpeg", b"\xff\xd8\xff",
                             url=f"https://cdn.example/{n}.jpg") for n in (1, 2))
    async with telegram() as (sim, adapter, credentials):
        await adapter.publish(Content(text="Hosted", media=hosted), credentials,
                              idempotency_key="k4b")
        [post] = sim.world.record.all("telegram")
    assert post.kind == "media_group" and post.payload["captions"] == ["Hosted", ""]


async def test_it_sends_photos_and_videos_as_one_album() -> None:
    content = Content(text="The whole collection", media=(photo(1), video(), photo(2)))
    async with telegram() as (sim, adapter, credentials):
        published = await adapter.publish(content, credentials, idempotency_key="k5")
        [post] = sim.world.record.all("telegram")
    chat = post.external_id.split(":")[0]
    assert post.kind == "media_group" and post.payload["message_ids"] == [1, 2, 3]
    assert post.payload["captions"] == ["The whole collection", "", ""]
    assert published.external_id == f"{chat}:1,2,3"


async def test_it_links_a_private_channel_by_its_internal_id() -> None:
    async with telegram() as (_, adapter, credentials):
        published = await adapter.publish(text_content(), Credentials(
            dict(credentials) | {"chat_id": "-1001234567890"}), idempotency_key="k6")
    assert published.url == "https://t.me/c/1234567890/1"


# -- validation ---------------------------------------------------------------------------


def codes(content: Content) -> list[str]:
    return sorted(p.code for p in mocked(httpx.Response(200)).validate(content))


def test_it_counts_text_in_utf16_code_units() -> None:
    assert codes(Content(text="😀" * 2048)) == []
    assert codes(Content(text="😀" * 2049)) == ["too_long"]


def test_it_limits_captions_to_1024_characters_counting_the_link() -> None:
    assert codes(Content(text="x" * 1024, media=(photo(),))) == []
    problems = mocked(httpx.Response(200)).validate(
        Content(text="x" * 1000, link="https://brand.example/" + "y" * 30, media=(photo(),)))
    assert [p.code for p in problems] == ["too_long"] and "1,024" in problems[0].message


def test_it_sends_only_photos_and_videos() -> None:
    audio = MediaItem(MediaKind.AUDIO, "audio/mpeg", b"ID3", filename="jingle.mp3")
    assert codes(Content(text="x", media=(audio,))) == ["media_kind"]


def test_it_takes_at_most_ten_media() -> None:
    assert codes(Content(text="x", media=tuple(photo(n) for n in range(11)))) == [
        "too_many_media"]


# -- the error table ----------------------------------------------------------------------


@pytest.mark.parametrize(("fault", "params", "expected"), [
    ("auth_expired", {}, AuthExpired),
    ("http_5xx", {}, Transient),
    ("http_5xx", {"kind": "unavailable"}, PlatformOutage),
    ("partial", {"feature": "media"}, Transient),
    ("garbage", {"variant": "html"}, PlatformOutage),
    ("garbage", {"variant": "json"}, Unknown),
    ("garbage", {"variant": "truncated"}, Unknown),
    ("rate_limited", {"retry_after_s": 7}, RateLimited),
    ("refused", {}, PlatformOutage),
    ("dns_servfail", {}, PlatformOutage),
    ("dns_nxdomain", {}, PlatformOutage),
    ("timeout", {}, Unknown),
])
async def test_it_reads_each_simulated_failure_without_showing_the_token(
    fault: str, params: dict[str, Any], expected: type[PublishError]
) -> None:
    async with telegram(timeout_s=0.5) as (sim, adapter, credentials):
        await sim.set_fault("telegram", fault, **params)
        with pytest.raises(expected) as caught:
            await adapter.publish(media_content() or text_content(), credentials,
                                  idempotency_key="k7")
        await sim.clear_faults()
        assert sim.world.record.all("telegram") == []
    assert_no_token(caught.value, credentials["bot_token"])


def assert_no_token(exc: BaseException, token: str) -> None:
    chain: BaseException | None = exc
    while chain is not None:
        assert token not in str(chain) and token not in repr(chain)
        chain = chain.__cause__ or chain.__context__


async def test_it_waits_as_long_as_telegram_asks() -> None:
    async with telegram() as (sim, adapter, credentials):
        await sim.set_fault("telegram", "rate_limited", retry_after_s=7)
        with pytest.raises(RateLimited) as caught:
            await adapter.publish(text_content(), credentials, idempotency_key="k8")
    assert caught.value.retry_after_s == 7


async def test_it_asks_for_a_person_when_the_bot_is_not_in_the_channel() -> None:
    async with telegram() as (sim, adapter, credentials):
        account = sim.world.account_for("telegram", credentials["bot_token"])
        assert account is not None
        cast(TelegramProfile, sim.profiles["telegram"]).restrict_chats(account, ["@other"])
        with pytest.raises(AuthExpired, match="administrator") as caught:
            await adapter.publish(text_content(), credentials, idempotency_key="k9")
    assert "not a member" in str(caught.value)


async def test_it_rejects_a_chat_that_does_not_exist() -> None:
    async with telegram() as (_, adapter, credentials):
        with pytest.raises(Rejected, match="chat id"):
            await adapter.publish(text_content(), Credentials(
                dict(credentials) | {"chat_id": "brandchannel"}), idempotency_key="k10")


@pytest.mark.parametrize(("answer", "expected", "words"), [
    (failure(403, "Forbidden: bot was kicked from the channel chat"), AuthExpired, "kicked"),
    (failure(401, "Unauthorized"), AuthExpired, "reconnect"),
    (failure(404, "Not Found"), AuthExpired, "reconnect"),
    (failure(400, "Bad Request: group chat was upgraded to a supergroup chat",
             migrate_to_chat_id=-1009876543210), Rejected, "-1009876543210"),
    (failure(400, "Bad Request: message is too long"), Rejected, "4,096"),
    (failure(400, "Bad Request: message caption is too long"), Rejected, "1,024"),
    (failure(400, "Bad Request: can't parse entities: Unsupported start tag"), Rejected,
     "can't parse"),
    (failure(400, "Bad Request: failed to get HTTP URL content"), Transient, "this time"),
    (failure(400, "Bad Request: wrong file identifier/HTTP URL specified"), Transient,
     "this time"),
    (failure(413, "Request Entity Too Large"), Rejected, "50 MB"),
    (failure(429, "Too Many Requests: retry after 12", retry_after=12), RateLimited, "12"),
    (failure(500, "Internal Server Error"), Transient, "500"),
    (failure(502, "Bad Gateway"), PlatformOutage, "502"),
])
async def test_it_maps_every_documented_answer(
    answer: httpx.Response, expected: type[PublishError], words: str
) -> None:
    with pytest.raises(expected, match=words) as caught:
        await mocked(answer).publish(text_content(), CREDENTIALS, idempotency_key="k11")
    assert_no_token(caught.value, TOKEN)


async def test_it_scrubs_the_token_from_transport_errors_that_quote_the_url() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect to {request.url}", request=request)

    adapter = TelegramAdapter(client=httpx.AsyncClient(transport=httpx.MockTransport(refuse)))
    with pytest.raises(PlatformOutage) as caught:
        await adapter.publish(text_content(), CREDENTIALS, idempotency_key="k12")
    assert "/bot***/sendMessage" in str(caught.value)
    assert_no_token(caught.value, TOKEN)


async def test_it_masks_the_token_in_log_lines_once_used() -> None:
    async with telegram() as (_, adapter, credentials):
        await adapter.publish(text_content(), credentials, idempotency_key="k13")
    token = credentials["bot_token"]
    line = f'HTTP Request: POST https://api.telegram.org/bot{token}/sendMessage "200 OK"'
    assert token not in redact_text(line)


# -- account and delete -------------------------------------------------------------------


async def test_it_names_the_bot_behind_valid_credentials() -> None:
    async with telegram() as (_, adapter, credentials):
        account = await adapter.check_credentials(credentials)
    assert account.account_id == credentials["bot_token"].split(":")[0]
    assert account.name.startswith("@brand") and account.name.endswith("_bot")


async def test_it_reports_a_refused_token_as_expired_credentials() -> None:
    async with telegram() as (_, adapter, credentials):
        with pytest.raises(AuthExpired) as caught:
            await adapter.check_credentials(Credentials(
                dict(credentials) | {"bot_token": "999:revoked-token-value"}))
    assert_no_token(caught.value, "999:revoked-token-value")


async def test_it_names_missing_credential_fields() -> None:
    with pytest.raises(AuthExpired, match="chat_id"):
        await mocked(httpx.Response(200)).publish(text_content(), Credentials(
            {"bot_token": TOKEN}), idempotency_key="k14")


async def test_it_deletes_every_message_of_an_album_once() -> None:
    content = Content(text="Oops", media=(photo(1), photo(2)))
    async with telegram() as (_, adapter, credentials):
        published = await adapter.publish(content, credentials, idempotency_key="k15")
        await adapter.delete(published.external_id, credentials)
        with pytest.raises(Rejected, match="no longer in the channel"):
            await adapter.delete(published.external_id, credentials)


async def test_it_sends_json_for_text_and_multipart_only_for_uploads() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True, "result": {
            "message_id": 5, "chat": {"id": -1001234567890}}})

    adapter = TelegramAdapter(client=httpx.AsyncClient(transport=httpx.MockTransport(record)))
    await adapter.publish(text_content(), CREDENTIALS, idempotency_key="k16")
    await adapter.publish(Content(text="x", media=(photo(),)), CREDENTIALS, idempotency_key="k17")
    assert json.loads(seen[0].content) == {"chat_id": -1001234567890, "text": text_content().text}
    assert seen[1].headers["content-type"].startswith("multipart/form-data")
