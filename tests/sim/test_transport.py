"""Real platform URLs through `SimTransport`, and DNS failures as a plain client meets them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import dns.asyncquery
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sidestep.sim.profile import ErrorKind, Profile, all_profiles
from sidestep.sim.server import Simulator
from sidestep.sim.testing import running_simulator
from sidestep.sim.transport import DnsResolver, DnsServfail, SimTransport
from sidestep.sim.world import Fault
from tests.sim.conftest import TOKEN, TestplatProfile

AUTH = {"Authorization": f"Bearer {TOKEN}"}
POSTS = "https://api.testplat.example/v1/posts"


class EchoProfile(TestplatProfile):
    """testplat plus GET /v1/echo, which shows what reached the server."""

    __test__ = False

    def routes(self) -> list[BaseRoute]:
        return [*super().routes(), Route("/v1/echo", self.echo, methods=["GET"])]

    async def echo(self, request: Request) -> Response:
        return JSONResponse({"host": request.headers["host"], "path": request.url.path,
                             "query": request.url.query})


@pytest.fixture
async def dns_sim() -> AsyncIterator[Simulator]:
    """testplat behind the real simulated DNS server (sidestep.sim.dns)."""
    async with running_simulator(seed=1, profiles={"testplat": EchoProfile}, dns=True) as sim:
        sim.world.grant_token("testplat", TOKEN, "brand")
        yield sim


async def test_it_sends_real_urls_to_the_platform_keeping_host_path_and_query(
    sim: Simulator,
) -> None:
    async with running_simulator(profiles={"testplat": EchoProfile}, dns=False) as echo_sim:
        async with echo_sim.client() as client:
            response = await client.get("https://cdn.testplat.example/v1/echo?a=1&b=two")
    assert response.json() == {"host": "cdn.testplat.example", "path": "/v1/echo",
                               "query": "a=1&b=two"}
    assert str(response.url) == "https://cdn.testplat.example/v1/echo?a=1&b=two"


async def test_a_post_through_the_transport_is_recorded(sim: Simulator) -> None:
    async with sim.client() as client:
        response = await client.post(POSTS, json={"text": "hi"}, headers=AUTH)
    assert response.status_code == 201
    assert sim.world.record.find("testplat", response.json()["id"]) is not None


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault.DNS_SERVFAIL, "[Errno -3] Temporary failure in name resolution"),
        (Fault.DNS_NXDOMAIN, "[Errno -2] Name or service not known"),
    ],
)
async def test_dns_faults_without_a_dns_server_fail_like_getaddrinfo(
    sim: Simulator, fault: Fault, message: str
) -> None:
    await sim.set_fault("testplat", fault)
    async with sim.client() as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.post(POSTS, json={"text": "hi"}, headers=AUTH)
    assert str(caught.value) == message
    assert sim.world.record.all() == []


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault.DNS_SERVFAIL, "[Errno -3] Temporary failure in name resolution"),
        (Fault.DNS_NXDOMAIN, "[Errno -2] Name or service not known"),
    ],
)
async def test_dns_faults_through_the_simulated_dns_server_fail_like_getaddrinfo(
    dns_sim: Simulator, fault: Fault, message: str
) -> None:
    async with dns_sim.client() as client:
        assert (await client.post(POSTS, json={"text": "ok"}, headers=AUTH)).status_code == 201
        await dns_sim.set_fault("testplat", fault)
        with pytest.raises(httpx.ConnectError) as caught:
            await client.post(POSTS, json={"text": "lost"}, headers=AUTH)
    assert str(caught.value) == message
    assert isinstance(caught.value.__cause__, Exception)


async def test_a_plain_dnspython_client_sees_servfail_from_the_simulator(
    dns_sim: Simulator,
) -> None:
    assert dns_sim.dns_address is not None
    ip, port = dns_sim.dns_address
    query = dns.message.make_query("api.testplat.example", dns.rdatatype.A)
    answer = await dns.asyncquery.udp(query, ip, port=port, timeout=2)
    assert answer.rcode() == dns.rcode.NOERROR
    assert answer.answer[0][0].address == dns_sim.ip_of("testplat")
    await dns_sim.set_fault("testplat", Fault.DNS_SERVFAIL)
    answer = await dns.asyncquery.udp(query, ip, port=port, timeout=2)
    assert answer.rcode() == dns.rcode.SERVFAIL


async def test_a_dropped_dns_query_is_a_connect_timeout(sim: Simulator) -> None:
    await sim.set_fault("testplat", Fault.TIMEOUT, dns=True)
    async with sim.client() as client:
        with pytest.raises(httpx.ConnectTimeout):
            await client.post(POSTS, json={"text": "hi"}, headers=AUTH)


async def test_a_name_the_simulator_does_not_know_does_not_exist(sim: Simulator) -> None:
    async with sim.client() as client:
        with pytest.raises(httpx.ConnectError, match="Name or service not known"):
            await client.get("https://nowhere.example/")


async def test_faults_on_the_internet_pseudo_platform_cut_every_name(sim: Simulator) -> None:
    await sim.set_fault("internet", Fault.DNS_SERVFAIL)
    async with sim.client() as client:
        with pytest.raises(httpx.ConnectError, match="Temporary failure"):
            await client.post(POSTS, json={"text": "hi"}, headers=AUTH)


async def test_ip_literal_urls_pass_through_unchanged(sim: Simulator) -> None:
    async with sim.client() as client:
        response = await client.get(f"{sim.control_url}/health")
    assert response.json()["status"] == "ok"


async def test_a_custom_resolver_decides_where_names_go(sim: Simulator) -> None:
    asked: list[str] = []

    async def resolver(hostname: str) -> str:
        asked.append(hostname)
        if hostname == "down.example":
            raise DnsServfail(hostname)
        return sim.ip_of("testplat")

    transport = SimTransport(resolver=resolver, http_port=sim.http_port)
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.post("https://anything.example/v1/posts", json={"text": "x"},
                                     headers=AUTH)
        with pytest.raises(httpx.ConnectError, match="Temporary failure"):
            await client.get("https://down.example/")
    assert response.status_code == 201
    assert asked == ["anything.example", "down.example"]


# --- DnsResolver against a DNS server that answers exactly as told --------------------------


class _ScriptedDns(asyncio.DatagramProtocol):
    def __init__(self, answer: Callable[[dns.message.Message], dns.message.Message | None]):
        self.answer = answer
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        reply = self.answer(dns.message.from_wire(data))
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply.to_wire(), addr)


async def scripted_resolver(
    answer: Callable[[dns.message.Message], dns.message.Message | None],
) -> tuple[DnsResolver, asyncio.DatagramTransport]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _ScriptedDns(answer),
                                                       local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    return DnsResolver("127.0.0.1", port, timeout_s=0.3), transport


def rcode_reply(rcode: dns.rcode.Rcode) -> Callable[[dns.message.Message], dns.message.Message]:
    def answer(query: dns.message.Message) -> dns.message.Message:
        reply = dns.message.make_response(query)
        reply.set_rcode(rcode)
        return reply

    return answer


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (rcode_reply(dns.rcode.SERVFAIL), httpx.ConnectError, "[Errno -3] Temporary failure"),
        (rcode_reply(dns.rcode.REFUSED), httpx.ConnectError, "[Errno -3] Temporary failure"),
        (rcode_reply(dns.rcode.NXDOMAIN), httpx.ConnectError, "[Errno -2] Name or service"),
        (rcode_reply(dns.rcode.NOERROR), httpx.ConnectError, "[Errno -5] No address"),
        (lambda query: None, httpx.ConnectTimeout, "DNS lookup of graph.facebook.com timed"),
    ],
    ids=["servfail", "refused", "nxdomain", "no-a-record", "no-answer"],
)
async def test_dns_answers_become_the_errors_a_plain_client_gets(
    answer: Callable[[dns.message.Message], dns.message.Message | None],
    error: type[Exception], message: str,
) -> None:
    resolver, server = await scripted_resolver(answer)
    try:
        transport = SimTransport(resolver=resolver, http_port=9)
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(error) as caught:
                await client.get("https://graph.facebook.com/v23.0/me")
        assert str(caught.value).startswith(message)
    finally:
        server.close()


async def test_dns_resolver_returns_the_a_record() -> None:
    def answer(query: dns.message.Message) -> dns.message.Message:
        reply = dns.message.make_response(query)
        reply.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A",
                                                "127.0.1.9"))
        return reply

    resolver, server = await scripted_resolver(answer)
    try:
        assert await resolver("graph.facebook.com") == "127.0.1.9"
    finally:
        server.close()


# --- the fault battery: every fault on every registered platform profile ----------------------

BATTERY_TIMEOUT_S = 0.2


def expected_status(profile: Profile, kind: ErrorKind) -> int:
    return profile.error(kind, "expected", retry_after_s=30).status_code


@pytest.mark.parametrize("platform", sorted(all_profiles()))
async def test_every_fault_reaches_a_plain_client_of_every_platform(platform: str) -> None:
    profiles = {platform: all_profiles()[platform]}
    async with running_simulator(seed=3, profiles=profiles, dns=True) as sim:
        await sim.load_specs()  # a first lazy load would outlast the short client timeout
        profile = sim.profiles[platform]
        url = f"https://{profile.hosts[0]}/"
        feature = profile.feature_of(Request({"type": "http", "method": "GET", "path": "/",
                                              "headers": [], "query_string": b""}))
        async with sim.client(timeout=BATTERY_TIMEOUT_S) as client:
            baseline = (await client.get(url)).status_code

            async def status_under(fault: Fault, **kw: Any) -> int:
                await sim.set_fault(platform, fault, **kw)
                try:
                    return (await client.get(url)).status_code
                finally:
                    await sim.clear_faults()

            assert await status_under(Fault.HTTP_5XX) == \
                expected_status(profile, ErrorKind.SERVER_ERROR)
            assert await status_under(Fault.HTTP_5XX, kind="unavailable") == \
                expected_status(profile, ErrorKind.UNAVAILABLE)
            assert await status_under(Fault.RATE_LIMITED) == \
                expected_status(profile, ErrorKind.RATE_LIMITED)
            assert await status_under(Fault.AUTH_EXPIRED) == \
                expected_status(profile, ErrorKind.AUTH_EXPIRED)
            assert await status_under(Fault.PARTIAL, feature=feature) == \
                expected_status(profile, ErrorKind.MEDIA_FAILED)
            assert await status_under(Fault.PARTIAL, feature="another-feature") == baseline
            assert await status_under(Fault.SLOW, delay_s=0.01) == baseline

            await sim.set_fault(platform, Fault.GARBAGE, variant="json")
            with pytest.raises(json.JSONDecodeError):
                (await client.get(url)).json()
            await sim.set_fault(platform, Fault.GARBAGE, variant="html")
            page = await client.get(url)
            assert (page.status_code, page.headers["content-type"]) == (502, "text/html")
            await sim.set_fault(platform, Fault.GARBAGE, variant="truncated")
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(url)
            await sim.clear_faults()

            for fault, error in [(Fault.REFUSED, httpx.ConnectError),
                                 (Fault.TIMEOUT, httpx.ReadTimeout),
                                 (Fault.DNS_SERVFAIL, httpx.ConnectError),
                                 (Fault.DNS_NXDOMAIN, httpx.ConnectError)]:
                await sim.set_fault(platform, fault)
                with pytest.raises(error):
                    await client.get(url)
                await sim.clear_faults()
            assert (await client.get(url)).status_code == baseline
        assert sim.world.record.all() == []
