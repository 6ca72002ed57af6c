"""One SMTP mail transaction on a connection aiosmtplib opened, with PIPELINING (RFC 2920).

aiosmtplib connects, says EHLO, starts TLS and logs in; it then waits for each reply before
the next command (MAIL, RCPT, DATA and the message: four round trips per message) and
cannot read several pipelined replies. `Wire` takes over the connection's transport
(`set_protocol`) once it is ready and runs the transactions itself: with PIPELINING
advertised, MAIL FROM, RCPT TO and DATA go in one write and their three replies are read
together, so a message costs two round trips; without it, one command at a time.

Errors are reported as `WireReply` (a refusal) or `WireBroken` (the line broke or timed
out), with `in_flight` telling whether the message itself had been handed over.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

__all__ = ["Wire", "WireBroken", "WireRefused"]

_DOT_LINE = re.compile(rb"(?m)^\.")
_BARE_EOL = re.compile(rb"\r\n|\r|\n")
_MAX_REPLY = 64 * 1024


@dataclass(frozen=True, slots=True)
class _Reply:
    code: int
    text: str


class WireRefused(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


class WireBroken(Exception):
    def __init__(self, why: str, *, in_flight: bool) -> None:
        super().__init__(why)
        self.in_flight = in_flight


class _Replies(asyncio.Protocol):
    """Buffers what the server sends and hands out complete replies in order."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self.lost: str | None = None

    def data_received(self, data: bytes) -> None:
        self._buffer.extend(data)
        if len(self._buffer) > _MAX_REPLY:
            self.lost = "reply too long"
        self._wake()

    def eof_received(self) -> bool:
        self.lost = self.lost or "the server closed the connection"
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = self.lost or (str(exc) if exc else "connection closed")
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _parse(self) -> _Reply | None:
        offset, lines = 0, []
        while True:
            end = self._buffer.find(b"\n", offset)
            if end == -1:
                return None
            line = bytes(self._buffer[offset:end + 1])
            offset = end + 1
            if len(line) < 4 or not line[:3].isdigit():
                raise WireBroken(f"malformed reply line {line[:80]!r}", in_flight=True)
            lines.append(line[4:].strip().decode("utf-8", "replace"))
            if line[3:4] != b"-":
                del self._buffer[:offset]
                return _Reply(int(line[:3]), "\n".join(lines))

    async def read(self, limit_s: float, *, in_flight: bool) -> _Reply:
        try:
            async with asyncio.timeout(limit_s):
                while True:
                    try:
                        reply = self._parse()
                    except WireBroken as exc:
                        raise WireBroken(str(exc), in_flight=in_flight) from None
                    if reply is not None:
                        return reply
                    if self.lost is not None:
                        raise WireBroken(self.lost, in_flight=in_flight)
                    self._waiter = asyncio.get_running_loop().create_future()
                    await self._waiter
        except TimeoutError:
            raise WireBroken(f"no reply within {limit_s:g} s", in_flight=in_flight) from None


class Wire:
    """A ready SMTP connection (after EHLO, TLS and AUTH) that sends transactions."""

    def __init__(self, transport: asyncio.BaseTransport, *, pipelining: bool,
                 timeout_s: float) -> None:
        self._transport: asyncio.WriteTransport = transport  # type: ignore[assignment]
        self._replies = _Replies()
        transport.set_protocol(self._replies)
        self.pipelining = pipelining
        self.timeout_s = timeout_s

    @property
    def is_open(self) -> bool:
        return self._replies.lost is None and not self._transport.is_closing()

    def _write(self, data: bytes, *, in_flight: bool) -> None:
        if not self.is_open:
            raise WireBroken(self._replies.lost or "connection closing", in_flight=False)
        self._transport.write(data)

    async def _read(self, *, in_flight: bool) -> _Reply:
        return await self._replies.read(self.timeout_s, in_flight=in_flight)

    async def send(self, sender: str, recipient: str, message: bytes) -> _Reply:
        """Run one transaction; return the final 250 reply, raise `WireRefused` for any
        refusal (the first one, as the server gave it) or `WireBroken`."""
        for value in (sender, recipient):
            if any(c in value for c in "\r\n<>\0"):
                raise WireRefused(501, f"refused to send an unsafe address {value!r}")
        commands = [f"MAIL FROM:<{sender}>\r\n".encode(), f"RCPT TO:<{recipient}>\r\n".encode(),
                    b"DATA\r\n"]
        replies: list[_Reply] = []
        if self.pipelining:
            self._write(b"".join(commands), in_flight=False)
            for _ in commands:
                replies.append(await self._read(in_flight=False))
        else:
            for command in commands:
                self._write(command, in_flight=False)
                replies.append(await self._read(in_flight=False))
                if replies[-1].code >= 400:
                    break
        expected = (250, 250, 354)
        refusal = next((r for r, ok in zip(replies, expected, strict=False) if r.code != ok
                        and not (ok == 250 and r.code == 251)), None)
        if refusal is not None:
            if replies[-1].code == 354:  # DATA accepted after all: end it empty, then reset
                self._write(b".\r\n", in_flight=False)
                await self._read(in_flight=False)
            raise WireRefused(refusal.code, refusal.text)
        body = _DOT_LINE.sub(b"..", _BARE_EOL.sub(b"\r\n", message))
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        self._write(body + b".\r\n", in_flight=True)
        final = await self._read(in_flight=True)
        if final.code != 250:
            raise WireRefused(final.code, final.text)
        return final

    async def reset(self) -> None:
        self._write(b"RSET\r\n", in_flight=False)
        await self._read(in_flight=False)

    async def quit(self) -> None:
        try:
            if self.is_open:
                self._transport.write(b"QUIT\r\n")
                await self._replies.read(min(self.timeout_s, 2.0), in_flight=False)
        except WireBroken:
            pass
        finally:
            self._transport.close()

    def abort(self) -> None:
        self._transport.abort()
