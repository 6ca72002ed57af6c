"""DNS probe against the simulator's real DNS server, through a resolver and at the NS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from dnslib import QTYPE, RR, TXT, A, DNSRecord  # type: ignore[import-untyped]

from sidestep.catalogue.loader import Catalogue
from sidestep.clock import FrozenClock
from sidestep.monitor.outcomes import Outcome
from sidestep.monitor.probes.dns import DnsProbe, NamedResolver
from sidestep.sim.server import Simulator


@pytest.fixture
def probe(clock: FrozenClock) -> DnsProbe:
    return DnsProbe(clock=clock, vantage="test", timeout_s=0.3)


async def test_every_hostname_resolves_through_the_resolver_when_healthy(
    probe: DnsProbe, catalogue: Catalogue, sim_resolver: NamedResolver, clock: FrozenClock
) -> None:
    facebook = catalogue.get("facebook")
    observations = await probe.probe_resolvers(facebook, [sim_resolver])
    assert len(observations) == len(facebook.hostnames)
    for obs in observations:
        assert (obs.platform, obs.signal, obs.vantage, obs.outcome) == (
            "facebook", "dns", "test", Outcome.OK)
        assert obs.observed_at == clock.now()
        assert obs.latency_ms is not None and obs.latency_ms >= 0
        assert "@resolver:sim" in obs.target


async def test_it_asks_the_authoritative_nameservers_straight(
    probe: DnsProbe, catalogue: Catalogue, sim_resolver: NamedResolver
) -> None:
    facebook = catalogue.get("facebook")
    observations = await probe.probe_authoritative(facebook, sim_resolver,
                                                   ns_port=sim_resolver.port)
    in_zone = [h for h in facebook.hostnames if h.endswith("facebook.com")]
    assert len(observations) == len(in_zone) * len(facebook.authoritative_nameservers)
    assert {o.outcome for o in observations} == {Outcome.OK}
    assert all("@authoritative:" in o.target and ".ns.facebook.com(" in o.target
               for o in observations)
    assert not any("fbcdn.net" in o.target for o in observations)  # not in the NS's zone


@pytest.mark.parametrize(("fault", "params", "outcome"), [
    ("dns_servfail", {}, Outcome.SERVFAIL),
    ("dns_nxdomain", {}, Outcome.NXDOMAIN),
    ("timeout", {"dns": True}, Outcome.TIMEOUT),
])
async def test_it_sees_dns_faults_through_resolver_and_nameservers(
    probe: DnsProbe, catalogue: Catalogue, sim: Simulator, sim_resolver: NamedResolver,
    fault: str, params: dict[str, Any], outcome: Outcome,
) -> None:
    await sim.set_fault("facebook", fault, **params)
    facebook = catalogue.get("facebook")
    through_resolver = await probe.probe_resolvers(facebook, [sim_resolver])
    at_nameservers = await probe.probe_authoritative(facebook, sim_resolver,
                                                     ns_port=sim_resolver.port)
    assert {o.outcome for o in through_resolver} == {outcome}
    assert at_nameservers and {o.outcome for o in at_nameservers} == {outcome}
    # Other platforms still resolve: the failure is Meta's, not the resolver's.
    others = await probe.probe_resolvers(catalogue.get("x"), [sim_resolver])
    assert any(o.outcome == Outcome.OK for o in others)


async def test_a_name_the_server_does_not_serve_is_refused(
    probe: DnsProbe, sim_resolver: NamedResolver
) -> None:
    obs = await probe.observe("control", "not-ours.example.org", sim_resolver, via="resolver")
    assert obs.outcome == Outcome.REFUSED


async def test_a_closed_port_is_an_error_or_refused_never_a_crash(probe: DnsProbe) -> None:
    obs = await probe.observe("x", "x.com", NamedResolver("closed", "127.0.0.1", 9),
                              via="resolver")
    assert obs.outcome in (Outcome.REFUSED, Outcome.TIMEOUT)


# -- a rogue server for wrong answers ---------------------------------------------------------


class _Rogue(asyncio.DatagramProtocol):
    def __init__(self, answer: Callable[[DNSRecord], bytes]) -> None:
        self.answer = answer
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        assert self.transport is not None
        self.transport.sendto(self.answer(DNSRecord.parse(data)), addr)


Answer = Callable[[DNSRecord], bytes]
StartRogue = Callable[[Answer], Awaitable[NamedResolver]]


@pytest.fixture
async def rogue() -> AsyncIterator[StartRogue]:
    transports: list[asyncio.BaseTransport] = []

    async def start(answer: Answer) -> NamedResolver:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Rogue(answer), local_addr=("127.0.0.1", 0))
        transports.append(transport)
        return NamedResolver("rogue", "127.0.0.1", transport.get_extra_info("sockname")[1])

    yield start
    for transport in transports:
        transport.close()


def _empty(query: DNSRecord) -> bytes:
    return bytes(query.reply().pack())


def _zero_address(query: DNSRecord) -> bytes:
    reply = query.reply()
    reply.add_answer(RR(query.q.qname, QTYPE.A, rdata=A("0.0.0.0"), ttl=60))
    return bytes(reply.pack())


def _txt_instead(query: DNSRecord) -> bytes:
    reply = query.reply()
    reply.add_answer(RR(query.q.qname, QTYPE.TXT, rdata=TXT("hello"), ttl=60))
    return bytes(reply.pack())


@pytest.mark.parametrize("answer", [_empty, _zero_address, _txt_instead])
async def test_it_rejects_wrong_answers(
    probe: DnsProbe, rogue: StartRogue,
    answer: Answer,
) -> None:
    server = await rogue(answer)
    obs = await probe.observe("facebook", "facebook.com", server, via="resolver")
    assert obs.outcome == Outcome.BAD_ANSWER


async def test_it_handles_a_garbage_reply(
    probe: DnsProbe, rogue: StartRogue,
) -> None:
    server = await rogue(lambda query: query.pack()[:2] + b"\x81\x80" + b"\xff" * 40)
    obs = await probe.observe("facebook", "facebook.com", server, via="resolver")
    assert obs.outcome in (Outcome.ERROR, Outcome.TIMEOUT)
