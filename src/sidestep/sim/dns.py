"""A local DNS server, authoritative for the simulated hostnames, that fails like 2021.

On 2021-10-04 the BGP routes to Meta's authoritative nameservers were withdrawn and every
resolver on earth answered SERVFAIL for facebook.com, instagram.com and whatsapp.net. This
server plays that part for the simulator: it is the authority for the names in `records`
(hostname -> (platform key, loopback IP)) and answers each query according to the faults in
force on that name's platform in `SimWorld.faults`:

| fault on the platform (feature None)         | answer                                   |
|----------------------------------------------|------------------------------------------|
| `dns_servfail`                               | SERVFAIL                                 |
| `dns_nxdomain`                               | NXDOMAIN                                 |
| `timeout` with params `{"dns": true}`        | nothing at all (the packet is dropped)   |
| any other, or none                           | the A record; empty NOERROR for AAAA etc.|

A fault's `rate` is honoured (each query is hit with that probability, drawn from the
world's seeded generator). Faults on one feature (`feature="media"`) never touch DNS.

Names that are not ours are REFUSED: this is an authority, not a recursive resolver. Names
under a zone we serve (`nameservers` keys) but without a record get an authoritative
NXDOMAIN. A small set of *control* names (`controls`, by default example.com and
one.one.one.one) resolve to a loopback IP so the monitor's "is it my own connection?" probes
have something to reach; faults on the pseudo-platform `internet` hit the control names
*and* every other name, which is how `local-network-down` looks from inside.

With `nameservers={"facebook.com": ["a.ns.facebook.com", ...]}` the server answers NS (and
SOA) for the zone, and the nameserver hostnames resolve to the server's own address; they
belong to the zone's platform, so they fail with it, as Meta's did.

Robustness: it listens on UDP and TCP on the same loopback port and refuses to bind
anything else (`ValueError`). Queries longer than 512 bytes, responses (QR set), packets
with other than one question and anything dnslib cannot parse are dropped and counted in
`stats`; a TCP connection carries at most `MAX_QUERIES_PER_CONNECTION` queries, idles out
after `TCP_IDLE_TIMEOUT_S`, and at most `MAX_TCP_CONNECTIONS` are served at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import struct
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from dnslib import AAAA, NS, QTYPE, RCODE, RR, SOA, A, DNSRecord  # type: ignore[import-untyped]

from sidestep.sim.world import ActiveFault, Fault, SimWorld

__all__ = ["DEFAULT_CONTROLS", "INTERNET", "SimDnsServer"]

INTERNET = "internet"  # the pseudo-platform whose faults cut every outside name
CONTROL = "control"  # the platform key reported for control names
DEFAULT_CONTROLS: Mapping[str, str] = {"example.com": "127.0.0.1", "one.one.one.one": "127.0.0.1"}

MAX_QUERY_BYTES = 512  # real queries are far smaller; this also bounds dnslib's parsing work
MAX_QUERIES_PER_CONNECTION = 100
MAX_TCP_CONNECTIONS = 64
TCP_IDLE_TIMEOUT_S = 10.0
_DNS_FAULTS = (Fault.DNS_SERVFAIL, Fault.DNS_NXDOMAIN, Fault.TIMEOUT)


def _loopback(address: str, what: str) -> str:
    """Return `address` if it is a loopback IP literal; raise ValueError otherwise."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError as exc:
        raise ValueError(f"{what} must be a loopback IP address, not {address!r}") from exc
    if not ip.is_loopback:
        raise ValueError(f"{what} must be a loopback IP address, not {address!r}")
    return str(ip)


def _norm(name: str) -> str:
    return name.strip().rstrip(".").lower()


@dataclass(frozen=True, slots=True)
class _Entry:
    platform: str
    ip: str


class SimDnsServer:
    """An authoritative DNS server on loopback that answers per the world's faults."""

    def __init__(
        self,
        world: SimWorld,
        records: dict[str, tuple[str, str]],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        nameservers: dict[str, list[str]] | None = None,
        controls: Mapping[str, str] | None = None,
        ttl_s: int = 60,
    ) -> None:
        """Describe the server; nothing is bound until `start()`.

        Raises ValueError when `host`, a record's IP or a control's IP is not loopback.
        """
        self.world = world
        self.host = _loopback(host, "host")
        self._requested_port = port
        self.ttl_s = ttl_s
        self._entries: dict[str, _Entry] = {
            _norm(name): _Entry(platform, _loopback(ip, f"the IP of {name}"))
            for name, (platform, ip) in records.items()
        }
        for name, ip in (DEFAULT_CONTROLS if controls is None else controls).items():
            self._entries.setdefault(_norm(name), _Entry(CONTROL, _loopback(ip, f"control {name}")))
        self._zones: dict[str, list[str]] = {}
        for zone, servers in (nameservers or {}).items():
            zone_name = _norm(zone)
            self._zones[zone_name] = [_norm(s) for s in servers]
            platform = self._platform_of_zone(zone_name)
            for server in self._zones[zone_name]:
                self._entries.setdefault(server, _Entry(platform, self.host))
        self.stats: Counter[str] = Counter()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._port = 0

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (after `start()`), shared by UDP and TCP."""
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self._port)

    async def start(self) -> None:
        """Bind UDP and TCP on the same port (an ephemeral one if `port` was 0)."""
        loop = asyncio.get_running_loop()
        attempts = 1 if self._requested_port else 20
        for attempt in range(attempts):
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(self.host, self._requested_port)
            )
            port = int(transport.get_extra_info("sockname")[1])
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, self.host, port)
            except OSError:
                transport.close()
                if attempt == attempts - 1:
                    raise
                continue  # the TCP side of that ephemeral port was taken; try another
            self._udp = transport
            self._port = port
            return

    async def stop(self) -> None:
        """Close both listeners and every open TCP connection."""
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._tcp.wait_closed()
            self._tcp = None

    async def __aenter__(self) -> SimDnsServer:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # -- answering ---------------------------------------------------------------------------

    def answer(self, packet: bytes) -> bytes | None:
        """The wire response to one query packet, or None to send nothing (dropped)."""
        self.stats["packets"] += 1
        if not 12 <= len(packet) <= MAX_QUERY_BYTES:
            return self._drop("malformed")
        flags, qdcount = struct.unpack("!H H", packet[2:6])
        if flags & 0x8000 or qdcount != 1:  # a response, or not exactly one question
            return self._drop("malformed")
        try:
            query = DNSRecord.parse(packet)
            qname = _norm(str(query.q.qname))
        except Exception:  # dnslib raises several types on garbage: all mean drop
            return self._drop("malformed")
        reply = query.reply(ra=0, aa=1)
        if query.header.opcode != 0:
            reply.header.rcode = RCODE.NOTIMP
            return self._send(reply, "notimp")
        entry = self._entries.get(qname)
        zone = self._zone_of(qname)
        if entry is None and zone is None:
            reply.header.aa = 0
            reply.header.rcode = RCODE.REFUSED
            return self._send(reply, "refused")
        platform = entry.platform if entry else self._platform_of_zone(zone or qname)
        fault = self._dns_fault(platform)
        if fault is not None:
            if fault.fault is Fault.TIMEOUT:
                return self._drop("dropped_by_fault")
            if fault.fault is Fault.DNS_SERVFAIL:
                reply.header.rcode = RCODE.SERVFAIL
                reply.header.aa = 0  # a resolver's SERVFAIL carries no authority
            else:
                reply.header.rcode = RCODE.NXDOMAIN
            return self._send(reply, fault.fault.value)
        if entry is None:
            reply.header.rcode = RCODE.NXDOMAIN
            self._add_soa(reply, zone)
            return self._send(reply, "nxdomain")
        self._fill(reply, qname, int(query.q.qtype), entry, zone)
        return self._send(reply, "answered")

    def _fill(
        self, reply: DNSRecord, qname: str, qtype: int, entry: _Entry, zone: str | None
    ) -> None:
        if qtype in (QTYPE.A, QTYPE.ANY) and ":" not in entry.ip:
            reply.add_answer(RR(qname, QTYPE.A, rdata=A(entry.ip), ttl=self.ttl_s))
        elif qtype in (QTYPE.AAAA, QTYPE.ANY) and ":" in entry.ip:
            reply.add_answer(RR(qname, QTYPE.AAAA, rdata=AAAA(entry.ip), ttl=self.ttl_s))
        elif qtype == QTYPE.NS and qname in self._zones:
            for server in self._zones[qname]:
                reply.add_answer(RR(qname, QTYPE.NS, rdata=NS(server), ttl=self.ttl_s))
                reply.add_ar(RR(server, QTYPE.A, rdata=A(self._entries[server].ip), ttl=self.ttl_s))
        elif qtype == QTYPE.SOA and qname in self._zones:
            reply.add_answer(self._soa(qname))
        else:  # NODATA: the name exists, this type does not
            self._add_soa(reply, zone)

    def _add_soa(self, reply: DNSRecord, zone: str | None) -> None:
        if zone is not None and self._zones.get(zone):
            reply.add_auth(self._soa(zone))

    def _soa(self, zone: str) -> RR:
        primary = self._zones[zone][0] if self._zones[zone] else f"ns.{zone}"
        times = (1, 3600, 600, 86400, self.ttl_s)  # serial, refresh, retry, expire, minimum
        return RR(zone, QTYPE.SOA, rdata=SOA(primary, f"hostmaster.{zone}", times), ttl=self.ttl_s)

    def _dns_fault(self, platform: str) -> ActiveFault | None:
        """The fault that hits this query, if any; `internet` faults hit every name."""
        for key in (INTERNET, platform):
            for active in self.world.faults.active(key):
                if active.feature is not None or active.fault not in _DNS_FAULTS:
                    continue
                if active.fault is Fault.TIMEOUT and not active.params.get("dns"):
                    continue  # a plain timeout is a TCP/HTTP fault: names still resolve
                if active.rate >= 1.0 or self.world.rng.random() < active.rate:
                    return active
        return None

    def _zone_of(self, qname: str) -> str | None:
        """The longest zone we serve that contains `qname`, if any."""
        inside = [z for z in self._zones if qname == z or qname.endswith("." + z)]
        return max(inside, key=len) if inside else None

    def _platform_of_zone(self, zone: str) -> str:
        """The platform owning a zone: that of the zone apex, else of any name under it."""
        if zone in self._entries:
            return self._entries[zone].platform
        for name, entry in sorted(self._entries.items()):
            if name.endswith("." + zone) and entry.platform != CONTROL:
                return entry.platform
        return zone

    def _send(self, reply: DNSRecord, outcome: str) -> bytes:
        self.stats[outcome] += 1
        return bytes(reply.pack())

    def _drop(self, outcome: str) -> bytes | None:
        """Count a packet we send nothing back for; return None (nothing to send)."""
        self.stats[outcome] += 1
        return None

    # -- transports --------------------------------------------------------------------------

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is None or len(self._connections) >= MAX_TCP_CONNECTIONS:
            self.stats["tcp_rejected"] += 1
            writer.close()
            return
        self._connections.add(task)
        try:
            for _ in range(MAX_QUERIES_PER_CONNECTION):
                header = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_TIMEOUT_S)
                (length,) = struct.unpack("!H", header)
                if length > MAX_QUERY_BYTES:
                    self.stats["malformed"] += 1
                    break
                packet = await asyncio.wait_for(reader.readexactly(length), TCP_IDLE_TIMEOUT_S)
                response = self.answer(packet)
                if response is not None:
                    writer.write(struct.pack("!H", len(response)) + response)
                    await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away or idled out: nothing to answer
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: SimDnsServer) -> None:
        self._server = server
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport is not a DatagramTransport subclass.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        response = self._server.answer(data)
        if response is not None and self._transport is not None:
            self._transport.sendto(response, addr)
