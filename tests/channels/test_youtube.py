"""The YouTube adapter against the simulated Data API (and MockTransport for reasons no
simulator fault produces)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from sidestep.channels.adapters.youtube import REASONS, YouTubeAdapter
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
from sidestep.sim.server import Simulator
from sidestep.sim.testing import running_simulator
from sidestep.vault import Credentials
from tests.channels.conftest import PNG_1PX

KIB = 1024
MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 2
START = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)  # 12:00 in Los Angeles (PST)


async def prepare(sim: Simulator) -> dict[str, str]:
    number = sim.world.next_number()
    token = f"ya29.sidestep-test-token-{number}"
    sim.world.grant_token("youtube", token, f"Brand Channel {number}")
    return {"access_token": token}


def text_content() -> Content:
    return Content(text="Our own site keeps working while the platforms are down.",
                   title="Where to find us during the outage",
                   media=(MediaItem(MediaKind.VIDEO, "video/mp4", MP4, filename="status.mp4"),))


def media_content() -> Content | None:
    return Content(text="Behind the scenes.", title="Launch rehearsal",
                   link="https://brand.example/launch",
                   media=(MediaItem(MediaKind.VIDEO, "video/mp4", MP4 * 3, filename="r.mp4"),))


class Flaky(httpx.AsyncBaseTransport):
    """The simulator's transport, except for chosen uploads (PUTs that carry bytes):

    `lose`: the bytes reach YouTube but the answer is lost on the way back;
    `fail`: YouTube answers 503 backendError without taking the bytes;
    `cut_after_loss`: after a lost answer, no connection can be made any more.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, *, lose: Collection[int] = (),
                 fail: Collection[int] = (), cut_after_loss: bool = False) -> None:
        self.inner, self.lose, self.fail, self.cut = inner, lose, fail, cut_after_loss
        self.uploads, self.lost, self.requests = 0, False, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.lost and self.cut:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        if request.method == "PUT" and request.headers.get("content-length", "0") != "0":
            self.uploads += 1
            if self.uploads in self.fail:
                return httpx.Response(503, json={"error": {
                    "code": 503, "message": "Backend Error", "status": "UNAVAILABLE",
                    "errors": [{"reason": "backendError", "domain": "global",
                                "message": "Backend Error"}]}})
            if self.uploads in self.lose:
                response = await self.inner.handle_async_request(request)
                await response.aread()
                await response.aclose()
                self.lost = True
                raise httpx.ReadError("connection reset by peer", request=request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@asynccontextmanager
async def youtube(**flaky: Any) -> AsyncIterator[tuple[Simulator, YouTubeAdapter, Credentials,
                                                        Flaky]]:
    clock = FrozenClock(START)
    async with running_simulator(clock=clock) as sim:
        transport = Flaky(sim.transport(), **flaky)
        async with httpx.AsyncClient(transport=transport) as client:
            adapter = YouTubeAdapter(client=client, clock=clock, timeout_s=5)
            yield sim, adapter, Credentials(await prepare(sim)), transport


def mocked(response: httpx.Response) -> YouTubeAdapter:
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: response))
    return YouTubeAdapter(client=client, clock=FrozenClock(START))


def google_error(status: int, reason: str, message: str = "Nope.") -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": status, "message": message,
                                                  "errors": [{"reason": reason,
                                                              "domain": "youtube.video",
                                                              "message": message}]}})


TOKEN = Credentials({"access_token": "ya29.mocked-token"})


# -- publishing ---------------------------------------------------------------------------


async def test_it_uploads_a_video_through_a_resumable_session() -> None:
    async with youtube() as (sim, adapter, credentials, _):
        published = await adapter.publish(text_content(), credentials, idempotency_key="k1")
        [video] = sim.world.record.all("youtube")
    assert published.external_id == video.external_id
    assert published.url == f"https://www.youtube.com/watch?v={video.external_id}"
    assert video.payload == {
        "snippet": {"title": "Where to find us during the outage",
                    "description": text_content().text, "categoryId": "22"},
        "status": {"privacyStatus": "public", "selfDeclaredMadeForKids": False},
        "size": len(MP4)}


async def test_it_puts_the_link_after_the_description() -> None:
    content = media_content()
    assert content is not None
    async with youtube() as (sim, adapter, credentials, _):
        await adapter.publish(content, credentials, idempotency_key="k2")
        [video] = sim.world.record.all("youtube")
    assert video.payload["snippet"]["description"] == (
        "Behind the scenes.\n\nhttps://brand.example/launch")


async def test_it_uploads_in_chunks_and_follows_the_ranges_youtube_reports() -> None:
    big = MP4 + b"\x07" * (600 * KIB)
    async with youtube() as (sim, adapter, credentials, transport):
        adapter.upload_chunk_bytes = 256 * KIB
        await adapter.publish(Content(text="", title="Long cut", media=(MediaItem(
            MediaKind.VIDEO, "video/mp4", big),)), credentials, idempotency_key="k3")
        [video] = sim.world.record.all("youtube")
    assert video.payload["size"] == len(big) and transport.uploads == 3


async def test_it_resumes_from_where_youtube_stands_after_losing_an_answer() -> None:
    big = MP4 + b"\x07" * (600 * KIB)
    async with youtube(lose={1}) as (sim, adapter, credentials, transport):
        adapter.upload_chunk_bytes = 256 * KIB
        await adapter.publish(Content(text="", title="Long cut", media=(MediaItem(
            MediaKind.VIDEO, "video/mp4", big),)), credentials, idempotency_key="k4")
        [video] = sim.world.record.all("youtube")
    # the first chunk arrived though its answer was lost: it is not sent again
    assert video.payload["size"] == len(big) and transport.uploads == 3


async def test_it_finds_the_video_when_the_answer_to_the_last_bytes_was_lost() -> None:
    async with youtube(lose={1}) as (sim, adapter, credentials, transport):
        published = await adapter.publish(text_content(), credentials, idempotency_key="k5")
        [video] = sim.world.record.all("youtube")
    assert published.external_id == video.external_id and transport.uploads == 1


async def test_it_says_maybe_sent_when_the_session_cannot_be_asked_after_the_last_bytes() -> None:
    async with youtube(lose={1}, cut_after_loss=True) as (sim, adapter, credentials, _):
        with pytest.raises(Unknown) as caught:
            await adapter.publish(text_content(), credentials, idempotency_key="k6")
        assert len(sim.world.record.all("youtube")) == 1
    assert caught.value.maybe_sent


async def test_it_asks_the_session_and_resumes_after_a_5xx() -> None:
    async with youtube(fail={1}) as (sim, adapter, credentials, transport):
        await adapter.publish(text_content(), credentials, idempotency_key="k7")
        assert len(sim.world.record.all("youtube")) == 1
    assert transport.uploads == 2


async def test_it_gives_up_after_a_few_5xx_in_a_row() -> None:
    async with youtube(fail={1, 2, 3, 4, 5}) as (sim, adapter, credentials, transport):
        adapter.upload_chunk_bytes = 256 * KIB
        with pytest.raises(Transient):
            await adapter.publish(text_content(), credentials, idempotency_key="k8")
        assert sim.world.record.all("youtube") == []
    assert transport.uploads <= 1 + YouTubeAdapter.max_resumes


# -- validation ---------------------------------------------------------------------------


def codes(content: Content) -> list[str]:
    return sorted(p.code for p in mocked(httpx.Response(200)).validate(content))


def test_it_needs_a_video_and_a_title() -> None:
    assert codes(Content(text="Hello")) == ["media_required", "title_required"]


def test_it_refuses_an_image_for_a_video() -> None:
    png = MediaItem(MediaKind.IMAGE, "image/png", PNG_1PX, filename="logo.png")
    assert codes(Content(text="x", title="t", media=(png,))) == ["media_kind", "media_required"]


def test_it_limits_titles_to_100_characters_without_angle_brackets() -> None:
    video = text_content().media
    assert codes(Content(text="", title="t" * 101, media=video)) == ["title_too_long"]
    assert codes(Content(text="a <b>", title="<Launch>", media=video)) == [
        "forbidden_characters", "forbidden_characters"]


def test_it_counts_the_description_in_utf8_bytes() -> None:
    video = text_content().media
    assert codes(Content(text="é" * 2500, title="t", media=video)) == []
    problems = mocked(httpx.Response(200)).validate(
        Content(text="é" * 2501, title="t", media=video))
    assert [p.code for p in problems] == ["too_long"]
    assert "5,002" in problems[0].message


async def test_it_sends_nothing_for_a_post_youtube_cannot_take() -> None:
    async with youtube() as (_, adapter, credentials, transport):
        with pytest.raises(Rejected, match="title"):
            await adapter.publish(Content(text="x", media=text_content().media), credentials,
                                  idempotency_key="k9")
    assert transport.requests == 0


# -- the error table ----------------------------------------------------------------------


@pytest.mark.parametrize(("fault", "params", "expected"), [
    ("auth_expired", {}, AuthExpired),
    ("rate_limited", {}, RateLimited),
    ("http_5xx", {}, Transient),
    ("http_5xx", {"kind": "unavailable"}, Transient),
    ("partial", {"feature": "media"}, Transient),
    ("garbage", {"variant": "html"}, PlatformOutage),
    ("garbage", {"variant": "json"}, Transient),
])
async def test_it_reads_each_simulated_failure_as_its_class(
    fault: str, params: dict[str, Any], expected: type[PublishError]
) -> None:
    async with youtube() as (sim, adapter, credentials, _):
        await sim.set_fault("youtube", fault, **params)
        with pytest.raises(expected) as caught:
            await adapter.publish(text_content(), credentials, idempotency_key="k10")
        assert sim.world.record.all("youtube") == []
    assert credentials["access_token"] not in str(caught.value)


async def test_it_waits_for_midnight_pacific_when_the_quota_is_used_up() -> None:
    async with youtube() as (sim, adapter, credentials, _):
        await sim.set_fault("youtube", "rate_limited")
        with pytest.raises(RateLimited) as caught:
            await adapter.publish(text_content(), credentials, idempotency_key="k11")
    assert caught.value.platform_code == "quotaExceeded"
    assert caught.value.retry_after_s == 12 * 3600  # noon to midnight in Los Angeles


CLASSES: dict[str, type[PublishError]] = {
    "auth": AuthExpired, "quota": RateLimited, "rate": RateLimited,
    "rejected": Rejected, "transient": Transient}
STATUS_OF = {"auth": 401, "quota": 403, "rate": 429, "rejected": 400, "transient": 500}


@pytest.mark.parametrize("reason", sorted(REASONS))
async def test_it_maps_every_documented_reason(reason: str) -> None:
    kind = REASONS[reason]
    adapter = mocked(google_error(STATUS_OF[kind], reason))
    with pytest.raises(CLASSES[kind]) as caught:
        await adapter.publish(text_content(), TOKEN, idempotency_key="k12")
    assert caught.value.platform_code == reason


async def test_it_reads_an_unknown_401_as_expired_credentials() -> None:
    with pytest.raises(AuthExpired):
        await mocked(google_error(401, "somethingNew")).publish(text_content(), TOKEN,
                                                               idempotency_key="k13")


async def test_it_rejects_a_video_youtube_marks_as_failed() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, headers={"Location": "https://www.googleapis.com/upload/"
                                                "youtube/v3/videos?upload_id=x"})
        return httpx.Response(201, json={"id": "abc", "status": {
            "uploadStatus": "rejected", "rejectionReason": "duplicate"}})

    adapter = YouTubeAdapter(client=httpx.AsyncClient(transport=httpx.MockTransport(handle)))
    with pytest.raises(Rejected, match="duplicate"):
        await adapter.publish(text_content(), TOKEN, idempotency_key="k14")


# -- account and delete -------------------------------------------------------------------


async def test_it_names_the_channel_behind_valid_credentials() -> None:
    async with youtube() as (_, adapter, credentials, _transport):
        account = await adapter.check_credentials(credentials)
    assert account.account_id.startswith("UC") and account.name.startswith("Brand Channel")


@pytest.mark.parametrize("token", ["ya29.revoked", ""])
async def test_it_reports_refused_or_missing_tokens_as_expired_credentials(token: str) -> None:
    async with youtube() as (_, adapter, _credentials, _transport):
        with pytest.raises(AuthExpired, match="reconnect") as caught:
            await adapter.check_credentials(Credentials({"access_token": token}))
    if not token:
        assert "access_token" in str(caught.value)


async def test_it_reads_an_account_without_a_channel_as_expired_credentials() -> None:
    with pytest.raises(AuthExpired, match="no YouTube channel"):
        await mocked(httpx.Response(200, json={"items": []})).check_credentials(TOKEN)


async def test_it_deletes_a_video_once() -> None:
    async with youtube() as (_, adapter, credentials, _transport):
        published = await adapter.publish(text_content(), credentials, idempotency_key="k15")
        await adapter.delete(published.external_id, credentials)
        with pytest.raises(Rejected) as caught:
            await adapter.delete(published.external_id, credentials)
    assert caught.value.platform_code == "videoNotFound"
