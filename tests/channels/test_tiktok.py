"""The TikTok adapter against the simulated Content Posting API (and MockTransport for codes
no simulator fault produces)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, cast

import httpx
import pytest

from sidestep.channels.adapters.tiktok import API_ERRORS, FAIL_REASONS, TikTokAdapter
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
from sidestep.sim.platforms.tiktok import DAILY_POST_CAP, TikTokProfile
from sidestep.sim.server import Simulator
from sidestep.sim.testing import running_simulator
from sidestep.vault import Credentials

MB = 1024 * 1024
MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 2  # an ISO ftyp box, then "frames"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 200
MEDIA_PREFIX = "https://cdn.brand.example/"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def prepare(sim: Simulator) -> dict[str, str]:
    """A fresh creator and token each time: TikTok's per-token and per-day caps stay clear."""
    number = sim.world.next_number()
    token = f"act.sidestep-test-token-{number}"
    sim.world.grant_token("tiktok", token, f"Brand Creator {number}")
    cast(TikTokProfile, sim.profiles["tiktok"]).verify_url_prefix(MEDIA_PREFIX)
    return {"access_token": token}


def text_content() -> Content:
    return Content(text="We moved the launch live stream to 18:00 #launch",
                   media=(MediaItem(MediaKind.VIDEO, "video/mp4", MP4, filename="launch.mp4"),))


def media_content() -> Content | None:
    photos = tuple(MediaItem(MediaKind.IMAGE, "image/jpeg", JPEG, filename=f"p{n}.jpg",
                             url=f"{MEDIA_PREFIX}p{n}.jpg") for n in (1, 2))
    return Content(text="Two looks from the new drop", title="New drop", media=photos)


class Ticking(httpx.AsyncBaseTransport):
    """Moves the simulated clock one second per request, so TikTok's processing ends."""

    def __init__(self, inner: httpx.AsyncBaseTransport, clock: FrozenClock) -> None:
        self.inner, self.clock = inner, clock

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.clock.advance(seconds=1)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@asynccontextmanager
async def tiktok(*, ticking: bool = True) -> AsyncIterator[tuple[Simulator, TikTokAdapter,
                                                                   Credentials]]:
    clock = FrozenClock(START)
    async with running_simulator(clock=clock) as sim:
        transport = Ticking(sim.transport(), clock) if ticking else sim.transport()
        async with httpx.AsyncClient(transport=transport) as client:
            adapter = TikTokAdapter(client=client, clock=clock, timeout_s=5, poll_interval_s=0)
            yield sim, adapter, Credentials(await prepare(sim))


def mocked(handler: Callable[[httpx.Request], httpx.Response]) -> TikTokAdapter:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return TikTokAdapter(client=client, clock=FrozenClock(START), poll_interval_s=0)


def envelope(data: dict[str, Any] | None = None, code: str = "ok", status: int = 200,
             message: str = "") -> httpx.Response:
    return httpx.Response(status, json={"data": data or {}, "error": {
        "code": code, "message": message, "log_id": "202603020900000000ABCDEF"}})


CREATOR = {"creator_username": "brand", "creator_nickname": "Brand",
           "privacy_level_options": ["PUBLIC_TO_EVERYONE", "SELF_ONLY"]}


def scripted(init: httpx.Response, status: httpx.Response | None = None
             ) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/creator_info/query/"):
            return envelope(CREATOR)
        if request.url.path.endswith("/init/"):
            return init
        return status or envelope({"status": "PROCESSING_DOWNLOAD"})
    return handle


# -- publishing ---------------------------------------------------------------------------


async def test_it_uploads_a_video_and_waits_until_tiktok_publishes_it() -> None:
    async with tiktok() as (sim, adapter, credentials):
        published = await adapter.publish(text_content(), credentials, idempotency_key="k1")
        [post] = sim.world.record.all("tiktok")
    assert published.external_id == post.external_id
    assert post.kind == "video" and post.payload["size"] == len(MP4)
    assert post.payload["post_info"]["title"] == text_content().text
    assert post.payload["post_info"]["privacy_level"] == "PUBLIC_TO_EVERYONE"
    assert post.payload["source_info"]["source"] == "FILE_UPLOAD"
    assert published.url == (f"https://www.tiktok.com/@{post.account.lower().replace(' ', '')}"
                             f"/video/{post.payload['post_id']}")


async def test_it_posts_photos_that_tiktok_pulls_from_their_addresses() -> None:
    content = media_content()
    assert content is not None
    async with tiktok() as (sim, adapter, credentials):
        published = await adapter.publish(content, credentials, idempotency_key="k2")
        [post] = sim.world.record.all("tiktok")
    assert post.kind == "photo" and published.external_id == post.external_id
    assert post.payload["source_info"]["photo_images"] == [m.url for m in content.media]
    assert post.payload["post_info"]["title"] == "New drop"
    assert post.payload["post_info"]["description"] == content.text
    assert published.url is not None and "/photo/" in published.url


async def test_it_lets_tiktok_pull_a_video_that_has_a_public_address() -> None:
    video = MediaItem(MediaKind.VIDEO, "video/mp4", MP4, url=f"{MEDIA_PREFIX}launch.mp4")
    async with tiktok() as (sim, adapter, credentials):
        await adapter.publish(Content(text="Live at six", media=(video,)), credentials,
                              idempotency_key="k3")
        [post] = sim.world.record.all("tiktok")
    assert post.payload["source_info"] == {"source": "PULL_FROM_URL",
                                           "video_url": f"{MEDIA_PREFIX}launch.mp4"}


async def test_it_sends_a_large_video_in_sequential_chunks() -> None:
    big = MP4 + b"\x01" * (11 * MB - len(MP4))
    async with tiktok() as (sim, adapter, credentials):
        adapter.single_chunk_max_bytes = adapter.chunk_bytes = 5 * MB
        await adapter.publish(Content(text="Director's cut", media=(MediaItem(
            MediaKind.VIDEO, "video/mp4", big),)), credentials, idempotency_key="k4")
        [post] = sim.world.record.all("tiktok")
    assert post.payload["source_info"]["total_chunk_count"] == 2
    assert post.payload["size"] == len(big)


async def test_it_returns_the_publish_id_while_tiktok_still_moderates_the_post() -> None:
    async with tiktok(ticking=False) as (sim, adapter, credentials):  # time stands still
        published = await adapter.publish(text_content(), credentials, idempotency_key="k5")
        [post] = sim.world.record.all("tiktok")
    assert published.external_id == post.external_id and published.url is None


async def test_it_reads_an_unreadable_status_after_the_upload_as_maybe_sent() -> None:
    async with tiktok() as (sim, adapter, credentials):
        await sim.set_fault("tiktok", "partial", feature="read", kind="server_error")
        with pytest.raises(Unknown) as caught:
            await adapter.publish(text_content(), credentials, idempotency_key="k6")
        assert len(sim.world.record.all("tiktok")) == 1
    assert caught.value.maybe_sent


# -- validation ---------------------------------------------------------------------------


def codes(content: Content) -> list[str]:
    return [p.code for p in mocked(lambda r: envelope()).validate(content)]


def test_it_refuses_a_post_with_only_text() -> None:
    assert codes(Content(text="Hello")) == ["media_required"]


def test_it_refuses_to_mix_a_video_and_photos() -> None:
    photo = MediaItem(MediaKind.IMAGE, "image/jpeg", JPEG, url=f"{MEDIA_PREFIX}a.jpg")
    assert codes(Content(text="x", media=(*text_content().media, photo))) == ["mixed_media"]


def test_it_refuses_two_videos() -> None:
    assert codes(Content(text="x", media=text_content().media * 2)) == ["too_many_media"]


def test_it_wants_jpeg_or_webp_photos_with_public_addresses() -> None:
    png = MediaItem(MediaKind.IMAGE, "image/png", JPEG, filename="logo.png")
    problems = mocked(lambda r: envelope()).validate(Content(text="x", media=(png,)))
    assert [p.code for p in problems] == ["media_kind", "media_url_required"]
    assert "logo.png is image/png" in problems[0].message


def test_it_counts_captions_in_utf16_and_allows_longer_photo_descriptions() -> None:
    assert codes(Content(text="😀" * 1101, media=text_content().media)) == ["too_long"]
    photos = media_content()
    assert photos is not None
    assert codes(Content(text="y" * 3000, title="t", media=photos.media)) == []
    assert sorted(codes(Content(text="y" * 4001, title="t" * 91, media=photos.media))) == [
        "title_too_long", "too_long"]


async def test_it_sends_nothing_for_a_post_tiktok_cannot_take() -> None:
    async with tiktok() as (sim, adapter, credentials):
        with pytest.raises(Rejected, match="video or photos"):
            await adapter.publish(Content(text="Hello"), credentials, idempotency_key="k7")
        assert sim.world.record.all("tiktok") == []


# -- the error table ----------------------------------------------------------------------


@pytest.mark.parametrize(("fault", "params", "expected"), [
    ("auth_expired", {}, AuthExpired),
    ("rate_limited", {"retry_after_s": 9}, RateLimited),
    ("http_5xx", {}, Transient),
    ("http_5xx", {"kind": "unavailable"}, Transient),
    ("partial", {"feature": "media"}, Transient),
    ("garbage", {"variant": "html"}, PlatformOutage),
])
async def test_it_reads_each_simulated_failure_as_its_class(
    fault: str, params: dict[str, Any], expected: type[PublishError]
) -> None:
    async with tiktok() as (sim, adapter, credentials):
        await sim.set_fault("tiktok", fault, **params)
        with pytest.raises(expected) as caught:
            await adapter.publish(text_content(), credentials, idempotency_key="k8")
        assert sim.world.record.all("tiktok") == []
    assert credentials["access_token"] not in str(caught.value)


async def test_it_waits_until_tomorrow_when_the_daily_post_cap_is_reached() -> None:
    async with tiktok() as (sim, adapter, credentials):
        for n in range(DAILY_POST_CAP):
            await adapter.publish(text_content(), credentials, idempotency_key=f"cap-{n}")
            cast(FrozenClock, adapter.clock).advance(seconds=60)
        with pytest.raises(RateLimited) as caught:
            await adapter.publish(text_content(), credentials, idempotency_key="cap-over")
        assert len(sim.world.record.all("tiktok")) == DAILY_POST_CAP
    assert caught.value.platform_code == "spam_risk_too_many_posts"
    assert caught.value.retry_after_s >= 3600


async def test_it_rejects_a_photo_address_tiktok_has_not_verified() -> None:
    photo = MediaItem(MediaKind.IMAGE, "image/jpeg", JPEG, url="https://elsewhere.example/a.jpg")
    async with tiktok() as (_, adapter, credentials):
        with pytest.raises(Rejected) as caught:
            await adapter.publish(Content(text="x", media=(photo,)), credentials,
                                  idempotency_key="k9")
    assert caught.value.platform_code == "url_ownership_unverified"


async def test_it_rejects_a_file_tiktok_cannot_read() -> None:
    junk = MediaItem(MediaKind.VIDEO, "video/mp4", b"not a video at all" * 20)
    async with tiktok() as (_, adapter, credentials):
        with pytest.raises(Rejected) as caught:
            await adapter.publish(Content(text="x", media=(junk,)), credentials,
                                  idempotency_key="k10")
    assert caught.value.platform_code == "file_format_check_failed"


CLASSES: dict[str, type[PublishError]] = {
    "auth": AuthExpired, "rate": RateLimited, "daily": RateLimited,
    "rejected": Rejected, "transient": Transient}
STATUS_OF = {"auth": 401, "rate": 429, "daily": 403, "rejected": 400, "transient": 500}


@pytest.mark.parametrize("code", sorted(API_ERRORS))
async def test_it_maps_every_documented_error_code(code: str) -> None:
    kind, _ = API_ERRORS[code]
    adapter = mocked(scripted(envelope(code=code, status=STATUS_OF[kind], message="detail")))
    with pytest.raises(CLASSES[kind]) as caught:
        await adapter.publish(media_content() or text_content(), Credentials(
            {"access_token": "act.mocked-token"}), idempotency_key="k11")
    assert caught.value.platform_code == code


@pytest.mark.parametrize("reason", sorted(FAIL_REASONS))
async def test_it_maps_every_documented_fail_reason(reason: str) -> None:
    kind, _ = FAIL_REASONS[reason]
    adapter = mocked(scripted(envelope({"publish_id": "p_pub_url~v2.1"}),
                              envelope({"status": "FAILED", "fail_reason": reason})))
    with pytest.raises(CLASSES[kind]) as caught:
        await adapter.publish(media_content() or text_content(), Credentials(
            {"access_token": "act.mocked-token"}), idempotency_key="k12")
    assert caught.value.platform_code == reason


async def test_it_reads_an_unreadable_answer_to_a_pull_as_maybe_sent() -> None:
    adapter = mocked(scripted(httpx.Response(200, content=b'{"data": {"publish_')))
    with pytest.raises(Unknown) as caught:
        await adapter.publish(media_content() or text_content(), Credentials(
            {"access_token": "act.mocked-token"}), idempotency_key="k13")
    assert caught.value.maybe_sent


# -- account ------------------------------------------------------------------------------


async def test_it_names_the_creator_behind_valid_credentials() -> None:
    async with tiktok() as (_, adapter, credentials):
        account = await adapter.check_credentials(credentials)
    assert account.name.startswith("Brand Creator") and account.account_id.startswith("brand")


async def test_it_reports_a_refused_token_as_expired_credentials() -> None:
    async with tiktok() as (_, adapter, _credentials):
        with pytest.raises(AuthExpired):
            await adapter.check_credentials(Credentials({"access_token": "act.revoked"}))


async def test_it_names_missing_credential_fields() -> None:
    with pytest.raises(AuthExpired, match="access_token"):
        await mocked(lambda r: envelope()).publish(text_content(), Credentials({}),
                                                   idempotency_key="k14")


async def test_it_says_tiktok_cannot_delete_posts() -> None:
    with pytest.raises(Rejected, match="cannot delete"):
        await mocked(lambda r: envelope()).delete("p_pub_url~v2.1", Credentials(
            {"access_token": "act.mocked-token"}))


async def test_it_never_sends_the_token_to_the_upload_host() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "open-upload.tiktokapis.com":
            return httpx.Response(201)
        if request.url.path.endswith("/video/init/"):
            body = json.loads(request.content)
            assert body["source_info"]["video_size"] == len(MP4)
            upload_url = "https://open-upload.tiktokapis.com/video/?upload_id=1&upload_token=t"
            return envelope({"publish_id": "v_pub_file~v2-1.1", "upload_url": upload_url})
        return scripted(envelope(), envelope({"status": "PUBLISH_COMPLETE",
                                              "publicaly_available_post_id": [7]}))(request)

    published = await mocked(handle).publish(text_content(), Credentials(
        {"access_token": "act.mocked-token"}), idempotency_key="k15")
    upload = next(r for r in seen if r.url.host == "open-upload.tiktokapis.com")
    assert "authorization" not in upload.headers
    assert upload.headers["content-range"] == f"bytes 0-{len(MP4) - 1}/{len(MP4)}"
    assert published.url == "https://www.tiktok.com/@brand/video/7"
