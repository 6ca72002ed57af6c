"""Scenario replay through fusion at simulated time, with the probes modelled, not sent.

A week of probing 19 platforms is millions of DNS queries; `bench/detect` replays each
scenario 50 times. `ProbeModel` therefore computes what each probe *would* see from the
simulator's fault board, following the simulator's own rules (`sim/dns.py` for names,
`sim/gate.py` for HTTP, `StatusProfile.shown` for status pages), with the simulator's
profiles deciding which product and feature a probe URL belongs to and which status code
its errors carry. `tests/monitor/test_replay_model.py` holds the model to the real servers
for every fault kind. A healthy simulated answer is OK: the simulator serves every catalogue
probe URL as its `expect_status` expects (`tests/sim/test_probe_urls.py`).

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
    host: str = ""
    owner: str = ""  # whose DNS faults the host's name meets
    status: dict[ErrorKind, int] = field(default_factory=dict)


# (probe, route, DNS faults its name meets, listener closed, faults the gate may answer)
_ProbePlan = tuple[Probe, _HttpRoute, list[ActiveFault], bool, list[ActiveFault]]
_OK, _HTTP, _DNS = Outcome.OK.value, Signal.HTTP.value, Signal.DNS.value
# (the owners of every name, [(owner, check target)] through the resolver,
#  [(nameserver's owner, [(owner, check target)] of the names in its zone)])
_DnsLayout = tuple[set[str], list[tuple[str, str]], list[tuple[str, list[tuple[str, str]]]]]


def _dns_candidate(active: ActiveFault) -> bool:
    return active.feature is None and active.fault in _DNS_OUTCOME and (
        active.fault is not Fault.TIMEOUT or bool(active.params.get("dns")))


class ProbeModel:
    """What each probe would observe in `world` right now (see the module docstring).

    Everything that depends only on the faults in force (which faults can hit a name or a
    route, in the order the simulator tries them) is worked out once per change of the
    fault board and reused until the next; only the random draws of partial rates are made
    per probe, in the simulator's order, so a replay's outcome does not depend on caching.
    """

    def __init__(self, world: SimWorld, config: MonitorConfig, *, vantage: str = "local") -> None:
        self.world, self.config, self.vantage = world, config, vantage
        self.hosts = simulated_hosts()
        self.zones = catalogue_zones({h: (k, "127.0.0.1") for h, k in self.hosts.items()})
        self.profiles = {key: cls(world) for key, cls in all_profiles().items()}
        status = self.profiles.get("status")
        self.status = status if isinstance(status, StatusProfile) else StatusProfile(world)
        self._routes: dict[str, _HttpRoute | None] = {}
        self._version = -1
        self._shown: list[tuple[str, datetime, datetime | None, str]] | None = None
        self._active: dict[str, list[ActiveFault]] = {}
        self._dns_faults: dict[str, list[ActiveFault]] = {}  # owner -> candidates, in order
        self._gate_faults: dict[str, list[ActiveFault]] = {}  # url -> candidates, in order
        self._refused: dict[str, bool] = {}  # host profile -> listener closed
        self._plans: dict[str, list[_ProbePlan]] = {}  # target -> its HTTP probes' plan
        self._layouts: dict[str, _DnsLayout] = {}  # target -> its DNS checks' names
        self._owner_of: dict[str, str] = {}
        catalogue = default_catalogue().all()
        self._every = tuple(sorted({p.key for p in catalogue}))
        self._tellers: dict[str, set[str]] = {}  # feed url -> platforms it speaks for
        for platform in catalogue:
            if platform.status_feed is not None:
                self._tellers.setdefault(platform.status_feed.url, set()).add(platform.key)

    def _sync(self) -> None:
        """Index the faults again when the board changed since the last look."""
        version = len(self.world.faults.history)
        if version == self._version:
            return
        self._version = version
        self._active = {}
        for active in self.world.faults.active():
            self._active.setdefault(active.platform, []).append(active)
        self._dns_faults, self._gate_faults, self._refused, self._plans = {}, {}, {}, {}
        self._shown = None
        self.status.observe()  # the status pages remember what was in force

    def _faults(self, platform: str) -> list[ActiveFault]:
        """The faults in force on `platform`."""
        self._sync()
        return self._active.get(platform, [])

    # -- DNS ------------------------------------------------------------------------------

    def _owner(self, name: str) -> str:
        found = self._owner_of.get(name)
        if found is None:
            found = self._owner_of[name] = self._find_owner(name.lower())
        return found

    def _find_owner(self, name: str) -> str:
        if name in self.hosts:
            return self.hosts[name]
        zone = zone_of(name)
        if zone in self.hosts:
            return self.hosts[zone]
        under = sorted(h for h in self.hosts if h.endswith("." + zone))
        return self.hosts[under[0]] if under else zone

    def _dns_candidates(self, owner: str) -> list[ActiveFault]:
        self._sync()
        found = self._dns_faults.get(owner)
        if found is None:
            found = self._dns_faults[owner] = [
                a for key in (INTERNET, owner) for a in self._active.get(key, ())
                if _dns_candidate(a)]
        return found

    def _dns_fault(self, owner: str) -> Outcome | None:
        for active in self._dns_candidates(owner):
            if self._hits(active):
                return _DNS_OUTCOME[active.fault]
        return None

    def _dns_may_fail(self, owner: str) -> bool:
        return bool(self._dns_candidates(owner))

    def _hits(self, active: ActiveFault) -> bool:
        return active.rate >= 1.0 or self.world.rng.random() < active.rate

    def _dns_obs(self, platform: str, host: str, via: str, now: datetime,
                 outcome: Outcome | None) -> NewObservation:
        return NewObservation(platform, _DNS, self.vantage, now,
                              outcome.value if outcome else _OK, None if outcome else 5.0,
                              "dns", f"{host}@{via}")

    def _dns_layout(self, target: Target) -> _DnsLayout:
        """Which names each DNS check of `target` asks, and whose faults they meet."""
        layout = self._layouts.get(target.key)
        if layout is None:
            hosts = target.platform.hostnames
            resolver = [(self._owner(h), f"{h}@resolver") for h in hosts]
            authoritative = []
            for ns in target.platform.authoritative_nameservers:
                zone = zone_of(ns)
                if zone in self.zones:
                    under = [(self._owner(h), f"{h}@authoritative:{ns}") for h in hosts
                             if h == zone or h.endswith("." + zone)]
                    authoritative.append((self._owner(ns), under))
            owners = {owner for owner, _ in resolver} | {
                self._owner(name) for name in target.platform.authoritative_nameservers}
            layout = self._layouts[target.key] = (owners, resolver, authoritative)
        return layout

    def dns(self, target: Target, now: datetime) -> list[NewObservation]:
        key = target.key
        owners, resolver, authoritative = self._dns_layout(target)
        if not any(self._dns_may_fail(owner) for owner in owners):
            # Nothing can fail: one OK check per path stands for the whole pass (same shares).
            return [self._dns_obs(key, "*", "resolver", now, None),
                    self._dns_obs(key, "*", "authoritative", now, None)]
        found = [self._dns_check(key, name, now, self._dns_fault(owner))
                 for owner, name in resolver]
        for ns_owner, under in authoritative:
            broken = self._dns_fault(ns_owner)
            for owner, name in under:
                outcome = broken or self._dns_fault(owner)
                found.append(self._dns_check(key, name, now, outcome))
        return found

    def _dns_check(self, platform: str, name: str, now: datetime,
                   outcome: Outcome | None) -> NewObservation:
        return NewObservation(platform, _DNS, self.vantage, now,
                              outcome.value if outcome else _OK, None if outcome else 5.0,
                              "dns", name)

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
                self._routes[url] = None
                return None
            profile = self.profiles[self.hosts[host]]
            request = _request(url)
            feature = "media" if host in media_hosts() else profile.feature_of(request)
            route = _HttpRoute(profile, profile.platform_of(request), feature, host,
                               self._owner(host))
            for kind in ErrorKind:
                route.status[kind] = profile.error_for(request, kind, "simulated").status_code
            self._routes[url] = route
        return self._routes[url]

    def _gate_candidates(self, url: str, route: _HttpRoute) -> list[ActiveFault]:
        """The faults that may answer a request to `url`, in the order the gate tries them."""
        self._sync()
        found = self._gate_faults.get(url)
        if found is None:
            host = route.host_profile.key
            candidates = [f for f in self._active.get(host, ())
                          if f.fault in _HOST_FAULTS or route.product == host]
            if route.product != host:
                candidates += [f for f in self._active.get(route.product, ())
                               if f.fault not in _HOST_FAULTS]
            found = self._gate_faults[url] = [
                active for active in sorted(candidates, key=lambda f: _ORDER[f.fault])
                if not (active.fault.is_dns or (active.fault is Fault.TIMEOUT
                                                and bool(active.params.get("dns"))))
                and active.covers(route.feature) and active.fault is not Fault.REFUSED]
        return found

    def _http_plan(self, target: Target) -> list[_ProbePlan]:
        """Per probe of `target`: its route and the faults that may answer it, in order."""
        self._sync()
        plan = self._plans.get(target.key)
        if plan is None:
            plan = self._plans[target.key] = []
            for probe in target.probes:
                route = self._route(probe.url)
                if route is not None:
                    plan.append((probe, route, self._dns_candidates(route.owner),
                                 self._listener_closed(route),
                                 self._gate_candidates(probe.url, route)))
        return plan

    def _listener_closed(self, route: _HttpRoute) -> bool:
        key = route.host_profile.key
        closed = self._refused.get(key)
        if closed is None:
            closed = self._refused[key] = any(f.fault is Fault.REFUSED
                                              for f in self._faults(key))
        return closed

    def _http_outcome(self, step: _ProbePlan) -> tuple[Outcome, float | None]:
        probe, route, on_names, closed, at_gate = step
        for active in on_names:
            if self._hits(active):
                return _DNS_OUTCOME[active.fault], None
        if closed:
            return Outcome.REFUSED, None
        for active in at_gate:
            if self._hits(active):
                break
        else:
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
                default = "unavailable" if route.host in media_hosts() else "media_failed"
                status = route.status[ErrorKind(active.params.get("kind", default))]
        ok = status in probe.expect_status
        return (Outcome.OK if ok else Outcome.BAD_STATUS), _HEALTHY_MS

    def http(self, target: Target, now: datetime) -> list[NewObservation]:
        found = []
        http, vantage, key = _HTTP, self.vantage, target.key
        latency: float | None
        for step in self._http_plan(target):
            if not step[2] and not step[3] and not step[4]:
                outcome, latency = _OK, _HEALTHY_MS  # nothing can touch it
            else:
                seen, latency = self._http_outcome(step)
                outcome = seen.value
            probe = step[0]
            found.append(NewObservation(key, http, vantage, now, outcome, latency,
                                        probe.feature, probe.url))
        return found

    # -- status pages ---------------------------------------------------------------------

    def statuspage(self, target: Target, now: datetime) -> list[NewObservation]:
        if target.feed is None:
            return []
        self._sync()
        if self._shown is None:
            self._shown = [(s.platform, s.start, s.end, s.status)
                           for s in self.status.shown(self._every)]
        tellers = self._tellers.get(target.feed.url, set())
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
    keyed = [(t.key, t) for t in targets]
    due = {key: first for key, _ in keyed}
    end = scenario.start + scenario.duration
    transitions: list[Transition] = []
    ticks = 0
    while (now := min(due.values())) <= end:
        player.advance_to(now - scenario.start)
        ready = [(key, target) for key, target in keyed if due[key] <= now]
        observations = model.controls(now)
        for _, target in ready:
            observations += model.observe(target, now)
        fusion.ingest(observations)
        transitions += fusion.evaluate(now)
        due.update(reschedule(fusion, [key for key, _ in ready], now, config.probing))
        ticks += 1
    return ReplayResult(scenario.name, seed, scenario.start, transitions, ticks)
