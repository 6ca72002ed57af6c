"""A pool of SMTP connections that sends one message to one recipient and says what happened.

Policy (`PoolPolicy`, all keyword options): `connections` concurrent sessions, each reused
for up to `messages_per_connection` messages; `per_second` and `per_hour` limits shared by
the pool; servers tried in the order given, a server that refuses connections skipped for
`server_retry_s` (failover).

Every send ends in a `SendResult` whose `outcome` the caller acts on:

- `SENT`: the server answered 250 to the end of DATA.
- `DEFERRED`: a temporary reply (4xx: 421, 450, 451, 452, 454...), or no server reachable,
  or the connection broke *before* the message was handed over. The recipient must be tried
  again later; it is never a failure. Each deferral also slows the pool down (the gap
  between messages doubles, from `slowdown_initial_s` up to `slowdown_max_s`, and shrinks
  again with each success): a provider that answers 4xx is throttling us.
- `FAILED`: a permanent reply (5xx). `hard_bounce` is set when the reply says the mailbox
  does not exist (5.1.x, or 550 "user unknown"-like text without an enhanced code).
- `UNKNOWN`: the connection broke or timed out while the message itself was in flight
  (between DATA and its reply). The server may or may not have it; SMTP has no way to ask,
  so the caller must not resend blindly.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

import aiosmtplib

from sidestep.email.smtp_wire import Wire, WireBroken, WireRefused

__all__ = ["Outcome", "PoolPolicy", "SendResult", "SmtpPool", "SmtpServer", "classify_reply"]

REPLY_CAP = 500
_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
_HARD_TEXT = re.compile(
    r"(user|mailbox|recipient|address)\s*(unknown|not found|does not exist|unavailable)"
    r"|no such (user|mailbox|recipient)|unknown (user|recipient|mailbox)",
    re.IGNORECASE,
)


class Outcome(StrEnum):
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    code: int | None
    reply: str
    server: str | None = None
    hard_bounce: bool = False


@dataclass(frozen=True, slots=True)
class SmtpServer:
    host: str
    port: int = 587
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolPolicy:
    connections: int = 4
    per_second: float | None = None
    per_hour: int | None = None
    timeout_s: float = 30.0
    messages_per_connection: int = 1000
    server_retry_s: float = 60.0
    slowdown_initial_s: float = 0.5
    slowdown_max_s: float = 30.0
    helo_name: str | None = None
    # Send MAIL, RCPT and DATA in one write when the server offers PIPELINING (RFC 2920).
    pipelining: bool = True

    def __post_init__(self) -> None:
        if self.connections < 1:
            raise ValueError("a pool needs at least one connection")
        if self.per_second is not None and self.per_second <= 0:
            raise ValueError("per_second must be positive")
        if self.per_hour is not None and self.per_hour < 1:
            raise ValueError("per_hour must be at least 1")


def classify_reply(code: int, text: str, *, server: str | None = None) -> SendResult:
    """The outcome of a refusal: 4xx deferred, 5xx failed (hard bounce if user unknown)."""
    reply = f"{code} {text}".strip()[:REPLY_CAP]
    if 400 <= code < 500:
        return SendResult(Outcome.DEFERRED, code, reply, server)
    enhanced = _ENHANCED.match(text)
    if enhanced:
        hard = enhanced.group(1) == "5" and enhanced.group(2) == "1" \
            and enhanced.group(3) in {"1", "2", "3", "6", "10"}
    else:
        hard = code in (550, 551, 553) and bool(_HARD_TEXT.search(text))
    return SendResult(Outcome.FAILED, code, reply, server, hard_bounce=hard)


class _NoServer(Exception):
    pass


class _Pacer:
    """Spaces sends by the per-second rate or the current slowdown, and keeps the hour cap."""

    def __init__(self, policy: PoolPolicy) -> None:
        self._policy = policy
        self._lock = asyncio.Lock()
        self._next = 0.0
        self._hour: deque[float] = deque()
        self.slowdown_s = 0.0

    async def acquire(self) -> None:
        async with self._lock:
            now = time.monotonic()
            rate = self._policy.per_second
            gap = max(1.0 / rate if rate else 0.0, self.slowdown_s)
            start = max(now, self._next)
            cap = self._policy.per_hour
            if cap is not None:
                while self._hour and self._hour[0] <= start - 3600:
                    self._hour.popleft()
                if len(self._hour) >= cap:
                    start = max(start, self._hour[0] + 3600)
                self._hour.append(start)
            self._next = start + gap
            if start > now:
                await asyncio.sleep(start - now)

    def deferred(self) -> None:
        policy = self._policy
        self.slowdown_s = min(policy.slowdown_max_s,
                              max(policy.slowdown_initial_s, self.slowdown_s * 2))

    def succeeded(self) -> None:
        self.slowdown_s = self.slowdown_s * 0.8 if self.slowdown_s > 0.01 else 0.0


class _Session:
    """One pooled connection slot; reconnects (with failover) when needed.

    aiosmtplib opens the connection (EHLO, STARTTLS, AUTH); `Wire` then runs the
    transactions on it, pipelined when the server offers PIPELINING."""

    def __init__(self, pool: SmtpPool) -> None:
        self._pool = pool
        self._wire: Wire | None = None
        self._server: SmtpServer | None = None
        self._used = 0

    async def _connect(self) -> tuple[Wire, SmtpServer]:
        pool = self._pool
        policy = pool.policy
        if (self._wire is not None and self._server is not None and self._wire.is_open
                and self._used < policy.messages_per_connection):
            return self._wire, self._server
        await self.close()
        problems = []
        for server in pool.servers:
            if pool.server_down_until.get(server.label, 0.0) > time.monotonic():
                problems.append(f"{server.label}: skipped after a recent failure")
                continue
            smtp = aiosmtplib.SMTP(
                hostname=server.host, port=server.port, timeout=policy.timeout_s,
                use_tls=server.tls == "implicit", start_tls=server.tls == "starttls",
                username=server.username, password=server.password,
                local_hostname=policy.helo_name,
            )
            try:
                await smtp.connect()
                if smtp.is_ehlo_or_helo_needed:
                    await smtp.ehlo()
                transport = smtp.transport
                if transport is None:
                    raise OSError("the connection closed right after it opened")
            except (aiosmtplib.SMTPException, OSError) as exc:
                smtp.close()
                pool.server_down_until[server.label] = time.monotonic() + policy.server_retry_s
                problems.append(f"{server.label}: {_short(exc)}")
                continue
            self._wire = Wire(transport, pipelining=smtp.supports_extension("pipelining")
                              and policy.pipelining, timeout_s=policy.timeout_s)
            self._server, self._used = server, 0
            return self._wire, server
        raise _NoServer("; ".join(problems) or "no SMTP server configured")

    async def send(self, sender: str, recipient: str, message: bytes) -> SendResult:
        try:
            wire, server = await self._connect()
        except _NoServer as exc:
            return SendResult(Outcome.DEFERRED, None,
                              f"no SMTP server reachable ({exc})"[:REPLY_CAP])
        label = server.label
        self._used += 1
        try:
            reply = await wire.send(sender, recipient, message)
        except WireRefused as exc:
            await self._after_refusal(exc.code)
            return classify_reply(exc.code, exc.text, server=label)
        except WireBroken as exc:
            await self.close()
            if exc.in_flight:
                return SendResult(Outcome.UNKNOWN, None,
                                  f"connection lost while the message was in flight: "
                                  f"{_short(exc)}", label)
            return SendResult(Outcome.DEFERRED, None,
                              f"connection lost before the message was sent: {_short(exc)}",
                              label)
        return SendResult(Outcome.SENT, reply.code,
                          f"{reply.code} {reply.text}"[:REPLY_CAP], label)

    async def _after_refusal(self, code: int) -> None:
        """421 closes the session (RFC 5321 4.2.2); otherwise reset the transaction."""
        if code == 421 or self._wire is None:
            await self.close()
            return
        try:
            await self._wire.reset()
        except (WireBroken, OSError):
            await self.close()

    async def close(self) -> None:
        wire, self._wire, self._server = self._wire, None, None
        if wire is None:
            return
        try:
            await wire.quit()
        except OSError:
            wire.abort()


def _short(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__)[:200]


class SmtpPool:
    """Send through up to `policy.connections` sessions at once; see the module docstring."""

    def __init__(self, servers: Sequence[SmtpServer], *, policy: PoolPolicy) -> None:
        if not servers:
            raise ValueError("an SMTP pool needs at least one server")
        self.servers = tuple(servers)
        self.policy = policy
        self.server_down_until: dict[str, float] = {}
        self._pacer = _Pacer(policy)
        self._idle: asyncio.Queue[_Session] = asyncio.Queue()
        self._sessions = [_Session(self) for _ in range(policy.connections)]
        for session in self._sessions:
            self._idle.put_nowait(session)

    @property
    def slowdown_s(self) -> float:
        """The current gap the pool keeps between messages because of 4xx replies."""
        return self._pacer.slowdown_s

    async def send(self, *, sender: str, recipient: str, message: bytes) -> SendResult:
        """Send `message` to `recipient` (envelope from `sender`); never raises for SMTP
        trouble: every outcome is a `SendResult`."""
        await self._pacer.acquire()
        session = await self._idle.get()
        try:
            result = await session.send(sender, recipient, message)
        finally:
            self._idle.put_nowait(session)
        if result.outcome is Outcome.DEFERRED:
            self._pacer.deferred()
        elif result.outcome is Outcome.SENT:
            self._pacer.succeeded()
        return result

    async def close(self) -> None:
        await asyncio.gather(*(s.close() for s in self._sessions))
