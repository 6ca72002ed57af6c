"""The scenarios end to end: the runner probes the simulator's real DNS and HTTP servers.

Compressed time: a FrozenClock jumps from one due tick to the next (the scenario player
applies the faults in between), so hours of scenario take seconds. The schedule and the
thresholds are the packaged ones (interval 120 s, retry 15 s, confirm 120 s); only the
probes' own timeouts are short, because a dropped DNS query or a held HTTP request costs
real seconds on every tick it happens. A few platforms per scenario, and the quiet stretches
between the moments that matter are skipped (`skip_to`), to keep the suite fast.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from sidestep.catalogue import default_catalogue
from sidestep.clock import FrozenClock
from sidestep.domain.states import PlatformStatus
from sidestep.monitor.config import MonitorConfig, load_monitor_config
from sidestep.monitor.fusion import INTERNET, Transition
from sidestep.monitor.runner import MonitorRunner
from sidestep.monitor.simulated import simulator_network
from sidestep.monitor.targets import targets_for
from sidestep.sim.scenario import ScenarioPlayer, load_scenario
from sidestep.sim.server import Simulator
from sidestep.sim.testing import running_simulator
from sidestep.store.db import Database
from sidestep.store.health import Health
from sidestep.store.tables import Event

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


# Loopback answers take milliseconds; a timeout of 0.3-0.5 s still leaves a wide margin
# on a loaded CI machine, and each tick that meets a dropped query waits no longer than it.
DNS_TIMEOUT_S, HTTP_TIMEOUT_S = 0.3, 0.5


def _config() -> MonitorConfig:
    return load_monitor_config().with_changes(probing={"dns_timeout_s": DNS_TIMEOUT_S,
                                                       "http_timeout_s": HTTP_TIMEOUT_S})


class Replay:
    def __init__(self, sim: Simulator, db: Database, clock: FrozenClock, name: str,
                 platforms: list[str], seed: int = 1) -> None:
        self.scenario = load_scenario(name)
        self.sim, self.clock = sim, clock
        self.player = ScenarioPlayer(sim.world, self.scenario, seed=seed, clock=clock,
                                     origin=clock.now())
        targets = targets_for(default_catalogue(), platforms=platforms,
                              served_hosts=sim.host_map())
        self.runner = MonitorRunner(db=db, targets=targets, network=simulator_network(sim),
                                    config=_config(), clock=clock)
        self.transitions: list[Transition] = []

    async def until(self, offset: timedelta) -> None:
        """Tick at every due time up to `offset` from the scenario's start."""
        while (due := self.runner.next_wake() - self.player.origin) <= offset:
            self.player.advance_to(max(due, self.player.position))
            await self.sim.sync()
            self.transitions += (await self.runner.tick()).transitions

    def skip_to(self, offset: timedelta) -> None:
        """Jump without probing (the faults still change on the way)."""
        self.player.advance_to(offset)
        for key in self.runner.due:
            self.runner.due[key] = max(self.runner.due[key], self.clock.now())

    def announced(self, platform: str) -> list[tuple[timedelta, str]]:
        return [(t.at - self.player.origin, t.new.describe()) for t in self.transitions
                if t.platform == platform and t.announce]


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """SQLite only here: the store's PostgreSQL side is covered by the storage tests."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'monitor.db'}")
    await database.migrate()
    yield database
    await database.close()


@pytest.fixture
async def started(clock: FrozenClock) -> AsyncIterator[tuple[Simulator, FrozenClock]]:
    async with running_simulator(seed=1, clock=clock) as sim:
        await sim.load_specs()
        yield sim, clock


def _at(scenario_name: str) -> FrozenClock:
    return FrozenClock(load_scenario(scenario_name).start)


@pytest.mark.parametrize("clock", [_at("meta-2021-10-04")])
async def test_meta_2021_is_down_within_two_intervals_and_recovers(
    started: tuple[Simulator, FrozenClock], db: Database
) -> None:
    sim, clock = started
    replay = Replay(sim, db, clock, "meta-2021-10-04", ["facebook", "whatsapp", "telegram"])
    await replay.until(timedelta(minutes=14))
    onset, interval = timedelta(minutes=9), timedelta(seconds=120)
    for platform in ("facebook", "whatsapp"):
        (when, state), = [a for a in replay.announced(platform) if a[1] == "down"]
        assert onset < when <= onset + 2 * interval
    assert [s for _, s in replay.announced("telegram")] == ["up"]
    async with db.session() as session:
        events = (await session.scalars(select(Event).where(
            Event.type == "platform.state_changed").order_by(Event.id))).all()
        states = await Health(session).states()
    down = [e.payload for e in events if e.payload["new"] == "down"]
    assert {p["platform"] for p in down} == {"facebook", "whatsapp"}
    evidence = down[0]["evidence"]
    assert {s["signal"] for s in evidence["signals"]} >= {"dns", "http"}
    checks = [c for s in evidence["signals"] for c in s["checks"]]
    assert any(c["outcome"] == "servfail" and "@authoritative:" in c["target"] for c in checks)
    assert states["facebook"].status == PlatformStatus.DOWN
    replay.skip_to(timedelta(hours=6, minutes=50))  # every fault is over by then
    await replay.until(timedelta(hours=7, minutes=10))  # recover_s (2 min) and a margin
    assert replay.announced("facebook")[-1][1] == "up"
    assert replay.announced("whatsapp")[-1][1] == "up"


@pytest.mark.parametrize("clock", [_at("whatsapp-instagram-2021-03-19")])
async def test_whatsapp_instagram_2021_is_degraded_media_not_down(
    started: tuple[Simulator, FrozenClock], db: Database
) -> None:
    sim, clock = started
    replay = Replay(sim, db, clock, "whatsapp-instagram-2021-03-19", ["whatsapp", "instagram"])
    await replay.until(timedelta(minutes=1))  # both watched and up
    replay.skip_to(timedelta(minutes=23))  # media fails from +25:00, for 45 minutes
    await replay.until(timedelta(minutes=35))  # DEGRADED comes after about 3.5 min
    for platform in ("whatsapp", "instagram"):
        states = [s for _, s in replay.announced(platform)]
        assert "down" not in states
        assert any(s.startswith("degraded(") and "media" in s for s in states), states
    async with db.session() as session:
        states_now = await Health(session).states()
    assert states_now["whatsapp"].status == PlatformStatus.DEGRADED
    assert "media" in states_now["whatsapp"].features


@pytest.mark.parametrize("clock", [_at("local-network-down")])
async def test_local_network_down_is_a_local_outage_and_no_platform_is_blamed(
    started: tuple[Simulator, FrozenClock], db: Database
) -> None:
    sim, clock = started
    replay = Replay(sim, db, clock, "local-network-down", ["facebook", "telegram"])
    # The uplink goes dark at +1:00; the first tick after it is at +2:00 and the controls
    # must fail for local_confirm_s (20 s): LOCAL_OUTAGE at +2:30, then rounds are dropped.
    await replay.until(timedelta(minutes=3, seconds=30))
    assert [s for _, s in replay.announced(INTERNET)] == ["local_outage"]
    replay.skip_to(timedelta(minutes=10, seconds=30))  # still dark until +11:00
    await replay.until(timedelta(minutes=12))
    local = replay.announced(INTERNET)
    assert [s for _, s in local] == ["local_outage", "up"]
    for platform in ("facebook", "telegram"):
        assert not any(s in ("down",) or s.startswith("degraded")
                       for _, s in replay.announced(platform))
    async with db.session() as session:
        events = (await session.scalars(select(Event).where(
            Event.type == "platform.state_changed"))).all()
    blamed = [e.payload for e in events if e.payload["platform"] != INTERNET
              and e.payload["new"] not in ("up",)]
    assert blamed == []


@pytest.mark.parametrize("clock", [_at("flaky-week")])
async def test_a_flaky_week_raises_no_down_event(
    started: tuple[Simulator, FrozenClock], db: Database
) -> None:
    """The first day for three platforms, probed around every blip."""
    sim, clock = started
    platforms = ["facebook", "instagram", "telegram"]
    replay = Replay(sim, db, clock, "flaky-week", platforms, seed=3)
    blips = sorted({s.offset for s in replay.player.timeline
                    if s.platform in platforms and s.params.get("noise") == "blip"
                    and s.offset < timedelta(days=1)})
    assert blips, "the seed gives blips in the first day"
    for start in blips:  # a blip lasts at most 2 min; DOWN would need 2 min more (confirm_s)
        if start - timedelta(seconds=30) > replay.player.position:
            replay.skip_to(start - timedelta(seconds=30))
        await replay.until(start + timedelta(minutes=5))
    downs = [t for t in replay.transitions if t.new.status is PlatformStatus.DOWN]
    assert downs == []
    assert all(replay.announced(p) for p in platforms)  # they were watched and called up
