"""The simulator: one loopback HTTP listener per platform profile, a control API, a DNS server.

Each profile gets its own loopback address (127.0.1.N, N from 1 in sorted key order) on one
shared port, so DNS can map a real hostname (graph.facebook.com) to that platform's listener
and `SimTransport` can send catalogue URLs there unchanged. All listeners run in the caller's
asyncio loop and share one `SimWorld`.

Every request to a platform passes `PlatformGate` (`sim/gate.py`, which lists what each fault
looks like): the fault in force for the request's feature first, then the platform's published
spec, then the profile's route. `refused` is applied here, by closing the platform's listener.

Faults set through `Simulator.set_fault`/`clear_faults` or the control API reach the listeners
at once; faults set straight on `world.faults` within
`WATCH_INTERVAL_S` (a request that slips in before then is dropped without an answer).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import socket
from types import TracebackType
from typing import Any

import httpx
import uvicorn
from starlette.types import ASGIApp

from sidestep.catalogue import default_catalogue
from sidestep.clock import SystemClock
from sidestep.sim.control import build_control_app
from sidestep.sim.dns import SimDnsServer
from sidestep.sim.gate import PlatformGate, QuietDeliberateCuts, check_fault_params
from sidestep.sim.profile import Profile, all_profiles
from sidestep.sim.specs import load_spec
from sidestep.sim.transport import INTERNET, DnsResolver, MapResolver, Resolver, SimTransport
from sidestep.sim.world import ActiveFault, Fault, SimWorld

__all__ = ["Simulator", "WATCH_INTERVAL_S", "catalogue_zones"]

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 0.05
_STOP_GRACE_S = 0.5


class _Listener:
    """One uvicorn server on one address, which can be closed (refused) and reopened."""

    def __init__(self, app: ASGIApp, ip: str, port: int) -> None:
        self.ip, self.port = ip, port
        config = uvicorn.Config(
            app, host=ip, port=port, lifespan="off", http="h11", ws="none", interface="asgi3",
            log_config=None, access_log=False, proxy_headers=False, server_header=False,
        )
        config.load()
        self.server = uvicorn.Server(config)
        self.server.lifespan = config.lifespan_class(config)
        self.is_open = False

    async def open(self, sock: socket.socket | None = None) -> None:
        """Start accepting on `sock` (pre-bound) or on a fresh socket bound to ip:port."""
        await self.server.startup(sockets=[sock or _bind(self.ip, self.port)])
        await self.server.on_tick(0)  # fills the Date header
        self.is_open = True

    def stop_accepting(self) -> None:
        """Close the listening socket: new connections are refused."""
        for server in getattr(self.server, "servers", []):
            server.close()
        self.is_open = False

    async def close(self) -> None:
        """`close_now`, then wait (briefly) until the connections are really gone, so a client
        that reuses a pooled connection finds it closed rather than reset mid-request."""
        self.close_now()
        for _ in range(100):
            if not self.server.server_state.connections:
                break
            await asyncio.sleep(0.005)

    def close_now(self) -> None:
        """Stop accepting and drop every open connection (held requests see a disconnect)."""
        self.stop_accepting()
        for connection in list(self.server.server_state.connections):
            connection.transport.close()

    async def drain(self) -> None:
        """Let running requests end (held ones end when their connection drops)."""
        state = self.server.server_state
        for connection in list(state.connections):
            connection.shutdown()  # closes idle keep-alive connections at once
        if state.tasks:
            await asyncio.wait(list(state.tasks), timeout=_STOP_GRACE_S)
        self.close_now()
        if state.tasks:
            await asyncio.wait(list(state.tasks), timeout=_STOP_GRACE_S)
        for task in list(state.tasks):
            task.cancel()


def _bind(ip: str, port: int) -> socket.socket:
    """A listening TCP socket on ip:port (listening at once, so no one else can share it)."""
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP, and
    # without it every response waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # rebind past TIME_WAIT
        sock.bind((ip, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _bind_all(ips: list[str], port: int, attempts: int = 20) -> dict[str, socket.socket]:
    """Bind every ip on one port (when `port` is 0, one that is free on all of them)."""
    for attempt in range(attempts):
        bound: dict[str, socket.socket] = {}
        chosen = port
        try:
            for ip in ips:
                bound[ip] = _bind(ip, chosen)
                chosen = _port(bound[ip])
            return bound
        except OSError:
            for sock in bound.values():
                sock.close()
            if port or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _port(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def _loopback(address: str) -> str:
    try:
        loopback = ipaddress.ip_address(address).is_loopback
    except ValueError as exc:
        raise ValueError(f"refusing to bind {address!r}: not an IP address") from exc
    if not loopback:
        raise ValueError(f"refusing to bind {address}: the simulator listens on loopback only")
    return address


def catalogue_zones(records: dict[str, tuple[str, str]]) -> dict[str, list[str]]:
    """Zone -> its authoritative nameserver names, from the catalogue, for the zones that hold
    a simulated host in `records`, so the DNS server answers NS for facebook.com as Meta's did.

    A platform's zones are the last two labels of its catalogue hostnames (no catalogue name
    sits under a multi-label public suffix). Where platforms disagree on a zone (whatsapp lists
    graph.facebook.com), the nameservers named inside the zone win; a zone still ambiguous is
    left out, with a warning.
    """
    claims: dict[str, list[list[str]]] = {}
    for platform in default_catalogue():
        servers = [name.lower() for name in platform.authoritative_nameservers]
        for zone in {".".join(h.lower().split(".")[-2:]) for h in platform.hostnames}:
            if servers and servers not in claims.setdefault(zone, []):
                claims[zone].append(servers)
    zones: dict[str, list[str]] = {}
    for zone, options in sorted(claims.items()):
        if not any(host == zone or host.endswith("." + zone) for host in records):
            continue
        inside = [s for s in options if all(n.endswith("." + zone) for n in s)]
        chosen = inside or options
        if len(chosen) == 1:
            zones[zone] = chosen[0]
        else:
            log.warning("zone %s: the catalogue names several nameserver sets; no NS answer", zone)
    return zones


class Simulator:
    """Every simulated platform, its DNS and the control API, in the running asyncio loop.

    Use `async with Simulator(...) as sim:` (or `start()`/`stop()`). Ports 0 mean "pick free
    ones". `profiles` defaults to every profile under `sidestep.sim.platforms`. With `dns`,
    `sidestep.sim.dns.SimDnsServer` answers for every profile host (and NS for their
    catalogue zones, `catalogue_zones`) and the default transport asks it; otherwise
    `MapResolver` stands in, honouring the same dns_* faults. Raises ValueError for any
    non-loopback address or a host two profiles claim.
    """

    def __init__(
        self,
        *,
        world: SimWorld | None = None,
        http_port: int = 0,
        control_port: int = 0,
        bind_base: str = "127.0.1",
        profiles: dict[str, type[Profile]] | None = None,
        dns: bool = True,
        control_host: str = "127.0.0.1",
    ) -> None:
        self._world = world if world is not None else SimWorld(clock=SystemClock())
        classes = all_profiles() if profiles is None else profiles
        keys = sorted(classes)
        if len(keys) > 254:
            raise ValueError("at most 254 profiles fit on one bind_base")
        self._ips = {key: _loopback(f"{bind_base}.{n}") for n, key in enumerate(keys, start=1)}
        self._control_host = _loopback(control_host)
        self._profiles = {key: classes[key](self._world) for key in keys}
        self._records: dict[str, tuple[str, str]] = {}
        for key, profile in self._profiles.items():
            for host in profile.hosts:
                name = host.lower()
                if name in self._records:
                    owner = self._records[name][0]
                    raise ValueError(f"host {name} is claimed by both {owner} and {key}")
                self._records[name] = (key, self._ips[key])
        self._requested_http_port, self._requested_control_port = http_port, control_port
        self._want_dns = dns
        self._dns: SimDnsServer | None = None
        self._http_port: int | None = None
        self._control_port: int | None = None
        self._listeners: dict[str, _Listener] = {}
        self._control: _Listener | None = None
        self._stopping = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None
        self._sync_lock = asyncio.Lock()

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start every listener, the control API and (with `dns`) the DNS server.

        Raises OSError when a port is taken and ImportError from a broken DNS module.
        """
        self._stopping.clear()
        uvicorn_errors = logging.getLogger("uvicorn.error")
        if not any(isinstance(f, QuietDeliberateCuts) for f in uvicorn_errors.filters):
            uvicorn_errors.addFilter(QuietDeliberateCuts())
        sockets: dict[str, socket.socket] = {}
        try:
            sockets = _bind_all(list(self._ips.values()), self._requested_http_port)
            self._http_port = _port(next(iter(sockets.values()))) if sockets else 0
            for key, profile in self._profiles.items():
                gate = PlatformGate(profile, stopping=self._stopping,
                                    drop_connections=functools.partial(self._drop, key))
                self._listeners[key] = _Listener(gate, self._ips[key], self._http_port)
                await self._listeners[key].open(sockets[self._ips[key]])
            control_sock = sockets[self._control_host] = _bind(
                self._control_host, self._requested_control_port
            )
            self._control_port = _port(control_sock)
            self._control = _Listener(build_control_app(self), self._control_host,
                                      self._control_port)
            await self._control.open(control_sock)
            if self._want_dns:
                await self._start_dns()
            await self.sync()
            self._watcher = asyncio.create_task(self._watch(), name="sim-fault-watcher")
        except BaseException:
            await self.stop()
            for sock in sockets.values():  # those no listener took over yet
                sock.close()
            raise

    def _drop(self, platform: str) -> None:
        self._listeners[platform].close_now()

    async def load_specs(self) -> list[str]:
        """Load every profile's spec now (in a worker thread) instead of on its first request.

        Specs load lazily and some take seconds; call this before tests with short client
        timeouts. Returns one line per profile with a spec saying how its check will go.
        """
        lines = []
        for key, profile in self._profiles.items():
            if profile.spec is not None:
                status = await asyncio.to_thread(load_spec, profile.spec)
                lines.append(f"{key}: {profile.spec.file}: {status}")
        return lines

    async def _start_dns(self) -> None:
        self._dns = SimDnsServer(self._world, dict(self._records), host=self._control_host,
                                 port=0, nameservers=catalogue_zones(self._records))
        await self._dns.start()

    async def stop(self) -> None:
        """Stop everything; requests still held (timeout, slow) are dropped. Idempotent."""
        self._stopping.set()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        listeners = [*self._listeners.values(), *([self._control] if self._control else [])]
        for listener in listeners:
            listener.stop_accepting()
        await asyncio.gather(*(listener.drain() for listener in listeners))
        self._listeners.clear()
        self._control = None
        if self._dns is not None:
            await self._dns.stop()
            self._dns = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    # -- faults --------------------------------------------------------------------------------

    async def set_fault(self, platform: str, fault: Fault | str, *, feature: str | None = None,
                        rate: float = 1.0, **params: Any) -> ActiveFault:
        """Turn a fault on and apply it to the listeners at once.

        Raises ValueError for an unknown platform or fault, a partial fault without a
        feature, a rate outside (0, 1] or params the gate cannot honour.
        """
        if platform not in self._profiles and platform != INTERNET:
            raise ValueError(f"unknown platform {platform!r}; known: {', '.join(self.platforms)}")
        try:
            kind = Fault(fault)
        except ValueError:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(Fault)}") from None
        check_fault_params(kind, params)
        active = self._world.faults.set(platform, kind, feature=feature, rate=rate, **params)
        await self.sync()
        return active

    async def clear_faults(self, platform: str | None = None, fault: Fault | None = None) -> int:
        """Turn faults off (one platform's, one kind, or all), reopen listeners; how many."""
        count = self._world.faults.clear(platform, fault)
        await self.sync()
        return count

    async def sync(self) -> None:
        """Open or close each platform's listener as its `refused` faults say."""
        async with self._sync_lock:
            for key, listener in self._listeners.items():
                refused = any(f.fault is Fault.REFUSED for f in self._world.faults.active(key))
                if refused and listener.is_open:
                    await listener.close()
                elif not refused and not listener.is_open and not self._stopping.is_set():
                    try:
                        await listener.open()
                    except OSError as exc:  # someone took the port meanwhile; retry later
                        log.error("cannot reopen %s on %s:%s: %s", key, listener.ip,
                                  listener.port, exc)

    async def _watch(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            await self.sync()
            ticks += 1
            if ticks % 20 == 0:  # about once a second: keep the Date header current
                for listener in self._listeners.values():
                    await listener.server.on_tick(0)

    # -- addresses and clients -----------------------------------------------------------------

    @property
    def world(self) -> SimWorld:
        return self._world

    @property
    def platforms(self) -> list[str]:
        """The profile keys served, sorted."""
        return list(self._profiles)

    @property
    def profiles(self) -> dict[str, Profile]:
        return dict(self._profiles)

    @property
    def http_port(self) -> int:
        """The port every platform listens on (raises RuntimeError before `start()`)."""
        if self._http_port is None:
            raise RuntimeError("the simulator is not started")
        return self._http_port

    @property
    def control_url(self) -> str:
        if self._control_port is None:
            raise RuntimeError("the simulator is not started")
        return f"http://{self._control_host}:{self._control_port}"

    @property
    def dns_address(self) -> tuple[str, int] | None:
        """(ip, port) of the simulated DNS server, or None when none runs."""
        return None if self._dns is None else (self._control_host, self._dns.port)

    def host_map(self) -> dict[str, str]:
        """Every profile hostname -> its platform's IP."""
        return {host: ip for host, (_, ip) in self._records.items()}

    def ip_of(self, platform: str) -> str:
        """The loopback IP of a platform's listener (KeyError for an unknown platform)."""
        return self._ips[platform]

    def base_url(self, platform: str) -> str:
        """http://<ip>:<port> of a platform, for clients that do not use `SimTransport`."""
        return f"http://{self.ip_of(platform)}:{self.http_port}"

    def resolver(self) -> Resolver:
        """The default resolver: the DNS server when one runs, else the host map."""
        if self.dns_address is not None:
            return DnsResolver(*self.dns_address)
        return MapResolver(self._world, self._records)

    def transport(self, resolver: Resolver | None = None, **kw: Any) -> SimTransport:
        """A transport that sends real platform URLs here (see `SimTransport`)."""
        return SimTransport(resolver=resolver or self.resolver(), http_port=self.http_port, **kw)

    def client(self, **kw: Any) -> httpx.AsyncClient:
        """An `httpx.AsyncClient` over `transport()`; keyword arguments go to the client."""
        return httpx.AsyncClient(transport=self.transport(), **kw)
