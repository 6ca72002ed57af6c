"""The LinkedIn adapter against the simulated api.linkedin.com, and its error table."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from sidestep.channels.adapters.linkedin import LinkedInAdapter, api_version, escape_little
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
from sidestep.sim.platforms.linkedin import LinkedInProfile
from sidestep.sim.server import Simulator
from sidestep.sim.testing import running_simulator
from sidestep.vault import Credentials
from tests.channels.conftest import PNG_1PX, FastClock, answer

TOKEN = "linkedin-member-token-secret-0123"
_members = itertools.count(1)


def profile(sim: Simulator) -> LinkedInProfile:
    found = sim.profiles["linkedin"]
    assert isinstance(found, LinkedInProfile)
    return found


async def prepare(sim: Simulator) -> dict[str, str]:
    # A fresh member each time: LinkedIn refuses commentary an author has already posted.
    number = next(_members)
    token, member = f"{TOKEN}-{number}", f"Brand Manager{number}"
    sim.world.grant_token("linkedin", token, member)
    return {"access_token": token, "author_urn": profile(sim).person_urn(member)}


def text_content() -> Content:
    return Content(text="We are still here while the other place is down.")


def media_content() -> Content | None:
    return Content(text="Picture of the day", media=(
        MediaItem(MediaKind.IMAGE, "image/png", PNG_1PX, alt="A dot", filename="dot.png"),))


class Impatient(LinkedInAdapter):
    """Gives up after five status checks, so a test need not wait for ninety."""

    max_polls = 5


def adapter_for(sim: Simulator, client: httpx.AsyncClient) -> LinkedInAdapter:
    return LinkedInAdapter(client=client, clock=sim.world.clock, timeout_s=2,
                           poll_interval_s=0.01)


NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CREDS = Credentials({"access_token": TOKEN, "author_urn": "urn:li:person:abc123"})


def mocked(handler: Callable[[httpx.Request], httpx.Response]) -> LinkedInAdapter:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return LinkedInAdapter(client=client, clock=FrozenClock(NOW), timeout_s=2,
                           poll_interval_s=0)


# -- publishing -----------------------------------------------------------------------------


async def test_it_posts_text_once_with_the_payload_as_sent() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            published = await adapter_for(sim, client).publish(
                Content(text="Hello (again) #sidestep", link="https://example.com/a"),
                credentials, idempotency_key="k1")
        [record] = sim.world.record.all("linkedin")
    assert record.external_id == published.external_id
    assert published.external_id.startswith("urn:li:share:")
    assert published.url == f"https://www.linkedin.com/feed/update/{published.external_id}/"
    assert record.payload == {
        "author": credentials["author_urn"],
        "commentary": "Hello \\(again\\) #sidestep\n\nhttps://example.com/a",
        "visibility": "PUBLIC",
        "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [],
                         "thirdPartyDistributionChannels": []},
        "lifecycleState": "PUBLISHED", "isReshareDisabledByAuthor": False,
    }


def test_it_escapes_little_reserved_characters_but_keeps_hashtags() -> None:
    assert escape_little("50% off (today) @home *new* a_b ~x~ [y] {z} <w> | \\ #deal") == (
        "50% off \\(today\\) \\@home \\*new\\* a\\_b \\~x\\~ \\[y\\] \\{z\\} \\<w\\> \\| \\\\ #deal")


async def test_it_uploads_an_image_waits_until_available_and_attaches_it() -> None:
    async with running_simulator(clock=FastClock()) as sim:
        credentials = Credentials(await prepare(sim))
        content = media_content()
        assert content is not None
        async with sim.client() as client:
            await adapter_for(sim, client).publish(content, credentials, idempotency_key="m")
        [record] = sim.world.record.all("linkedin")
    media = record.payload["content"]["media"]
    assert media["id"].startswith("urn:li:image:")
    assert media["altText"] == "A dot"


async def test_it_reads_an_image_still_processing_after_every_poll_as_transient() -> None:
    # World time stands still, so the image never leaves PROCESSING.
    async with running_simulator(clock=FrozenClock(datetime.now(UTC))) as sim:
        credentials = Credentials(await prepare(sim))
        content = media_content()
        assert content is not None
        async with sim.client() as client:
            adapter = Impatient(client=client, clock=sim.world.clock, timeout_s=2,
                                poll_interval_s=0.001)
            with pytest.raises(Transient, match="still processing"):
                await adapter.publish(content, credentials, idempotency_key="m")
        assert sim.world.record.all("linkedin") == []


async def test_it_posts_as_an_organization_the_member_administers() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = await prepare(sim)
        member = sim.world.account_for("linkedin", credentials["access_token"])
        assert member is not None
        profile(sim).grant_organization(member, "2414183")
        as_page = Credentials({**credentials, "author_urn": "urn:li:organization:2414183"})
        as_other = Credentials({**credentials, "author_urn": "urn:li:organization:999"})
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            await adapter.publish(text_content(), as_page, idempotency_key="o")
            with pytest.raises(AuthExpired, match="right to post as this author"):
                await adapter.publish(text_content(), as_other, idempotency_key="p")
        [record] = sim.world.record.all("linkedin")
    assert record.payload["author"] == "urn:li:organization:2414183"


async def test_it_rejects_a_duplicate_post_and_posts_it_only_once() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            await adapter.publish(text_content(), credentials, idempotency_key="d1")
            with pytest.raises(Rejected) as caught:
                await adapter.publish(text_content(), credentials, idempotency_key="d2")
        assert len(sim.world.record.all("linkedin")) == 1
    assert caught.value.platform_code == "DUPLICATE_POST"
    assert "change the words" in caught.value.reason


async def test_it_reads_a_version_linkedin_no_longer_serves_as_unknown_and_unsent() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            stale = LinkedInAdapter(client=client, timeout_s=2, clock=FrozenClock(
                sim.world.clock.now() - timedelta(days=800)))
            with pytest.raises(Unknown, match="needs an update") as caught:
                await stale.publish(text_content(), credentials, idempotency_key="v")
        assert sim.world.record.all("linkedin") == []
    assert caught.value.maybe_sent is False
    assert caught.value.http_status == 426


def test_it_asks_for_the_version_of_the_month_before() -> None:
    assert api_version(datetime(2026, 11, 23, tzinfo=UTC)) == "202610"
    assert api_version(datetime(2026, 1, 1, tzinfo=UTC)) == "202512"


async def test_it_names_missing_credentials_without_calling_linkedin() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500)

    with pytest.raises(AuthExpired, match="author_urn"):
        await mocked(handler).publish(text_content(), Credentials({"access_token": TOKEN}),
                                      idempotency_key="k")
    with pytest.raises(AuthExpired, match="URN"):
        await mocked(handler).publish(text_content(), Credentials(
            {"access_token": TOKEN, "author_urn": "brand"}), idempotency_key="k")
    assert calls == []


# -- validation -----------------------------------------------------------------------------


def test_it_counts_the_escaped_commentary_against_3000_characters() -> None:
    adapter = LinkedInAdapter(client=httpx.AsyncClient())
    assert adapter.validate(Content(text="a" * 3000)) == []
    [problem] = adapter.validate(Content(text="(" * 1501))
    assert problem.code == "too_long"
    [problem] = adapter.validate(Content(text="a" * 2990, link="https://example.com/x"))
    assert "with the link" in problem.message


def test_it_refuses_videos_and_more_than_one_image_for_now() -> None:
    adapter = LinkedInAdapter(client=httpx.AsyncClient())
    image = MediaItem(MediaKind.IMAGE, "image/png", PNG_1PX, filename="a.png")
    video = MediaItem(MediaKind.VIDEO, "video/mp4", b"v", filename="b.mp4")
    [problem] = adapter.validate(Content(text="x", media=(video,)))
    assert problem.code == "media_kind" and "b.mp4" in problem.message
    [problem] = adapter.validate(Content(text="x", media=(image, image)))
    assert problem.code == "too_many_media"


def test_it_refuses_a_reply_linkedin_cannot_thread() -> None:
    adapter = LinkedInAdapter(client=httpx.AsyncClient())
    [problem] = adapter.validate(Content(text="2/2", reply_to="urn:li:share:1"))
    assert problem.code == "reply_unsupported"


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
        await sim.set_fault("linkedin", fault, **params)
        async with sim.client() as client:
            with pytest.raises(PublishError) as caught:
                await adapter_for(sim, client).publish(text_content(), credentials,
                                                       idempotency_key="f")
        assert sim.world.record.all("linkedin") == []
    assert type(caught.value) is expected
    if isinstance(caught.value, RateLimited):
        assert 1 <= caught.value.retry_after_s <= 900  # LinkedIn sends no headers
    if isinstance(caught.value, Unknown):
        assert caught.value.maybe_sent  # a 200 without the URN: the post may exist


async def test_it_reads_a_failing_image_upload_as_transient_while_text_still_posts() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        await sim.set_fault("linkedin", "partial", feature="media")
        content = media_content()
        assert content is not None
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            with pytest.raises(Transient, match="image upload step"):
                await adapter.publish(content, credentials, idempotency_key="m")
            await adapter.publish(text_content(), credentials, idempotency_key="t")
        assert len(sim.world.record.all("linkedin")) == 1


# -- the error table, for answers no simulated fault produces ---------------------------------

TABLE: list[tuple[str, int, object, dict[str, str], type[PublishError]]] = [
    ("65600 invalid token", 401, {"status": 401, "serviceErrorCode": 65600,
                                  "code": "INVALID_ACCESS_TOKEN", "message": "Invalid access "
                                  "token"}, {}, AuthExpired),
    ("65602 expired token", 401, {"status": 401, "serviceErrorCode": 65602,
                                  "code": "EXPIRED_ACCESS_TOKEN", "message": "The token used in "
                                  "the request has expired"}, {}, AuthExpired),
    ("100 access denied", 403, {"status": 403, "serviceErrorCode": 100, "code": "ACCESS_DENIED",
                                "message": "Not enough permissions"}, {}, AuthExpired),
    ("duplicate post", 422, {"status": 422, "message": "Content is a duplicate of "
                             "urn:li:share:7100000000000000001", "errorDetails": {"inputErrors": [
                                 {"code": "DUPLICATE_POST", "description": "Duplicate post is "
                                  "detected", "input": {}}]}}, {}, Rejected),
    ("schema error", 422, {"status": 422, "message": "ERROR :: /commentary :: length of 3001 "
                           "exceeds the maximum of 3000\n"}, {}, Rejected),
    ("bad request", 400, {"status": 400, "code": "ILLEGAL_ARGUMENT", "message": "Invalid URN"},
     {}, Rejected),
    ("version", 426, {"status": 426, "code": "NONEXISTENT_VERSION", "message": "Requested "
                      "version 202401 is not active"}, {}, Unknown),
    ("throttled with Retry-After", 429, {"status": 429, "message": "Resource level throttle "
                                         "limit for calls to this resource is reached."},
     {"Retry-After": "30"}, RateLimited),
    ("server error", 500, {"status": 500, "message": "Internal Server Error"}, {}, Transient),
    ("unavailable", 503, {"status": 503, "message": "Service Unavailable"}, {}, PlatformOutage),
    ("gateway page", 504, b"<html>504 Gateway Time-out</html>", {}, PlatformOutage),
    ("proxy page", 403, b"<html>denied</html>", {}, Transient),
    ("created without id", 201, b"", {}, Unknown),
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
    if case == "created without id":
        assert isinstance(caught.value, Unknown) and caught.value.maybe_sent


async def test_it_waits_at_most_until_midnight_utc_when_throttled_without_a_hint() -> None:
    client = httpx.AsyncClient(transport=httpx.MockTransport(answer(429, {"status": 429})))
    late = LinkedInAdapter(client=client, clock=FrozenClock(
        datetime(2026, 11, 23, 23, 58, tzinfo=UTC)), timeout_s=2)
    with pytest.raises(RateLimited) as caught:
        await late.publish(text_content(), CREDS, idempotency_key="r")
    assert caught.value.retry_after_s == 120
    with pytest.raises(RateLimited) as caught:
        await mocked(answer(429, {"status": 429})).publish(text_content(), CREDS,
                                                           idempotency_key="r")
    assert caught.value.retry_after_s == 900


async def test_it_reads_failed_image_processing_as_rejected() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("action") == "initializeUpload":
            return httpx.Response(200, json={"value": {
                "uploadUrl": "https://www.linkedin.com/dms-uploads/D4E/uploaded-image/0?ut=x",
                "image": "urn:li:image:D4E"}})
        if request.method == "PUT":
            return httpx.Response(201)
        return httpx.Response(200, json={"status": "PROCESSING_FAILED", "id": "urn:li:image:D4E"})

    with pytest.raises(Rejected, match="could not process dot.png"):
        await mocked(handler).publish(media_content() or text_content(), CREDS,
                                      idempotency_key="m")


async def test_it_never_sends_the_token_to_an_upload_address_outside_linkedin() -> None:
    hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        return httpx.Response(200, json={"value": {
            "uploadUrl": "https://uploads.example.net/put?ut=x", "image": "urn:li:image:D4E"}})

    with pytest.raises(Transient, match="outside linkedin.com"):
        await mocked(handler).publish(media_content() or text_content(), CREDS,
                                      idempotency_key="m")
    assert hosts == ["api.linkedin.com"]


# -- account, deletion, secrets -------------------------------------------------------------


async def test_it_names_the_member_and_refuses_a_token_of_someone_else() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = await prepare(sim)
        other = await prepare(sim)
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            info = await adapter.check_credentials(Credentials(credentials))
            with pytest.raises(AuthExpired, match="another member"):
                await adapter.check_credentials(Credentials(
                    {**credentials, "author_urn": other["author_urn"]}))
            with pytest.raises(AuthExpired):
                await adapter.check_credentials(Credentials(
                    {**credentials, "access_token": "revoked-token"}))
    assert info.account_id == credentials["author_urn"]
    assert info.name.startswith("Brand Manager")


async def test_it_deletes_a_post_and_takes_a_second_delete_as_done() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            published = await adapter.publish(text_content(), credentials, idempotency_key="k")
            await adapter.delete(published.external_id, credentials)
            await adapter.delete(published.external_id, credentials)
            # The commentary is free again: LinkedIn no longer holds a post with it.
            await adapter.publish(text_content(), credentials, idempotency_key="k2")


async def test_it_never_puts_the_token_in_an_error_message() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        token = credentials["access_token"]
        seen: list[PublishError] = []
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            for fault in ("auth_expired", "rate_limited", "http_5xx", "garbage", "timeout"):
                await sim.set_fault("linkedin", fault)
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
