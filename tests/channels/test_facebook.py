"""The Facebook Pages adapter against the simulated Graph API, and its error table."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sidestep.channels.adapters.facebook import FacebookAdapter
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
from sidestep.sim.server import Simulator
from sidestep.sim.testing import running_simulator
from sidestep.vault import Credentials
from tests.channels.conftest import PNG_1PX

TOKEN = "EAAPageToken-facebook-secret-0001"
PAGE = "104000000000001"
CREDS = Credentials({"access_token": TOKEN, "page_id": PAGE})
_serial = itertools.count(1)


async def prepare(sim: Simulator) -> dict[str, str]:
    sim.world.grant_token("facebook", TOKEN, PAGE)
    return {"access_token": TOKEN, "page_id": PAGE}


def text_content() -> Content:
    # Each call differs: Graph refuses the same post twice in a row (506).
    return Content(text=f"We are still here, update {next(_serial)}.")


def media_content() -> Content | None:
    return Content(text="Picture of the day", media=(photo("dot.png"),))


def photo(name: str, *, alt: str = "", data: bytes = PNG_1PX,
          mime: str = "image/png") -> MediaItem:
    return MediaItem(MediaKind.IMAGE, mime, data, alt=alt, filename=name)


def adapter_for(sim: Simulator, client: httpx.AsyncClient) -> FacebookAdapter:
    return FacebookAdapter(client=client, clock=sim.world.clock, timeout_s=2, poll_interval_s=0.01)


def mocked(handler: Callable[[httpx.Request], httpx.Response]) -> FacebookAdapter:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return FacebookAdapter(client=client, clock=SystemClock(), timeout_s=2, poll_interval_s=0)


def graph_error(code: int, subcode: int | None = None, *, status: int = 400,
                message: str = "An error", headers: dict[str, str] | None = None
                ) -> Callable[[httpx.Request], httpx.Response]:
    error: dict[str, object] = {"message": message, "type": "OAuthException", "code": code,
                                "fbtrace_id": "AbCdEf"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return lambda request: httpx.Response(status, json={"error": error}, headers=headers)


async def test_it_publishes_a_text_post_with_its_link_once() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            published = await adapter_for(sim, client).publish(
                Content(text="Hello", link="https://example.com/a"), credentials,
                idempotency_key="k1")
        [record] = sim.world.record.all("facebook")
    assert record.external_id == published.external_id
    assert published.external_id.startswith(f"{PAGE}_")
    assert published.url == (f"https://www.facebook.com/{PAGE}/posts/"
                             f"{published.external_id.split('_')[1]}")
    assert record.payload == {"message": "Hello", "link": "https://example.com/a"}


async def test_it_publishes_one_photo_with_its_caption_and_alt_text() -> None:
    content = Content(text="A dot", link="https://example.com/dot",
                      media=(photo("dot.png", alt="A black dot"),))
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            published = await adapter_for(sim, client).publish(content, credentials,
                                                               idempotency_key="k")
        [record] = sim.world.record.all("facebook")
    assert record.external_id == published.external_id
    assert record.payload == {
        "message": "A dot\n\nhttps://example.com/dot", "published": "true",
        "alt_text_custom": "A black dot",
        "source": {"filename": "dot.png", "content_type": "image/png", "size": len(PNG_1PX)}}


async def test_it_publishes_several_photos_as_one_post_of_unpublished_photos() -> None:
    content = Content(text="Two dots", media=(photo("a.png"), photo("b.png")))
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            published = await adapter_for(sim, client).publish(content, credentials,
                                                               idempotency_key="k")
        [record] = sim.world.record.all("facebook")
    assert record.external_id == published.external_id
    assert record.payload["message"] == "Two dots"
    first, second = record.payload["attached_media[0]"], record.payload["attached_media[1]"]
    assert first["media_fbid"] != second["media_fbid"]


def test_it_lists_what_facebook_would_refuse_in_words_a_marketer_understands() -> None:
    adapter = FacebookAdapter(client=httpx.AsyncClient())
    video = MediaItem(MediaKind.VIDEO, "video/mp4", b"\0" * 10, filename="clip.mp4")
    problems = adapter.validate(Content(
        text="x" * 63_207, reply_to="1_2",
        media=(video, photo("big.png", data=b"\0" * (4 * 1024 * 1024)),
               photo("doc.svg", mime="image/svg+xml"),
               *(photo(f"{n}.png") for n in range(8)))))
    by_code = {p.code: p.message for p in problems}
    assert "63,206 characters" in by_code["too_long"]
    assert "at most 10 media" in by_code["too_many_media"]
    assert "under 4 MB" in by_code["media_too_large"]
    assert "no_replies" in by_code
    kinds = [p.message for p in problems if p.code == "media_kind"]
    assert any("videos" in m for m in kinds) and any("image/svg+xml" in m for m in kinds)
    assert adapter.validate(Content(text="")) [0].code == "empty"
    assert adapter.validate(text_content()) == []


async def test_it_refuses_invalid_content_before_sending_anything() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    adapter = mocked(record)
    video = MediaItem(MediaKind.VIDEO, "video/mp4", b"\0", filename="clip.mp4")
    with pytest.raises(Rejected, match="videos"):
        await adapter.publish(Content(text="clip", media=(video,)), CREDS, idempotency_key="k")
    assert seen == []


async def test_it_reads_a_repeated_post_as_rejected_duplicate() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            await adapter.publish(Content(text="Same"), credentials, idempotency_key="a")
            with pytest.raises(Rejected, match="already") as caught:
                await adapter.publish(Content(text="Same"), credentials, idempotency_key="b")
        assert len(sim.world.record.all("facebook")) == 1
    assert caught.value.platform_code == "506"


@pytest.mark.parametrize(("fault", "params", "expected"), [
    ("http_5xx", {}, Transient),
    ("http_5xx", {"kind": "unavailable"}, PlatformOutage),
    ("rate_limited", {"retry_after_s": 150}, RateLimited),
    ("auth_expired", {}, AuthExpired),
    ("partial", {"feature": "media"}, Transient),
])
async def test_it_reads_each_simulated_fault_as_its_class(
        fault: str, params: dict[str, Any], expected: type[PublishError]) -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        await sim.set_fault("facebook", fault, **params)
        async with sim.client() as client:
            with pytest.raises(expected) as caught:
                await adapter_for(sim, client).publish(media_content() or text_content(),
                                                       credentials, idempotency_key="k")
        assert sim.world.record.all("facebook") == []
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after_s == 180  # 150 s, as whole minutes to regain access


@pytest.mark.parametrize(("code", "subcode", "expected"), [
    (1, None, Transient), (2, None, PlatformOutage), (4, None, RateLimited),
    (17, None, RateLimited), (32, None, RateLimited), (341, None, RateLimited),
    (613, None, RateLimited), (80001, None, RateLimited), (80006, None, RateLimited),
    (102, None, AuthExpired), (104, None, AuthExpired), (190, 460, AuthExpired),
    (190, 467, AuthExpired), (10, None, AuthExpired), (200, None, AuthExpired),
    (299, None, AuthExpired), (3, None, AuthExpired), (100, 33, AuthExpired),
    (100, None, Rejected), (368, None, Rejected), (506, None, Rejected),
    (1609005, None, Rejected), (324, None, Transient),
])
async def test_it_maps_every_documented_graph_code(
        code: int, subcode: int | None, expected: type[PublishError]) -> None:
    adapter = mocked(graph_error(code, subcode))
    with pytest.raises(expected) as caught:
        await adapter.publish(text_content(), CREDS, idempotency_key="k")
    assert caught.value.platform_code == (f"{code}/{subcode}" if subcode else str(code))


async def test_it_waits_as_long_as_the_business_use_case_header_says() -> None:
    usage = json.dumps({PAGE: [{"type": "pages", "call_count": 100,
                                "estimated_time_to_regain_access": 7}]})
    adapter = mocked(graph_error(80001, headers={"x-business-use-case-usage": usage}))
    with pytest.raises(RateLimited) as caught:
        await adapter.publish(text_content(), CREDS, idempotency_key="k")
    assert caught.value.retry_after_s == 7 * 60
    with pytest.raises(RateLimited) as without_header:
        await mocked(graph_error(4)).publish(text_content(), CREDS, idempotency_key="k")
    assert without_header.value.retry_after_s == 60


async def test_it_reads_an_unlisted_code_as_unknown_but_not_sent() -> None:
    with pytest.raises(Unknown) as caught:
        await mocked(graph_error(12345)).publish(text_content(), CREDS, idempotency_key="k")
    assert caught.value.maybe_sent is False


@pytest.mark.parametrize(("status", "body", "expected", "maybe_sent"), [
    (502, b"<html>502 Bad Gateway</html>", Unknown, True),
    (200, b"{\"id\": ", Unknown, True),
    (200, b"{\"unexpected\": 1}", Unknown, True),
    (503, b"<html>Service Unavailable</html>", PlatformOutage, None),
    (403, b"<html>Forbidden</html>", Unknown, False),
])
async def test_it_reads_an_unreadable_answer_to_a_publish_as_maybe_sent_unless_refused(
        status: int, body: bytes, expected: type[PublishError], maybe_sent: bool | None) -> None:
    adapter = mocked(lambda request: httpx.Response(status, content=body))
    with pytest.raises(expected) as caught:
        await adapter.publish(text_content(), CREDS, idempotency_key="k")
    if maybe_sent is not None:
        assert isinstance(caught.value, Unknown) and caught.value.maybe_sent is maybe_sent


async def test_it_names_missing_credential_fields_without_sending() -> None:
    adapter = mocked(lambda request: httpx.Response(500))
    with pytest.raises(AuthExpired, match="page_id"):
        await adapter.publish(text_content(), Credentials({"access_token": TOKEN}),
                              idempotency_key="k")


async def test_it_checks_credentials_and_tells_an_expired_token() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            account = await adapter.check_credentials(credentials)
            with pytest.raises(AuthExpired):
                await adapter.check_credentials(Credentials(
                    {"access_token": "EAA-unknown-token", "page_id": PAGE}))
            with pytest.raises(AuthExpired, match="not the Page"):
                await adapter.check_credentials(Credentials(
                    {"access_token": TOKEN, "page_id": "104000000000002"}))
            await sim.set_fault("facebook", "auth_expired")
            with pytest.raises(AuthExpired):
                await adapter.check_credentials(credentials)
    assert account.account_id == PAGE and account.name


async def test_it_deletes_a_post_and_a_second_delete_is_harmless() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            published = await adapter.publish(text_content(), credentials, idempotency_key="k")
            await adapter.delete(published.external_id, credentials)
            await adapter.delete(published.external_id, credentials)
            gone = await client.get(f"https://graph.facebook.com/v23.0/{published.external_id}",
                                    headers={"Authorization": f"Bearer {TOKEN}"})
    assert gone.json()["error"]["error_subcode"] == 33


async def test_it_keeps_the_token_out_of_urls_and_error_messages() -> None:
    seen: list[httpx.Request] = []

    def echo_token(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return graph_error(100, message=f"Invalid parameter near {TOKEN}")(request)

    with pytest.raises(Rejected) as caught:
        await mocked(echo_token).publish(text_content(), CREDS, idempotency_key="k")
    assert TOKEN not in str(caught.value)
    assert TOKEN not in str(seen[0].url) and TOKEN not in seen[0].content.decode()
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        for fault in ("http_5xx", "rate_limited", "auth_expired", "garbage"):
            await sim.set_fault("facebook", fault)
            async with sim.client() as client:
                with pytest.raises(PublishError) as failed:
                    await adapter_for(sim, client).publish(text_content(), credentials,
                                                           idempotency_key="k")
            await sim.clear_faults()
            assert TOKEN not in str(failed.value)
