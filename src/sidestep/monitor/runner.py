"""The monitor loop: probe every platform on schedule, store what was seen, fuse, set states.

Each `MonitorRunner.tick()`:

1. probes the controls and every platform that is due (DNS through the named resolvers and
   at the authoritative nameservers, every HTTP probe, the status feed), all at once within
   the probes' own concurrency bounds and timeouts;
2. reads the publish path (the dispatcher's recent attempts) for those platforms;
3. stores the observations (`Health.add_observations`) and picks up those other vantage
   points (probe agents) stored since the last tick;
4. feeds them to `Fusion` and writes each transition with `Health.set_state`, evidence and
   all, in one transaction;
5. schedules each probed platform again after `interval_s`, or `retry_interval_s` while it
   is suspect (a failing check, or not up), so a failure is confirmed or dismissed quickly;
6. once an hour, rolls raw observations older than `raw_days` into minute roll-ups and drops
   roll-ups older than `rollup_days`.

`run_monitor(runtime, stop=...)` runs ticks until `stop` is set; a tick that raises is
logged and the loop goes on (a monitor that dies on one bad answer watches nothing).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.catalogue.loader import Catalogue
from sidestep.clock import Clock
from sidestep.domain.states import PlatformStatus
from sidestep.monitor.config import (
    MonitorConfig,
    ProbingConfig,
    StorageConfig,
    load_monitor_config,
)
from sidestep.monitor.controls import ControlProbe, control_resolvers
from sidestep.monitor.fusion import Fusion, Transition
from sidestep.monitor.outcomes import FAILING
from sidestep.monitor.probes.dns import DnsProbe, NamedResolver
from sidestep.monitor.probes.http import HttpProbe
from sidestep.monitor.probes.statuspage import StatusPageProbe
from sidestep.monitor.publish_path import publish_path_observations
from sidestep.monitor.targets import Target, targets_for
from sidestep.runtime import Runtime
from sidestep.store.db import Database
from sidestep.store.health import Health, NewObservation
from sidestep.store.tables import Observation

__all__ = ["MonitorRunner", "Network", "TickReport", "maintain_storage", "reschedule",
           "run_monitor"]

log = logging.getLogger(__name__)
MAINTENANCE_EVERY = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Network:
    """Where probes go: an HTTP client, the resolvers to ask, how to reach nameservers.

    On the internet: a plain client, public resolvers, nameservers on port 53. Against the
    simulator: its client, its DNS server as the only resolver, and its port for the NS.
    """

    client: httpx.AsyncClient
    resolvers: Sequence[NamedResolver]
    bootstrap: NamedResolver  # resolves the nameservers' own names
    ns_port: int = 53
    control_resolvers: Sequence[NamedResolver] = ()  # default: the config's controls


@dataclass(slots=True)
class TickReport:
    at: datetime
    probed: list[str] = field(default_factory=list)
    observations: int = 0
    transitions: list[Transition] = field(default_factory=list)


def reschedule(fusion: Fusion, keys: Sequence[str], now: datetime,
               probing: ProbingConfig) -> dict[str, datetime]:
    """When each just-probed platform is due again: soon while it or our network is suspect."""
    wait = timedelta(seconds=probing.interval_s)
    retry = timedelta(seconds=probing.retry_interval_s)
    local_trouble = (fusion.controls_failing()
                     or fusion.local.status is PlatformStatus.LOCAL_OUTAGE)
    return {key: now + (retry if local_trouble or fusion.suspect(key) else wait)
            for key in keys}


class MonitorRunner:
    """Schedules probes per platform, stores observations, fuses them, writes states."""

    def __init__(self, *, db: Database, targets: Sequence[Target], network: Network,
                 config: MonitorConfig, clock: Clock) -> None:
        if not targets:
            raise ValueError("nothing to monitor: no platform has a name or URL to probe")
        self.db, self.targets, self.network = db, list(targets), network
        self.config, self.clock = config, clock
        probing = config.probing
        self.vantage = probing.vantage
        self.dns = DnsProbe(clock=clock, vantage=self.vantage, timeout_s=probing.dns_timeout_s,
                            concurrency=probing.concurrency)
        self.http = HttpProbe(client=network.client, clock=clock, vantage=self.vantage,
                              timeout_s=probing.http_timeout_s,
                              concurrency=probing.concurrency)
        self.status = StatusPageProbe(client=network.client, clock=clock, vantage=self.vantage,
                                      timeout_s=probing.http_timeout_s,
                                      concurrency=probing.concurrency)
        self.controls = ControlProbe(
            self.dns, hostnames=config.controls.hostnames,
            resolvers=network.control_resolvers or control_resolvers(config.controls))
        self.fusion = Fusion(config.fusion, platforms=[t.key for t in self.targets])
        now = clock.now()
        self.due: dict[str, datetime] = {t.key: now for t in self.targets}
        self._last_remote_id: int | None = None
        self._next_maintenance = now

    def next_wake(self) -> datetime:
        """When the next platform is due."""
        return min(self.due.values())

    async def tick(self) -> TickReport:
        """One pass over the controls and the platforms that are due (see the module doc)."""
        now = self.clock.now()
        report = TickReport(at=now)
        due = [t for t in self.targets if self.due[t.key] <= now]
        found = await asyncio.gather(self.controls.probe(), *(self._probe(t) for t in due))
        observations = [obs for group in found for obs in group]
        async with self.db.session() as session:
            health = Health(session)
            if due:
                publish = await publish_path_observations(
                    session, self.config.publish_path, now=now, vantage=self.vantage)
                wanted = {t.key for t in due}
                observations += [o for o in publish if o.platform in wanted]
            await health.add_observations(observations)
            remote = await self._remote(session)
            self.fusion.ingest(observations)
            if remote:
                self.fusion.ingest(remote)
            report.transitions = self.fusion.evaluate(now)
            for change in report.transitions:
                await health.set_state(
                    platform=change.platform, status=change.new.status,
                    features=list(change.new.features), reason=change.reason, at=change.at,
                    evidence=change.evidence, announce=change.announce)
            if now >= self._next_maintenance:
                await self._maintain(health, now)
        self.due.update(reschedule(self.fusion, [t.key for t in due], now,
                                   self.config.probing))
        report.probed = [t.key for t in due]
        report.observations = len(observations) + len(remote)
        return report

    async def _probe(self, target: Target) -> list[NewObservation]:
        jobs = [self.dns.observe(target.key, host, resolver, via="resolver")
                for host in target.platform.hostnames for resolver in self.network.resolvers]
        # All of a platform's probes at once, so a pass lasts as long as its slowest probe
        # (one timeout), not the sum of them; the observations keep this order.
        parts = [asyncio.ensure_future(asyncio.gather(*jobs))]
        if target.platform.authoritative_nameservers:
            parts.append(asyncio.ensure_future(self.dns.probe_authoritative(
                target.platform, self.network.bootstrap, ns_port=self.network.ns_port)))
        parts.append(asyncio.ensure_future(self.http.probe_all(target.key, target.probes)))
        if target.feed is not None:
            parts.append(asyncio.ensure_future(
                self.status.probe_feed(target.key, target.feed.kind, target.feed.url)))
        return [obs for part in await asyncio.gather(*parts) for obs in part]

    async def _remote(self, session: AsyncSession) -> list[NewObservation]:
        """Observations other vantage points (probe agents) stored since the last tick."""
        if self._last_remote_id is None:  # start from now: old rounds are history
            self._last_remote_id = int(await session.scalar(select(func.max(Observation.id)))
                                       or 0)
            return []
        rows = (await session.scalars(
            select(Observation).where(Observation.id > self._last_remote_id)
            .order_by(Observation.id).limit(10_000))).all()
        if rows:
            self._last_remote_id = rows[-1].id
        return [NewObservation(platform=r.platform, signal=r.signal, vantage=r.vantage,
                               observed_at=r.observed_at, outcome=r.outcome,
                               latency_ms=r.latency_ms, feature=r.feature, target=r.target,
                               detail=r.detail)
                for r in rows if r.vantage != self.vantage]

    async def _maintain(self, health: Health, now: datetime) -> None:
        await maintain_storage(health, now=now, storage=self.config.storage)
        self._next_maintenance = now + MAINTENANCE_EVERY


async def maintain_storage(health: Health, *, now: datetime,
                           storage: StorageConfig) -> tuple[int, int]:
    """Roll raw observations older than `raw_days` into minutes; drop old roll-ups.

    Returns (observations rolled up, roll-up rows dropped).
    """
    rolled = await health.roll_up(before=now - timedelta(days=storage.raw_days),
                                  failing=FAILING)
    dropped = await health.prune_rollups(before=now - timedelta(days=storage.rollup_days))
    if rolled or dropped:
        log.info("monitor storage: %d observations rolled up, %d roll-ups dropped",
                 rolled, dropped)
    return rolled, dropped


async def run_monitor(
    runtime: Runtime,
    *,
    stop: asyncio.Event,
    catalogue: Catalogue | None = None,
    config: MonitorConfig | None = None,
    network: Network | None = None,
    platforms: Sequence[str] | None = None,
    served_hosts: Sequence[str] | None = None,
) -> None:
    """Probe, fuse and record until `stop` is set (see the module docstring).

    Defaults: the packaged catalogue and `monitor.toml`, and the internet: a plain HTTP
    client and the control resolvers as the resolvers. Raises ValueError when nothing is
    left to monitor.
    """
    from sidestep.catalogue import default_catalogue

    config = config or load_monitor_config()
    targets = targets_for(catalogue or default_catalogue(), platforms=platforms,
                          served_hosts=served_hosts)
    own_client = network is None
    if network is None:
        resolvers = control_resolvers(config.controls)
        network = Network(client=httpx.AsyncClient(), resolvers=resolvers,
                          bootstrap=resolvers[0])
    runner = MonitorRunner(db=runtime.db, targets=targets, network=network, config=config,
                           clock=runtime.clock)
    try:
        while not stop.is_set():
            try:
                await runner.tick()
                wait_s = (runner.next_wake() - runtime.clock.now()).total_seconds()
            except Exception:  # one bad tick must not stop the monitor
                log.exception("monitor tick failed; trying again shortly")
                wait_s = config.probing.retry_interval_s
            try:
                await asyncio.wait_for(stop.wait(), timeout=max(0.05, wait_s))
            except TimeoutError:
                pass
    finally:
        if own_client:
            await network.client.aclose()
