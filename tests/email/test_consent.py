"""Double opt-in end to end: the public form, the confirmation mail through a real SMTP
server (aiosmtpd), the signed link, the confirmation POST, and the consent records."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.message import EmailMessage

import httpx
from sqlalchemy import select

from sidestep.clock import FrozenClock
from sidestep.email import links
from sidestep.runtime import Runtime
from sidestep.store.subscribers import Subscribers, SuppressionReason, Suppressions
from sidestep.store.tables_email import ConsentRecord

from . import audience_fixtures
from .audience_fixtures import Audience

# The audience fixtures, used by name in the tests below.
audience = audience_fixtures.audience
client = audience_fixtures.client
settings = audience_fixtures.settings

FORM_HEADERS = {"User-Agent": "TestBrowser/1.0"}


def _link_in(data: bytes) -> str:
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_content()
    match = re.search(r"https://news\.example(/c/[A-Za-z0-9_.-]+)", body)
    assert match, data
    return match.group(1)


async def test_double_opt_in_from_form_to_confirmed_subscriber(
    runtime: Runtime, audience: Audience, client: httpx.AsyncClient, smtp_server  # type: ignore[no-untyped-def]
) -> None:
    form = await client.get(f"/s/acme/subscribe/{audience.news}")
    assert form.status_code == 200 and "Yes, send me Acme&#39;s news." in form.text
    answer = await client.post(f"/s/acme/subscribe/{audience.news}", headers=FORM_HEADERS,
                               data={"email": "Anna@Bücher.DE", "name": "Anna\r\nBcc: x@evil.example"})
    assert answer.status_code == 200 and "Check your inbox" in answer.text

    [mail] = smtp_server.recorder.messages
    assert mail.rcpt_tos == ["Anna@xn--bcher-kva.de"]
    assert mail.mail_from == "news@acme.example"
    headers = mail.data.split(b"\r\n\r\n", 1)[0].decode()
    assert "Bcc" not in headers.replace("Bcc: x@evil", "")  # the name stays on the To line
    assert re.search(r"^To: .*Anna@xn--bcher-kva\.de", headers, re.M)
    assert "Subject: Please confirm: News (Acme Coffee)" in headers
    path = _link_in(mail.data)

    async with runtime.db.session() as s:
        row = await Subscribers(s, audience.acme).find_by_email("anna@bücher.de")
        assert row is None  # the local part keeps its case: Anna@ is stored
        row = await Subscribers(s, audience.acme).find_by_email("Anna@bücher.de")
        assert row is not None and row.status == "unconfirmed"
        assert "\n" not in row.name and "\r" not in row.name
        assert [r async for r in Subscribers(s, audience.acme).segment(audience.news)] == []

    page = await client.get(path)  # what a mail scanner does: nothing may change
    assert page.status_code == 200 and f'action="{path}"' in page.text
    async with runtime.db.session() as s:
        assert [r async for r in Subscribers(s, audience.acme).segment(audience.news)] == []

    done = await client.post(path, headers=FORM_HEADERS)
    assert done.status_code == 200 and "confirmed" in done.text
    async with runtime.db.session() as s:
        members = [r.email async for r in Subscribers(s, audience.acme).segment(audience.news)]
        assert members == ["Anna@xn--bcher-kva.de"]
        records = list(await s.scalars(select(ConsentRecord).order_by(ConsentRecord.id)))
    assert [(r.action, r.source) for r in records] == [("subscribe", "form"), ("confirm", "link")]
    assert all(r.user_agent == "TestBrowser/1.0" and r.ip for r in records)
    assert records[0].text_shown == "Yes, send me Acme's news."


async def test_single_opt_in_list_subscribes_at_once_without_mail(
    runtime: Runtime, audience: Audience, client: httpx.AsyncClient, smtp_server  # type: ignore[no-untyped-def]
) -> None:
    answer = await client.post(f"/s/acme/subscribe/{audience.deals}", data={"email": "bob@example.com"})
    assert "You are subscribed" in answer.text
    assert smtp_server.recorder.messages == []
    async with runtime.db.session() as s:
        got = [r.email async for r in Subscribers(s, audience.acme).segment(audience.deals)]
    assert got == ["bob@example.com"]


async def test_an_invalid_address_is_shown_back_with_the_reason(
    audience: Audience, client: httpx.AsyncClient, smtp_server  # type: ignore[no-untyped-def]
) -> None:
    answer = await client.post(f"/s/acme/subscribe/{audience.news}",
                               data={"email": "not-an-address", "name": "<script>x</script>"})
    assert answer.status_code == 400
    assert "That address does not work" in answer.text
    assert "<script>x" not in answer.text and "&lt;script&gt;x" in answer.text
    assert smtp_server.recorder.messages == []


async def test_a_suppressed_address_needs_a_fresh_confirmation_even_on_a_single_opt_in_list(
    runtime: Runtime, clock: FrozenClock, audience: Audience, client: httpx.AsyncClient,
    smtp_server  # type: ignore[no-untyped-def]
) -> None:
    async with runtime.db.session() as s:
        await Suppressions(s, audience.acme).suppress("cy@example.com",
                                                      SuppressionReason.UNSUBSCRIBED, at=clock.now())
    answer = await client.post(f"/s/acme/subscribe/{audience.deals}", data={"email": "cy@example.com"})
    assert "Check your inbox" in answer.text
    [mail] = smtp_server.recorder.messages
    await client.post(_link_in(mail.data))
    async with runtime.db.session() as s:
        assert not await Suppressions(s, audience.acme).is_suppressed("cy@example.com")
        got = [r.email async for r in Subscribers(s, audience.acme).segment(audience.deals)]
    assert got == ["cy@example.com"]


async def test_a_manual_suppression_is_not_lifted_and_no_mail_goes_out(
    runtime: Runtime, clock: FrozenClock, audience: Audience, client: httpx.AsyncClient,
    smtp_server  # type: ignore[no-untyped-def]
) -> None:
    async with runtime.db.session() as s:
        await Suppressions(s, audience.acme).suppress("dan@example.com", "manual", "legal",
                                                      at=clock.now())
    answer = await client.post(f"/s/acme/subscribe/{audience.news}", data={"email": "dan@example.com"})
    assert "Check your inbox" in answer.text  # the same answer: nothing is revealed
    assert smtp_server.recorder.messages == []


async def test_the_form_cannot_flood_an_inbox(
    runtime: Runtime, clock: FrozenClock, audience: Audience, client: httpx.AsyncClient,
    smtp_server  # type: ignore[no-untyped-def]
) -> None:
    for _ in range(3):
        await client.post(f"/s/acme/subscribe/{audience.news}", data={"email": "eve@example.com"})
    assert len(smtp_server.recorder.messages) == 1
    clock.advance(seconds=11 * 60)
    await client.post(f"/s/acme/subscribe/{audience.news}", data={"email": "eve@example.com"})
    assert len(smtp_server.recorder.messages) == 2


async def test_an_old_confirmation_link_has_expired(
    runtime: Runtime, clock: FrozenClock, audience: Audience, client: httpx.AsyncClient,
    smtp_server  # type: ignore[no-untyped-def]
) -> None:
    await client.post(f"/s/acme/subscribe/{audience.news}", data={"email": "fay@example.com"})
    path = _link_in(smtp_server.recorder.messages[0].data)
    clock.advance(seconds=links.CONFIRM_MAX_AGE_S + 1)
    answer = await client.post(path)
    assert answer.status_code == 400 and "expired" in answer.text


async def test_an_unreachable_mail_server_is_reported_and_a_retry_is_not_blocked(
    runtime: Runtime, audience: Audience, client: httpx.AsyncClient, smtp_server  # type: ignore[no-untyped-def]
) -> None:
    port = runtime.settings.smtp_port
    runtime.settings.smtp_port = 1  # nothing listens there
    answer = await client.post(f"/s/acme/subscribe/{audience.news}", data={"email": "gus@example.com"})
    assert answer.status_code == 503 and "could not send" in answer.text
    runtime.settings.smtp_port = port
    await client.post(f"/s/acme/subscribe/{audience.news}", data={"email": "gus@example.com"})
    assert len(smtp_server.recorder.messages) == 1


async def test_an_unknown_list_or_another_workspaces_list_is_404(
    audience: Audience, client: httpx.AsyncClient, smtp_server  # type: ignore[no-untyped-def]
) -> None:
    assert (await client.get(f"/s/acme/subscribe/{audience.globex_list}")).status_code == 404
    assert (await client.get("/s/nope/subscribe/1")).status_code == 404
