"""The Instagram adapter against the simulated Graph API, and its error table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sidestep.channels.adapters.instagram import NO_URL, InstagramAdapter
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

TOKEN = "IGQVJ-instagram-secret-0001"
IG_USER = "17841400000000001"
CREDS = Credentials({"access_token": TOKEN, "ig_user_id": IG_USER})
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 16
MP4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 16


async def prepare(sim: Simulator) -> dict[str, str]:
    sim.world.grant_token("instagram", TOKEN, IG_USER)
    return {"access_token": TOKEN, "ig_user_id": IG_USER}


def image(name: str = "dot.jpg", *, alt: str = "", url: str | None = "default",
          mime: str = "image/jpeg", data: bytes = JPEG) -> MediaItem:
    link = f"https://brand.example/archive/{name}" if url == "default" else url
    return MediaItem(MediaKind.IMAGE, mime, data, alt=alt, filename=name, url=link)


def video(name: str = "clip.mp4") -> MediaItem:
    return MediaItem(MediaKind.VIDEO, "video/mp4", MP4, filename=name,
                     url=f"https://brand.example/archive/{name}")


def text_content() -> Content:
    return Content(text="We are still here.", media=(image(),))


def media_content() -> Content | None:
    return Content(text="Two pictures", media=(image("a.jpg"), image("b.jpg")))


def adapter_for(sim: Simulator, client: httpx.AsyncClient) -> InstagramAdapter:
    return InstagramAdapter(client=client, clock=sim.world.clock, timeout_s=2,
                            poll_interval_s=0.01)


def mocked(handler: Callable[[httpx.Request], httpx.Response]) -> InstagramAdapter:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return InstagramAdapter(client=client, clock=SystemClock(), timeout_s=2, poll_interval_s=0)


def graph_error(code: int, subcode: int | None = None, message: str = "An error"
                ) -> httpx.Response:
    error: dict[str, object] = {"message": message, "type": "OAuthException", "code": code,
                                "fbtrace_id": "AbCdEf"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return httpx.Response(400, json={"error": error})


def flow(*, usage: int = 0, status: str = "FINISHED", status_text: str = "",
         publish: Callable[[httpx.Request], httpx.Response] | None = None,
         seen: list[httpx.Request] | None = None) -> Callable[[httpx.Request], httpx.Response]:
    """A scripted Instagram: quota, containers, container status, publish, permalink."""
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        path = request.url.path
        if path.endswith("/content_publishing_limit"):
            return httpx.Response(200, json={"data": [{"quota_usage": usage, "config": {
                "quota_total": 100, "quota_duration": 86400}}]})
        if path.endswith("/media_publish"):
            return publish(request) if publish else httpx.Response(200, json={"id": "900"})
        if path.endswith("/media"):
            return httpx.Response(200, json={"id": "800"})
        if path.endswith("/800"):
            return httpx.Response(200, json={"id": "800", "status_code": status,
                                             "status": status_text})
        return httpx.Response(200, json={"id": "900", "permalink": "https://ig/p/x/"})
    return handler


async def test_it_publishes_an_image_with_caption_and_alt_text_once() -> None:
    content = Content(text="Hello #brand", link="https://brand.example/news",
                      media=(image(alt="A black dot"),))
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            published = await adapter_for(sim, client).publish(content, credentials,
                                                               idempotency_key="k")
        [record] = sim.world.record.all("instagram")
    assert record.external_id == published.external_id
    assert published.url and published.url.startswith("https://www.instagram.com/p/")
    assert record.payload == {"image_url": "https://brand.example/archive/dot.jpg",
                              "alt_text": "A black dot",
                              "caption": "Hello #brand\n\nhttps://brand.example/news"}


async def test_it_publishes_a_reel_after_waiting_for_processing() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            published = await adapter_for(sim, client).publish(
                Content(text="Watch", media=(video(),)), credentials, idempotency_key="k")
        [record] = sim.world.record.all("instagram")
    assert published.url and "/reel/" in published.url
    assert record.payload == {"media_type": "REELS", "caption": "Watch",
                              "video_url": "https://brand.example/archive/clip.mp4"}


async def test_it_publishes_a_carousel_of_an_image_and_a_video() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            await adapter_for(sim, client).publish(
                Content(text="Both", media=(image(), video())), credentials,
                idempotency_key="k")
        [record] = sim.world.record.all("instagram")
    assert record.payload["media_type"] == "CAROUSEL" and record.payload["caption"] == "Both"
    assert record.payload["children"] == [
        {"image_url": "https://brand.example/archive/dot.jpg", "is_carousel_item": "true"},
        {"media_type": "VIDEO", "video_url": "https://brand.example/archive/clip.mp4",
         "is_carousel_item": "true"}]


async def test_it_stops_at_the_publishing_quota_without_creating_containers() -> None:
    seen: list[httpx.Request] = []
    with pytest.raises(RateLimited, match="100 of its 100") as caught:
        await mocked(flow(usage=100, seen=seen)).publish(text_content(), CREDS,
                                                         idempotency_key="k")
    assert caught.value.retry_after_s == 3600
    assert [r.url.path.rsplit("/", 1)[-1] for r in seen] == ["content_publishing_limit"]


async def test_it_rejects_media_without_a_public_url_before_any_request() -> None:
    seen: list[httpx.Request] = []
    content = Content(text="x", media=(image(url=None),))
    with pytest.raises(Rejected) as caught:
        await mocked(flow(seen=seen)).publish(content, CREDS, idempotency_key="k")
    assert str(caught.value) == NO_URL and seen == []


def test_it_lists_what_instagram_would_refuse_in_words_a_marketer_understands() -> None:
    adapter = InstagramAdapter(client=httpx.AsyncClient())
    tags = " ".join(f"#t{n}" for n in range(31)) + " " + " ".join(f"@u{n}" for n in range(21))
    problems = adapter.validate(Content(
        text=tags, reply_to="1",
        media=(image("a.png", mime="image/png"), image("big.jpg", data=b"\0" * 8_388_609),
               *(image(f"{n}.jpg") for n in range(9)))))
    messages = {p.code: [q.message for q in problems if q.code == p.code] for p in problems}
    assert any("31" in m for m in messages["too_many_tags"])
    assert any("21" in m for m in messages["too_many_tags"])
    assert "JPEG images" in messages["media_kind"][0]
    assert "8,388,608" in messages["media_too_large"][0]
    assert "at most 10" in messages["too_many_media"][0]
    assert "no_replies" in messages
    assert [p.code for p in adapter.validate(Content(text="only words"))] == ["media_required"]
    long_with_link = adapter.validate(Content(text="x" * 2190, link="https://brand.example/a",
                                              media=(image(),)))
    assert [p.code for p in long_with_link] == ["too_long"]
    assert adapter.validate(text_content()) == []


@pytest.mark.parametrize(("fault", "params", "expected"), [
    ("http_5xx", {}, Transient),
    ("http_5xx", {"kind": "unavailable"}, PlatformOutage),
    ("rate_limited", {"retry_after_s": 30}, RateLimited),
    ("auth_expired", {}, AuthExpired),
    ("partial", {"feature": "media"}, Transient),
])
async def test_it_reads_each_simulated_fault_as_its_class(
        fault: str, params: dict[str, Any], expected: type[PublishError]) -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        await sim.set_fault("instagram", fault, **params)
        async with sim.client() as client:
            with pytest.raises(expected):
                await adapter_for(sim, client).publish(text_content(), credentials,
                                                       idempotency_key="k")
        assert sim.world.record.all("instagram") == []


@pytest.mark.parametrize(("status", "text", "expected"), [
    ("ERROR", "Error: Media upload has failed with error code 2207026", Rejected),
    ("ERROR", "Error: Media upload has failed with error code 2207052", Transient),
    ("ERROR", "Error: something else", Transient),
    ("EXPIRED", "Expired: Media was not published within 24 hours.", Transient),
    ("IN_PROGRESS", "In Progress", Transient),
    ("PUBLISHED", "Published", Unknown),
])
async def test_it_reads_a_container_status_by_the_subcode_it_names(
        status: str, text: str, expected: type[PublishError]) -> None:
    seen: list[httpx.Request] = []
    with pytest.raises(expected):
        await mocked(flow(status=status, status_text=text, seen=seen)).publish(
            text_content(), CREDS, idempotency_key="k")
    assert not any(r.url.path.endswith("/media_publish") for r in seen)


async def test_it_reads_a_lost_answer_to_media_publish_as_maybe_sent() -> None:
    def lost(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    with pytest.raises(Unknown) as caught:
        await mocked(flow(publish=lost)).publish(text_content(), CREDS, idempotency_key="k")
    assert caught.value.maybe_sent is True


@pytest.mark.parametrize(("code", "subcode", "expected"), [
    (-1, 2207001, Transient), (-2, 2207003, Transient), (-2, 2207020, Transient),
    (4, 2207051, Rejected), (9, 2207042, RateLimited), (24, 2207006, Transient),
    (25, 2207050, AuthExpired), (36000, 2207004, Rejected), (36001, 2207005, Rejected),
    (36003, 2207009, Rejected), (36004, 2207010, Rejected), (9004, 2207052, Transient),
    (9007, 2207027, Transient), (100, 2207023, Rejected), (100, 2207028, Rejected),
    (352, 2207026, Rejected), (80002, None, RateLimited), (190, 463, AuthExpired),
    (1, None, Transient), (2, None, PlatformOutage), (368, None, Rejected),
])
async def test_it_maps_every_documented_instagram_code(
        code: int, subcode: int | None, expected: type[PublishError]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/media_publish"):
            return graph_error(code, subcode)
        return flow()(request)

    with pytest.raises(expected) as caught:
        await mocked(handler).publish(text_content(), CREDS, idempotency_key="k")
    if isinstance(caught.value, RateLimited) and code == 9:
        assert caught.value.retry_after_s == 3600


async def test_it_checks_credentials_and_tells_an_expired_token() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            account = await adapter.check_credentials(credentials)
            await sim.set_fault("instagram", "auth_expired")
            with pytest.raises(AuthExpired):
                await adapter.check_credentials(credentials)
    assert account.account_id == IG_USER and account.name == f"ig_{IG_USER}"


async def test_it_says_instagram_cannot_delete_posts() -> None:
    with pytest.raises(Rejected, match="Instagram app"):
        await mocked(flow()).delete("900", CREDS)


async def test_it_names_missing_credential_fields_without_sending() -> None:
    with pytest.raises(AuthExpired, match="ig_user_id"):
        await mocked(flow()).publish(text_content(), Credentials({"access_token": TOKEN}),
                                     idempotency_key="k")


async def test_it_keeps_the_token_out_of_urls_and_error_messages() -> None:
    seen: list[httpx.Request] = []

    def echo_token(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return graph_error(100, 2207023, message=f"Bad media for {TOKEN}")

    with pytest.raises(Rejected) as caught:
        await mocked(echo_token).publish(text_content(), CREDS, idempotency_key="k")
    assert TOKEN not in str(caught.value)
    assert all(TOKEN not in str(r.url) for r in seen)
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"
