"""A lean HTTP/1.1 GET client for probes, on asyncio streams, with keep-alive pooling.

Why not httpx: a probe is one GET judged on its status and first bytes, thousands of times a
second, and httpx/httpcore spend most of that in their pool's bookkeeping (which grows with
the pooled connections) and in anyio. This keeps one list of idle connections per target.

What it does, and no more:
- GET, HTTP/1.1, `Accept-Encoding: identity` (gzip/deflate answers are still decoded, within
  the cap); framing by `Content-Length`, chunked, or the close of the connection; 1xx
  answers skipped; no body for 204/304.
- At most `max_bytes` of body is read (and at most that much decoded); a longer body is cut
  off, marked `truncated`, and its connection closed instead of drained.
- Keep-alive: a connection whose answer was read whole goes back to the pool; idle ones older
  than `keepalive_s` are closed. A pooled connection that breaks (reset, or closed by the
  server meanwhile) is retried once on a new connection: a GET is safe to send again.
- Redirects are followed up to `max_redirects` (0: not followed, as httpx's default).
- TLS through `ssl`, verified with the given context (default: httpx's, certifi's CAs), SNI
  the URL's host; the certificate's notAfter comes back with each answer.
- `route(scheme, host, port) -> (connect_host, connect_port, tls)` is asked on each request
  (the simulator's resolves names through its DNS and raises `FetchFailed` for DNS faults);
  the default connects to the URL's host and port, resolved by the system per connection.
- Everything within `timeout_s` (checked every 20 ms by one watchdog per client); failures
  are `FetchFailed` with the outcomes `_fetch.classify_error` gives httpx's errors (`_fail`).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

from sidestep.monitor.outcomes import Outcome
from sidestep.monitor.probes._fetch import Fetched, FetchFailed

__all__ = ["Http1Client", "Resolver", "Route", "default_route"]

Route = Callable[[str, str, int], Awaitable[tuple[str, int, bool]]]
Resolver = Callable[[str], Awaitable[str]]
_Key = tuple[str, int, bool, str]

MAX_HEAD = 64 * 1024  # status line and headers together
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_HEX = frozenset(b"0123456789abcdefABCDEF")
_EAI = {socket.EAI_AGAIN: Outcome.SERVFAIL, socket.EAI_NONAME: Outcome.NXDOMAIN,
        getattr(socket, "EAI_NODATA", -5): Outcome.BAD_ANSWER}


async def default_route(scheme: str, host: str, port: int) -> tuple[str, int, bool]:
    """Connect to the URL's own host and port; TLS for https."""
    return host, port, scheme == "https"


class _Garbage(Exception):
    """The answer is not HTTP/1.x as we read it."""


class _Conn:
    __slots__ = ("reader", "writer", "not_after", "idle_since")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.not_after: float | None = None
        self.idle_since = 0.0

    def close(self) -> None:
        self.writer.close()


class _Answer:
    __slots__ = ("status", "headers", "body", "truncated", "not_after")

    def __init__(self, status: int, headers: dict[bytes, bytes]) -> None:
        self.status, self.headers = status, headers
        self.body, self.truncated = b"", False
        self.not_after: float | None = None


class Http1Client:
    """GETs through pooled HTTP/1.1 connections (see the module docstring)."""

    def __init__(self, *, route: Route = default_route, ssl_context: ssl.SSLContext | None = None,
                 max_redirects: int = 0, keepalive_s: float = 5.0, max_idle_per_target: int = 256,
                 user_agent: str = "sidestep-monitor") -> None:
        self.route = route
        self.max_redirects = max_redirects
        self.keepalive_s = keepalive_s
        self.max_idle = max_idle_per_target
        self.user_agent = user_agent
        self._ssl = ssl_context
        self._idle: dict[_Key, list[_Conn]] = {}
        self._urls: dict[str, tuple[str, str, int, bytes]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchdog = _Watchdog()

    async def get(self, url: str, *, timeout_s: float, max_bytes: int) -> Fetched:
        """GET `url` (following redirects as configured) within `timeout_s`."""
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # pooled connections and the watchdog belong to one loop
            self._idle.clear()
            self._loop, self._watchdog = loop, _Watchdog()
        task = asyncio.current_task()
        assert task is not None
        self._watchdog.watch(task, loop.time() + timeout_s)
        try:
            answer = await self._fetch(url, max_bytes)
            for _ in range(self.max_redirects):
                location = answer.headers.get(b"location")
                if answer.status not in _REDIRECTS or not location:
                    break
                url = urljoin(url, location.decode("latin-1"))
                answer = await self._fetch(url, max_bytes)
        except asyncio.CancelledError as exc:
            if not self._watchdog.expired(task):
                raise
            raise FetchFailed(Outcome.TIMEOUT, f"no complete answer in {timeout_s}s") from exc
        finally:
            self._watchdog.forget(task)
        latency_ms = (time.perf_counter() - started) * 1000.0
        return Fetched(answer.status, answer.body, answer.truncated, latency_ms,
                       answer.not_after)

    async def aclose(self) -> None:
        """Close every idle connection."""
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    def idle_connections(self) -> int:
        """How many connections wait in the pool."""
        return sum(map(len, self._idle.values()))

    async def _fetch(self, url: str, max_bytes: int) -> _Answer:
        scheme, host, port, head = self._request_for(url)
        target = await self.route(scheme, host, port)
        key: _Key = (*target, host if target[2] else "")
        conn = self._pooled(key)
        if conn is not None:
            try:
                return await self._exchange(key, conn, head, max_bytes)
            except (OSError, asyncio.IncompleteReadError) as exc:
                if not isinstance(exc, ConnectionError | asyncio.IncompleteReadError):
                    raise _fail(exc, connected=True) from exc
                # the server closed it while idle: a GET is safe to send again, once
        conn = await self._connect(key)
        try:
            return await self._exchange(key, conn, head, max_bytes)
        except (OSError, asyncio.IncompleteReadError) as exc:
            raise _fail(exc, connected=True) from exc

    def _request_for(self, url: str) -> tuple[str, str, int, bytes]:
        known = self._urls.get(url)
        if known is not None:
            return known
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), parts.hostname
        if scheme not in ("http", "https") or not host:
            raise FetchFailed(Outcome.ERROR, f"not an http(s) URL: {url[:200]}")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as exc:
            raise FetchFailed(Outcome.ERROR, f"bad port in {url[:200]}") from exc
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if not host.isascii():
            host = host.encode("idna").decode("ascii")
        authority = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            authority += f":{parts.port}"
        head = (f"GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {self.user_agent}\r\n"
                "Accept: */*\r\nAccept-Encoding: identity\r\n\r\n").encode("latin-1", "replace")
        if len(self._urls) > 4096:
            self._urls.clear()
        self._urls[url] = known = (scheme, host, port, head)
        return known

    def _pooled(self, key: _Key) -> _Conn | None:
        conns = self._idle.get(key)
        now = time.monotonic()
        while conns:
            conn = conns.pop()
            if (now - conn.idle_since < self.keepalive_s and not conn.writer.is_closing()
                    and not conn.reader.at_eof()):
                return conn
            conn.close()
        return None

    async def _connect(self, key: _Key) -> _Conn:
        host, port, tls, sni = key
        context = self._ssl_context() if tls else None
        try:
            reader, writer = await asyncio.open_connection(
                host, port, ssl=context, server_hostname=sni or None, limit=MAX_HEAD)
        except OSError as exc:
            raise _fail(exc, connected=False) from exc
        conn = _Conn(reader, writer)
        if tls:
            cert = writer.get_extra_info("peercert")
            not_after = cert.get("notAfter") if isinstance(cert, dict) else None
            if isinstance(not_after, str):
                conn.not_after = float(ssl.cert_time_to_seconds(not_after))
        return conn

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            import httpx  # its context: certifi's CAs, SSL_CERT_FILE honoured

            self._ssl = httpx.create_ssl_context()
        return self._ssl

    async def _exchange(self, key: _Key, conn: _Conn, head: bytes, max_bytes: int) -> _Answer:
        keep = False
        try:
            conn.writer.write(head)
            answer, keep = await _read_answer(conn.reader, max_bytes)
        except _Garbage as exc:
            raise FetchFailed(Outcome.ERROR, f"garbage answer: {exc}"[:300]) from exc
        except (asyncio.LimitOverrunError, ValueError, zlib.error) as exc:
            raise FetchFailed(Outcome.ERROR, f"garbage answer: {type(exc).__name__}") from exc
        finally:
            if keep and not conn.writer.is_closing():
                self._release(key, conn)
            else:
                conn.close()
        answer.not_after = conn.not_after
        return answer

    def _release(self, key: _Key, conn: _Conn) -> None:
        conns = self._idle.setdefault(key, [])
        if len(conns) >= self.max_idle or self.keepalive_s <= 0:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        conns.append(conn)


class _Watchdog:
    """Cancels requests past their deadline, checking every `tick_s`.

    One task per client instead of a timer per request (`asyncio.timeout` costs about a
    fifth of a probe's CPU): a request can outlast its deadline by up to `tick_s`.
    """

    def __init__(self, tick_s: float = 0.02) -> None:
        self.tick_s = tick_s
        self._due: dict[asyncio.Task[Any], tuple[float, int]] = {}
        self._cancelled: set[asyncio.Task[Any]] = set()
        self._task: asyncio.Task[None] | None = None

    def watch(self, task: asyncio.Task[Any], deadline: float) -> None:
        if task in self._due:
            raise RuntimeError("one request at a time per task")
        self._due[task] = (deadline, task.cancelling())
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def expired(self, task: asyncio.Task[Any]) -> bool:
        """Whether the watchdog's cancellation (withdrawn now) is the only one on `task`; as
        `asyncio.timeout`, a cancellation from elsewhere stays a cancellation."""
        if task not in self._cancelled:
            return False
        self._cancelled.discard(task)
        return task.uncancel() <= self._due[task][1]

    def forget(self, task: asyncio.Task[Any]) -> None:
        self._due.pop(task, None)
        self._cancelled.discard(task)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._due:
                await asyncio.sleep(self.tick_s)
                now = loop.time()
                for task, (deadline, _) in list(self._due.items()):
                    if deadline <= now and task not in self._cancelled:
                        self._cancelled.add(task)
                        task.cancel()
        finally:
            self._task = None


async def _read_answer(reader: asyncio.StreamReader, max_bytes: int) -> tuple[_Answer, bool]:
    """The answer to one GET, and whether the connection can serve another."""
    for _ in range(8):  # skip 1xx (100 Continue, 103 Early Hints)
        answer, keep = _parse_head(await reader.readuntil(b"\r\n\r\n"))
        if answer.status >= 200:
            break
    else:
        raise _Garbage("too many 1xx answers")
    headers = answer.headers
    if answer.status in (204, 304):
        return answer, keep
    decoder = _decoder(headers.get(b"content-encoding", b""))
    coding = headers.get(b"transfer-encoding", b"").lower()
    if coding:
        if not coding.endswith(b"chunked"):
            raise _Garbage(f"transfer-encoding {coding!r:.40}")
        raw, complete = await _read_chunked(reader, max_bytes)
    elif b"content-length" in headers:
        length = _content_length(headers[b"content-length"])
        raw = await reader.readexactly(min(length, max_bytes))
        complete = length <= max_bytes
    else:
        raw = await _read_to_close(reader, max_bytes)
        complete, keep = len(raw) <= max_bytes, False
        raw = raw[:max_bytes]
    answer.body, answer.truncated = raw, not complete
    if decoder is not None:
        answer.body = decoder.decompress(raw, max_bytes)
        answer.truncated = answer.truncated or bool(decoder.unconsumed_tail)
    return answer, keep and complete


def _parse_head(head: bytes) -> tuple[_Answer, bool]:
    lines = head[:-4].split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    code = rest[:3]
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit() \
            or rest[3:4] not in (b"", b" "):
        raise _Garbage(f"status line {lines[0][:60]!r}")
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise _Garbage(f"header line {line[:60]!r}")
        name, value = name.lower(), value.strip()
        if name in headers:
            if name == b"content-length":
                if headers[name] != value:
                    raise _Garbage("conflicting content-length")
                continue
            value = headers[name] + b", " + value
        headers[name] = value
    connection = headers.get(b"connection", b"").lower()
    keep = b"close" not in connection if version == b"HTTP/1.1" else b"keep-alive" in connection
    return _Answer(int(code), headers), keep


def _content_length(value: bytes) -> int:
    if not value.isdigit() or len(value) > 18:
        raise _Garbage(f"content-length {value[:40]!r}")
    return int(value)


async def _read_chunked(reader: asyncio.StreamReader, max_bytes: int) -> tuple[bytes, bool]:
    parts: list[bytes] = []
    room = max_bytes
    while True:
        size_text = (await reader.readuntil(b"\r\n"))[:-2].split(b";", 1)[0].strip()
        if not size_text or len(size_text) > 15 or not _HEX.issuperset(size_text):
            raise _Garbage(f"chunk size {size_text[:20]!r}")
        size = int(size_text, 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return b"".join(parts), True
        if size > room:
            parts.append(await reader.readexactly(room))
            return b"".join(parts), False
        parts.append(await reader.readexactly(size))
        room -= size
        if await reader.readexactly(2) != b"\r\n":
            raise _Garbage("chunk not followed by CRLF")


async def _read_to_close(reader: asyncio.StreamReader, max_bytes: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while size <= max_bytes and (data := await reader.read(max_bytes + 1 - size)):
        parts.append(data)
        size += len(data)
    return b"".join(parts)


def _decoder(coding: bytes) -> zlib._Decompress | None:
    coding = coding.strip().lower()
    if coding in (b"gzip", b"x-gzip"):
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    if coding == b"deflate":
        return zlib.decompressobj()
    return None


def _fail(exc: BaseException, *, connected: bool) -> FetchFailed:
    """The outcome for what the network raised, as `_fetch.classify_error` does for httpx."""
    text = f"{type(exc).__name__}: {exc}"[:300]
    if isinstance(exc, socket.gaierror):
        return FetchFailed(_EAI.get(exc.errno, Outcome.ERROR), text)
    if isinstance(exc, ssl.SSLError):
        return FetchFailed(Outcome.ERROR, f"TLS: {text}")
    if isinstance(exc, TimeoutError):
        return FetchFailed(Outcome.TIMEOUT, text)
    if connected:  # reset or closed mid-answer
        return FetchFailed(Outcome.ERROR, f"connection lost: {text}")
    return FetchFailed(Outcome.REFUSED, text)
