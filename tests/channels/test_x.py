"""The X adapter against the simulated api.x.com, and its error table."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from sidestep.channels.adapters.x import XAdapter, weighted_length
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
from tests.channels.conftest import PNG_1PX, FastClock
from tests.channels.conftest import answer as documented

TOKEN = "x-user-token-secret-0123456789"
_accounts = itertools.count(1)


async def prepare(sim: Simulator) -> dict[str, str]:
    # A fresh account each time: X refuses text an account has already posted.
    number = next(_accounts)
    token = f"{TOKEN}-{number}"
    sim.world.grant_token("x", token, f"Sidestep Brand {number}")
    return {"access_token": token}


def text_content() -> Content:
    return Content(text="We are still here while the other place is down.")


def media_content() -> Content | None:
    return Content(text="Picture of the day", media=(
        MediaItem(MediaKind.IMAGE, "image/png", PNG_1PX, alt="A dot", filename="dot.png"),))


class Impatient(XAdapter):
    """Gives up after five status checks, so a test need not wait for ninety."""

    max_polls = 5


def adapter_for(sim: Simulator, client: httpx.AsyncClient) -> XAdapter:
    return XAdapter(client=client, clock=sim.world.clock, timeout_s=2, poll_interval_s=0.01)


NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CREDS = Credentials({"access_token": TOKEN})


def mocked(handler: Callable[[httpx.Request], httpx.Response]) -> XAdapter:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return XAdapter(client=client, clock=FrozenClock(NOW), timeout_s=2, poll_interval_s=0)


def answer(status: int, body: object, headers: dict[str, str] | None = None,
           ) -> Callable[[httpx.Request], httpx.Response]:
    return documented(status, body, {"content-type": "application/problem+json",
                                     **(headers or {})})


def problem(status: int, kind: str, detail: str = "", **extra: object) -> dict[str, object]:
    return {"type": f"https://api.x.com/2/problems/{kind}", "title": kind, "detail": detail,
            "status": status, **extra}


# -- publishing -----------------------------------------------------------------------------


async def test_it_posts_text_once_with_the_link_appended_as_sent() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            published = await adapter_for(sim, client).publish(
                Content(text="Hello", link="https://example.com/a"), credentials,
                idempotency_key="k1")
        [record] = sim.world.record.all("x")
    assert record.external_id == published.external_id
    assert published.url == f"https://x.com/i/status/{published.external_id}"
    assert record.payload == {"text": "Hello\n\nhttps://example.com/a"}


async def test_it_uploads_an_image_and_attaches_it_to_the_post() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        content = media_content()
        assert content is not None
        async with sim.client() as client:
            await adapter_for(sim, client).publish(content, credentials, idempotency_key="k")
        [record] = sim.world.record.all("x")
    assert record.payload["text"] == "Picture of the day"
    assert len(record.payload["media"]["media_ids"]) == 1


async def test_it_waits_until_a_video_is_processed_before_posting() -> None:
    video = MediaItem(MediaKind.VIDEO, "video/mp4", b"\x00" * (5 * 1024 * 1024),
                      filename="clip.mp4")  # two chunks
    async with running_simulator(clock=FastClock()) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            await adapter_for(sim, client).publish(
                Content(text="Watch this", media=(video,)), credentials, idempotency_key="v")
        [record] = sim.world.record.all("x")
    assert len(record.payload["media"]["media_ids"]) == 1


async def test_it_reads_media_still_processing_after_every_poll_as_transient() -> None:
    video = MediaItem(MediaKind.VIDEO, "video/mp4", b"\x00" * 1000, filename="clip.mp4")
    # World time stands still, so the video never leaves processing.
    async with running_simulator(clock=FrozenClock(datetime.now(UTC))) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            adapter = Impatient(client=client, clock=sim.world.clock, timeout_s=2,
                                poll_interval_s=0.001)
            with pytest.raises(Transient, match="still processing"):
                await adapter.publish(Content(text="Watch", media=(video,)), credentials,
                                      idempotency_key="v")
        assert sim.world.record.all("x") == []


async def test_it_posts_joined_emoji_that_x_counts_as_two_characters_each() -> None:
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # eight code points, weighs 2
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            content = Content(text=family * 140)
            assert adapter.validate(content) == []
            await adapter.publish(content, credentials, idempotency_key="e")
        assert len(sim.world.record.all("x")) == 1


async def test_it_replies_to_the_post_named_in_reply_to() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            first = await adapter.publish(Content(text="1/2"), credentials, idempotency_key="a")
            await adapter.publish(Content(text="2/2", reply_to=first.external_id), credentials,
                                  idempotency_key="b")
        second = sim.world.record.all("x")[1]
    assert second.payload["reply"] == {"in_reply_to_tweet_id": first.external_id}


async def test_it_reads_a_reply_to_a_deleted_post_as_rejected() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            with pytest.raises(Rejected, match="deleted or not visible"):
                await adapter_for(sim, client).publish(
                    Content(text="late reply", reply_to="1234567890"), credentials,
                    idempotency_key="r")


async def test_it_rejects_duplicate_text_and_posts_it_only_once() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            await adapter.publish(text_content(), credentials, idempotency_key="d1")
            with pytest.raises(Rejected) as caught:
                await adapter.publish(text_content(), credentials, idempotency_key="d2")
        assert len(sim.world.record.all("x")) == 1
    assert caught.value.platform_code == "duplicate"
    assert "change the words" in caught.value.reason


async def test_it_names_missing_credentials_without_calling_x() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500)

    with pytest.raises(AuthExpired, match="access_token"):
        await mocked(handler).publish(text_content(), Credentials({}), idempotency_key="k")
    assert calls == []


# -- validation -----------------------------------------------------------------------------


def test_it_counts_text_the_way_twitter_text_does() -> None:
    assert weighted_length("hello") == 5
    assert weighted_length("日本語") == 6
    assert weighted_length("see https://example.com/a/very/long/path/indeed") == 4 + 23
    assert weighted_length("see www.example.org and sidestep.app") == 9 + 23 + 23
    assert weighted_length("👍") == 2
    assert weighted_length("👍🏽") == 2
    assert weighted_length("👨\u200d👩\u200d👧") == 2
    assert weighted_length("🇫🇷") == 2
    assert weighted_length("café") == weighted_length("cafe\u0301") == 4


def test_it_finds_text_over_280_weighted_characters_too_long() -> None:
    adapter = XAdapter(client=httpx.AsyncClient())
    assert adapter.validate(Content(text="a" * 280)) == []
    [problem_] = adapter.validate(Content(text="語" * 141))
    assert problem_.code == "too_long"
    assert "282" in problem_.message


def test_it_counts_the_appended_link_against_the_limit() -> None:
    adapter = XAdapter(client=httpx.AsyncClient())
    [problem_] = adapter.validate(Content(text="a" * 260, link="https://example.com/x"))
    assert problem_.code == "too_long"
    assert "with the link" in problem_.message


def test_it_refuses_a_video_mixed_with_images_and_unknown_file_types() -> None:
    adapter = XAdapter(client=httpx.AsyncClient())
    image = MediaItem(MediaKind.IMAGE, "image/png", PNG_1PX, filename="a.png")
    video = MediaItem(MediaKind.VIDEO, "video/mp4", b"v", filename="b.mp4")
    heic = MediaItem(MediaKind.IMAGE, "image/heic", b"h", filename="c.heic")
    codes = {p.code for p in adapter.validate(Content(text="x", media=(image, video, heic)))}
    assert codes == {"media_mix", "media_kind"}
    assert adapter.validate(Content(text="x", media=(image,) * 4)) == []


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
        await sim.set_fault("x", fault, **params)
        async with sim.client() as client:
            with pytest.raises(PublishError) as caught:
                await adapter_for(sim, client).publish(text_content(), credentials,
                                                       idempotency_key="f")
        assert sim.world.record.all("x") == []
    assert type(caught.value) is expected
    if isinstance(caught.value, RateLimited):
        assert 6 <= caught.value.retry_after_s <= 8  # from x-rate-limit-reset
    if isinstance(caught.value, Unknown):
        assert caught.value.maybe_sent  # a 200 to a publish that cannot be read


async def test_it_reads_a_failing_media_upload_as_transient_while_text_still_posts() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        await sim.set_fault("x", "partial", feature="media")
        content = media_content()
        assert content is not None
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            with pytest.raises(Transient, match="media upload step"):
                await adapter.publish(content, credentials, idempotency_key="m")
            await adapter.publish(text_content(), credentials, idempotency_key="t")
        assert len(sim.world.record.all("x")) == 1


# -- the error table, for answers no simulated fault produces ---------------------------------

RESET = str(int(NOW.timestamp()) + 120)
TABLE: list[tuple[str, int, object, dict[str, str], type[PublishError]]] = [
    ("429 with reset", 429, {"title": "Too Many Requests", "type": "about:blank"},
     {"x-rate-limit-reset": RESET}, RateLimited),
    ("code 88", 429, {"errors": [{"code": 88, "message": "Rate limit exceeded"}]}, {},
     RateLimited),
    ("usage capped", 429, problem(429, "usage-capped", "Usage cap exceeded", period="Monthly"),
     {}, RateLimited),
    ("code 64 suspended", 403, {"errors": [{"code": 64, "message": "Your account is "
                                "suspended"}]}, {}, AuthExpired),
    ("code 215", 400, {"errors": [{"code": 215, "message": "Bad Authentication data."}]}, {},
     AuthExpired),
    ("code 89", 401, {"errors": [{"code": 89, "message": "Invalid or expired token."}]}, {},
     AuthExpired),
    ("code 32", 401, {"errors": [{"code": 32, "message": "Could not authenticate you."}]}, {},
     AuthExpired),
    ("code 326 locked", 403, {"errors": [{"code": 326, "message": "account locked"}]}, {},
     AuthExpired),
    ("client forbidden", 403, problem(403, "client-forbidden", reason="client-not-enrolled"),
     {}, AuthExpired),
    ("unsupported auth", 403, problem(403, "unsupported-authentication"), {}, AuthExpired),
    ("invalid request", 400, problem(400, "invalid-request", errors=[
        {"message": "text is too long", "parameters": {"text": ["..."]}}]), {}, Rejected),
    ("not found", 404, problem(404, "resource-not-found", "Could not find tweet"), {},
     Rejected),
    ("unavailable", 403, problem(403, "resource-unavailable", "Tweet is unavailable"), {},
     Rejected),
    ("disallowed", 403, problem(403, "disallowed-resource"), {}, Rejected),
    ("not authorized", 403, problem(403, "not-authorized-for-resource"), {}, Rejected),
    ("code 187", 403, {"errors": [{"code": 187, "message": "Status is a duplicate."}]}, {},
     Rejected),
    ("code 186", 403, {"code": 186, "message": "Tweet needs to be a bit shorter."}, {},
     Rejected),
    ("internal error", 500, problem(500, "internal-error"), {}, Transient),
    ("operational disconnect", 400, problem(400, "operational-disconnect"), {}, Transient),
    ("code 131", 500, {"errors": [{"code": 131, "message": "Internal error"}]}, {}, Transient),
    ("code 130", 503, {"errors": [{"code": 130, "message": "Over capacity"}]}, {},
     PlatformOutage),
    ("gateway timeout", 504, b"<html>504</html>", {}, PlatformOutage),
    ("html 403 from a proxy", 403, b"<html>denied</html>", {}, Transient),
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
    if isinstance(caught.value, RateLimited) and case == "429 with reset":
        assert caught.value.retry_after_s == 120


async def test_it_reads_a_403_to_a_media_upload_as_a_connection_to_renew() -> None:
    handler = answer(403, {"title": "Forbidden", "detail": "Forbidden", "type": "about:blank"})
    with pytest.raises(AuthExpired, match="reconnect"):
        await mocked(handler).publish(media_content() or text_content(), CREDS,
                                      idempotency_key="m")


async def test_it_reads_an_invalid_media_request_as_rejected() -> None:
    handler = answer(400, problem(400, "invalid-request", errors=[
        {"message": "Unsupported media type", "parameters": {"media_type": ["image/x"]}}]))
    with pytest.raises(Rejected, match="Unsupported media type"):
        await mocked(handler).publish(media_content() or text_content(), CREDS,
                                      idempotency_key="m")


async def test_it_reads_failed_media_processing_as_rejected() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        data: dict[str, object] = {"id": "1880028106020515840"}
        if request.url.path.endswith("/finalize"):
            data["processing_info"] = {"state": "failed", "error": {
                "code": 1, "name": "InvalidMedia", "message": "Unsupported video codec"}}
        return httpx.Response(200, json={"data": data})

    video = MediaItem(MediaKind.VIDEO, "video/mp4", b"\x00" * 10, filename="clip.mp4")
    with pytest.raises(Rejected, match="Unsupported video codec"):
        await mocked(handler).publish(Content(text="v", media=(video,)), CREDS,
                                      idempotency_key="v")


# -- account, deletion, secrets -------------------------------------------------------------


async def test_it_names_the_account_a_token_opens_and_refuses_an_unknown_one() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            info = await adapter.check_credentials(credentials)
            with pytest.raises(AuthExpired):
                await adapter.check_credentials(Credentials({"access_token": "revoked-token"}))
    assert info.name.startswith("@Sidestep_Brand_")
    assert info.account_id.isdigit()


async def test_it_deletes_a_post_and_takes_a_second_delete_as_done() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            published = await adapter.publish(text_content(), credentials, idempotency_key="k")
            await adapter.delete(published.external_id, credentials)
            await adapter.delete(published.external_id, credentials)
            # The text is free again: X no longer holds a post with it.
            await adapter.publish(text_content(), credentials, idempotency_key="k2")


async def test_it_never_puts_the_token_in_an_error_message() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        token = credentials["access_token"]
        seen: list[PublishError] = []
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            for fault in ("auth_expired", "rate_limited", "http_5xx", "garbage", "timeout"):
                await sim.set_fault("x", fault)
                with pytest.raises(PublishError) as caught:
                    await adapter.publish(text_content(), credentials, idempotency_key="s")
                seen.append(caught.value)
                await sim.clear_faults()
            with pytest.raises(PublishError) as caught:
                await adapter.check_credentials(Credentials({"access_token": token + "x"}))
            seen.append(caught.value)
    for error in seen:
        assert token not in str(error) and token not in repr(error.__cause__)
