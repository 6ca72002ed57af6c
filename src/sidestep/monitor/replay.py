"""Scenario replay through fusion at simulated time, with the probes modelled, not sent.

A week of probing 19 platforms is millions of DNS queries; `bench/detect` replays each
scenario 50 times. `ProbeModel` therefore computes what each probe *would* see from the
simulator's fault board, following the simulator's own rules (`sim/dns.py` for names,
`sim/gate.py` for HTTP, `StatusProfile.shown` for status pages), with the simulator's
profiles deciding which product and feature a probe URL belongs to and which status code
its errors carry. `tests/monitor/test_replay_model.py` holds the model to the real servers
for every fault kind. A healthy simulated answer is taken as OK (the model does not copy
the few simulator profiles that do not serve the catalogue's probe URL).

`replay(scenario, seed=...)` runs the same schedule as `MonitorRunner` (every
`interval_s`, every `retry_interval_s` while suspect) with a seeded start phase and returns
every transition fusion made.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from urllib.parse import urlsplit

from starlette.requests import Request

from sidestep.catalogue import default_catalogue
from sidestep.catalogue.loader import Probe
from sidestep.clock import FrozenClock
from sidestep.monitor.config import MonitorConfig
from sidestep.monitor.fusion import INTERNET, Fusion, Transition
from sidestep.monitor.outcomes import Outcome, Signal
from sidestep.monitor.probes.dns import zone_of
from sidestep.monitor.probes.statuspage import COMPONENT_OUTCOMES
from sidestep.monitor.runner import reschedule
from sidestep.monitor.targets import Target, targets_for
from sidestep.sim.gate import media_hosts
from sidestep.sim.platforms.status import StatusProfile
from sidestep.sim.profile import ErrorKind, Profile, all_profiles
from sidestep.sim.scenario import Scenario, ScenarioPlayer
from sidestep.sim.server import catalogue_zones
from sidestep.sim.world import ActiveFault, Fault, SimWorld
from sidestep.store.health import NewObservation

__all__ = ["ProbeModel", "ReplayResult", "replay", "simulated_hosts"]

_DNS_OUTCOME = {Fault.DNS_SERVFAIL: Outcome.SERVFAIL, Fault.DNS_NXDOMAIN: Outcome.NXDOMAIN,
                Fault.TIMEOUT: Outcome.TIMEOUT}
_HOST_FAULTS = (Fault.REFUSED, Fault.TIMEOUT)
_ORDER = {fault: n for n, fault in enumerate(Fault)}
_HEALTHY_MS = 40.0
_STATUS_RANK = [Outcome.OK, Outcome.DEGRADED, Outcome.PARTIAL_OUTAGE, Outcome.MAJOR_OUTAGE]


@cache
def simulated_hosts() -> dict[str, str]:
    """hostname -> the key of the simulator profile that serves it."""
    return {host.lower(): key for key, cls in all_profiles().items() for host in cls.hosts}


def _request(url: str) -> Request:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return Request({"type": "http", "method": "GET", "path": parts.path or "/",
                    "query_string": parts.query.encode(), "headers": [(b"host", host.encode())],
                    "scheme": "https", "server": (host, 443), "root_path": ""})


@dataclass
class _HttpRoute:
    host_profile: Profile
    product: str
    feature: str
    status: dict[ErrorKind, int] = field(default_factory=dict)


class ProbeModel:
    """What each probe would observe in `world` right now (see the module docstring)."""

    def __init__(self, world: SimWorld, config: MonitorConfig, *, vantage: str = "local") -> None:
        self.world, self.config, self.vantage = world, config, vantage
        self.hosts = simulated_hosts()
        self.zones = catalogue_zones({h: (k, "127.0.0.1") for h, k in self.hosts.items()})
        self.profiles = {key: cls(world) for key, cls in all_profiles().items()}
        status = self.profiles.get("status")
        self.status = status if isinstance(status, StatusProfile) else StatusProfile(world)
        self._routes: dict[str, _HttpRoute] = {}
        self._shown_at = -1
        self._shown: list[tuple[str, datetime, datetime | None, str]] = []
        self._active_at = -1
        self._active: dict[str, list[ActiveFault]] = {}
        self._owners: dict[str, set[str]] = {}

    def _faults(self, platform: str) -> list[ActiveFault]:
        """The faults in force on `platform` (indexed again only when the board changed)."""
        if self._active_at != len(self.world.faults.history):
            self._active_at = len(self.world.faults.history)
            self._active = {}
            for active in self.world.faults.active():
                self._active.setdefault(active.platform, []).append(active)
        return self._active.get(platform, [])

    # -- DNS ------------------------------------------------------------------------------

    def _owner(self, name: str) -> str:
        name = name.lower()
        if name in self.hosts:
            return self.hosts[name]
        zone = zone_of(name)
        if zone in self.hosts:
            return self.hosts[zone]
        under = sorted(h for h in self.hosts if h.endswith("." + zone))
        return self.hosts[under[0]] if under else zone

    def _dns_fault(self, platform: str) -> Outcome | None:
        for key in (INTERNET, platform):
            for active in self._faults(key):
                if active.feature is not None or active.fault not in _DNS_OUTCOME:
                    continue
                if active.fault is Fault.TIMEOUT and not active.params.get("dns"):
                    continue
                if self._hits(active):
                    return _DNS_OUTCOME[active.fault]
        return None

    def _dns_may_fail(self, platform: str) -> bool:
        return any(a.feature is None and a.fault in _DNS_OUTCOME and (
            a.fault is not Fault.TIMEOUT or a.params.get("dns"))
            for key in (INTERNET, platform) for a in self._faults(key))

    def _hits(self, active: ActiveFault) -> bool:
        return active.rate >= 1.0 or self.world.rng.random() < active.rate

    def _dns_obs(self, platform: str, host: str, via: str, now: datetime,
                 outcome: Outcome | None) -> NewObservation:
        return NewObservation(platform=platform, signal=Signal.DNS.value, vantage=self.vantage,
                              observed_at=now, outcome=(outcome or Outcome.OK).value,
                              latency_ms=None if outcome else 5.0, feature="dns",
                              target=f"{host}@{via}")

    def dns(self, target: Target, now: datetime) -> list[NewObservation]:
        key = target.key
        owners = self._owners.get(key)
        if owners is None:
            names = [*target.platform.hostnames, *target.platform.authoritative_nameservers]
            owners = self._owners[key] = {self._owner(name) for name in names}
        if not any(self._dns_may_fail(owner) for owner in owners):
            # Nothing can fail: one OK check per path stands for the whole pass (same shares).
            return [self._dns_obs(key, "*", "resolver", now, None),
                    self._dns_obs(key, "*", "authoritative", now, None)]
        found = [self._dns_obs(key, h, "resolver", now, self._dns_fault(self._owner(h)))
                 for h in target.platform.hostnames]
        for ns in target.platform.authoritative_nameservers:
            zone = zone_of(ns)
            if zone not in self.zones:
                continue
            broken = self._dns_fault(self._owner(ns))
            for host in [h for h in target.platform.hostnames
                         if h == zone or h.endswith("." + zone)]:
                outcome = broken or self._dns_fault(self._owner(host))
                found.append(self._dns_obs(key, host, f"authoritative:{ns}", now, outcome))
        return found

    def controls(self, now: datetime) -> list[NewObservation]:
        broken = self._dns_fault(INTERNET)
        return [NewObservation(platform=INTERNET, signal=Signal.CONTROL.value,
                               vantage=self.vantage, observed_at=now,
                               outcome=(broken or Outcome.OK).value, feature="control",
                               target=f"{host}@resolver")
                for host in self.config.controls.hostnames]

    # -- HTTP -----------------------------------------------------------------------------

    def _route(self, url: str) -> _HttpRoute | None:
        if url not in self._routes:
            host = (urlsplit(url).hostname or "").lower()
            if host not in self.hosts:
                return None
            profile = self.profiles[self.hosts[host]]
            request = _request(url)
            feature = "media" if host in media_hosts() else profile.feature_of(request)
            route = _HttpRoute(profile, profile.platform_of(request), feature)
            for kind in ErrorKind:
                route.status[kind] = profile.error_for(request, kind, "simulated").status_code
            self._routes[url] = route
        return self._routes[url]

    def _gate_fault(self, route: _HttpRoute) -> ActiveFault | None:
        host = route.host_profile.key
        candidates = [f for f in self._faults(host)
                      if f.fault in _HOST_FAULTS or route.product == host]
        if route.product != host:
            candidates += [f for f in self._faults(route.product)
                           if f.fault not in _HOST_FAULTS]
        for active in sorted(candidates, key=lambda f: _ORDER[f.fault]):
            on_names = active.fault.is_dns or (active.fault is Fault.TIMEOUT
                                               and bool(active.params.get("dns")))
            if on_names or not active.covers(route.feature) or active.fault is Fault.REFUSED:
                continue
            if self._hits(active):
                return active
        return None

    def _http_outcome(self, probe: Probe, route: _HttpRoute) -> tuple[Outcome, float | None]:
        host = (urlsplit(probe.url).hostname or "").lower()
        named = self._dns_fault(self._owner(host))
        if named is not None:
            return named, None
        if any(f.fault is Fault.REFUSED for f in self._faults(route.host_profile.key)):
            return Outcome.REFUSED, None
        active = self._gate_fault(route)
        if active is None:
            return Outcome.OK, _HEALTHY_MS
        timeout_s = self.config.probing.http_timeout_s
        status: int | None = None
        match active.fault:
            case Fault.TIMEOUT:
                return Outcome.TIMEOUT, None
            case Fault.SLOW:
                delay_s = float(active.params.get("delay_s", 5.0))
                if delay_s >= timeout_s:
                    return Outcome.TIMEOUT, None
                return Outcome.OK, delay_s * 1000.0 + _HEALTHY_MS
            case Fault.GARBAGE:
                variant = active.params.get("variant") or self.world.rng.choice(
                    ("json", "html", "truncated"))
                if variant == "truncated":
                    return Outcome.ERROR, None
                status = 200 if variant == "json" else 502
            case Fault.HTTP_5XX:
                status = route.status[ErrorKind(active.params.get("kind", "server_error"))]
            case Fault.RATE_LIMITED:
                status = route.status[ErrorKind.RATE_LIMITED]
            case Fault.AUTH_EXPIRED:
                status = route.status[ErrorKind.AUTH_EXPIRED]
            case Fault.PARTIAL:
                default = "unavailable" if host in media_hosts() else "media_failed"
                status = route.status[ErrorKind(active.params.get("kind", default))]
        ok = status in probe.expect_status
        return (Outcome.OK if ok else Outcome.BAD_STATUS), _HEALTHY_MS

    def http(self, target: Target, now: datetime) -> list[NewObservation]:
        found = []
        for probe in target.probes:
            route = self._route(probe.url)
            if route is None:
                continue
            outcome, latency = self._http_outcome(probe, route)
            found.append(NewObservation(
                platform=target.key, signal=Signal.HTTP.value, vantage=self.vantage,
                observed_at=now, outcome=outcome.value, latency_ms=latency,
                feature=probe.feature, target=probe.url))
        return found

    # -- status pages ---------------------------------------------------------------------

    def statuspage(self, target: Target, now: datetime) -> list[NewObservation]:
        if target.feed is None:
            return []
        self.status.observe()
        if self._shown_at != len(self.world.faults.history):
            self._shown_at = len(self.world.faults.history)
            every = tuple(sorted({p.key for p in default_catalogue().all()}))
            self._shown = [(s.platform, s.start, s.end, s.status)
                           for s in self.status.shown(every)]
        tellers = {p.key for p in default_catalogue().all()
                   if p.status_feed is not None and p.status_feed.url == target.feed.url}
        active = [COMPONENT_OUTCOMES[s[3]] for s in self._shown if s[0] in tellers
                  and s[1] <= now and (s[2] is None or now < s[2])]
        outcome = max(active, key=_STATUS_RANK.index, default=Outcome.OK)
        return [NewObservation(platform=target.key, signal=Signal.STATUSPAGE.value,
                               vantage=self.vantage, observed_at=now, outcome=outcome.value,
                               latency_ms=_HEALTHY_MS, target=target.feed.url)]

    def observe(self, target: Target, now: datetime) -> list[NewObservation]:
        return [*self.dns(target, now), *self.http(target, now),
                *self.statuspage(target, now)]


@dataclass
class ReplayResult:
    scenario: str
    seed: int
    start: datetime
    transitions: list[Transition]
    ticks: int


def replay(scenario: Scenario, *, seed: int, config: MonitorConfig,
           platforms: Sequence[str] | None = None) -> ReplayResult:
    """Replay `scenario` with the noise of `seed` and a start phase drawn from `seed`."""
    clock = FrozenClock(scenario.start)
    world = SimWorld(clock=clock, seed=seed)
    player = ScenarioPlayer(world, scenario, seed=seed, clock=clock, origin=scenario.start)
    model = ProbeModel(world, config)
    targets = targets_for(default_catalogue(), platforms=platforms,
                          served_hosts=list(model.hosts))
    fusion = Fusion(config.fusion, platforms=[t.key for t in targets])
    phase = random.Random(f"phase/{seed}").uniform(0, config.probing.interval_s)  # noqa: S311
    first = scenario.start + timedelta(seconds=phase)
    due = {t.key: first for t in targets}
    end = scenario.start + scenario.duration
    transitions: list[Transition] = []
    ticks = 0
    while (now := min(due.values())) <= end:
        player.advance_to(now - scenario.start)
        ready = [t for t in targets if due[t.key] <= now]
        observations = model.controls(now)
        for target in ready:
            observations += model.observe(target, now)
        fusion.ingest(observations)
        transitions += fusion.evaluate(now)
        due.update(reschedule(fusion, [t.key for t in ready], now, config.probing))
        ticks += 1
    return ReplayResult(scenario.name, seed, scenario.start, transitions, ticks)
