"""The Mastodon adapter against the simulated mastodon.social, and its error table."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest

from sidestep.channels.adapters.mastodon import MastodonAdapter
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

TOKEN = "mastodon-secret-token-123"
ACCOUNT = "brand"


async def prepare(sim: Simulator) -> dict[str, str]:
    sim.world.grant_token("mastodon", TOKEN, ACCOUNT)
    return {"access_token": TOKEN, "instance_url": "https://mastodon.social"}


def text_content() -> Content:
    return Content(text="We are still here while the other place is down.")


def media_content() -> Content | None:
    return Content(text="Picture of the day", media=(
        MediaItem(MediaKind.IMAGE, "image/png", PNG_1PX, alt="A dot", filename="dot.png"),))


def adapter_for(sim: Simulator, client: httpx.AsyncClient) -> MastodonAdapter:
    return MastodonAdapter(client=client, clock=sim.world.clock, timeout_s=2, poll_interval_s=0.01)


def mocked(handler: Callable[[httpx.Request], httpx.Response]) -> MastodonAdapter:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return MastodonAdapter(client=client, clock=SystemClock(), timeout_s=2, poll_interval_s=0)


CREDS = Credentials({"access_token": TOKEN})


async def test_it_posts_a_status_once_with_the_payload_as_sent() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            published = await adapter_for(sim, client).publish(
                Content(text="Hello", link="https://example.com/a"), credentials,
                idempotency_key="k1")
        [record] = sim.world.record.all("mastodon")
    assert record.external_id == published.external_id
    assert published.url and published.url.endswith(published.external_id)
    assert record.payload["status"] == "Hello\n\nhttps://example.com/a"
    assert record.payload["visibility"] == "public"
    assert record.payload["media_ids"] == []
    assert record.idempotency_marker == "k1"


async def test_it_uploads_an_image_with_its_alt_text_before_posting() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        content = media_content()
        assert content is not None
        async with sim.client() as client:
            await adapter_for(sim, client).publish(content, credentials, idempotency_key="k")
        [record] = sim.world.record.all("mastodon")
        async with sim.client() as client:
            stored = await client.get(
                f"https://mastodon.social/api/v1/media/{record.payload['media_ids'][0]}",
                headers={"Authorization": f"Bearer {TOKEN}"})
    assert len(record.payload["media_ids"]) == 1
    assert stored.json()["description"] == "A dot"


async def test_it_polls_a_video_until_it_is_processed() -> None:
    video = MediaItem(MediaKind.VIDEO, "video/mp4", b"\x00" * 2048, filename="clip.mp4")
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            await adapter_for(sim, client).publish(
                Content(text="Watch", media=(video,)), credentials, idempotency_key="v")
        [record] = sim.world.record.all("mastodon")
    assert len(record.payload["media_ids"]) == 1


async def test_it_gives_up_on_media_that_never_finishes_without_posting() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.url.path == "/api/v2/media":
            return httpx.Response(202, json={"id": "9", "url": None})
        return httpx.Response(206, json={"id": "9", "url": None})

    adapter = mocked(handler)
    with pytest.raises(Transient, match="still processing"):
        await adapter.publish(media_content() or text_content(), CREDS, idempotency_key="k")
    assert seen.count("GET /api/v1/media/9") == adapter.max_polls
    assert "POST /api/v1/statuses" not in seen


async def test_a_repeated_idempotency_key_posts_only_once() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            first = await adapter.publish(text_content(), credentials, idempotency_key="same")
            second = await adapter.publish(text_content(), credentials, idempotency_key="same")
        assert first == second
        assert len(sim.world.record.all("mastodon")) == 1


async def test_it_replies_under_the_earlier_status() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            first = await adapter.publish(Content(text="1/2"), credentials, idempotency_key="a")
            await adapter.publish(Content(text="2/2", reply_to=first.external_id), credentials,
                                  idempotency_key="b")
            with pytest.raises(Rejected, match="reply to"):
                await adapter.publish(Content(text="3", reply_to="404404"), credentials,
                                      idempotency_key="c")
        reply = sim.world.record.all("mastodon")[1]
    assert reply.payload["in_reply_to_id"] == first.external_id


async def test_it_uses_the_instance_named_in_the_credentials() -> None:
    hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        return httpx.Response(200, json={"id": "1", "url": "https://example.social/@b/1"})

    await mocked(handler).publish(text_content(), Credentials(
        {"access_token": TOKEN, "instance_url": "https://example.social/"}), idempotency_key="k")
    assert hosts == ["example.social"]


def test_it_counts_urls_as_23_and_remote_mentions_by_their_username() -> None:
    adapter = MastodonAdapter(client=httpx.AsyncClient())
    assert adapter.text_length("see https://example.com/" + "x" * 200) == 4 + 23
    assert adapter.text_length("hi @alice@example.social") == len("hi @alice")
    assert adapter.text_length("👍🏽🇫🇷") == 2


def test_it_explains_what_mastodon_would_refuse() -> None:
    adapter = MastodonAdapter(client=httpx.AsyncClient())
    image = MediaItem(MediaKind.IMAGE, "image/png", PNG_1PX, filename="a.png")
    video = MediaItem(MediaKind.VIDEO, "video/mp4", b"0", filename="b.mp4")
    assert adapter.validate(Content(text="https://example.com/" + "x" * 600)) == []
    codes = {p.code for p in adapter.validate(Content(text="x" * 501))}
    assert codes == {"too_long"}
    codes = {p.code for p in adapter.validate(Content(text="x", media=(image,) * 5))}
    assert codes == {"too_many_media"}
    mix = adapter.validate(Content(text="x", media=(image, video)))
    assert [p.code for p in mix] == ["media_mix"] and "video" in mix[0].message
    longer = adapter.validate(Content(text="x" * 480, link="https://example.com"))
    assert [p.code for p in longer] == ["too_long"] and "link" in longer[0].message


ERROR_TABLE: list[tuple[int, dict[str, object], dict[str, str], type[PublishError]]] = [
    (401, {"error": "The access token is invalid"}, {}, AuthExpired),
    (403, {"error": "This action is not allowed"}, {}, AuthExpired),
    (404, {"error": "Record not found"}, {}, Rejected),
    (413, {"error": "File is too large"}, {}, Rejected),
    (422, {"error": "Validation failed: Text character limit of 500 exceeded"}, {}, Rejected),
    (429, {"error": "Too many requests"}, {"X-RateLimit-Reset": "2099-01-01T00:00:00.000Z"},
     RateLimited),
    (500, {"error": "Internal Server Error"}, {}, Transient),
    (502, {"error": "Bad Gateway"}, {}, PlatformOutage),
    (503, {"error": "There was a temporary problem serving your request"}, {}, PlatformOutage),
]


@pytest.mark.parametrize(("status", "body", "headers", "expected"), ERROR_TABLE,
                         ids=[str(row[0]) for row in ERROR_TABLE])
async def test_it_maps_each_documented_error_to_its_class(
    status: int, body: dict[str, object], headers: dict[str, str],
    expected: type[PublishError],
) -> None:
    adapter = mocked(lambda _: httpx.Response(status, json=body, headers=headers))
    with pytest.raises(PublishError) as caught:
        await adapter.publish(text_content(), CREDS, idempotency_key="k")
    assert type(caught.value) is expected
    assert caught.value.http_status == status
    assert TOKEN not in str(caught.value)
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after_s > timedelta(days=365).total_seconds()


async def test_it_flattens_the_field_details_of_a_validation_error() -> None:
    body = {"error": "Validation failed: Text can't be blank", "details": {
        "text": [{"error": "ERR_BLANK", "description": "can't be blank"}]}}
    adapter = mocked(lambda _: httpx.Response(422, content=json.dumps(body)))
    with pytest.raises(Rejected) as caught:
        await adapter.publish(text_content(), CREDS, idempotency_key="k")
    assert caught.value.reason == (
        "Mastodon refused the post: Validation failed: Text can't be blank; "
        "text: can't be blank")


async def test_the_simulators_rate_limit_waits_until_its_reset() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        await sim.set_fault("mastodon", "rate_limited", retry_after_s=120)
        async with sim.client() as client:
            with pytest.raises(RateLimited) as caught:
                await adapter_for(sim, client).publish(text_content(), credentials,
                                                       idempotency_key="k")
    assert 100 < caught.value.retry_after_s <= 121


async def test_it_names_missing_credentials_and_sends_nothing() -> None:
    adapter = mocked(lambda _: pytest.fail("nothing may be sent"))
    with pytest.raises(AuthExpired, match="access_token"):
        await adapter.publish(text_content(), Credentials({}), idempotency_key="k")
    with pytest.raises(AuthExpired, match="instance_url"):
        await adapter.publish(text_content(), Credentials(
            {"access_token": TOKEN, "instance_url": "http://10.0.0.1/x"}), idempotency_key="k")
    assert adapter.missing_credentials(Credentials({"instance_url": "x"})) == ["access_token"]


async def test_it_checks_credentials_and_reports_an_expired_token() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            info = await adapter.check_credentials(credentials)
            await sim.set_fault("mastodon", "auth_expired")
            with pytest.raises(AuthExpired) as caught:
                await adapter.check_credentials(credentials)
    assert info.name == "@brand@mastodon.social" and info.account_id
    assert TOKEN not in str(caught.value)


async def test_it_deletes_a_status_and_a_second_delete_is_harmless() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            published = await adapter.publish(text_content(), credentials, idempotency_key="d")
            await adapter.delete(published.external_id, credentials)
            await adapter.delete(published.external_id, credentials)
            response = await client.get(
                f"https://mastodon.social/api/v1/statuses/{published.external_id}",
                headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 404


async def test_no_error_message_contains_the_token() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        for fault in ("timeout", "refused", "http_5xx", "auth_expired"):
            await sim.set_fault("mastodon", fault)
            async with sim.client() as client:
                with pytest.raises(PublishError) as caught:
                    await MastodonAdapter(client=client, clock=sim.world.clock,
                                          timeout_s=0.3).publish(
                        text_content(), credentials, idempotency_key="s")
            await sim.clear_faults()
            assert TOKEN not in str(caught.value), fault
