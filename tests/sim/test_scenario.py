"""Scenarios: loading, deterministic timelines, replay in frozen and scaled time, the CLI."""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.message
import dns.rcode
import httpx
import pytest
from rich.console import Console
from starlette.applications import Starlette

from sidestep.catalogue.loader import default_catalogue
from sidestep.clock import FrozenClock
from sidestep.sim.control import build_control_app
from sidestep.sim.dns import SimDnsServer
from sidestep.sim.platforms.status import StatusProfile
from sidestep.sim.scenario import (
    MAX_BLIP_S,
    ScenarioError,
    ScenarioPlayer,
    format_offset,
    list_scenarios,
    load_scenario,
    parse_offset,
    run_cli,
)
from sidestep.sim.world import ActiveFault, Fault, SimWorld

META_START = datetime(2021, 10, 4, 15, 30, tzinfo=UTC)


def meta_player() -> tuple[SimWorld, FrozenClock, ScenarioPlayer]:
    clock = FrozenClock(META_START)
    world = SimWorld(clock=clock, seed=3)
    return world, clock, ScenarioPlayer(world, load_scenario("meta-2021-10-04"), clock=clock)


def at_utc(hh_mm: str) -> timedelta:
    """The offset into the meta scenario of a wall-clock time that day."""
    hours, minutes = (int(x) for x in hh_mm.split(":"))
    return datetime(2021, 10, 4, hours, minutes, tzinfo=UTC) - META_START


def faults(world: SimWorld, platform: str) -> dict[Fault, ActiveFault]:
    return {f.fault: f for f in world.faults.active(platform)}


def test_it_ships_the_five_scenarios() -> None:
    assert list_scenarios() == ["flaky-week", "local-network-down", "meta-2021-10-04",
                                "tiktok-partial", "whatsapp-instagram-2021-03-19"]


@pytest.mark.parametrize("name", list_scenarios())
def test_every_scenario_names_only_catalogue_platforms(name: str) -> None:
    known = {p.key for p in default_catalogue().all()} | {"internet", "status"}
    assert {step.platform for step in load_scenario(name).timeline(0)} <= known


@pytest.mark.parametrize("name", list_scenarios())
def test_every_scenario_leaves_no_fault_behind(name: str) -> None:
    scenario = load_scenario(name)
    clock = FrozenClock(scenario.start)
    world = SimWorld(clock=clock)
    player = ScenarioPlayer(world, scenario, seed=5, clock=clock)
    player.advance_to(scenario.duration)
    assert player.done
    assert world.faults.active() == []
    assert clock.now() == scenario.start + scenario.duration


def test_the_same_seed_gives_the_same_timeline() -> None:
    scenario = load_scenario("flaky-week")
    assert scenario.timeline(42) == scenario.timeline(42)
    assert load_scenario("flaky-week").timeline(42) == scenario.timeline(42)


def test_replaying_twice_with_one_seed_and_a_frozen_clock_gives_the_same_history() -> None:
    def replay(seed: int) -> list[Any]:
        scenario = load_scenario("flaky-week")
        clock = FrozenClock(scenario.start)
        world = SimWorld(clock=clock, seed=seed)
        player = ScenarioPlayer(world, scenario, seed=seed, clock=clock)
        for hour in range(0, 7 * 24 + 1, 5):
            player.advance_to(timedelta(hours=hour))
        player.advance_to(scenario.duration)
        return world.faults.history

    assert replay(9) == replay(9)
    assert replay(9) != replay(10)


def test_a_different_seed_gives_different_noise() -> None:
    scenario = load_scenario("flaky-week")
    first, second = scenario.timeline(1), scenario.timeline(2)
    assert [s.offset for s in first] != [s.offset for s in second]


def test_flaky_week_noise_is_short_silent_and_rare() -> None:
    scenario = load_scenario("flaky-week")
    steps = scenario.timeline(7)
    background = [s for s in steps if s.action == "set" and s.params.get("noise") == "random"]
    assert {s.rate for s in background} == {0.005}
    assert {s.fault for s in background} == {Fault.HTTP_5XX}
    blips = [s for s in steps if s.action == "set" and s.params.get("noise") == "blip"]
    assert all(s.params["status_page"] == "silent" for s in background + blips)
    per_platform_per_day = len(blips) / len(scenario.noise[0].platforms) / 7
    assert 1.0 < per_platform_per_day <= 3.0
    for blip in blips:
        [clear] = [s for s in steps if s.action == "clear" and s.platform == blip.platform
                   and s.fault == blip.fault and s.offset > blip.offset][:1]
        assert 30 <= (clear.offset - blip.offset).total_seconds() <= 120 <= MAX_BLIP_S


def test_metas_dns_failure_starts_at_15_39_utc() -> None:
    scenario = load_scenario("meta-2021-10-04")
    first = next(s for s in scenario.timeline() if s.fault is Fault.DNS_SERVFAIL)
    assert scenario.start + first.offset == datetime(2021, 10, 4, 15, 39, tzinfo=UTC)
    assert "threads" not in {s.platform for s in scenario.timeline()}


def test_replaying_meta_reaches_the_right_faults_at_chosen_instants() -> None:
    world, clock, player = meta_player()
    player.advance_to(at_utc("15:38"))
    assert world.faults.active() == []
    player.advance_to(at_utc("15:39"))
    down = world.faults.active()
    assert {(f.platform, f.fault) for f in down} == {
        (p, Fault.DNS_SERVFAIL) for p in ("facebook", "instagram", "whatsapp", "messenger")}
    assert {f.since for f in down} == {datetime(2021, 10, 4, 15, 39, tzinfo=UTC)}
    player.advance_to(at_utc("21:21"))
    assert set(faults(world, "facebook")) == {Fault.HTTP_5XX, Fault.SLOW, Fault.PARTIAL}
    assert faults(world, "facebook")[Fault.HTTP_5XX].rate == 0.8
    assert set(faults(world, "instagram")) == {Fault.DNS_SERVFAIL}
    player.advance_to(at_utc("21:45"))
    assert faults(world, "facebook")[Fault.HTTP_5XX].rate == 0.2
    assert faults(world, "whatsapp")[Fault.HTTP_5XX].rate == 0.5
    player.advance_to(at_utc("22:05"))
    assert set(faults(world, "facebook")) == {Fault.PARTIAL}
    player.advance_to(at_utc("22:30"))
    assert world.faults.active() == []


def test_it_cannot_replay_backwards() -> None:
    _, _, player = meta_player()
    player.advance_to("+01:00:00")
    with pytest.raises(ValueError, match="cannot go back"):
        player.advance_to("+00:30:00")


async def test_replayed_meta_answers_servfail_from_the_dns_server() -> None:
    world, _, player = meta_player()
    records = {"facebook.com": ("facebook", "127.0.0.2"), "discord.com": ("discord", "127.0.0.3")}
    async with SimDnsServer(world, records) as server:
        async def rcode(name: str) -> int:
            query = dns.message.make_query(name, "A")
            response = await dns.asyncquery.udp(query, server.host, port=server.port, timeout=1)
            return response.rcode()

        player.advance_to(at_utc("15:38"))
        assert await rcode("facebook.com") == dns.rcode.NOERROR
        player.advance_to(at_utc("15:40"))
        assert await rcode("facebook.com") == dns.rcode.SERVFAIL
        assert await rcode("discord.com") == dns.rcode.NOERROR
        player.advance_to(at_utc("21:20"))
        assert await rcode("facebook.com") == dns.rcode.NOERROR


async def test_metas_status_feed_lags_the_outage_by_25_minutes() -> None:
    world, _, player = meta_player()
    app = Starlette(routes=StatusProfile(world).routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://metastatus.com") as client:
        async def items() -> int:
            response = await client.get("/outage-events-feed-graph-api.rss")
            return response.text.count("<item>")

        player.advance_to(at_utc("16:03"))
        assert await items() == 0
        player.advance_to(at_utc("16:04"))
        assert await items() == 1
        player.advance_to(at_utc("22:30"))
        assert await items() == 0


async def test_a_flaky_week_never_reaches_a_status_page() -> None:
    scenario = load_scenario("flaky-week")
    clock = FrozenClock(scenario.start)
    world = SimWorld(clock=clock)
    profile = StatusProfile(world)
    player = ScenarioPlayer(world, scenario, seed=11, clock=clock)
    app = Starlette(routes=profile.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://discordstatus.com") as client:
        for hour in range(0, 7 * 24 + 1, 6):
            player.advance_to(timedelta(hours=hour))
            status = (await client.get("/api/v2/status.json")).json()["status"]
            assert status["indicator"] == "none"
        assert (await client.get("/api/v2/incidents.json")).json()["incidents"] == []


async def test_run_paces_steps_by_speed_without_really_waiting() -> None:
    scenario = load_scenario("tiktok-partial")
    clock = FrozenClock(scenario.start)
    world = SimWorld(clock=clock)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    await ScenarioPlayer(world, scenario, speed=60, clock=clock).run(sleep=sleep)
    # +00:10 and +01:40 at x60 are 10 s and 100 s after the start; this sleep takes no time,
    # so each wait is the whole distance from now to the step's real due instant.
    assert slept == pytest.approx([10.0, 100.0], abs=0.5)
    assert [c.on for c in world.faults.history] == [True, False]
    assert world.faults.history[0].at == scenario.start + timedelta(minutes=10)


async def test_run_at_infinite_speed_applies_everything_at_once() -> None:
    scenario = load_scenario("local-network-down")
    clock = FrozenClock(scenario.start)
    world = SimWorld(clock=clock)
    player = ScenarioPlayer(world, scenario, speed=math.inf, clock=clock)
    await player.run()
    assert player.done and world.faults.active() == []
    assert len(world.faults.history) == 42


def test_offsets_parse_and_format() -> None:
    assert parse_offset("+00:39:00") == timedelta(minutes=39)
    assert parse_offset("2d04:00:00") == timedelta(days=2, hours=4)
    assert parse_offset("170:00:00") == timedelta(hours=170)
    assert format_offset(timedelta(days=7)) == "+168:00:00"
    for bad in ("39:00", "+1:75:00", "soon", "-00:01:00"):
        with pytest.raises(ValueError):
            parse_offset(bad)


def write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(f'name = "{name}"\ntitle = "t"\nstart = 2025-01-01T00:00:00Z\n'
                    f'duration = "01:00:00"\n{body}')
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[step]]\nat = "+00:01:00"\nplatform = "x"\nfault = "dns_servfial"\n',
         "bad.toml: step[0].fault: Input should be"),
        ('[[step]]\nat = "+00:01:00"\nplatform = "x"\n', "bad.toml: step[0]: Value error, a set"),
        ('[[step]]\nat = "soon"\nplatform = "x"\nfault = "slow"\n', "bad.toml: step[0].at:"),
        ('[[step]]\nat = "+02:00:00"\nplatform = "x"\nfault = "slow"\n', "is after the end"),
        ('[[step]]\nat = "+00:01:00"\nplatform = "x"\nfault = "partial"\n', "needs the feature"),
        ('[[step]]\nat = "+00:01:00"\nplatform = "x"\nfault = "slow"\nrate = 2\n',
         "bad.toml: step[0].rate:"),
        ('[[noise]]\nplatforms = ["x"]\nblip_seconds = [30, 3600]\n', "bad.toml: noise[0]:"),
        ('[[noise]]\nplatforms = ["x"]\nprobability = 0.01\nblip_faults = ["http_5xx"]\n',
         "must not include the background fault"),
        ('colour = "red"\n', "bad.toml: colour: Extra inputs are not permitted"),
        ("[[step]\n", "bad.toml: invalid TOML"),
    ],
)
def test_an_invalid_scenario_file_names_the_file_and_field(tmp_path: Path, body: str,
                                                          message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(write(tmp_path, "bad", body))
    assert message in str(caught.value)


def test_a_file_whose_name_differs_from_its_scenario_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "good", "")
    path.rename(tmp_path / "other.toml")
    with pytest.raises(ScenarioError, match="other.toml: name: 'good' differs"):
        load_scenario(tmp_path / "other.toml")


def test_an_unknown_scenario_name_lists_the_known_ones() -> None:
    with pytest.raises(ScenarioError, match="known: flaky-week, local-network-down"):
        load_scenario("meta-2031")


class FakeSimulator:
    """What the control API needs, over a bare world (no sockets)."""

    def __init__(self, world: SimWorld, platforms: list[str]) -> None:
        self._world, self._platforms = world, platforms

    @property
    def world(self) -> SimWorld:
        return self._world

    @property
    def platforms(self) -> list[str]:
        return self._platforms

    @property
    def http_port(self) -> int:
        return 0

    @property
    def dns_address(self) -> tuple[str, int] | None:
        return None

    def host_map(self) -> dict[str, str]:
        return {}

    async def set_fault(self, platform: str, fault: Fault | str, *, feature: str | None = None,
                        rate: float = 1.0, **params: Any) -> ActiveFault:
        return self._world.faults.set(platform, Fault(fault), feature=feature, rate=rate,
                                      **params)

    async def clear_faults(self, platform: str | None = None, fault: Fault | None = None) -> int:
        return self._world.faults.clear(platform, fault)


def cli(name: str, world: SimWorld, platforms: list[str], **kw: Any) -> tuple[int, str]:
    out = io.StringIO()
    transport = httpx.ASGITransport(app=build_control_app(FakeSimulator(world, platforms)))

    async def no_wait(seconds: float) -> None:
        return None

    code = run_cli(name, 60.0, 1, "http://control", console=Console(file=out, width=200),
                   sleep=no_wait, transport=transport, **kw)
    return code, out.getvalue()


def test_the_cli_replays_a_scenario_through_the_control_api(clock: FrozenClock) -> None:
    world = SimWorld(clock=clock)
    code, output = cli("tiktok-partial", world, ["tiktok", "discord"])
    assert code == 0
    assert [(c.platform, c.fault, c.on) for c in world.faults.history] == [
        ("tiktok", Fault.HTTP_5XX, True), ("tiktok", Fault.HTTP_5XX, False)]
    assert "+00:10:00 14:10:00Z tiktok: set http_5xx at 30.0%" in output
    assert "done" in output


def test_the_cli_skips_platforms_the_simulator_does_not_serve(clock: FrozenClock) -> None:
    world = SimWorld(clock=clock)
    code, output = cli("whatsapp-instagram-2021-03-19", world, ["instagram"])
    assert code == 0
    assert {c.platform for c in world.faults.history} == {"instagram"}
    assert "skipped: the simulator does not serve whatsapp" in output


def test_the_cli_reports_an_unknown_scenario_with_exit_code_2(clock: FrozenClock) -> None:
    code, output = cli("no-such-thing", SimWorld(clock=clock), [])
    assert code == 2
    assert "no scenario named" in output


def test_the_cli_reports_an_unreachable_simulator_with_exit_code_1() -> None:
    out = io.StringIO()
    code = run_cli("tiktok-partial", math.inf, 1, "http://127.0.0.1:9",
                   console=Console(file=out, width=200))
    assert code == 1
    assert "no simulator control API at http://127.0.0.1:9" in out.getvalue()


class RefusingSimulator(FakeSimulator):
    async def set_fault(self, platform: str, fault: Fault | str, *, feature: str | None = None,
                        rate: float = 1.0, **params: Any) -> ActiveFault:
        raise ValueError("no faults today")


def test_the_cli_stops_with_exit_code_1_when_the_simulator_refuses_a_step(
    clock: FrozenClock,
) -> None:
    out = io.StringIO()
    app = build_control_app(RefusingSimulator(SimWorld(clock=clock), ["tiktok"]))
    code = run_cli("tiktok-partial", math.inf, 1, "http://control",
                   console=Console(file=out, width=200), transport=httpx.ASGITransport(app=app))
    assert code == 1
    assert "the simulator refused a step: 400" in out.getvalue()
    assert "no faults today" in out.getvalue()
