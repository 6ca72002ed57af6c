"""The probes' lean HTTP/1.1 client against a scripted raw server: framing, caps, keep-alive,
redirects, garbage, network failures and TLS."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import ipaddress
import re
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sidestep.catalogue.loader import Probe
from sidestep.clock import SystemClock
from sidestep.monitor.outcomes import Outcome
from sidestep.monitor.probes._fetch import FetchFailed
from sidestep.monitor.probes._http1 import Http1Client, _fail
from sidestep.monitor.probes.http import HttpProbe

# (path, index of the request on its connection) -> (raw answer, close after it?)
Respond = Callable[[bytes, int], Awaitable[tuple[bytes, bool]]]


@dataclass
class Server:
    port: int
    connections: int = 0
    paths: list[bytes] = field(default_factory=list)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    servers: list[asyncio.Server] = []

    async def start(respond: Respond, tls: ssl.SSLContext | None = None) -> Server:
        state = Server(0)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            state.connections += 1
            try:
                for index in range(1_000_000):
                    head = await reader.readuntil(b"\r\n\r\n")
                    path = head.split(b" ")[1]
                    state.paths.append(path)
                    raw, close = await respond(path, index)
                    writer.write(raw)
                    await writer.drain()
                    if close:
                        break
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
        servers.append(server)
        state.port = server.sockets[0].getsockname()[1]
        return state

    yield start
    for server in servers:
        server.close()


def fixed(raw: bytes, close: bool = False) -> Respond:
    async def respond(path: bytes, index: int) -> tuple[bytes, bool]:
        return raw, close
    return respond


def ok(body: bytes, *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in headers) or f"Content-Length: {len(body)}\r\n"
    return f"HTTP/1.1 200 OK\r\n{head}\r\n".encode() + body


async def get(client: Http1Client, server: Server, path: str = "/", *, cap: int = 1000,
              timeout_s: float = 2.0, scheme: str = "http") -> tuple[int, bytes, bool]:
    fetched = await client.get(f"{scheme}://127.0.0.1:{server.port}{path}", timeout_s=timeout_s,
                               max_bytes=cap)
    assert fetched.latency_ms > 0
    return fetched.status, fetched.body, fetched.truncated


async def failure(client: Http1Client, url: str, timeout_s: float = 2.0) -> FetchFailed:
    with pytest.raises(FetchFailed) as caught:
        await client.get(url, timeout_s=timeout_s, max_bytes=1000)
    return caught.value


async def test_content_length_answers_reuse_one_connection(serve: Callable[..., Awaitable[Server]]
                                                           ) -> None:
    server = await serve(fixed(ok(b"hello")))
    client = Http1Client()
    for _ in range(3):
        assert await get(client, server) == (200, b"hello", False)
    assert server.connections == 1
    assert client.idle_connections() == 1
    await client.aclose()
    assert client.idle_connections() == 0


async def test_chunked_answers_with_extensions_and_trailers(
        serve: Callable[..., Awaitable[Server]]) -> None:
    body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n"
    server = await serve(fixed(ok(body, "Transfer-Encoding: chunked")))
    client = Http1Client()
    assert await get(client, server) == (200, b"hello world", False)
    assert await get(client, server) == (200, b"hello world", False)
    assert server.connections == 1


async def test_an_answer_framed_by_close_is_read_and_not_reused(
        serve: Callable[..., Awaitable[Server]]) -> None:
    server = await serve(fixed(b"HTTP/1.1 200 OK\r\nX-A: b\r\n\r\nuntil close", close=True))
    client = Http1Client()
    assert await get(client, server) == (200, b"until close", False)
    assert await get(client, server) == (200, b"until close", False)
    assert server.connections == 2


async def test_1xx_is_skipped_and_204_has_no_body(serve: Callable[..., Awaitable[Server]]) -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    server = await serve(fixed(early + b"HTTP/1.1 204 No Content\r\n\r\n"))
    client = Http1Client()
    assert await get(client, server) == (204, b"", False)
    assert await get(client, server) == (204, b"", False)
    assert server.connections == 1


async def test_http_1_0_closes_unless_kept_alive(serve: Callable[..., Awaitable[Server]]) -> None:
    server = await serve(fixed(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    client = Http1Client()
    assert await get(client, server) == (200, b"ok", False)
    assert client.idle_connections() == 0


@pytest.mark.parametrize("framing", ["content-length", "chunked", "close"])
async def test_a_giant_body_is_cut_at_the_cap(serve: Callable[..., Awaitable[Server]],
                                              framing: str) -> None:
    size = 8 * 1024 * 1024
    if framing == "content-length":
        raw = ok(b"x" * size)
    elif framing == "chunked":
        raw = ok(b"%x\r\n" % size + b"x" * size + b"\r\n0\r\n\r\n", "Transfer-Encoding: chunked")
    else:
        raw = b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * size
    server = await serve(fixed(raw, close=framing == "close"))
    client = Http1Client()
    status, body, truncated = await get(client, server, cap=4096)
    assert (status, body, truncated) == (200, b"x" * 4096, True)
    assert client.idle_connections() == 0  # not drained: closed


async def test_gzip_is_decoded_within_the_cap(serve: Callable[..., Awaitable[Server]]) -> None:
    small, bomb = gzip.compress(b"keyword here"), gzip.compress(b"\0" * 50_000_000)

    async def respond(path: bytes, index: int) -> tuple[bytes, bool]:
        body = small if path == b"/small" else bomb
        return ok(body, "Content-Encoding: gzip", f"Content-Length: {len(body)}"), False

    server = await serve(respond)
    client = Http1Client()
    assert await get(client, server, "/small") == (200, b"keyword here", False)
    status, body, truncated = await get(client, server, "/bomb", cap=len(bomb))
    assert (status, len(body), truncated) == (200, len(bomb), True)


@pytest.mark.parametrize("raw", [
    b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope",
    b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 100_000 + b"\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\ncut short",
])
async def test_garbage_is_an_error(serve: Callable[..., Awaitable[Server]], raw: bytes) -> None:
    server = await serve(fixed(raw, close=True))
    failed = await failure(Http1Client(), f"http://127.0.0.1:{server.port}/")
    assert failed.outcome == Outcome.ERROR, failed.detail


async def test_a_connection_closed_while_idle_is_retried(
        serve: Callable[..., Awaitable[Server]]) -> None:
    # Keep-alive by its headers, but the server drops the connection at its second request,
    # as a server whose idle timeout ran out just when the request was sent.
    async def respond(path: bytes, index: int) -> tuple[bytes, bool]:
        return (ok(b"fine"), False) if index == 0 else (b"", True)

    server = await serve(respond)
    client = Http1Client()
    assert await get(client, server) == (200, b"fine", False)
    assert await get(client, server) == (200, b"fine", False)
    assert (server.connections, len(server.paths)) == (2, 3)


async def test_a_connection_the_server_closed_is_not_reused(
        serve: Callable[..., Awaitable[Server]]) -> None:
    server = await serve(fixed(ok(b"fine"), close=True))
    client = Http1Client()
    assert await get(client, server) == (200, b"fine", False)
    await asyncio.sleep(0.05)  # the server's FIN arrives
    assert await get(client, server) == (200, b"fine", False)
    assert (server.connections, len(server.paths)) == (2, 2)


async def test_redirects_are_followed_only_when_asked(
        serve: Callable[..., Awaitable[Server]]) -> None:
    async def respond(path: bytes, index: int) -> tuple[bytes, bool]:
        if path == b"/loop":
            return b"HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n", False
        if path == b"/old":
            return b"HTTP/1.1 301 Moved\r\nLocation: /new\r\nContent-Length: 0\r\n\r\n", False
        return ok(b"new"), False

    server = await serve(respond)
    assert (await get(Http1Client(), server, "/old"))[0] == 301
    following = Http1Client(max_redirects=3)
    assert await get(following, server, "/old") == (200, b"new", False)
    before = len(server.paths)
    assert (await get(following, server, "/loop"))[0] == 302
    assert len(server.paths) - before == 4  # the first GET and three redirects, then it stops


async def test_a_closed_port_is_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    failed = await failure(Http1Client(), f"http://127.0.0.1:{port}/")
    assert failed.outcome == Outcome.REFUSED


async def test_a_silent_server_times_out_and_outer_cancellation_stays_one(
        serve: Callable[..., Awaitable[Server]]) -> None:
    async def never(path: bytes, index: int) -> tuple[bytes, bool]:
        await asyncio.sleep(3600)
        raise AssertionError

    server = await serve(never)
    client = Http1Client()
    failed = await failure(client, f"http://127.0.0.1:{server.port}/", timeout_s=0.2)
    assert failed.outcome == Outcome.TIMEOUT
    task = asyncio.create_task(get(client, server, timeout_s=60))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize(("error", "outcome"), [
    (socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"), Outcome.SERVFAIL),
    (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), Outcome.NXDOMAIN),
    (ConnectionRefusedError(111, "Connection refused"), Outcome.REFUSED),
    (ssl.SSLCertVerificationError("certificate verify failed"), Outcome.ERROR),
])
def test_network_errors_map_to_outcomes(error: OSError, outcome: Outcome) -> None:
    assert _fail(error, connected=False).outcome == outcome


async def test_urls_it_cannot_fetch_are_errors() -> None:
    assert (await failure(Http1Client(), "ftp://example.com/")).outcome == Outcome.ERROR
    assert (await failure(Http1Client(), "http://example.com:99999/")).outcome == Outcome.ERROR


def self_signed(tmp_path: Path, days: int) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for 127.0.0.1 valid `days`, and a client context
    that trusts it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    return server, ssl.create_default_context(cafile=str(cert_file))


async def test_tls_is_verified_and_the_expiry_reported(
        serve: Callable[..., Awaitable[Server]], tmp_path: Path) -> None:
    server_ctx, trusting = self_signed(tmp_path, days=30)
    server = await serve(fixed(ok(b"secure")), tls=server_ctx)
    client = Http1Client(ssl_context=trusting)
    fetched = await client.get(f"https://127.0.0.1:{server.port}/", timeout_s=5, max_bytes=100)
    assert (fetched.status, fetched.body) == (200, b"secure")
    assert fetched.cert_not_after is not None
    days = (fetched.cert_not_after - dt.datetime.now(dt.UTC).timestamp()) / 86400
    assert 29 < days <= 30
    untrusting = await failure(Http1Client(), f"https://127.0.0.1:{server.port}/", timeout_s=5)
    assert untrusting.outcome == Outcome.ERROR and "TLS" in untrusting.detail


@pytest.mark.parametrize("path", ["fast", "derived", "httpx"])
async def test_the_probe_reports_certificate_expiry_and_can_fail_on_it(
        serve: Callable[..., Awaitable[Server]], tmp_path: Path, path: str) -> None:
    server_ctx, trusting = self_signed(tmp_path, days=10)
    server = await serve(fixed(ok(b"secure")), tls=server_ctx)
    web = Probe(name="web", url=f"https://127.0.0.1:{server.port}/", feature="web")
    async with httpx.AsyncClient(verify=trusting) as client:
        observations = []
        for min_days in (None, 5.0, 20.0):
            probe = HttpProbe(client=client, clock=SystemClock(), min_cert_days=min_days,
                              http1=Http1Client(ssl_context=trusting) if path == "fast" else None,
                              fast=path != "httpx")
            assert (probe.http1 is None) == (path == "httpx")
            observations.append(await probe.check("x", web))
            await probe.aclose()
    assert [o.outcome for o in observations] == ["ok", "ok", "bad_answer"]
    assert all(re.search(r"certificate expires in (9\.9|10\.0) days", o.detail or "")
               for o in observations)
    assert "under 20 days" in (observations[2].detail or "")
