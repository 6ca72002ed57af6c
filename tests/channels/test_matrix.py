"""The Matrix adapter against the simulated matrix.org homeserver, and its error table.

The same adapter runs against a real Synapse in `test_matrix_synapse.py`; these tests cover
what a real server will not do on command (faults, garbled answers, rare error codes).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sidestep.channels.adapters.matrix import MatrixAdapter
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
from sidestep.logs import redact_text
from sidestep.sim.platforms.matrix import MatrixProfile
from sidestep.sim.server import Simulator
from sidestep.sim.testing import simulator_fixture
from sidestep.vault import Credentials
from tests.channels.conftest import PNG_1PX, answer

TOKEN = "syt_YnJhbmQ_matrix-secret-token-0001"
USER = "@brand:matrix.org"
ROOM = "!brandroom:matrix.org"
HOMESERVER = "https://matrix-client.matrix.org"

sim = simulator_fixture(seed=3)


async def prepare(sim: Simulator) -> dict[str, str]:
    sim.world.grant_token("matrix", TOKEN, USER)
    return {"homeserver": HOMESERVER, "access_token": TOKEN, "room_id": ROOM}


def text_content() -> Content:
    return Content(text="We are still here while the other place is down.")


def media_content() -> Content | None:
    return Content(text="Picture of the day", media=(
        MediaItem(MediaKind.IMAGE, "image/png", PNG_1PX, alt="A dot", filename="dot.png"),))


def adapter_for(sim: Simulator, client: httpx.AsyncClient) -> MatrixAdapter:
    return MatrixAdapter(client=client, clock=sim.world.clock, timeout_s=2)


def mocked(handler: Callable[[httpx.Request], httpx.Response]) -> MatrixAdapter:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return MatrixAdapter(client=client, clock=SystemClock(), timeout_s=2)


CREDS = Credentials({"homeserver": HOMESERVER, "access_token": TOKEN, "room_id": ROOM})


# -- publishing --------------------------------------------------------------------------------


async def test_it_sends_text_as_one_m_text_event_in_the_room(sim: Simulator) -> None:
    credentials = Credentials(await prepare(sim))
    async with sim.client() as client:
        published = await adapter_for(sim, client).publish(
            text_content(), credentials, idempotency_key="k1")
    [record] = sim.world.record.all("matrix")
    assert record.external_id == published.external_id
    assert published.external_id.startswith("$")
    assert record.account == USER
    assert record.payload == {"room_id": ROOM, "type": "m.room.message", "content": {
        "msgtype": "m.text", "body": "We are still here while the other place is down."}}
    assert published.url == (f"https://matrix.to/#/!brandroom%3Amatrix.org/"
                             f"{published.external_id.replace('$', '%24')}?via=matrix.org")


async def test_a_link_goes_in_the_body_and_as_an_anchor_in_formatted_body(sim: Simulator) -> None:
    credentials = Credentials(await prepare(sim))
    async with sim.client() as client:
        await adapter_for(sim, client).publish(
            Content(text="Find us <here> & there", link="https://example.com/a?b=1&c=2"),
            credentials, idempotency_key="k-link")
    [record] = sim.world.record.all("matrix")
    content = record.payload["content"]
    assert content["body"] == "Find us <here> & there\n\nhttps://example.com/a?b=1&c=2"
    assert content["format"] == "org.matrix.custom.html"
    assert content["formatted_body"] == (
        "Find us &lt;here&gt; &amp; there<br><br>"
        '<a href="https://example.com/a?b=1&amp;c=2">https://example.com/a?b=1&amp;c=2</a>')


async def test_it_uploads_an_image_then_sends_an_m_image_event_naming_it(sim: Simulator) -> None:
    credentials = Credentials(await prepare(sim))
    content = media_content()
    assert content is not None
    async with sim.client() as client:
        await adapter_for(sim, client).publish(content, credentials, idempotency_key="k-img")
        [record] = sim.world.record.all("matrix")
        event = record.payload["content"]
        assert event["msgtype"] == "m.image"
        assert event["body"] == "Picture of the day"  # the caption, since filename is set
        assert event["filename"] == "dot.png"
        assert event["info"] == {"mimetype": "image/png", "size": len(PNG_1PX), "w": 1, "h": 1}
        server, media_id = event["url"].removeprefix("mxc://").split("/")
        stored = await client.get(
            f"{HOMESERVER}/_matrix/client/v1/media/download/{server}/{media_id}",
            headers={"Authorization": f"Bearer {TOKEN}"})
    assert stored.content == PNG_1PX
    assert stored.headers["content-type"] == "image/png"


async def test_a_reply_names_the_event_it_answers(sim: Simulator) -> None:
    credentials = Credentials(await prepare(sim))
    async with sim.client() as client:
        adapter = adapter_for(sim, client)
        first = await adapter.publish(text_content(), credentials, idempotency_key="k-a")
        await adapter.publish(Content(text="And another thing", reply_to=first.external_id),
                              credentials, idempotency_key="k-b")
    reply = sim.world.record.all("matrix")[1].payload["content"]
    assert reply["m.relates_to"] == {"m.in_reply_to": {"event_id": first.external_id}}


async def test_the_same_idempotency_key_sends_one_event(sim: Simulator) -> None:
    credentials = Credentials(await prepare(sim))
    async with sim.client() as client:
        adapter = adapter_for(sim, client)
        first = await adapter.publish(text_content(), credentials, idempotency_key="once")
        again = await adapter.publish(text_content(), credentials, idempotency_key="once")
        other = await adapter.publish(text_content(), credentials, idempotency_key="twice")
    assert again == first
    assert other.external_id != first.external_id
    assert len(sim.world.record.all("matrix")) == 2


async def test_the_homeserver_defaults_to_the_catalogues_and_drops_an_api_path(
    sim: Simulator,
) -> None:
    await prepare(sim)
    async with sim.client() as client:
        adapter = adapter_for(sim, client)
        await adapter.publish(text_content(), Credentials(
            {"access_token": TOKEN, "room_id": ROOM}), idempotency_key="k-default")
        await adapter.publish(text_content(), Credentials(
            {"access_token": TOKEN, "room_id": ROOM,
             "homeserver": f"{HOMESERVER}/_matrix/client/v3/"}), idempotency_key="k-path")
    assert len(sim.world.record.all("matrix")) == 2


# -- errors ------------------------------------------------------------------------------------


async def test_it_reads_an_unknown_token_as_auth_expired(sim: Simulator) -> None:
    async with sim.client() as client:
        with pytest.raises(AuthExpired) as caught:
            await adapter_for(sim, client).publish(text_content(), CREDS, idempotency_key="k")
    assert caught.value.platform_code == "M_UNKNOWN_TOKEN"
    assert caught.value.http_status == 401
    assert TOKEN not in str(caught.value)


async def test_a_room_the_user_has_not_joined_is_auth_expired_not_rejected(
    sim: Simulator,
) -> None:
    credentials = Credentials(await prepare(sim))
    profile = sim.profiles["matrix"]
    assert isinstance(profile, MatrixProfile)
    profile.restrict_rooms(USER, ["!otherroom:matrix.org"])
    async with sim.client() as client:
        with pytest.raises(AuthExpired) as caught:
            await adapter_for(sim, client).publish(text_content(), credentials,
                                                   idempotency_key="k")
    assert caught.value.platform_code == "M_FORBIDDEN"
    assert "joined the room" in str(caught.value)
    assert sim.world.record.all("matrix") == []


async def test_an_event_over_the_size_limit_is_rejected(sim: Simulator) -> None:
    credentials = Credentials(await prepare(sim))
    big = Content(text="x" * 70_000)
    async with sim.client() as client:
        adapter = adapter_for(sim, client)
        assert [p.code for p in adapter.validate(big)] == ["too_long", "too_long"]
        with pytest.raises(Rejected) as caught:
            await adapter.publish(big, credentials, idempotency_key="k-big")
    assert caught.value.platform_code == "M_TOO_LARGE"


async def test_it_waits_as_long_as_retry_after_ms_says(sim: Simulator) -> None:
    credentials = Credentials(await prepare(sim))
    await sim.set_fault("matrix", "rate_limited", retry_after_s=2.5)
    async with sim.client() as client:
        with pytest.raises(RateLimited) as caught:
            await adapter_for(sim, client).publish(text_content(), credentials,
                                                   idempotency_key="k")
    assert caught.value.retry_after_s == 2.5  # from retry_after_ms; the header says 3
    assert caught.value.platform_code == "M_LIMIT_EXCEEDED"


@pytest.mark.parametrize(("kind", "expected"), [
    ("server_error", Transient), ("unavailable", PlatformOutage)])
async def test_a_500_is_transient_and_a_503_an_outage(
    sim: Simulator, kind: str, expected: type[PublishError],
) -> None:
    credentials = Credentials(await prepare(sim))
    await sim.set_fault("matrix", "http_5xx", kind=kind)
    async with sim.client() as client:
        with pytest.raises(expected):
            await adapter_for(sim, client).publish(text_content(), credentials,
                                                   idempotency_key="k")


async def test_a_garbled_answer_to_the_send_may_mean_it_was_sent(sim: Simulator) -> None:
    credentials = Credentials(await prepare(sim))
    await sim.set_fault("matrix", "garbage", variant="json")
    async with sim.client() as client:
        adapter = adapter_for(sim, client)
        with pytest.raises(Unknown) as caught:
            await adapter.publish(text_content(), credentials, idempotency_key="k")
        assert caught.value.maybe_sent
        with pytest.raises(Transient):  # a read that comes back garbled changed nothing
            await adapter.check_credentials(credentials)


async def test_a_media_failure_is_transient_and_sends_no_event(sim: Simulator) -> None:
    credentials = Credentials(await prepare(sim))
    content = media_content()
    assert content is not None
    await sim.set_fault("matrix", "partial", feature="media")
    async with sim.client() as client:
        with pytest.raises(Transient):
            await adapter_for(sim, client).publish(content, credentials, idempotency_key="k")
    assert sim.world.record.all("matrix") == []


async def test_the_token_is_masked_in_logs_and_absent_from_every_error(sim: Simulator) -> None:
    credentials = Credentials(await prepare(sim))
    caught: list[PublishError] = []
    async with sim.client() as client:
        adapter = adapter_for(sim, client)
        for fault in ("refused", "http_5xx", "auth_expired", "garbage", "rate_limited"):
            await sim.set_fault("matrix", fault)
            try:
                await adapter.publish(text_content(), credentials, idempotency_key="k")
            except PublishError as exc:
                caught.append(exc)
            await sim.clear_faults()
    assert len(caught) == 5
    assert all(TOKEN not in str(exc) and TOKEN not in repr(exc.args) for exc in caught)
    assert redact_text(f"Bearer {TOKEN}") == "Bearer ***"
    assert TOKEN not in repr(credentials)


# -- the error table, for answers the simulator does not give ----------------------------------


@pytest.mark.parametrize(("status", "body", "expected", "code"), [
    (403, {"errcode": "M_CONSENT_NOT_GIVEN", "error": "Accept the terms"}, AuthExpired,
     "M_CONSENT_NOT_GIVEN"),
    (401, {"errcode": "M_MISSING_TOKEN", "error": "Missing access token"}, AuthExpired,
     "M_MISSING_TOKEN"),
    (404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"}, AuthExpired,
     "M_UNRECOGNIZED"),
    (403, {"errcode": "M_RESOURCE_LIMIT_EXCEEDED", "error": "MAU limit",
           "limit_type": "monthly_active_user"}, PlatformOutage, "M_RESOURCE_LIMIT_EXCEEDED"),
    (400, {"errcode": "M_INVALID_PARAM", "error": "bad room id"}, Rejected, "M_INVALID_PARAM"),
    (400, {"errcode": "M_BAD_JSON", "error": "'body' not in content"}, Rejected, "M_BAD_JSON"),
    (504, b"<html>Gateway Timeout</html>", PlatformOutage, None),
    (409, {"errcode": "M_SOMETHING_NEW", "error": "?"}, Unknown, "M_SOMETHING_NEW"),
])
async def test_each_error_code_maps_to_the_callers_next_action(
    status: int, body: object, expected: type[PublishError], code: str | None,
) -> None:
    with pytest.raises(expected) as caught:
        await mocked(answer(status, body)).publish(text_content(), CREDS, idempotency_key="k")
    assert caught.value.platform_code == code
    assert caught.value.http_status == status
    if isinstance(caught.value, Unknown):
        assert not caught.value.maybe_sent  # an error answer means no event was made


async def test_without_retry_after_ms_the_retry_after_header_is_obeyed() -> None:
    adapter = mocked(answer(429, {"errcode": "M_LIMIT_EXCEEDED", "error": "Too Many Requests"},
                            headers={"Retry-After": "12"}))
    with pytest.raises(RateLimited) as caught:
        await adapter.publish(text_content(), CREDS, idempotency_key="k")
    assert caught.value.retry_after_s == 12


async def test_the_send_goes_to_a_txn_id_derived_from_the_key_and_room() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"event_id": "$abc"})

    adapter = mocked(handler)
    await adapter.publish(text_content(), CREDS, idempotency_key="key/with spaces?")
    await adapter.publish(text_content(), CREDS, idempotency_key="key/with spaces?")
    other_room = Credentials({**CREDS, "room_id": "!other:matrix.org"})
    await adapter.publish(text_content(), other_room, idempotency_key="key/with spaces?")
    paths = [r.url.raw_path.decode() for r in seen]
    assert paths[0] == paths[1]
    assert paths[2] != paths[0]
    assert paths[0].startswith("/_matrix/client/v3/rooms/%21brandroom%3Amatrix.org/send/"
                               "m.room.message/sidestep.send.")
    assert seen[0].method == "PUT"
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(("credentials", "problem"), [
    ({"access_token": "", "room_id": ROOM}, "no access_token"),
    ({"access_token": TOKEN, "room_id": "#brand:matrix.org"}, "not a room ID"),
    ({"access_token": TOKEN, "room_id": ROOM, "homeserver": "http://matrix.example.org"},
     "not an https address"),
    ({"access_token": TOKEN, "room_id": ROOM, "homeserver": "matrix.example.org"},
     "not an https address"),
])
async def test_unusable_credentials_are_auth_expired_before_any_request(
    credentials: dict[str, str], problem: str,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request may be sent")

    with pytest.raises(AuthExpired, match=problem):
        await mocked(handler).publish(text_content(), Credentials(credentials),
                                      idempotency_key="k")


async def test_a_post_with_two_media_items_is_rejected_before_any_upload() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no request may be sent")

    item = MediaItem(MediaKind.IMAGE, "image/png", PNG_1PX, filename="dot.png")
    content = Content(text="two", media=(item, item))
    adapter = mocked(handler)
    assert [p.code for p in adapter.validate(content)] == ["too_many_media"]
    with pytest.raises(Rejected, match="one media item"):
        await adapter.publish(content, CREDS, idempotency_key="k")


def test_only_the_token_and_the_room_are_required() -> None:
    adapter = mocked(answer(200, {}))
    assert adapter.missing_credentials(Credentials({"access_token": TOKEN, "room_id": ROOM})) \
        == []
    assert adapter.missing_credentials(Credentials({"homeserver": HOMESERVER})) == [
        "access_token", "room_id"]


# -- deleting, checking, finding ---------------------------------------------------------------


async def test_delete_redacts_the_event_and_a_second_delete_is_harmless(sim: Simulator) -> None:
    credentials = Credentials(await prepare(sim))
    async with sim.client() as client:
        adapter = adapter_for(sim, client)
        published = await adapter.publish(text_content(), credentials, idempotency_key="k")
        await adapter.delete(published.external_id, credentials)
        await adapter.delete(published.external_id, credentials)
        await adapter.delete("$gone-already", credentials)  # 404 M_NOT_FOUND: nothing to do


async def test_check_credentials_names_the_matrix_user(sim: Simulator) -> None:
    credentials = Credentials(await prepare(sim))
    async with sim.client() as client:
        adapter = adapter_for(sim, client)
        info = await adapter.check_credentials(credentials)
        with pytest.raises(AuthExpired):
            await adapter.check_credentials(Credentials({**credentials,
                                                         "access_token": "revoked-token"}))
    assert (info.account_id, info.name) == (USER, USER)


async def test_find_pages_back_through_the_room_for_our_txn_id() -> None:
    pages: dict[str | None, dict[str, Any]] = {
        None: {"chunk": [{"event_id": "$other", "unsigned": {"transaction_id": "x"}}],
               "end": "t1"},
        "t1": {"chunk": [{"event_id": "$ours", "unsigned": {}}, {"event_id": "$mine"}],
               "end": "t2"},
    }
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.method == "PUT":
            return httpx.Response(200, json={"event_id": "$mine"})
        page = dict(pages[request.url.params.get("from")])
        if request.url.params.get("from") == "t1":
            txn = sent[0].url.path.rsplit("/", 1)[1]
            page["chunk"] = [*page["chunk"][:1],
                             {"event_id": "$mine", "unsigned": {"transaction_id": txn}}]
        return httpx.Response(200, json=page)

    adapter = mocked(handler)
    await adapter.publish(text_content(), CREDS, idempotency_key="find-me")
    found = await adapter.find("find-me", CREDS)
    assert found is not None and found.external_id == "$mine"
    assert [r.url.params.get("from") for r in sent[1:]] == [None, "t1"]
    assert json.loads(sent[1].url.params["filter"]) == {"types": ["m.room.message"]}
    pages["t1"] = {"chunk": [], "end": None}
    assert await adapter.find("never-sent", CREDS) is None
