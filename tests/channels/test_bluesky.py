"""The Bluesky adapter against the simulated bsky.social PDS, and its error table."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from sidestep.channels.adapters._facets import record_key_for
from sidestep.channels.adapters.bluesky import BlueskyAdapter
from sidestep.channels.errors import (
    AuthExpired,
    PlatformOutage,
    PublishError,
    RateLimited,
    Rejected,
    Transient,
)
from sidestep.clock import FrozenClock, SystemClock
from sidestep.domain.content import Content, MediaItem, MediaKind
from sidestep.sim.platforms.bluesky import did_for
from sidestep.sim.server import Simulator
from sidestep.sim.testing import running_simulator
from sidestep.vault import Credentials
from tests.channels.conftest import PNG_1PX

HANDLE = "brand.bsky.social"
FRIEND = "friend.bsky.social"
APP_PASSWORD = "abcd-efgh-ijkl-mnop"
TID_CHARS = "234567abcdefghijklmnopqrstuvwxyz"
TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")


async def prepare(sim: Simulator) -> dict[str, str]:
    sim.world.grant_token("bluesky", APP_PASSWORD, HANDLE)
    return {"identifier": HANDLE, "app_password": APP_PASSWORD, "service": "https://bsky.social"}


def text_content() -> Content:
    return Content(text="We are still here while the other place is down.")


def media_content() -> Content | None:
    return Content(text="Picture of the day", media=(
        MediaItem(MediaKind.IMAGE, "image/png", PNG_1PX, alt="A dot", filename="dot.png"),))


def adapter_for(sim: Simulator, client: httpx.AsyncClient) -> BlueskyAdapter:
    return BlueskyAdapter(client=client, clock=sim.world.clock, timeout_s=2, poll_interval_s=0.01)


def calls_to(paths: list[str]) -> dict[str, list[Callable[[httpx.Request], object]]]:
    async def hook(request: httpx.Request) -> None:
        paths.append(request.url.path.rsplit("/", 1)[-1])
    return {"request": [hook]}


async def test_it_posts_once_with_facets_at_utf8_byte_offsets() -> None:
    text = "Café ☕ with @friend.bsky.social and @nobody.example.com at https://example.com #open"
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        sim.world.grant_token("bluesky", "friend-password", FRIEND)
        async with sim.client() as client:
            published = await adapter_for(sim, client).publish(
                Content(text=text), credentials, idempotency_key="k1")
        [record] = sim.world.record.all("bluesky")
    post = record.payload["record"]
    assert record.external_id == published.external_id
    assert published.external_id == f"at://{did_for(HANDLE)}/app.bsky.feed.post/" \
        f"{record_key_for('k1')}"
    assert published.url == f"https://bsky.app/profile/{HANDLE}/post/{record_key_for('k1')}"
    assert post["text"] == text and post["createdAt"].endswith("Z")
    raw = text.encode()
    spans = {raw[f["index"]["byteStart"]:f["index"]["byteEnd"]].decode(): f["features"][0]
             for f in post["facets"]}
    assert spans == {
        "@friend.bsky.social": {"$type": "app.bsky.richtext.facet#mention",
                                "did": did_for(FRIEND)},
        "https://example.com": {"$type": "app.bsky.richtext.facet#link",
                                "uri": "https://example.com"},
        "#open": {"$type": "app.bsky.richtext.facet#tag", "tag": "open"},
    }


async def test_it_uploads_images_with_alt_text_into_an_images_embed() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        content = media_content()
        assert content is not None
        async with sim.client() as client:
            await adapter_for(sim, client).publish(content, credentials, idempotency_key="m")
        [record] = sim.world.record.all("bluesky")
    embed = record.payload["record"]["embed"]
    assert embed["$type"] == "app.bsky.embed.images"
    [image] = embed["images"]
    assert image["alt"] == "A dot"
    assert image["image"]["mimeType"] == "image/png" and image["image"]["size"] == len(PNG_1PX)


async def test_a_link_becomes_an_external_card() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            await adapter_for(sim, client).publish(
                Content(text="Read this", link="https://example.com/a", title="Our plan"),
                credentials, idempotency_key="l")
        [record] = sim.world.record.all("bluesky")
    assert record.payload["record"]["text"] == "Read this"
    assert record.payload["record"]["embed"] == {"$type": "app.bsky.embed.external", "external": {
        "uri": "https://example.com/a", "title": "Our plan", "description": ""}}


async def test_replies_name_the_thread_root_and_their_parent() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            first = await adapter.publish(Content(text="1/3"), credentials, idempotency_key="a")
            second = await adapter.publish(Content(text="2/3", reply_to=first.external_id),
                                           credentials, idempotency_key="b")
            await adapter.publish(Content(text="3/3", reply_to=second.external_id),
                                  credentials, idempotency_key="c")
            with pytest.raises(Rejected, match="no longer exists"):
                await adapter.publish(Content(text="x", reply_to=first.external_id + "x"),
                                      credentials, idempotency_key="d")
        records = sim.world.record.all("bluesky")
    first_ref = {"uri": first.external_id, "cid": records[0].payload["cid"]}
    second_ref = {"uri": second.external_id, "cid": records[1].payload["cid"]}
    assert records[1].payload["record"]["reply"] == {"root": first_ref, "parent": first_ref}
    assert records[2].payload["record"]["reply"] == {"root": first_ref, "parent": second_ref}


async def test_a_repeated_key_returns_the_first_post_and_find_sees_it() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            assert await adapter.find("same", credentials) is None
            first = await adapter.publish(text_content(), credentials, idempotency_key="same")
            again = await adapter.publish(text_content(), credentials, idempotency_key="same")
            found = await adapter.find("same", credentials)
        assert first == again == found
        assert len(sim.world.record.all("bluesky")) == 1


def test_record_keys_are_valid_tids_derived_from_the_key() -> None:
    keys = [record_key_for(f"delivery-{n}") for n in range(500)]
    assert all(TID.match(key) for key in keys)
    assert len(set(keys)) == 500
    assert record_key_for("delivery-1") == keys[1]
    micros = [sum(TID_CHARS.index(c) << (5 * (12 - n)) for n, c in enumerate(key)) >> 10
              for key in keys]
    assert all(datetime.fromtimestamp(m / 1e6, UTC).year == 2023 for m in micros)


async def test_one_session_serves_many_posts_and_an_expired_token_is_refreshed() -> None:
    clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    paths: list[str] = []
    async with running_simulator(clock=clock) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client(event_hooks=calls_to(paths)) as client:
            adapter = adapter_for(sim, client)
            await adapter.publish(Content(text="one"), credentials, idempotency_key="1")
            await adapter.publish(Content(text="two"), credentials, idempotency_key="2")
            clock.advance(seconds=3 * 3600)  # access tokens live two hours
            await adapter.publish(Content(text="three"), credentials, idempotency_key="3")
            clock.advance(seconds=100 * 86400)  # refresh tokens live 90 days
            await adapter.publish(Content(text="four"), credentials, idempotency_key="4")
        assert len(sim.world.record.all("bluesky")) == 4
    assert paths.count("com.atproto.server.createSession") == 2
    assert paths.count("com.atproto.server.refreshSession") == 2
    assert paths.count("com.atproto.repo.createRecord") == 6  # two refused with ExpiredToken


async def test_a_revoked_app_password_is_auth_expired() -> None:
    clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    async with running_simulator(clock=clock) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            await adapter.check_credentials(credentials)
            del sim.world.tokens["bluesky"][APP_PASSWORD]
            clock.advance(seconds=100 * 86400)
            with pytest.raises(AuthExpired) as caught:
                await adapter.publish(text_content(), credentials, idempotency_key="r")
    assert caught.value.platform_code == "AuthenticationRequired"
    assert APP_PASSWORD not in str(caught.value)


def test_it_counts_graphemes_and_bytes_as_the_lexicon_does() -> None:
    adapter = BlueskyAdapter(client=httpx.AsyncClient())
    family = "👨‍👩‍👧"
    image = MediaItem(MediaKind.IMAGE, "image/png", PNG_1PX, filename="a.png")
    assert adapter.text_length(family * 3) == 3
    assert adapter.validate(Content(text="é" * 300)) == []
    assert [p.code for p in adapter.validate(Content(text="x" * 301))] == ["too_long"]
    heavy = adapter.validate(Content(text=family * 200))
    assert [p.code for p in heavy] == ["too_long"] and "bytes" in heavy[0].message
    mix = adapter.validate(Content(text="x", media=(
        image, MediaItem(MediaKind.VIDEO, "video/quicktime", b"0", filename="b.mov"))))
    assert [p.code for p in mix] == ["media_mix", "media_kind"]
    big = MediaItem(MediaKind.IMAGE, "image/png", b"0" * 2_000_001, filename="big.png")
    assert [p.code for p in adapter.validate(Content(text="x", media=(big,)))] == [
        "media_too_large"]
    with_link = adapter.validate(Content(text="x" * 290, link="https://example.com",
                                         media=(image,)))
    assert [p.code for p in with_link] == ["too_long"] and "link" in with_link[0].message


def pds(create_record: httpx.Response,
        seen: list[str] | None = None) -> Callable[[httpx.Request], httpx.Response]:
    """A PDS that logs in, has no records, and answers createRecord with `create_record`."""
    def handler(request: httpx.Request) -> httpx.Response:
        nsid = request.url.path.rsplit("/", 1)[-1]
        if seen is not None:
            seen.append(f"{request.url.host} {nsid}")
        if nsid == "com.atproto.server.createSession":
            return httpx.Response(200, json={"accessJwt": "access-jwt-secret",
                                             "refreshJwt": "refresh-jwt-secret",
                                             "did": "did:plc:abc", "handle": HANDLE})
        if nsid == "com.atproto.repo.getRecord":
            return httpx.Response(400, json={"error": "RecordNotFound",
                                             "message": "Could not locate record"})
        if nsid == "com.atproto.repo.createRecord":
            return create_record
        return httpx.Response(400, json={"error": "InvalidToken", "message": "Bad token"})
    return handler


def mocked(handler: Callable[[httpx.Request], httpx.Response]) -> BlueskyAdapter:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return BlueskyAdapter(client=client, clock=SystemClock(), timeout_s=2)


CREDS = Credentials({"identifier": HANDLE, "app_password": APP_PASSWORD})
ERROR_TABLE: list[tuple[int, dict[str, str], dict[str, str], type[PublishError]]] = [
    (400, {"error": "InvalidRequest", "message": "Record/text must not be longer than 300 "
           "graphemes"}, {}, Rejected),
    (413, {"error": "PayloadTooLarge", "message": "request entity too large"}, {}, Rejected),
    (401, {"error": "AuthenticationRequired", "message": "Authentication Required"}, {},
     AuthExpired),
    (400, {"error": "AccountTakedown", "message": "Account has been taken down"}, {},
     AuthExpired),
    (400, {"error": "ExpiredToken", "message": "Token has expired"}, {}, AuthExpired),
    (429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
     {"ratelimit-reset": "4102444800"}, RateLimited),
    (500, {"error": "InternalServerError", "message": "Internal Server Error"}, {}, Transient),
    (502, {"error": "UpstreamFailure", "message": "Upstream Failure"}, {}, PlatformOutage),
    (503, {"error": "NotEnoughResources", "message": "Service Unavailable"}, {},
     PlatformOutage),
]


@pytest.mark.parametrize(("status", "body", "headers", "expected"), ERROR_TABLE,
                         ids=[row[1]["error"] for row in ERROR_TABLE])
async def test_it_maps_each_documented_error_to_its_class(
    status: int, body: dict[str, str], headers: dict[str, str], expected: type[PublishError],
) -> None:
    adapter = mocked(pds(httpx.Response(status, json=body, headers=headers)))
    with pytest.raises(PublishError) as caught:
        await adapter.publish(text_content(), CREDS, idempotency_key="k")
    assert type(caught.value) is expected
    assert caught.value.http_status == status
    if expected is not AuthExpired:  # an expired token is renewed first, then refused again
        assert caught.value.platform_code == body["error"]
    assert body["message"] in str(caught.value) or expected is AuthExpired
    for secret in (APP_PASSWORD, "access-jwt-secret", "refresh-jwt-secret"):
        assert secret not in str(caught.value)
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after_s > 86400


async def test_it_uses_the_service_named_in_the_credentials() -> None:
    seen: list[str] = []
    created = httpx.Response(200, json={"uri": "at://did:plc:abc/app.bsky.feed.post/x",
                                        "cid": "bafyreiabc"})
    await mocked(pds(created, seen)).publish(text_content(), Credentials(
        {**CREDS, "service": "https://pds.example.org/"}), idempotency_key="k")
    assert seen == ["pds.example.org com.atproto.server.createSession",
                    "pds.example.org com.atproto.repo.createRecord"]


async def test_it_names_missing_credentials_and_sends_nothing() -> None:
    adapter = mocked(lambda _: pytest.fail("nothing may be sent"))
    with pytest.raises(AuthExpired, match="identifier and app_password"):
        await adapter.publish(text_content(), Credentials({}), idempotency_key="k")
    with pytest.raises(AuthExpired, match="service"):
        await adapter.publish(text_content(), Credentials(
            {**CREDS, "service": "http://127.0.0.1:2583"}), idempotency_key="k")


async def test_it_checks_credentials_and_reports_an_expired_token() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            info = await adapter_for(sim, client).check_credentials(credentials)
            await sim.set_fault("bluesky", "auth_expired")
            with pytest.raises(AuthExpired) as caught:
                await adapter_for(sim, client).check_credentials(credentials)
    assert info.account_id == did_for(HANDLE) and info.name == f"@{HANDLE}"
    assert caught.value.platform_code == "ExpiredToken"


async def test_it_deletes_a_post_and_find_no_longer_sees_it() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        async with sim.client() as client:
            adapter = adapter_for(sim, client)
            published = await adapter.publish(text_content(), credentials, idempotency_key="d")
            await adapter.delete(published.external_id, credentials)
            await adapter.delete(published.external_id, credentials)
            assert await adapter.find("d", credentials) is None
            with pytest.raises(Rejected):
                await adapter.delete("https://bsky.app/profile/x/post/y", credentials)


async def test_no_error_message_contains_a_secret() -> None:
    async with running_simulator(seed=1) as sim:
        credentials = Credentials(await prepare(sim))
        for fault in ("timeout", "refused", "http_5xx", "auth_expired", "rate_limited"):
            await sim.set_fault("bluesky", fault)
            async with sim.client() as client:
                with pytest.raises(PublishError) as caught:
                    await BlueskyAdapter(client=client, clock=sim.world.clock,
                                         timeout_s=0.3).publish(
                        text_content(), credentials, idempotency_key="s")
            await sim.clear_faults()
            assert APP_PASSWORD not in str(caught.value), fault
            assert "eyJ" not in str(caught.value), fault  # no JWT either
        assert json.dumps([r.payload for r in sim.world.record.all("bluesky")]) == "[]"


async def test_a_create_refused_because_the_key_exists_returns_the_earlier_post() -> None:
    # @atproto/pds 0.4 answers a create at an existing record key with a bare 500.
    uri = f"at://did:plc:abc/app.bsky.feed.post/{record_key_for('k')}"

    def handler(request: httpx.Request) -> httpx.Response:
        nsid = request.url.path.rsplit("/", 1)[-1]
        if nsid == "com.atproto.repo.getRecord":
            assert request.url.params["rkey"] == record_key_for("k")
            return httpx.Response(200, json={"uri": uri, "cid": "bafyreiabc",
                                             "value": {"text": "earlier"}})
        if nsid == "com.atproto.repo.createRecord":
            return httpx.Response(500, json={"error": "InternalServerError",
                                             "message": "Internal Server Error"})
        return pds(httpx.Response(500))(request)

    published = await mocked(handler).publish(text_content(), CREDS, idempotency_key="k")
    assert published.external_id == uri


@pytest.mark.parametrize(("status", "error", "expected"), [
    (400, "InvalidRequest", Transient), (413, "PayloadTooLarge", Rejected)])
async def test_an_upload_refusal_is_the_media_path_failing_unless_the_file_is_too_big(
        status: int, error: str, expected: type[PublishError]) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("com.atproto.repo.uploadBlob"):
            return httpx.Response(status, json={"error": error, "message": "no"})
        return pds(httpx.Response(200, json={"uri": "at://x/y/z", "cid": "b"}), seen)(request)

    with pytest.raises(PublishError) as caught:
        await mocked(handler).publish(media_content() or text_content(), CREDS,
                                      idempotency_key="k")
    assert type(caught.value) is expected and caught.value.platform_code == error
    assert not any("createRecord" in call for call in seen)
