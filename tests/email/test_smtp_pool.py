"""The SMTP pool against aiosmtpd handlers and Postfix's smtp-sink answering 4xx, 5xx, 421,
or stalling: every reply class lands in the right outcome, and nothing is ever lost."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from sidestep.email.smtp_pool import (
    Outcome,
    PoolPolicy,
    SendResult,
    SmtpPool,
    SmtpServer,
    classify_reply,
)

from .conftest import SmtpServerFixture, free_port

MESSAGE = b"From: a@brand.example\r\nTo: b@example.org\r\nSubject: hi\r\n\r\nhello\r\n"
SMTP_SINK = "/usr/sbin/smtp-sink"


def pool_for(*servers: SmtpServerFixture | tuple[str, int], **policy: object) -> SmtpPool:
    hosts = [SmtpServer(s.host, s.port, tls="none") if isinstance(s, SmtpServerFixture)
             else SmtpServer(s[0], s[1], tls="none") for s in servers]
    options: dict[str, object] = {"connections": 2, "timeout_s": 2.0,
                                  "slowdown_initial_s": 0.01, "slowdown_max_s": 0.05}
    options.update(policy)
    return SmtpPool(hosts, policy=PoolPolicy(**options))  # type: ignore[arg-type]


async def send(pool: SmtpPool, recipient: str) -> SendResult:
    return await pool.send(sender="bounces@brand.example", recipient=recipient, message=MESSAGE)


@pytest.fixture
def smtp_sink() -> Iterator[Callable[..., int]]:
    """Start Postfix's smtp-sink with the given options on a free port; returns the port."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*options: str) -> int:
        port = free_port()
        proc = subprocess.Popen([SMTP_SINK, "-u", "nobody", *options, f"127.0.0.1:{port}", "50"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(proc)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return port
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("smtp-sink did not start")

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


# --- classification -------------------------------------------------------------------------

@pytest.mark.parametrize("code", [421, 450, 451, 452, 454])
def test_temporary_replies_defer(code: int) -> None:
    assert classify_reply(code, "4.7.0 slow down").outcome is Outcome.DEFERRED


@pytest.mark.parametrize(("code", "text", "hard"), [
    (550, "5.1.1 <x@example.org>: Recipient address rejected: User unknown", True),
    (550, "No such user here", True),
    (553, "5.1.3 Bad recipient address syntax", True),
    (550, "5.7.1 Message rejected as spam", False),
    (552, "5.2.2 Mailbox full", False),
    (554, "Transaction failed", False),
])
def test_permanent_replies_fail_and_only_unknown_users_are_hard_bounces(
        code: int, text: str, hard: bool) -> None:
    result = classify_reply(code, text)
    assert result.outcome is Outcome.FAILED
    assert result.hard_bounce is hard
    assert result.reply.startswith(str(code))


# --- aiosmtpd -------------------------------------------------------------------------------

async def test_it_sends_and_reuses_connections(smtp_server: SmtpServerFixture) -> None:
    pool = pool_for(smtp_server, connections=2)
    results = await asyncio.gather(*(send(pool, f"u{i}@example.org") for i in range(20)))
    await pool.close()
    assert {r.outcome for r in results} == {Outcome.SENT}
    assert sorted(m.rcpt_tos[0] for m in smtp_server.recorder.messages) == \
        sorted(f"u{i}@example.org" for i in range(20))
    assert smtp_server.recorder.sessions == 2


async def test_a_4xx_defers_the_recipient_and_slows_the_pool(
        smtp_server: SmtpServerFixture) -> None:
    smtp_server.recorder.rcpt_replies["slow@example.org"] = ["451 4.7.1 Try again later"]
    pool = pool_for(smtp_server)
    deferred = await send(pool, "slow@example.org")
    assert deferred.outcome is Outcome.DEFERRED and deferred.code == 451
    assert pool.slowdown_s > 0
    # The same connection goes on working (RSET after the refusal), and the retry succeeds.
    assert (await send(pool, "slow@example.org")).outcome is Outcome.SENT
    assert (await send(pool, "other@example.org")).outcome is Outcome.SENT
    await pool.close()
    assert len(smtp_server.recorder.to("slow@example.org")) == 1


async def test_a_4xx_after_data_defers_too(smtp_server: SmtpServerFixture) -> None:
    smtp_server.recorder.data_replies["d@example.org"] = ["452 4.3.1 Insufficient storage"]
    pool = pool_for(smtp_server)
    result = await send(pool, "d@example.org")
    await pool.close()
    assert result.outcome is Outcome.DEFERRED
    assert smtp_server.recorder.messages == []


async def test_a_550_user_unknown_fails_as_a_hard_bounce(smtp_server: SmtpServerFixture) -> None:
    smtp_server.recorder.rcpt_replies["gone@example.org"] = ["550 5.1.1 User unknown"]
    pool = pool_for(smtp_server)
    result = await send(pool, "gone@example.org")
    ok = await send(pool, "here@example.org")
    await pool.close()
    assert result.outcome is Outcome.FAILED and result.hard_bounce
    assert "User unknown" in result.reply
    assert ok.outcome is Outcome.SENT


async def test_a_421_closes_the_session_and_the_next_send_reconnects(
        smtp_server: SmtpServerFixture) -> None:
    smtp_server.recorder.rcpt_replies["a@example.org"] = ["421 4.7.0 Too many connections"]
    pool = pool_for(smtp_server, connections=1)
    first = await send(pool, "a@example.org")
    second = await send(pool, "a@example.org")
    await pool.close()
    assert first.outcome is Outcome.DEFERRED
    assert second.outcome is Outcome.SENT


async def test_a_stall_before_data_defers(smtp_server: SmtpServerFixture) -> None:
    smtp_server.recorder.stall_rcpt_s = 3
    pool = pool_for(smtp_server, timeout_s=0.3)
    result = await send(pool, "a@example.org")
    await pool.close()
    assert result.outcome is Outcome.DEFERRED


async def test_a_stall_after_the_message_is_an_unknown_outcome(
        smtp_server: SmtpServerFixture) -> None:
    smtp_server.recorder.stall_data_s = 3
    pool = pool_for(smtp_server, timeout_s=0.3)
    result = await send(pool, "a@example.org")
    await pool.close()
    assert result.outcome is Outcome.UNKNOWN


async def test_it_fails_over_to_the_next_server(smtp_server: SmtpServerFixture) -> None:
    dead = ("127.0.0.1", free_port())
    pool = pool_for(dead, smtp_server)
    result = await send(pool, "a@example.org")
    await pool.close()
    assert result.outcome is Outcome.SENT
    assert result.server == f"127.0.0.1:{smtp_server.port}"


async def test_no_reachable_server_defers_instead_of_failing() -> None:
    pool = pool_for(("127.0.0.1", free_port()), ("127.0.0.1", free_port()))
    result = await send(pool, "a@example.org")
    await pool.close()
    assert result.outcome is Outcome.DEFERRED
    assert "no SMTP server reachable" in result.reply


async def test_the_hour_limit_holds_sends_back(smtp_server: SmtpServerFixture) -> None:
    pool = pool_for(smtp_server, per_hour=3)
    for i in range(3):
        await send(pool, f"u{i}@example.org")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(send(pool, "u4@example.org"), timeout=0.3)
    await pool.close()
    assert len(smtp_server.recorder.messages) == 3


def test_a_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        PoolPolicy(connections=0)
    with pytest.raises(ValueError):
        PoolPolicy(per_second=0)


# --- Postfix smtp-sink ----------------------------------------------------------------------

async def test_smtp_sink_accepts(smtp_sink: Callable[..., int]) -> None:
    pool = pool_for(("127.0.0.1", smtp_sink()))
    results = [await send(pool, f"u{i}@example.org") for i in range(5)]
    await pool.close()
    assert {r.outcome for r in results} == {Outcome.SENT}


async def test_smtp_sink_soft_reject_defers(smtp_sink: Callable[..., int]) -> None:
    pool = pool_for(("127.0.0.1", smtp_sink("-r", "RCPT", "-b", "451 4.7.1 Try again later")))
    result = await send(pool, "a@example.org")
    await pool.close()
    assert (result.outcome, result.code) == (Outcome.DEFERRED, 451)
    assert pool.slowdown_s > 0


async def test_smtp_sink_soft_reject_of_the_message_defers(
        smtp_sink: Callable[..., int]) -> None:
    pool = pool_for(("127.0.0.1", smtp_sink("-r", ".", "-b", "452 4.3.1 Insufficient storage")))
    result = await send(pool, "a@example.org")
    await pool.close()
    assert (result.outcome, result.code) == (Outcome.DEFERRED, 452)


async def test_smtp_sink_hard_reject_fails_as_a_hard_bounce(
        smtp_sink: Callable[..., int]) -> None:
    pool = pool_for(("127.0.0.1", smtp_sink("-f", "RCPT", "-B", "550 5.1.1 User unknown")))
    result = await send(pool, "a@example.org")
    await pool.close()
    assert result.outcome is Outcome.FAILED and result.hard_bounce


async def test_smtp_sink_421_and_disconnect_defers(smtp_sink: Callable[..., int]) -> None:
    pool = pool_for(("127.0.0.1", smtp_sink("-Q", "RCPT")))
    results = [await send(pool, "a@example.org") for _ in range(3)]
    await pool.close()
    assert {r.outcome for r in results} == {Outcome.DEFERRED}


async def test_smtp_sink_dropping_the_line_before_data_defers(
        smtp_sink: Callable[..., int]) -> None:
    pool = pool_for(("127.0.0.1", smtp_sink("-q", "MAIL")))
    result = await send(pool, "a@example.org")
    await pool.close()
    assert result.outcome is Outcome.DEFERRED


async def test_smtp_sink_stalling_on_the_data_command_defers(
        smtp_sink: Callable[..., int]) -> None:
    """`-w` delays the reply to the DATA command: the message itself was never written, so
    the server cannot have it and the recipient is deferred, not left unknown."""
    pool = pool_for(("127.0.0.1", smtp_sink("-w", "5")), timeout_s=0.5)
    result = await send(pool, "a@example.org")
    await pool.close()
    assert result.outcome is Outcome.DEFERRED
    assert "before the message was sent" in result.reply


# --- PIPELINING (RFC 2920) ------------------------------------------------------------------

async def _strict_pipelining_server(
        received: list[bytes], *, rcpt_reply: bytes = b"250 ok") -> tuple[asyncio.Server, int]:
    """A server that advertises PIPELINING and answers MAIL only once RCPT and DATA have
    arrived too: a client waiting for each reply stalls and times out."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 strict ESMTP\r\n")
        await writer.drain()
        while line := await reader.readline():
            if line.upper().startswith((b"EHLO", b"HELO")):
                writer.write(b"250-strict\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            elif line.upper().startswith(b"MAIL"):
                group = [line, await reader.readline(), await reader.readline()]
                received.append(b"".join(group))
                data_ok = rcpt_reply.startswith(b"2")
                writer.write(b"250 sender ok\r\n" + rcpt_reply + b"\r\n"
                             + (b"354 go on\r\n" if data_ok else b"554 no valid recipients\r\n"))
                if data_ok:
                    await writer.drain()
                    body = b""
                    while (chunk := await reader.readline()) not in (b".\r\n", b""):
                        body += chunk
                    received.append(body)
                    writer.write(b"250 2.0.0 queued\r\n")
            elif line.upper().startswith(b"RSET"):
                writer.write(b"250 reset\r\n")
            elif line.upper().startswith(b"QUIT"):
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"502 what\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_with_pipelining_the_envelope_goes_in_one_write_and_dots_are_stuffed() -> None:
    received: list[bytes] = []
    server, port = await _strict_pipelining_server(received)
    pool = pool_for(("127.0.0.1", port))
    message = b"Subject: dots\r\n\r\n.leading dot\r\nbare LF\n.\r\nend"
    try:
        first = await pool.send(sender="b@brand.example", recipient="a@example.org",
                                message=message)
        second = await send(pool, "c@example.org")
    finally:
        await pool.close()
        server.close()
    assert first.outcome is Outcome.SENT and second.outcome is Outcome.SENT, (first, second)
    assert received[0] == (b"MAIL FROM:<b@brand.example>\r\nRCPT TO:<a@example.org>\r\n"
                           b"DATA\r\n")
    assert received[1] == (b"Subject: dots\r\n\r\n..leading dot\r\nbare LF\r\n..\r\n"
                           b"end\r\n")


async def test_a_pipelined_refusal_reports_the_first_refused_command() -> None:
    received: list[bytes] = []
    server, port = await _strict_pipelining_server(received, rcpt_reply=b"452 4.2.2 full")
    pool = pool_for(("127.0.0.1", port))
    try:
        refused = await send(pool, "a@example.org")
    finally:
        await pool.close()
        server.close()
    assert refused.outcome is Outcome.DEFERRED and refused.code == 452, refused


async def test_without_pipelining_the_strict_server_stalls_the_envelope() -> None:
    """The same server with pipelining switched off: the client waits for the MAIL reply
    that never comes, and the recipient is deferred (the message was never sent)."""
    server, port = await _strict_pipelining_server([])
    pool = pool_for(("127.0.0.1", port), pipelining=False, timeout_s=0.3)
    try:
        result = await send(pool, "a@example.org")
    finally:
        await pool.close()
        server.close()
    assert result.outcome is Outcome.DEFERRED, result
