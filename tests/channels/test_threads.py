"""The Threads adapter against the simulated graph.threads.net, and its error table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sidestep.channels.adapters.threads import NO_URL, ThreadsAdapter
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

TOKEN = "THQWJ-threads-secret-0001"
USER = "25000000000000001"
CREDS = Credentials({"access_token": TOKEN, "threads_user_id": USER})
API = "https://graph.threads.net/v1.0"


async def prepare(sim: Simulator) -> dict[str, str]:
    sim.world.grant_token("threads", TOKEN, USER)
    return {"access_token": TOKEN, "threads_user_id": USER}


def image(name: str = "dot.png", *, alt: str = "", url: str | None = "default",
          mime: str = "image/png") -> MediaItem:
    link = f"https://brand.example/archive/{name}" if url == "default" else url
    return MediaItem(MediaKind.IMAGE, mime, PNG_1PX, alt=alt, filename=name, url=link)


def text_content() -> Content:
    return Content(text="We are still here while the other place is down.")


def media_content() -> Content | None:
    return Content(text="Picture of the day", media=(image(),))


def adapter_for(sim: Simulator, client: httpx.AsyncClient) -> ThreadsAdapter:
    return ThreadsAdapter(client=client, clock=sim.world.clock, timeout_s=2, poll_interval_s=0.01)


def mocked(handler: Callable[[httpx.Request], httpx.Response]) -> ThreadsAdapter:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return ThreadsAdapter(client=client, clock=SystemClock(), timeout_s=2, poll_interval_s=0)


def graph_error(code: int, subcode: int | None = None, message: str = "An error"
                ) -> httpx.Response:
    error: dict[str, object] = {"message": message, "type": "THApiException", "code": code,
                                "fbtrace_id": "AbCdEf"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return httpx.Response(400, json={"error": error})


def flow(*, status: str = "FINISHED", error_message: str | None = None,
         publish: Callable[[httpx.Request], httpx.Response] | None = None,
         seen: list[httpx.Request] | None = None) -> Callable[[httpx.Request], httpx.Response]:
    """A scripted Threads: container, container status, publish, permalink."""
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        path = request.url.path
        if path.endswith("/threads_publish"):
            return publish(request) if publish else httpx.Response(200, json={"id": "900"})
        if path.endswith("/threads"):
            return httpx.Response(200, json={"id": "800"})
        if path.endswith("/800"):
            return httpx.Response(200, json={"id": "800", "status": status,
                                             "error_message": error_message})
        return httpx.Response(200, json={"id": "900", "permalink": "https://threads/p/x"})
    return handler


async def publish_in_sim(content: Content) -> tuple[str, dict[str, object], str | None]:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            published = await adapter_for(sim, client).publish(content, credentials,
                                                               idempotency_key="k")
        [record] = sim.world.record.all("threads")
    assert record.external_id == published.external_id
    return published.external_id, record.payload, published.url


async def test_it_publishes_a_text_post_with_a_link_preview_once() -> None:
    _, payload, url = await publish_in_sim(Content(text="Hello", link="https://brand.example"))
    assert payload == {"media_type": "TEXT", "text": "Hello",
                       "link_attachment": "https://brand.example"}
    assert url and url.startswith(f"https://www.threads.net/@threads_{USER}/post/")


async def test_it_publishes_a_reply_to_an_earlier_post() -> None:
    _, payload, _ = await publish_in_sim(Content(text="and more", reply_to="18050000000000009"))
    assert payload == {"media_type": "TEXT", "text": "and more",
                       "reply_to_id": "18050000000000009"}


async def test_it_publishes_an_image_with_alt_text_and_the_link_in_the_text() -> None:
    _, payload, _ = await publish_in_sim(Content(
        text="A dot", link="https://brand.example/dot", media=(image(alt="A black dot"),)))
    assert payload == {"media_type": "IMAGE", "image_url": "https://brand.example/archive/dot.png",
                       "alt_text": "A black dot", "text": "A dot\n\nhttps://brand.example/dot"}


async def test_it_publishes_a_video_after_waiting_for_processing() -> None:
    clip = MediaItem(MediaKind.VIDEO, "video/mp4", b"\0" * 8, filename="clip.mp4",
                     url="https://brand.example/archive/clip.mp4")
    _, payload, _ = await publish_in_sim(Content(text="Watch", media=(clip,)))
    assert payload == {"media_type": "VIDEO", "video_url": "https://brand.example/archive/clip.mp4",
                       "text": "Watch"}


async def test_it_publishes_a_carousel() -> None:
    _, payload, _ = await publish_in_sim(Content(text="Both", media=(image("a.png"),
                                                                     image("b.png"))))
    assert payload["media_type"] == "CAROUSEL" and payload["text"] == "Both"
    assert payload["children"] == [
        {"media_type": "IMAGE", "image_url": f"https://brand.example/archive/{n}.png",
         "is_carousel_item": "true"} for n in ("a", "b")]


def test_it_counts_an_emoji_as_its_utf8_bytes() -> None:
    adapter = ThreadsAdapter(client=httpx.AsyncClient())
    assert adapter.text_length("hi 😀") == 3 + 4
    assert adapter.validate(Content(text="x" * 496 + "😀")) == []
    [problem] = adapter.validate(Content(text="x" * 497 + "😀"))
    assert problem.code == "too_long" and "501" in problem.message


def test_it_lists_what_threads_would_refuse_in_words_a_marketer_understands() -> None:
    adapter = ThreadsAdapter(client=httpx.AsyncClient())
    links = " ".join(f"https://site{n}.example/" for n in range(5))
    problems = adapter.validate(Content(text=links, link="https://other.example",
                                        media=(image("a.gif", mime="image/gif"),
                                               *(image(f"{n}.png") for n in range(20)))))
    by_code = {p.code: p.message for p in problems}
    assert "at most 5 links" in by_code["too_many_links"] and "6" in by_code["too_many_links"]
    assert "JPEG or PNG" in by_code["media_kind"]
    assert "at most 20" in by_code["too_many_media"]
    with_link = adapter.validate(Content(text="x" * 495, link="https://brand.example",
                                         media=(image(),)))
    assert [p.code for p in with_link] == ["too_long"]
    assert adapter.validate(text_content()) == []


async def test_it_rejects_media_without_a_public_url_before_any_request() -> None:
    seen: list[httpx.Request] = []
    with pytest.raises(Rejected) as caught:
        await mocked(flow(seen=seen)).publish(Content(text="x", media=(image(url=None),)),
                                              CREDS, idempotency_key="k")
    assert str(caught.value) == NO_URL and seen == []


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
        await sim.set_fault("threads", fault, **params)
        async with sim.client() as client:
            with pytest.raises(expected) as caught:
                await adapter_for(sim, client).publish(text_content(), credentials,
                                                       idempotency_key="k")
        assert sim.world.record.all("threads") == []
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after_s == 60  # Threads sends X-App-Usage only


async def test_media_can_fail_while_text_posts_still_go_out() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        await sim.set_fault("threads", "partial", feature="media")
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            with pytest.raises(Transient, match="UNKNOWN"):
                await adapter.publish(Content(text="x", media=(image(),)), credentials,
                                      idempotency_key="a")
            await adapter.publish(text_content(), credentials, idempotency_key="b")
        assert [r.payload["media_type"] for r in sim.world.record.all("threads")] == ["TEXT"]


@pytest.mark.parametrize(("status", "error_message", "expected"), [
    ("ERROR", "INVALID_ASPEC_RATIO", Rejected),
    ("ERROR", "FAILED_DOWNLOADING_VIDEO", Transient),
    ("ERROR", None, Transient),
    ("EXPIRED", None, Transient),
    ("IN_PROGRESS", None, Transient),
    ("PUBLISHED", None, Unknown),
])
async def test_it_reads_a_container_status_before_publishing(
        status: str, error_message: str | None, expected: type[PublishError]) -> None:
    seen: list[httpx.Request] = []
    with pytest.raises(expected):
        await mocked(flow(status=status, error_message=error_message, seen=seen)).publish(
            text_content(), CREDS, idempotency_key="k")
    assert not any(r.url.path.endswith("/threads_publish") for r in seen)


async def test_it_reads_a_lost_answer_to_threads_publish_as_maybe_sent() -> None:
    def lost(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    with pytest.raises(Unknown) as caught:
        await mocked(flow(publish=lost)).publish(text_content(), CREDS, idempotency_key="k")
    assert caught.value.maybe_sent is True


@pytest.mark.parametrize(("code", "subcode", "expected"), [
    (24, None, Transient), (9004, 2207052, Transient), (4, None, RateLimited),
    (17, None, RateLimited), (190, 463, AuthExpired), (10, None, AuthExpired),
    (1, None, Transient), (2, None, PlatformOutage), (100, None, Rejected),
    (368, None, Rejected),
])
async def test_it_maps_every_documented_threads_code(
        code: int, subcode: int | None, expected: type[PublishError]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/threads_publish"):
            return graph_error(code, subcode)
        return flow()(request)

    with pytest.raises(expected):
        await mocked(handler).publish(text_content(), CREDS, idempotency_key="k")


async def test_it_checks_credentials_and_tells_an_expired_or_foreign_token() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            account = await adapter.check_credentials(credentials)
            with pytest.raises(AuthExpired, match="not 1"):
                await adapter.check_credentials(Credentials(
                    {"access_token": TOKEN, "threads_user_id": "1"}))
            await sim.set_fault("threads", "auth_expired")
            with pytest.raises(AuthExpired):
                await adapter.check_credentials(credentials)
    assert account.account_id == USER and account.name == f"threads_{USER}"


async def test_it_deletes_a_post_and_a_second_delete_is_harmless() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            published = await adapter.publish(text_content(), credentials, idempotency_key="k")
            await adapter.delete(published.external_id, credentials)
            await adapter.delete(published.external_id, credentials)
            gone = await client.get(f"{API}/{published.external_id}",
                                    headers={"Authorization": f"Bearer {TOKEN}"})
    assert gone.json()["error"]["error_subcode"] == 33


async def test_it_keeps_the_token_out_of_urls_and_error_messages() -> None:
    seen: list[httpx.Request] = []

    def echo_token(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return graph_error(100, message=f"Invalid text for {TOKEN}")

    with pytest.raises(Rejected) as caught:
        await mocked(echo_token).publish(text_content(), CREDS, idempotency_key="k")
    assert TOKEN not in str(caught.value)
    assert all(TOKEN not in str(r.url) for r in seen)
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"
