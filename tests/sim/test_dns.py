"""The simulator's DNS server, queried with plain dnspython over UDP and TCP."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from sidestep.clock import FrozenClock
from sidestep.sim.dns import SimDnsServer
from sidestep.sim.server import Simulator, catalogue_zones
from sidestep.sim.testing import running_simulator
from sidestep.sim.world import Fault, SimWorld

RECORDS = {
    "facebook.com": ("facebook", "127.0.0.2"),
    "graph.facebook.com": ("facebook", "127.0.0.2"),
    "instagram.com": ("instagram", "127.0.0.3"),
    "discord.com": ("discord", "127.0.0.4"),
}
NAMESERVERS = {"facebook.com": ["a.ns.facebook.com", "b.ns.facebook.com"]}


@pytest.fixture
def world(clock: FrozenClock) -> SimWorld:
    return SimWorld(clock=clock, seed=7)


@pytest.fixture
async def server(world: SimWorld) -> AsyncIterator[SimDnsServer]:
    async with SimDnsServer(world, RECORDS, nameservers=NAMESERVERS) as srv:
        yield srv


async def ask(
    server: SimDnsServer, name: str, rdtype: str = "A", *, tcp: bool = False, wait_s: float = 1.0
) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    send = dns.asyncquery.tcp if tcp else dns.asyncquery.udp
    return await send(query, server.host, port=server.port, timeout=wait_s)


def addresses(response: dns.message.Message) -> list[str]:
    return [item.address for rrset in response.answer for item in rrset]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_it_answers_a_known_name_with_its_loopback_address(
    server: SimDnsServer, tcp: bool,
) -> None:
    response = await ask(server, "graph.facebook.com", tcp=tcp)
    assert response.rcode() == dns.rcode.NOERROR
    assert addresses(response) == ["127.0.0.2"]
    assert response.answer[0].ttl == 60
    assert response.flags & dns.flags.AA


async def test_it_answers_aaaa_with_an_empty_noerror(server: SimDnsServer) -> None:
    response = await ask(server, "discord.com", "AAAA")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.answer == []


async def test_it_uses_the_configured_ttl(world: SimWorld) -> None:
    async with SimDnsServer(world, RECORDS, ttl_s=5) as srv:
        response = await ask(srv, "discord.com")
    assert response.answer[0].ttl == 5


async def test_it_answers_ns_for_a_zone_and_the_nameservers_resolve(server: SimDnsServer) -> None:
    response = await ask(server, "facebook.com", "NS")
    names = sorted(str(item.target) for rrset in response.answer for item in rrset)
    assert names == ["a.ns.facebook.com.", "b.ns.facebook.com."]
    ns_address = await ask(server, "a.ns.facebook.com")
    assert addresses(ns_address) == [server.host]


async def test_it_refuses_names_it_is_not_authoritative_for(server: SimDnsServer) -> None:
    response = await ask(server, "www.wikipedia.org")
    assert response.rcode() == dns.rcode.REFUSED


async def test_it_answers_nxdomain_for_an_unknown_name_inside_its_zone(
    server: SimDnsServer,
) -> None:
    response = await ask(server, "nothere.facebook.com")
    assert response.rcode() == dns.rcode.NXDOMAIN


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_it_answers_servfail_under_dns_servfail_like_2021(
    server: SimDnsServer, world: SimWorld, tcp: bool
) -> None:
    world.faults.set("facebook", Fault.DNS_SERVFAIL)
    assert (await ask(server, "facebook.com", tcp=tcp)).rcode() == dns.rcode.SERVFAIL
    assert (await ask(server, "a.ns.facebook.com", tcp=tcp)).rcode() == dns.rcode.SERVFAIL
    assert (await ask(server, "instagram.com", tcp=tcp)).rcode() == dns.rcode.NOERROR


async def test_it_answers_nxdomain_under_dns_nxdomain(
    server: SimDnsServer, world: SimWorld,
) -> None:
    world.faults.set("instagram", Fault.DNS_NXDOMAIN)
    assert (await ask(server, "instagram.com")).rcode() == dns.rcode.NXDOMAIN


async def test_it_recovers_when_the_fault_is_cleared(server: SimDnsServer, world: SimWorld) -> None:
    world.faults.set("facebook", Fault.DNS_SERVFAIL)
    assert (await ask(server, "facebook.com")).rcode() == dns.rcode.SERVFAIL
    world.faults.clear("facebook")
    assert addresses(await ask(server, "facebook.com")) == ["127.0.0.2"]


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_it_answers_nothing_under_a_dns_timeout(
    server: SimDnsServer, world: SimWorld, tcp: bool,
) -> None:
    world.faults.set("discord", Fault.TIMEOUT, dns=True)
    with pytest.raises(dns.exception.Timeout):
        await ask(server, "discord.com", tcp=tcp, wait_s=0.2)
    assert server.stats["dropped_by_fault"] == 1


async def test_a_plain_timeout_fault_leaves_names_resolving(
    server: SimDnsServer, world: SimWorld,
) -> None:
    world.faults.set("discord", Fault.TIMEOUT)
    assert addresses(await ask(server, "discord.com")) == ["127.0.0.4"]


async def test_a_feature_fault_does_not_touch_dns(server: SimDnsServer, world: SimWorld) -> None:
    world.faults.set("facebook", Fault.DNS_SERVFAIL, feature="media")
    assert (await ask(server, "facebook.com")).rcode() == dns.rcode.NOERROR


async def test_a_partial_rate_hits_about_that_share_of_queries(
    server: SimDnsServer, world: SimWorld,
) -> None:
    world.faults.set("discord", Fault.DNS_SERVFAIL, rate=0.5)
    codes = [(await ask(server, "discord.com")).rcode() for _ in range(60)]
    failed = codes.count(dns.rcode.SERVFAIL)
    assert 10 < failed < 50
    assert set(codes) == {dns.rcode.SERVFAIL, dns.rcode.NOERROR}


async def test_control_names_resolve_and_fail_with_the_internet(
    server: SimDnsServer, world: SimWorld,
) -> None:
    assert addresses(await ask(server, "one.one.one.one")) == ["127.0.0.1"]
    assert addresses(await ask(server, "example.com")) == ["127.0.0.1"]
    world.faults.set("internet", Fault.TIMEOUT, dns=True)
    with pytest.raises(dns.exception.Timeout):
        await ask(server, "example.com", wait_s=0.2)
    with pytest.raises(dns.exception.Timeout):
        await ask(server, "discord.com", wait_s=0.2)


async def test_control_names_are_configurable(world: SimWorld) -> None:
    async with SimDnsServer(world, RECORDS, controls={"captive.apple.com": "127.0.0.9"}) as srv:
        assert addresses(await ask(srv, "captive.apple.com")) == ["127.0.0.9"]
        assert (await ask(srv, "example.com")).rcode() == dns.rcode.REFUSED


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "192.168.1.10", "::", "localhost"]  # noqa: S104 - that is the point
)
def test_it_refuses_to_bind_a_non_loopback_address(world: SimWorld, host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        SimDnsServer(world, RECORDS, host=host)


def test_it_refuses_records_that_point_outside_loopback(world: SimWorld) -> None:
    with pytest.raises(ValueError, match="loopback"):
        SimDnsServer(world, {"facebook.com": ("facebook", "157.240.1.35")})


async def test_it_serves_ipv6_loopback(world: SimWorld) -> None:
    async with SimDnsServer(world, RECORDS, host="::1") as srv:
        assert addresses(await ask(srv, "discord.com")) == ["127.0.0.4"]


MALFORMED = [
    b"",
    b"\x00",
    b"\x12\x34" + b"\x01\x00" + b"\x00\x01" + b"\x00" * 6,  # a question count with no question
    b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x3f" + b"a" * 10,  # label runs off the end
    b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01",  # pointer loop
    b"\x12\x34\x01\x00\x00\x05" + b"\x00" * 6 + b"\x00\x00\x01\x00\x01" * 5,  # five questions
    b"\xff" * 600,  # oversized
    bytes(range(256)),
]


async def test_it_drops_malformed_packets_and_keeps_answering(server: SimDnsServer) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        for packet in MALFORMED:
            await loop.sock_sendto(sock, packet, server.address)
        # A valid response to itself (QR set) must not be answered either: no reflection loops.
        reply = dns.message.make_response(dns.message.make_query("discord.com", "A")).to_wire()
        await loop.sock_sendto(sock, reply, server.address)
        response = await ask(server, "discord.com")
    finally:
        sock.close()
    assert addresses(response) == ["127.0.0.4"]
    assert server.stats["malformed"] == len(MALFORMED) + 1


async def test_it_closes_a_tcp_connection_that_announces_an_oversized_query(
    server: SimDnsServer,
) -> None:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"\xff\xff" + b"x" * 100)
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 1.0) == b""
    writer.close()
    assert addresses(await ask(server, "discord.com", tcp=True)) == ["127.0.0.4"]


async def test_it_stops_and_frees_its_port(world: SimWorld) -> None:
    srv = SimDnsServer(world, RECORDS)
    await srv.start()
    port = srv.port
    reader, writer = await asyncio.open_connection(srv.host, port)  # an idle TCP client
    await srv.stop()
    assert await asyncio.wait_for(reader.read(), 1.0) == b""
    writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection(srv.host, port)


# --- the simulator's DNS server, with the catalogue's nameservers -----------------------------


async def ask_simulator(sim: Simulator, name: str, rdtype: str) -> dns.message.Message:
    assert sim.dns_address is not None
    ip, port = sim.dns_address
    return await dns.asyncquery.udp(dns.message.make_query(name, rdtype), ip, port=port,
                                    timeout=2.0)


def ns_names(response: dns.message.Message) -> list[str]:
    return sorted(str(item.target) for rrset in response.answer for item in rrset)


async def test_the_simulator_answers_ns_with_the_catalogues_nameservers() -> None:
    async with running_simulator(seed=1) as sim:
        facebook = await ask_simulator(sim, "facebook.com", "NS")
        whatsapp = await ask_simulator(sim, "whatsapp.net", "NS")
        glue = await ask_simulator(sim, "a.ns.facebook.com", "A")
        dns_ip = sim.dns_address[0] if sim.dns_address else None
        await sim.set_fault("facebook", Fault.DNS_SERVFAIL)
        fallen = await ask_simulator(sim, "a.ns.facebook.com", "A")
    assert ns_names(facebook) == [f"{n}.ns.facebook.com." for n in "abcd"]
    assert ns_names(whatsapp) == [f"{n}.ns.whatsapp.net." for n in "abcd"]
    assert addresses(glue) == [dns_ip]  # the nameserver names lead to the DNS server itself
    assert fallen.rcode() == dns.rcode.SERVFAIL  # Meta's nameservers fall with facebook.com


def test_a_zone_goes_to_the_nameservers_inside_it_and_only_if_a_host_is_simulated() -> None:
    zones = catalogue_zones({"graph.facebook.com": ("facebook", "127.0.1.1"),
                             "mmg.whatsapp.net": ("whatsapp", "127.0.1.2")})
    # whatsapp also lists graph.facebook.com, but facebook.com is a.ns.facebook.com's zone.
    assert zones == {
        "facebook.com": [f"{n}.ns.facebook.com" for n in "abcd"],
        "whatsapp.net": [f"{n}.ns.whatsapp.net" for n in "abcd"],
    }
