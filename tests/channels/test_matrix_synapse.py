"""The Matrix adapter against a real Synapse homeserver that this module starts and stops.

The adapter speaks to http://127.0.0.1:<port> with the plain client every adapter gets
(`make_client()`); what a test checks, it reads back from the server itself (/messages, the
media repository). When Synapse cannot run here, every test fails with the reason.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidestep.channels.adapters.matrix import MatrixAdapter
from sidestep.channels.errors import AuthExpired, RateLimited, Rejected
from sidestep.channels.http import make_client
from sidestep.domain.content import Content, MediaItem, MediaKind
from sidestep.vault import Credentials
from tests.channels.conftest import PNG_1PX
from tests.channels.synapse import (
    STRICT_MESSAGE_BURST,
    SynapseServer,
    SynapseUnavailable,
    SynapseUser,
    running_synapse,
)


@pytest.fixture(scope="module")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SynapseServer]:
    try:
        with running_synapse(Path(tmp_path_factory.mktemp("synapse"))) as server:
            timings = ", ".join(f"{k} {v:.1f} s" for k, v in server.timings_s.items())
            print(f"\nSynapse up at {server.base_url}: {timings}", file=sys.stderr)
            yield server
    except SynapseUnavailable as exc:
        pytest.fail(f"a real Synapse homeserver is needed for these tests and cannot run "
                    f"here: {exc}", pytrace=False)


@pytest.fixture(scope="module")
def brand(synapse: SynapseServer) -> SynapseUser:
    return synapse.register("brand")


@pytest.fixture
def room(synapse: SynapseServer, brand: SynapseUser) -> str:
    """A fresh room per test, so that what a test counts is its own."""
    return synapse.create_room(brand)


def credentials_for(synapse: SynapseServer, user: SynapseUser, room: str) -> Credentials:
    return Credentials({"homeserver": synapse.base_url, "access_token": user.access_token,
                        "room_id": room})


async def publish(synapse: SynapseServer, credentials: Credentials, content: Content, *,
                  key: str) -> str:
    """Publish through a new client, as a new worker process would; returns the event id."""
    async with make_client() as client:
        adapter = MatrixAdapter(client=client)
        return (await adapter.publish(content, credentials, idempotency_key=key)).external_id


async def test_it_publishes_text_with_a_link_that_the_room_then_holds(
    synapse: SynapseServer, brand: SynapseUser, room: str,
) -> None:
    credentials = credentials_for(synapse, brand, room)
    content = Content(text="We moved to Matrix for today", link="https://example.com/status")
    event_id = await publish(synapse, credentials, content, key="text-1")
    [event] = synapse.messages(brand, room)
    assert event["event_id"] == event_id
    assert event["sender"] == brand.user_id
    assert event["content"] == {
        "msgtype": "m.text", "body": "We moved to Matrix for today\n\nhttps://example.com/status",
        "format": "org.matrix.custom.html",
        "formatted_body": 'We moved to Matrix for today<br><br><a href="https://example.com/'
                          'status">https://example.com/status</a>'}


async def test_it_uploads_an_image_to_the_media_repository_and_sends_an_m_image_event(
    synapse: SynapseServer, brand: SynapseUser, room: str,
) -> None:
    credentials = credentials_for(synapse, brand, room)
    image = MediaItem(MediaKind.IMAGE, "image/png", PNG_1PX, alt="A dot", filename="dot.png")
    event_id = await publish(synapse, credentials, Content(text="A dot", media=(image,)),
                             key="image-1")
    [event] = synapse.messages(brand, room)
    assert event["event_id"] == event_id
    content = event["content"]
    assert (content["msgtype"], content["body"], content["filename"]) == (
        "m.image", "A dot", "dot.png")
    assert content["info"] == {"mimetype": "image/png", "size": len(PNG_1PX), "w": 1, "h": 1}
    assert content["url"].startswith("mxc://localhost/")
    stored = synapse.download(brand, content["url"])
    assert stored.status_code == 200
    assert stored.content == PNG_1PX


async def test_a_reply_relates_to_the_event_it_answers(
    synapse: SynapseServer, brand: SynapseUser, room: str,
) -> None:
    credentials = credentials_for(synapse, brand, room)
    first = await publish(synapse, credentials, Content(text="1/2 We are down on X"), key="t-1")
    second = await publish(synapse, credentials,
                           Content(text="2/2 Back soon", reply_to=first), key="t-2")
    newest = synapse.messages(brand, room)[0]
    assert newest["event_id"] == second
    assert newest["content"]["m.relates_to"] == {"m.in_reply_to": {"event_id": first}}


async def test_a_retry_with_the_same_key_returns_the_same_event_and_the_room_holds_one(
    synapse: SynapseServer, brand: SynapseUser, room: str,
) -> None:
    credentials = credentials_for(synapse, brand, room)
    content = Content(text="Only once, please")
    first = await publish(synapse, credentials, content, key="retry-me")
    again = await publish(synapse, credentials, content, key="retry-me")
    other = await publish(synapse, credentials, content, key="a-different-post")
    assert again == first
    assert other != first
    assert [e["event_id"] for e in synapse.messages(brand, room)] == [other, first]


async def test_find_looks_a_post_up_by_its_key(
    synapse: SynapseServer, brand: SynapseUser, room: str,
) -> None:
    credentials = credentials_for(synapse, brand, room)
    event_id = await publish(synapse, credentials, Content(text="Find me"), key="find-1")
    await publish(synapse, credentials, Content(text="Newer"), key="find-2")
    async with make_client() as client:
        adapter = MatrixAdapter(client=client)
        found = await adapter.find("find-1", credentials)
        missing = await adapter.find("never-published", credentials)
    assert found is not None and found.external_id == event_id
    assert missing is None


async def test_delete_redacts_the_event_and_a_second_delete_is_harmless(
    synapse: SynapseServer, brand: SynapseUser, room: str,
) -> None:
    credentials = credentials_for(synapse, brand, room)
    event_id = await publish(synapse, credentials, Content(text="Posted by mistake"), key="d-1")
    async with make_client() as client:
        adapter = MatrixAdapter(client=client)
        await adapter.delete(event_id, credentials)
        await adapter.delete(event_id, credentials)
    [event] = synapse.messages(brand, room)
    assert event["event_id"] == event_id
    assert event["content"] == {}
    assert event["unsigned"]["redacted_because"]["sender"] == brand.user_id


async def test_check_credentials_asks_the_homeserver_who_the_token_is(
    synapse: SynapseServer, brand: SynapseUser, room: str,
) -> None:
    async with make_client() as client:
        adapter = MatrixAdapter(client=client)
        info = await adapter.check_credentials(credentials_for(synapse, brand, room))
        with pytest.raises(AuthExpired) as caught:
            await adapter.check_credentials(Credentials(
                {"homeserver": synapse.base_url, "access_token": "syt_not_a_real_token",
                 "room_id": room}))
    assert info.account_id == brand.user_id == "@brand:localhost"
    assert (caught.value.http_status, caught.value.platform_code) == (401, "M_UNKNOWN_TOKEN")


async def test_an_invalid_token_is_auth_expired(synapse: SynapseServer, room: str) -> None:
    credentials = Credentials({"homeserver": synapse.base_url, "access_token": "syt_revoked",
                               "room_id": room})
    with pytest.raises(AuthExpired) as caught:
        await publish(synapse, credentials, Content(text="hello"), key="bad-token")
    assert caught.value.platform_code == "M_UNKNOWN_TOKEN"


async def test_a_room_the_user_is_not_in_is_auth_expired_with_m_forbidden(
    synapse: SynapseServer, brand: SynapseUser,
) -> None:
    assert synapse.admin is not None
    someone_elses = synapse.create_room(synapse.admin)
    for room in (someone_elses, "!no-such-room:localhost"):
        with pytest.raises(AuthExpired) as caught:
            await publish(synapse, credentials_for(synapse, brand, room),
                          Content(text="hello"), key=f"forbidden-{room}")
        assert (caught.value.http_status, caught.value.platform_code) == (403, "M_FORBIDDEN")
    assert synapse.messages(synapse.admin, someone_elses) == []


async def test_an_event_over_65536_bytes_is_rejected_by_the_server(
    synapse: SynapseServer, brand: SynapseUser, room: str,
) -> None:
    with pytest.raises(Rejected) as caught:
        await publish(synapse, credentials_for(synapse, brand, room),
                      Content(text="x" * 70_000), key="too-big")
    assert (caught.value.http_status, caught.value.platform_code) == (413, "M_TOO_LARGE")
    assert synapse.messages(brand, room) == []


async def test_a_strict_message_limit_is_read_as_rate_limited_and_a_retry_still_answers(
    synapse: SynapseServer,
) -> None:
    """rc_message allows a burst of STRICT_MESSAGE_BURST, then one message per 100 s; the
    user creating its room spends one of them."""
    user = synapse.register("throttled", rate_limited=True)
    room = synapse.create_room(user)
    credentials = credentials_for(synapse, user, room)
    sent: list[str] = []
    with pytest.raises(RateLimited) as caught:
        for n in range(STRICT_MESSAGE_BURST + 2):
            sent.append(await publish(synapse, credentials, Content(text=f"#{n}"), key=f"r{n}"))
    assert 1 <= len(sent) < STRICT_MESSAGE_BURST
    assert (caught.value.http_status, caught.value.platform_code) == (429, "M_LIMIT_EXCEEDED")
    assert 1 < caught.value.retry_after_s <= 100
    assert [e["event_id"] for e in synapse.messages(user, room)] == sent[::-1]
    # The homeserver answers a repeated txnId from its cache, before any rate limit.
    assert await publish(synapse, credentials, Content(text="#0"), key="r0") == sent[0]
