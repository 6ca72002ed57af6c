"""DNS probe: each hostname through named resolvers, and straight at the authoritative servers.

In 2021 Meta's authoritative nameservers vanished at 15:39 UTC while public resolvers kept
answering from cache until about 15:50. Asking the authoritative servers shows such an outage
at once, and tells a platform's DNS failure from a broken local resolver.

Every query is one A lookup with dnspython (UDP, TCP on truncation), an explicit timeout and a
shared `asyncio.Semaphore`; nothing is cached. Outcomes:

| what came back                                      | outcome      |
|-----------------------------------------------------|--------------|
| NOERROR with A records, each a usable IPv4 address  | `ok`         |
| NOERROR with no A record, or an unusable address    | `bad_answer` |
| SERVFAIL / NXDOMAIN / REFUSED                       | same name    |
| no answer within `timeout_s`                        | `timeout`    |
| ICMP port unreachable on the server                 | `refused`    |
| another rcode, a malformed reply, a socket error    | `error`      |

Authoritative probing resolves each nameserver name through a bootstrap resolver first; when
that fails, the failure is the observation (in 2021 the NS names failed with their zone).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Sequence
from dataclasses import dataclass

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype

from sidestep.catalogue.loader import Platform
from sidestep.clock import Clock
from sidestep.monitor.outcomes import Outcome, Signal
from sidestep.store.health import NewObservation

__all__ = ["DnsAnswer", "DnsProbe", "NamedResolver", "zone_of"]

_RCODES = {
    dns.rcode.SERVFAIL: Outcome.SERVFAIL,
    dns.rcode.NXDOMAIN: Outcome.NXDOMAIN,
    dns.rcode.REFUSED: Outcome.REFUSED,
}


@dataclass(frozen=True, slots=True)
class NamedResolver:
    """A DNS server asked by address: a recursive resolver, or an authoritative server."""

    name: str
    ip: str
    port: int = 53


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    """One query's result: the outcome, the addresses found, how long it took."""

    outcome: Outcome
    addresses: tuple[str, ...]
    latency_ms: float | None
    detail: str


def zone_of(hostname: str) -> str:
    """The zone a name sits in: its last two labels (as the simulator's `catalogue_zones`)."""
    return ".".join(hostname.lower().rstrip(".").split(".")[-2:])


def _usable_ipv4(text: str) -> bool:
    """True for an IPv4 address a public name may point at (not 0.0.0.0, not multicast)."""
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return not (address.is_unspecified or address.is_multicast or address.is_reserved)


class DnsProbe:
    """Queries A records of platform hostnames, with bounded concurrency and timeouts."""

    def __init__(
        self,
        *,
        clock: Clock,
        vantage: str = "local",
        timeout_s: float = 2.0,
        concurrency: int = 32,
    ) -> None:
        if timeout_s <= 0 or concurrency < 1:
            raise ValueError("timeout_s must be positive and concurrency at least 1")
        self.clock = clock
        self.vantage = vantage
        self.timeout_s = timeout_s
        self._slots = asyncio.Semaphore(concurrency)

    async def query(self, hostname: str, server: NamedResolver) -> DnsAnswer:
        """Ask `server` for the A records of `hostname`; never raises for network trouble."""
        message = dns.message.make_query(hostname, dns.rdatatype.A)
        async with self._slots:
            started = time.perf_counter()
            try:
                response, _ = await dns.asyncquery.udp_with_fallback(
                    message, server.ip, timeout=self.timeout_s, port=server.port
                )
            except dns.exception.Timeout:
                return DnsAnswer(Outcome.TIMEOUT, (), None, f"no answer in {self.timeout_s}s")
            except ConnectionRefusedError:
                return DnsAnswer(Outcome.REFUSED, (), None, "port unreachable")
            except (dns.exception.DNSException, OSError, ValueError) as exc:
                return DnsAnswer(Outcome.ERROR, (), None, f"{type(exc).__name__}: {exc}"[:300])
            latency_ms = (time.perf_counter() - started) * 1000.0
        return _judge(response, latency_ms)

    async def observe(
        self, platform: str, hostname: str, server: NamedResolver, *, via: str
    ) -> NewObservation:
        """One observation of `hostname` via `server`; `via`: "resolver" or "authoritative"."""
        answer = await self.query(hostname, server)
        return self._observation(platform, hostname, server, via, answer)

    async def probe_resolvers(
        self, platform: Platform, resolvers: Sequence[NamedResolver]
    ) -> list[NewObservation]:
        """Every catalogue hostname of `platform` through every resolver in `resolvers`."""
        jobs = [self.observe(platform.key, host, server, via="resolver")
                for host in platform.hostnames for server in resolvers]
        return list(await asyncio.gather(*jobs))

    async def probe_authoritative(
        self, platform: Platform, bootstrap: NamedResolver, *, ns_port: int = 53
    ) -> list[NewObservation]:
        """Each in-zone hostname asked straight at each of the platform's nameservers.

        The nameserver names are resolved through `bootstrap`; `ns_port` is the port they
        answer on (53 on the internet; the simulator's port in tests).
        """
        jobs = [self._through_nameserver(platform, ns, bootstrap, ns_port)
                for ns in platform.authoritative_nameservers]
        return [obs for group in await asyncio.gather(*jobs) for obs in group]

    async def _through_nameserver(
        self, platform: Platform, ns: str, bootstrap: NamedResolver, ns_port: int
    ) -> list[NewObservation]:
        hosts = [h for h in platform.hostnames if h == zone_of(ns) or h.endswith("." + zone_of(ns))]
        if not hosts:
            return []
        found = await self.query(ns, bootstrap)
        if found.outcome is not Outcome.OK:
            failed = DnsAnswer(found.outcome, (), found.latency_ms,
                               f"nameserver {ns} did not resolve: {found.detail}")
            unknown = NamedResolver(ns, "", ns_port)
            return [self._observation(platform.key, h, unknown, "authoritative", failed)
                    for h in hosts]
        server = NamedResolver(ns, found.addresses[0], ns_port)
        return list(await asyncio.gather(
            *(self.observe(platform.key, h, server, via="authoritative") for h in hosts)))

    def _observation(
        self, platform: str, hostname: str, server: NamedResolver, via: str, answer: DnsAnswer
    ) -> NewObservation:
        where = f"{server.name}({server.ip}:{server.port})" if server.ip else server.name
        detail = answer.detail or ",".join(answer.addresses)
        return NewObservation(
            platform=platform, signal=Signal.DNS.value, vantage=self.vantage,
            observed_at=self.clock.now(), outcome=answer.outcome.value,
            latency_ms=answer.latency_ms, feature="dns", target=f"{hostname}@{via}:{where}",
            detail=detail[:500] or None,
        )


def _judge(response: dns.message.Message, latency_ms: float) -> DnsAnswer:
    """Classify a DNS response: rcode first, then the A records it carries."""
    rcode = response.rcode()
    if rcode != dns.rcode.NOERROR:
        outcome = _RCODES.get(rcode, Outcome.ERROR)
        return DnsAnswer(outcome, (), latency_ms, dns.rcode.to_text(rcode))
    addresses = tuple(
        str(record.address)
        for rrset in response.answer if rrset.rdtype == dns.rdatatype.A
        for record in rrset
    )
    if not addresses:
        return DnsAnswer(Outcome.BAD_ANSWER, (), latency_ms, "no A record in the answer")
    unusable = [a for a in addresses if not _usable_ipv4(a)]
    if unusable:
        return DnsAnswer(Outcome.BAD_ANSWER, addresses, latency_ms,
                         f"unusable address {unusable[0]}")
    return DnsAnswer(Outcome.OK, addresses, latency_ms, "")
