"""The Pinterest adapter against the simulated api.pinterest.com, and its error table."""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from sidestep.channels.adapters.pinterest import PinterestAdapter
from sidestep.channels.errors import (
    AuthExpired,
    PlatformOutage,
    PublishError,
    RateLimited,
    Rejected,
    Transient,
    Unknown,
)
from sidestep.clock import FrozenClock
from sidestep.domain.content import Content, MediaItem, MediaKind
from sidestep.sim.platforms.pinterest import PinterestProfile
from sidestep.sim.server import Simulator
from sidestep.sim.specs import load_spec
from sidestep.sim.testing import running_simulator
from sidestep.vault import Credentials
from tests.channels.conftest import PNG_1PX, FastClock, answer

TOKEN = "pinterest-user-token-secret-0123"
_accounts = itertools.count(1)
DOT = MediaItem(MediaKind.IMAGE, "image/png", PNG_1PX, alt="A dot", filename="dot.png")
CLIP = MediaItem(MediaKind.VIDEO, "video/mp4", b"\x00\x00\x00\x18ftypmp42" * 100,
                 filename="clip.mp4")


def profile(sim: Simulator) -> PinterestProfile:
    found = sim.profiles["pinterest"]
    assert isinstance(found, PinterestProfile)
    return found


async def prepare(sim: Simulator) -> dict[str, str]:
    number = next(_accounts)
    token, account, board = f"{TOKEN}-{number}", f"Brand {number}", f"5496{number:08d}"
    sim.world.grant_token("pinterest", token, account)
    profile(sim).add_board(account, board)
    # The simulator reads Pinterest's 1.6 MB API description on first use (about a second);
    # do it now, not inside a test's short client timeout.
    spec = profile(sim).spec
    assert spec is not None
    await asyncio.to_thread(load_spec, spec)
    return {"access_token": token, "board_id": board}


def text_content() -> Content:
    return Content(text="Still here\nWhile the other place is down.", media=(DOT,))


def media_content() -> Content | None:
    return Content(text="Watch this", media=(CLIP,))


class Impatient(PinterestAdapter):
    """Gives up after five status checks, so a test need not wait for ninety."""

    max_polls = 5


def adapter_for(sim: Simulator, client: httpx.AsyncClient) -> PinterestAdapter:
    return PinterestAdapter(client=client, clock=sim.world.clock, timeout_s=2,
                            poll_interval_s=0.01)


NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CREDS = Credentials({"access_token": TOKEN, "board_id": "549755885175"})


def mocked(handler: Callable[[httpx.Request], httpx.Response]) -> PinterestAdapter:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return PinterestAdapter(client=client, clock=FrozenClock(NOW), timeout_s=2,
                            poll_interval_s=0)


# -- publishing -----------------------------------------------------------------------------


async def test_it_pins_an_image_once_titled_by_the_first_line() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        content = Content(text=text_content().text, link="https://example.com/a", media=(DOT,))
        async with sim.client() as client:
            published = await adapter_for(sim, client).publish(content, credentials,
                                                               idempotency_key="k1")
        [record] = sim.world.record.all("pinterest")
    assert record.external_id == published.external_id
    assert published.url == f"https://www.pinterest.com/pin/{published.external_id}/"
    assert record.payload == {
        "board_id": credentials["board_id"],
        "media_source": {"source_type": "image_base64", "content_type": "image/png",
                         "data": base64.b64encode(PNG_1PX).decode()},
        "title": "Still here", "description": "While the other place is down.",
        "link": "https://example.com/a", "alt_text": "A dot",
    }


async def test_it_uses_the_post_title_and_keeps_the_whole_text_as_description() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        content = Content(text="Line one\nLine two", title="Our summer range", media=(DOT,))
        async with sim.client() as client:
            await adapter_for(sim, client).publish(content, credentials, idempotency_key="t")
        [record] = sim.world.record.all("pinterest")
    assert record.payload["title"] == "Our summer range"
    assert record.payload["description"] == "Line one\nLine two"


async def test_it_pins_other_image_formats_by_their_public_address() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        gif = MediaItem(MediaKind.IMAGE, "image/gif", b"GIF89a", filename="a.gif",
                        url="https://cdn.example.com/a.gif")
        async with sim.client() as client:
            await adapter_for(sim, client).publish(Content(text="Animated", media=(gif,)),
                                                   credentials, idempotency_key="g")
        [record] = sim.world.record.all("pinterest")
    assert record.payload["media_source"] == {"source_type": "image_url",
                                              "url": "https://cdn.example.com/a.gif"}


async def test_it_uploads_a_video_waits_until_processed_and_pins_it() -> None:
    async with running_simulator(clock=FastClock()) as sim:
        credentials = Credentials(await prepare(sim))
        content = media_content()
        assert content is not None
        async with sim.client() as client:
            await adapter_for(sim, client).publish(content, credentials, idempotency_key="v")
        [record] = sim.world.record.all("pinterest")
    source = record.payload["media_source"]
    assert source["source_type"] == "video_id" and source["media_id"].isdigit()
    assert source["cover_image_key_frame_time"] == 0


async def test_it_reads_a_video_still_processing_after_every_poll_as_transient() -> None:
    # World time stands still, so the video never leaves `processing`.
    async with running_simulator(clock=FrozenClock(datetime.now(UTC))) as sim:
        credentials = Credentials(await prepare(sim))
        content = media_content()
        assert content is not None
        async with sim.client() as client:
            adapter = Impatient(client=client, clock=sim.world.clock, timeout_s=2,
                                poll_interval_s=0.001)
            with pytest.raises(Transient, match="still processing"):
                await adapter.publish(content, credentials, idempotency_key="v")
        assert sim.world.record.all("pinterest") == []


async def test_it_reads_a_board_the_account_does_not_have_as_a_channel_to_fix() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = await prepare(sim)
        async with sim.client() as client:
            with pytest.raises(AuthExpired, match="Board not found") as caught:
                await adapter_for(sim, client).publish(
                    text_content(), Credentials({**credentials, "board_id": "1"}),
                    idempotency_key="b")
    assert caught.value.platform_code == "40"


async def test_it_names_missing_credentials_without_calling_pinterest() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500)

    with pytest.raises(AuthExpired, match="board_id"):
        await mocked(handler).publish(text_content(), Credentials({"access_token": TOKEN}),
                                      idempotency_key="k")
    assert calls == []


# -- validation -----------------------------------------------------------------------------


def test_it_needs_one_image_or_video_and_a_title_of_at_most_100_characters() -> None:
    adapter = PinterestAdapter(client=httpx.AsyncClient())
    assert adapter.validate(text_content()) == []
    assert [p.code for p in adapter.validate(Content(text="Words only"))] == ["media_missing"]
    assert [p.code for p in adapter.validate(Content(text="Two", media=(DOT, DOT)))] == [
        "too_many_media"]
    [problem] = adapter.validate(Content(text="x", title="t" * 101, media=(DOT,)))
    assert problem.code == "title_too_long" and "the title has 101" in problem.message
    [problem] = adapter.validate(Content(text="f" * 120 + "\nrest", media=(DOT,)))
    assert "first line of this post" in problem.message


def test_it_refuses_other_image_formats_without_an_address_and_long_alt_text() -> None:
    adapter = PinterestAdapter(client=httpx.AsyncClient())
    gif = MediaItem(MediaKind.IMAGE, "image/gif", b"GIF89a", filename="a.gif")
    [problem] = adapter.validate(Content(text="x", media=(gif,)))
    assert problem.code == "media_kind" and "a.gif" in problem.message
    wordy = MediaItem(MediaKind.IMAGE, "image/png", PNG_1PX, alt="a" * 501, filename="b.png")
    assert [p.code for p in adapter.validate(Content(text="x", media=(wordy,)))] == [
        "alt_too_long"]
    assert [p.code for p in adapter.validate(Content(text="x", media=(DOT,), reply_to="8"))] == [
        "reply_unsupported"]


# -- faults from the simulator ------------------------------------------------------------


@pytest.mark.parametrize(("fault", "params", "expected"), [
    ("rate_limited", {"retry_after_s": 7}, RateLimited),
    ("auth_expired", {}, AuthExpired),
    ("http_5xx", {}, Transient),
    ("http_5xx", {"kind": "unavailable"}, PlatformOutage),
    ("garbage", {"variant": "json"}, Unknown),
    ("garbage", {"variant": "html"}, PlatformOutage),
])
async def test_it_reads_each_simulated_fault_as_its_class(
        fault: str, params: dict[str, Any], expected: type[PublishError]) -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        await sim.set_fault("pinterest", fault, **params)
        async with sim.client() as client:
            with pytest.raises(PublishError) as caught:
                await adapter_for(sim, client).publish(text_content(), credentials,
                                                       idempotency_key="f")
        assert sim.world.record.all("pinterest") == []
    assert type(caught.value) is expected
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after_s == 60  # Pinterest sends no rate-limit headers
    if isinstance(caught.value, Unknown):
        assert caught.value.maybe_sent  # a 200 to a publish that cannot be read


async def test_it_reads_a_failing_video_upload_as_transient_while_images_still_pin() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        await sim.set_fault("pinterest", "partial", feature="media")
        content = media_content()
        assert content is not None
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            with pytest.raises(Transient, match="video upload step"):
                await adapter.publish(content, credentials, idempotency_key="m")
            await adapter.publish(text_content(), credentials, idempotency_key="t")
        assert len(sim.world.record.all("pinterest")) == 1


# -- the error table, for answers no simulated fault produces ---------------------------------

TABLE: list[tuple[str, int, object, dict[str, str], type[PublishError]]] = [
    ("code 2 authentication", 401, {"code": 2, "message": "Authentication failed."}, {},
     AuthExpired),
    ("code 3 scopes", 401, {"code": 3, "message": "Your token does not have sufficient "
                            "permissions to perform this operation."}, {}, AuthExpired),
    ("code 29 not permitted", 403, {"code": 29, "message": "You are not permitted to access "
                                    "that resource."}, {}, AuthExpired),
    ("code 40 board gone", 404, {"code": 40, "message": "Board not found."}, {}, AuthExpired),
    ("code 8 rate limit", 429, {"code": 8, "message": "This request exceeded a rate limit."},
     {"Retry-After": "30"}, RateLimited),
    ("code 4197 ramped down", 503, {"code": 4197, "message": "The endpoint has been ramped "
                                    "down and is currently not accepting any traffic."}, {},
     PlatformOutage),
    ("code 1 invalid", 400, {"code": 1, "message": "'title' must be a string of at most 100 "
                             "characters"}, {}, Rejected),
    ("board section gone", 404, {"code": 2031, "message": "Sorry! We couldn't find this board "
                                 "section."}, {}, Rejected),
    ("server error", 500, {"code": 500, "message": "Internal Server Error"}, {}, Transient),
    ("gateway page", 502, b"<html>502 Bad Gateway</html>", {}, PlatformOutage),
    ("proxy page", 400, b"<html>bad</html>", {}, Transient),
    ("created but unreadable", 201, b'{"id": "8137', {}, Unknown),
]


@pytest.mark.parametrize(("case", "status", "body", "headers", "expected"), TABLE,
                         ids=[row[0] for row in TABLE])
async def test_it_maps_each_documented_error_to_its_class(
        case: str, status: int, body: object, headers: dict[str, str],
        expected: type[PublishError]) -> None:
    with pytest.raises(PublishError) as caught:
        await mocked(answer(status, body, headers)).publish(text_content(), CREDS,
                                                            idempotency_key="e")
    assert type(caught.value) is expected, caught.value
    assert caught.value.http_status == status
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after_s == 30
    if isinstance(caught.value, Unknown):
        assert caught.value.maybe_sent


def video_flow(*, bucket: httpx.Response, status: str) -> Callable[[httpx.Request],
                                                                    httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host != "api.pinterest.com":
            assert "authorization" not in request.headers  # the bucket never sees the token
            return bucket
        if request.method == "POST":
            return httpx.Response(201, json={
                "media_id": "12345", "media_type": "video",
                "upload_url": "https://pinterest-media-upload.s3-accelerate.amazonaws.com/",
                "upload_parameters": {"key": "uploads/12345", "policy": "cG9saWN5"}})
        return httpx.Response(200, json={"media_id": "12345", "media_type": "video",
                                         "status": status})
    return handler


async def test_it_reads_a_bucket_refusing_the_upload_as_transient() -> None:
    refusal = httpx.Response(403, content=b"<Error><Code>AccessDenied</Code></Error>",
                             headers={"content-type": "application/xml"})
    with pytest.raises(Transient, match="bucket refused clip.mp4"):
        await mocked(video_flow(bucket=refusal, status="succeeded")).publish(
            media_content() or text_content(), CREDS, idempotency_key="v")


async def test_it_reads_a_video_pinterest_failed_to_process_as_rejected() -> None:
    with pytest.raises(Rejected, match="could not process clip.mp4"):
        await mocked(video_flow(bucket=httpx.Response(204), status="failed")).publish(
            media_content() or text_content(), CREDS, idempotency_key="v")


# -- account, deletion, secrets -------------------------------------------------------------


async def test_it_names_the_account_a_token_opens_and_refuses_an_unknown_one() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            info = await adapter.check_credentials(credentials)
            with pytest.raises(AuthExpired):
                await adapter.check_credentials(Credentials(
                    {**credentials, "access_token": "revoked-token"}))
    assert info.account_id.isdigit()
    assert info.name.startswith("brand")


async def test_it_deletes_a_pin_and_takes_a_second_delete_as_done() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            published = await adapter.publish(text_content(), credentials, idempotency_key="k")
            await adapter.delete(published.external_id, credentials)
            await adapter.delete(published.external_id, credentials)
            response = await client.get(
                f"https://api.pinterest.com/v5/pins/{published.external_id}",
                headers={"Authorization": f"Bearer {credentials['access_token']}"})
    assert response.status_code == 404


async def test_it_never_puts_the_token_in_an_error_message() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        token = credentials["access_token"]
        seen: list[PublishError] = []
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            for fault in ("auth_expired", "rate_limited", "http_5xx", "garbage", "timeout"):
                await sim.set_fault("pinterest", fault)
                with pytest.raises(PublishError) as caught:
                    await adapter.publish(text_content(), credentials, idempotency_key="s")
                seen.append(caught.value)
                await sim.clear_faults()
            with pytest.raises(PublishError) as caught:
                await adapter.check_credentials(Credentials(
                    {**credentials, "access_token": token + "x"}))
            seen.append(caught.value)
    for error in seen:
        assert token not in str(error) and token not in repr(error.__cause__)
