"""An httpx transport that sends real platform URLs to the simulator.

Adapters keep their catalogue URLs (`https://graph.facebook.com/v23.0/...`); only the client's
transport differs. `SimTransport` resolves the hostname through the simulator's DNS (or any
resolver given), rewrites the URL to `http://<that ip>:<simulator port>/<same path and query>`,
keeps the original `Host` header, and hands the request to an ordinary
`httpx.AsyncHTTPTransport`. Responses keep the original request (and URL).

Resolution failures become what a plain httpx client sees when the system resolver fails:

- `DnsServfail` -> `httpx.ConnectError("[Errno -3] Temporary failure in name resolution")`
- `DnsNxdomain` -> `httpx.ConnectError("[Errno -2] Name or service not known")`
- `DnsNoAddress` -> `httpx.ConnectError("[Errno -5] No address associated with hostname")`
- `DnsTimeout` -> `httpx.ConnectTimeout`

Resolvers are `async (hostname) -> ip` callables that raise those `DnsFailure` subclasses (or
httpx errors, passed through). Two are provided: `DnsResolver` asks a DNS server (the
simulator's) with dnspython; `MapResolver` reads a host map and honours the world's dns_*
faults without any DNS server.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
import httpx

from sidestep.sim.world import ActiveFault, Fault, SimWorld

__all__ = [
    "DnsFailure",
    "DnsNoAddress",
    "DnsNxdomain",
    "DnsResolver",
    "DnsServfail",
    "DnsTimeout",
    "INTERNET",
    "MapResolver",
    "Resolver",
    "SimTransport",
]

Resolver = Callable[[str], Awaitable[str]]
INTERNET = "internet"  # the pseudo-platform whose DNS faults cut every name (as in sim/dns.py)

# What glibc's getaddrinfo says, as httpx shows it (str of the socket.gaierror).
_SERVFAIL_TEXT = "[Errno -3] Temporary failure in name resolution"
_NXDOMAIN_TEXT = "[Errno -2] Name or service not known"
_NODATA_TEXT = "[Errno -5] No address associated with hostname"


class DnsFailure(Exception):
    """A hostname could not be resolved; subclasses say how."""

    def __init__(self, hostname: str, detail: str = "") -> None:
        super().__init__(f"{hostname}: {detail or type(self).__name__}")
        self.hostname = hostname


class DnsServfail(DnsFailure):
    """The resolver answered SERVFAIL (or REFUSED): the 2021 Meta outage."""


class DnsNxdomain(DnsFailure):
    """The name does not exist."""


class DnsNoAddress(DnsFailure):
    """The name exists but has no A record."""


class DnsTimeout(DnsFailure):
    """No answer from the DNS server in time."""


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class DnsResolver:
    """Resolve A records by asking one DNS server directly (no system resolver, no cache)."""

    def __init__(self, server_ip: str, server_port: int, *, timeout_s: float = 2.0) -> None:
        self.server_ip = server_ip
        self.server_port = server_port
        self.timeout_s = timeout_s

    async def __call__(self, hostname: str) -> str:
        """The first A record of `hostname`; raises a `DnsFailure` subclass otherwise."""
        query = dns.message.make_query(hostname, dns.rdatatype.A)
        try:
            answer = await dns.asyncquery.udp(
                query, self.server_ip, timeout=self.timeout_s, port=self.server_port
            )
        except dns.exception.Timeout as exc:
            raise DnsTimeout(hostname, f"no answer from {self.server_ip}:{self.server_port}") \
                from exc
        rcode = answer.rcode()
        if rcode == dns.rcode.NXDOMAIN:
            raise DnsNxdomain(hostname)
        if rcode != dns.rcode.NOERROR:
            raise DnsServfail(hostname, dns.rcode.to_text(rcode))
        for rrset in answer.answer:
            if rrset.rdtype == dns.rdatatype.A:
                for record in rrset:
                    return str(record.address)
        raise DnsNoAddress(hostname)


class MapResolver:
    """Resolve from a host map, failing as the world's dns_servfail/dns_nxdomain faults say.

    Used when no simulated DNS server runs: the same faults, without the UDP round trip (a
    dropped query fails at once here instead of after the timeout). `records` maps
    hostname -> (platform, ip); unknown names are NXDOMAIN.
    """

    def __init__(self, world: SimWorld, records: Mapping[str, tuple[str, str]]) -> None:
        self.world = world
        self.records = {name.lower().rstrip("."): entry for name, entry in records.items()}

    async def __call__(self, hostname: str) -> str:
        entry = self.records.get(hostname.lower().rstrip("."))
        if entry is None:
            raise DnsNxdomain(hostname)
        platform, ip = entry
        # The same rules as the simulated DNS server (sim/dns.py): faults on the whole
        # platform (no feature), on it or on the pseudo-platform "internet"; a timeout only
        # when its params say {"dns": true}; `rate` drawn from the world's generator.
        for key in (INTERNET, platform):
            for active in self.world.faults.active(key):
                if active.feature is not None or not _hits_dns(active):
                    continue
                if active.rate < 1.0 and self.world.rng.random() >= active.rate:
                    continue
                if active.fault is Fault.DNS_SERVFAIL:
                    raise DnsServfail(hostname)
                if active.fault is Fault.DNS_NXDOMAIN:
                    raise DnsNxdomain(hostname)
                raise DnsTimeout(hostname, "the DNS server dropped the query")
        return ip


def _hits_dns(active: ActiveFault) -> bool:
    """Whether a fault acts on name resolution (see sim/dns.py's table)."""
    return active.fault.is_dns or (active.fault is Fault.TIMEOUT and bool(active.params.get("dns")))


class SimTransport(httpx.AsyncBaseTransport):
    """Send requests for real platform hostnames to the simulator's listeners.

    `http_port` is the simulator's HTTP port (the same on every platform IP). Requests to IP
    literals and `localhost` pass through unchanged, so one client can also reach the control
    API or a real local peer. Other keyword arguments go to `httpx.AsyncHTTPTransport`.
    """

    def __init__(self, *, resolver: Resolver, http_port: int, **transport_kwargs: Any) -> None:
        self.resolver = resolver
        self.http_port = http_port
        self._inner = httpx.AsyncHTTPTransport(**transport_kwargs)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if _is_ip_literal(host) or host == "localhost":
            return await self._inner.handle_async_request(request)
        ip = await self._resolve(host, request)
        target = request.url.copy_with(scheme="http", host=ip, port=self.http_port)
        # A new request, so the caller's request (and response.url) keep the real hostname;
        # the headers already hold `Host: <real hostname>`, built from the original URL.
        forwarded = httpx.Request(
            request.method,
            target,
            headers=request.headers,
            stream=request.stream,
            extensions=request.extensions,
        )
        return await self._inner.handle_async_request(forwarded)

    async def _resolve(self, host: str, request: httpx.Request) -> str:
        try:
            return await self.resolver(host)
        except DnsTimeout as exc:
            raise httpx.ConnectTimeout(f"DNS lookup of {host} timed out", request=request) \
                from exc
        except DnsNxdomain as exc:
            raise httpx.ConnectError(_NXDOMAIN_TEXT, request=request) from exc
        except DnsNoAddress as exc:
            raise httpx.ConnectError(_NODATA_TEXT, request=request) from exc
        except DnsServfail as exc:
            raise httpx.ConnectError(_SERVFAIL_TEXT, request=request) from exc

    async def aclose(self) -> None:
        await self._inner.aclose()
