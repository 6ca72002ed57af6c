"""Every catalogue probe URL of every simulated platform answers as the real one does.

The monitor probes each platform's `probes` (web page, anonymous API call, CDN object). A
healthy simulator must answer each of them as the catalogue's `expect_status` expects, or
the monitor (and `make run`'s demo) would call healthy platforms degraded; and the answers
must fail with the platform's faults like every other route.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from sidestep.catalogue import default_catalogue
from sidestep.catalogue.loader import Platform
from sidestep.clock import FrozenClock
from sidestep.domain.states import PlatformStatus
from sidestep.monitor.config import load_monitor_config
from sidestep.monitor.outcomes import Outcome
from sidestep.monitor.probes.http import HttpProbe
from sidestep.monitor.runner import MonitorRunner
from sidestep.monitor.simulated import simulator_network
from sidestep.monitor.targets import targets_for
from sidestep.sim.profile import all_profiles
from sidestep.sim.server import Simulator
from sidestep.sim.testing import running_simulator
from sidestep.store.db import Database

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

SIMULATED = sorted(p.key for p in default_catalogue().all()
                   if p.key in all_profiles() and p.probes)


def _platform(key: str) -> Platform:
    return default_catalogue().get(key)


@pytest.fixture
async def full_sim(clock: FrozenClock) -> AsyncIterator[Simulator]:
    async with running_simulator(seed=1, clock=clock) as simulator:
        await simulator.load_specs()
        yield simulator


def test_the_simulated_platforms_are_the_catalogues_platforms_with_probes() -> None:
    assert len(SIMULATED) >= 17  # every rented platform the simulator plays
    assert "facebook" in SIMULATED and "x" in SIMULATED and "snapchat" not in SIMULATED


async def test_every_probe_host_is_served(full_sim: Simulator) -> None:
    served = {h.lower() for h in full_sim.host_map()}
    missing = [(key, probe.url) for key in SIMULATED for probe in _platform(key).probes
               if urlsplit(probe.url).hostname not in served]
    assert missing == []


async def test_a_healthy_simulator_answers_every_catalogue_probe_ok(
    full_sim: Simulator, clock: FrozenClock
) -> None:
    async with full_sim.client() as client:
        http = HttpProbe(client=client, clock=clock, timeout_s=5.0)
        failing = []
        for key in SIMULATED:
            platform = _platform(key)
            seen = await http.probe_all(key, platform.probes)
            assert len(seen) == len(platform.probes), key
            failing += [(key, o.target, o.outcome, o.detail) for o in seen
                        if o.outcome != Outcome.OK]
    assert failing == []


@pytest.mark.parametrize("key", SIMULATED)
async def test_the_probe_urls_fail_with_the_platforms_faults(
    full_sim: Simulator, clock: FrozenClock, key: str
) -> None:
    """A 5xx on the platform reaches its probes; its media CDN fails with partial(media)."""
    platform = _platform(key)
    await full_sim.set_fault(key, "http_5xx", kind="unavailable")
    async with full_sim.client() as client:
        http = HttpProbe(client=client, clock=clock, timeout_s=5.0)
        seen = {o.target: o for o in await http.probe_all(key, platform.probes)}
        shared = {p.url for p in platform.probes if _answered_by_another_product(key, p.url)}
        for probe in platform.probes:
            if probe.url in shared:
                continue
            assert seen[probe.url].outcome == Outcome.BAD_STATUS, (probe.url, seen[probe.url])
        await full_sim.clear_faults(key)
        media = [p for p in platform.probes if p.feature == "media"]
        if media:
            await full_sim.set_fault(key, "partial", feature="media")
            seen = {o.target: o for o in await http.probe_all(key, platform.probes)}
            for probe in platform.probes:
                expected = Outcome.BAD_STATUS if probe.feature == "media" else Outcome.OK
                assert seen[probe.url].outcome == expected, (probe.url, seen[probe.url])


def _answered_by_another_product(key: str, url: str) -> bool:
    """Meta's anonymous `/me` on graph.facebook.com is the Pages API's (whatsapp and
    messenger probe it too): a fault on whatsapp alone does not reach it, as in 2021."""
    return key in ("whatsapp", "messenger") and urlsplit(url).hostname == "graph.facebook.com"


async def test_the_monitor_calls_every_simulated_platform_up_after_one_tick(
    full_sim: Simulator, clock: FrozenClock, tmp_path: Path
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'monitor.db'}")
    await db.migrate()
    try:
        targets = targets_for(default_catalogue(), platforms=SIMULATED,
                              served_hosts=full_sim.host_map())
        assert {t.key for t in targets} == set(SIMULATED)
        for target in targets:  # nothing of theirs was left out as "not served"
            assert target.probes == tuple(_platform(target.key).probes), target.key
        config = load_monitor_config().with_changes(
            probing={"dns_timeout_s": 2.0, "http_timeout_s": 5.0})
        runner = MonitorRunner(db=db, targets=targets, network=simulator_network(full_sim),
                               config=config, clock=clock)
        report = await runner.tick()
        assert sorted(report.probed) == SIMULATED
        verdicts = runner.fusion.verdicts()
        assert {k: v.status for k, v in verdicts.items()} == {
            k: PlatformStatus.UP for k in SIMULATED}
        assert {t.platform for t in report.transitions} == set(SIMULATED)
    finally:
        await db.close()
