"""Outage scenarios as data, replayed against the simulator in real, scaled or frozen time.

A scenario is a TOML file under `sim/scenarios/` (or any path):

    name = "meta-2021-10-04"            # must equal the file's stem
    title = "..."
    description = "..."
    start = 2021-10-04T15:30:00Z        # the real event's clock; offsets count from here
    duration = "07:00:00"               # "[+][<days>d]HH:MM:SS", hours may exceed 24
    sources = [{ title = "...", url = "https://..." }]

    [[step]]                            # one change to the world's faults
    at = "+00:09:00"
    platforms = ["facebook", "instagram"]   # or platform = "facebook"
    action = "set"                      # "set" (default) or "clear"
    fault = "dns_servfail"              # any `Fault`; optional for clear (then: all of them)
    feature = "media"                   # set only; None = the whole platform
    rate = 0.3                          # set only; share of requests hit, (0, 1]
    params = { status_lag_s = 1500 }    # set only; passed to the fault (see dns.py, status.py)
    note = "what happened"              # printed by the CLI

    [[noise]]                           # random trouble that is *not* an outage
    platforms = ["discord", "reddit"]
    probability = 0.005                 # background share of requests failing with `fault`
    fault = "http_5xx"
    blips_per_day = 2                   # mean; each blip is one short fault
    blip_seconds = [30, 120]            # at most MAX_BLIP_S
    blip_faults = ["timeout", "dns_servfail"]

`Scenario.timeline(seed)` expands noise with a generator seeded by (seed, scenario, noise
block, platform) into concrete steps and returns every step sorted by offset: the same seed
gives the same timeline on every machine. Noise faults carry
`params={"status_page": "silent", "noise": "random"|"blip"}` so status pages never report
them. A blip's clear names its fault, so a scenario must not set the same fault on the same
platform by hand while noise blips it (the clear would end both).

`ScenarioPlayer` applies a timeline to a `SimWorld`: `advance_to(offset)` in simulated time
(with a `FrozenClock`, the clock is set to each step's instant first, so faults carry exact
`since` stamps), `run()` in real time divided by `speed`. `run_cli` replays a scenario
against a running simulator through its control API (POST /faults,
DELETE /faults/{platform}?fault=<fault>).

Errors: `ScenarioError` (a ValueError) whose message starts with the file and the field,
e.g. `flaky-week.toml: step[3].fault: Input should be 'dns_servfail', ...`.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from rich.console import Console
from rich.markup import escape

from sidestep.clock import Clock, FrozenClock
from sidestep.sim.dns import INTERNET
from sidestep.sim.world import Fault, SimWorld

__all__ = ["Scenario", "ScenarioError", "ScenarioPlayer", "Step", "format_offset",
           "list_scenarios", "load_scenario", "parse_offset", "run_cli"]

MAX_BLIP_S = 300  # longer than this and a "blip" starts to look like an outage
_OFFSET = re.compile(r"\+?(?:(\d+)d)?(\d+):([0-5]\d):([0-5]\d)")
_KEY = r"^[a-z][a-z0-9_-]*$"


class ScenarioError(ValueError):
    """A scenario that cannot be found, read or validated; the message names file and field."""


def parse_offset(value: object) -> timedelta:
    """`"+01:02:03"`, `"2d04:00:00"` or seconds as a number -> timedelta; ValueError otherwise."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    match = _OFFSET.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not an offset like '+01:30:00' or '2d04:00:00'")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def format_offset(offset: timedelta) -> str:
    """The inverse of `parse_offset`: `+HH:MM:SS` with hours counting past 24."""
    total = int(offset.total_seconds())
    return f"+{total // 3600:02d}:{total // 60 % 60:02d}:{total % 60:02d}"


Offset = Annotated[timedelta, BeforeValidator(parse_offset)]
_STRICT = ConfigDict(extra="forbid", frozen=True)


class Source(BaseModel):
    model_config = _STRICT
    title: str = Field(min_length=1)
    url: str = Field(pattern=r"^https?://\S+$")


class StepSpec(BaseModel):
    """One `[[step]]` table as written."""

    model_config = _STRICT
    at: Offset
    platform: str | None = Field(default=None, pattern=_KEY)
    platforms: list[Annotated[str, Field(pattern=_KEY)]] | None = Field(default=None, min_length=1)
    action: Literal["set", "clear"] = "set"
    fault: Fault | None = None
    feature: str | None = None
    rate: float = Field(default=1.0, gt=0.0, le=1.0)
    params: dict[str, Any] = Field(default_factory=dict)
    note: str | None = None

    @model_validator(mode="after")
    def _coherent(self) -> StepSpec:
        if (self.platform is None) == (self.platforms is None):
            raise ValueError("give exactly one of platform or platforms")
        if self.action == "set" and self.fault is None:
            raise ValueError("a set step needs a fault")
        if self.action == "set" and self.fault is Fault.PARTIAL and self.feature is None:
            raise ValueError("a partial fault needs the feature that fails")
        if self.action == "clear" and (self.feature or self.params or self.rate != 1.0):
            raise ValueError("a clear step takes platform(s) and optionally fault, nothing else")
        return self


class NoiseSpec(BaseModel):
    """One `[[noise]]` table: background failures and short blips, not outages."""

    model_config = _STRICT
    platforms: list[Annotated[str, Field(pattern=_KEY)]] = Field(min_length=1)
    probability: float = Field(default=0.0, ge=0.0, lt=0.05)
    fault: Fault = Fault.HTTP_5XX
    blips_per_day: float = Field(default=0.0, ge=0.0, le=48.0)
    blip_seconds: tuple[int, int] = (30, 120)
    blip_faults: list[Fault] = Field(default=[Fault.TIMEOUT, Fault.DNS_SERVFAIL], min_length=1)

    @model_validator(mode="after")
    def _coherent(self) -> NoiseSpec:
        low, high = self.blip_seconds
        if not 1 <= low <= high <= MAX_BLIP_S:
            raise ValueError(f"blip_seconds must be [low, high] with 1 <= low <= high <= "
                             f"{MAX_BLIP_S}")
        if self.probability > 0 and self.fault in self.blip_faults:
            raise ValueError("blip_faults must not include the background fault: a blip's clear "
                             "would end the background failures too")
        if Fault.PARTIAL in self.blip_faults or self.fault is Fault.PARTIAL:
            raise ValueError("noise cannot use the partial fault (it needs a feature)")
        return self


@dataclass(frozen=True, slots=True)
class Step:
    """One concrete change at an offset from the scenario's start."""

    offset: timedelta
    platform: str
    action: Literal["set", "clear"]
    fault: Fault | None = None
    feature: str | None = None
    rate: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)
    note: str | None = None

    def describe(self) -> str:
        what = f"{self.action} {self.fault or 'every fault'}"
        if self.feature:
            what += f" on {self.feature}"
        if self.rate < 1.0:
            what += f" at {self.rate:.1%}"
        return f"{self.platform}: {what}"


class Scenario(BaseModel):
    """A validated scenario file (see the module docstring for the format)."""

    model_config = _STRICT
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    title: str = Field(min_length=1)
    description: str = ""
    start: datetime
    duration: Offset
    sources: list[Source] = Field(default_factory=list)
    step: list[StepSpec] = Field(default_factory=list)
    noise: list[NoiseSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _coherent(self) -> Scenario:
        if self.start.tzinfo is None:
            raise ValueError("start must carry a timezone, e.g. 2021-10-04T15:30:00Z")
        if self.duration <= timedelta(0):
            raise ValueError("duration must be positive")
        for index, spec in enumerate(self.step):
            if spec.at > self.duration:
                raise ValueError(f"step[{index}] at {format_offset(spec.at)} is after the "
                                 f"end ({format_offset(self.duration)})")
        return self

    def timeline(self, seed: int = 0) -> list[Step]:
        """Every step, noise expanded with `seed`, sorted by offset (file order on ties)."""
        steps: list[Step] = []
        for spec in self.step:
            for platform in spec.platforms or [spec.platform or ""]:
                steps.append(Step(spec.at, platform, spec.action, spec.fault, spec.feature,
                                  spec.rate, dict(spec.params), spec.note))
        for index, noise in enumerate(self.noise):
            for platform in noise.platforms:
                rng = random.Random(f"{seed}/{self.name}/{index}/{platform}")  # noqa: S311
                steps.extend(self._noise_steps(noise, platform, rng))
        return sorted(steps, key=lambda s: s.offset)  # stable: ties keep file order

    def _noise_steps(self, noise: NoiseSpec, platform: str, rng: random.Random) -> list[Step]:
        steps: list[Step] = []
        if noise.probability > 0:
            params = {"status_page": "silent", "noise": "random"}
            steps.append(Step(timedelta(0), platform, "set", noise.fault, None,
                              noise.probability, params, "background failures"))
            steps.append(Step(self.duration, platform, "clear", noise.fault))
        total_s = int(self.duration.total_seconds())
        busy_until = -1
        whole, fraction = divmod(noise.blips_per_day, 1.0)
        for day in range(math.ceil(total_s / 86400)):
            count = int(whole) + (1 if rng.random() < fraction else 0)
            day_s = min(86400, total_s - day * 86400)
            blips = sorted((rng.randrange(day_s), rng.randint(*noise.blip_seconds),
                            rng.choice(noise.blip_faults)) for _ in range(count))
            for start_s, length_s, fault in blips:
                at = day * 86400 + start_s
                if at <= busy_until or at + length_s > total_s:
                    continue  # overlapping blips would clear each other early: skip
                busy_until = at + length_s
                params = {"status_page": "silent", "noise": "blip"}
                steps.append(Step(timedelta(seconds=at), platform, "set", fault, None, 1.0,
                                  params, f"blip of {length_s} s"))
                steps.append(Step(timedelta(seconds=busy_until), platform, "clear", fault))
        return steps


def scenarios_dir() -> Path:
    return Path(str(resources.files("sidestep.sim").joinpath("scenarios")))


def list_scenarios() -> list[str]:
    """The names of the packaged scenarios, sorted."""
    return sorted(path.stem for path in scenarios_dir().glob("*.toml"))


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load a packaged scenario by name, or a file by path; raises ScenarioError."""
    path = Path(name_or_path)
    if not (path.suffix == ".toml" or path.parent != Path(".")):
        path = scenarios_dir() / f"{name_or_path}.toml"
        if not path.is_file():
            known = ", ".join(list_scenarios())
            raise ScenarioError(f"no scenario named {name_or_path!r}; known: {known}")
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise ScenarioError(f"{path.name}: cannot read the file: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path.name}: invalid TOML: {exc}") from exc
    try:
        scenario = Scenario.model_validate(document)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"])
            lines.append(f"{path.name}: {where.lstrip('.') or 'file'}: {error['msg']}")
        raise ScenarioError("\n".join(lines)) from exc
    if scenario.name != path.stem:
        raise ScenarioError(f"{path.name}: name: {scenario.name!r} differs from the file name")
    return scenario


def apply_step(world: SimWorld, step: Step) -> None:
    """Carry out one step on the world's fault board."""
    if step.action == "set":
        assert step.fault is not None  # validated: a set step has a fault
        world.faults.set(step.platform, step.fault, feature=step.feature, rate=step.rate,
                         **step.params)
    else:
        world.faults.clear(step.platform, step.fault)


Sleep = Callable[[float], Awaitable[None]]


async def _paced(steps: list[Step], begin: timedelta, speed: float, sleep: Sleep,
                 apply: Callable[[Step], Awaitable[None]]) -> None:
    """Call `apply` for each step when (offset - begin) / speed real seconds have passed."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    for step in steps:
        due = started + (step.offset - begin).total_seconds() / speed
        if (wait := due - loop.time()) > 0:
            await sleep(wait)
        await apply(step)


class ScenarioPlayer:
    """Applies a scenario's timeline to a world, in simulated or scaled real time."""

    def __init__(self, world: SimWorld, scenario: Scenario, *, seed: int = 0,
                 speed: float = 1.0, clock: Clock | None = None,
                 origin: datetime | None = None) -> None:
        """`origin` is the world instant of offset 0 (default: the clock's now)."""
        if not speed > 0:
            raise ValueError("speed must be positive (math.inf replays without waiting)")
        self.world, self.scenario, self.speed = world, scenario, speed
        self.clock = clock or world.clock
        self.origin = (origin or self.clock.now()).astimezone(UTC)
        self.timeline = scenario.timeline(seed)
        self.position = timedelta(0)
        self._next = 0

    @property
    def pending(self) -> list[Step]:
        return self.timeline[self._next:]

    @property
    def done(self) -> bool:
        return self._next >= len(self.timeline)

    def advance_to(self, offset: timedelta | str) -> list[Step]:
        """Apply every step up to `offset` (inclusive); return them. Never goes back."""
        target = parse_offset(offset)
        if target < self.position:
            raise ValueError(f"cannot go back from {format_offset(self.position)} "
                             f"to {format_offset(target)}")
        applied = []
        while not self.done and self.timeline[self._next].offset <= target:
            step = self.timeline[self._next]
            if isinstance(self.clock, FrozenClock):
                self.clock.set(self.origin + step.offset)
            apply_step(self.world, step)
            applied.append(step)
            self._next += 1
        if isinstance(self.clock, FrozenClock):
            self.clock.set(self.origin + target)
        self.position = target
        return applied

    async def run(self, *, sleep: Sleep = asyncio.sleep) -> None:
        """Apply the remaining steps at their offsets scaled by `speed`, then reach the end."""
        async def apply(step: Step) -> None:
            self.advance_to(step.offset)

        await _paced(self.pending, self.position, self.speed, sleep, apply)  # x/inf is 0
        self.advance_to(max(self.scenario.duration, self.position))


def run_cli(name: str, speed: float, seed: int, control_url: str, *,
            console: Console | None = None, sleep: Sleep = asyncio.sleep,
            transport: httpx.AsyncBaseTransport | None = None) -> int:
    """Replay scenario `name` against the simulator's control API; return an exit code.

    0 when every step was applied (steps for platforms the simulator does not serve are
    reported and skipped), 1 when the simulator refused a step or could not be reached, 2 for
    a scenario that does not load or a bad speed, 130 when interrupted. `transport` is for
    tests (an ASGI transport onto the control app).
    """
    out = console or Console()
    try:
        scenario = load_scenario(name)
        if not speed > 0:
            raise ScenarioError("speed must be positive")
    except ScenarioError as exc:
        out.print(f"[red]{escape(str(exc))}[/red]")
        return 2
    try:
        return asyncio.run(
            _replay_remote(scenario, speed, seed, control_url, out, sleep, transport))
    except KeyboardInterrupt:
        out.print("[yellow]interrupted; faults stay as they are[/yellow]")
        return 130


async def _replay_remote(scenario: Scenario, speed: float, seed: int, control_url: str,
                         out: Console, sleep: Sleep,
                         transport: httpx.AsyncBaseTransport | None) -> int:
    timeline = scenario.timeline(seed)
    out.print(f"[bold]{escape(scenario.title)}[/bold] ({scenario.name}): {len(timeline)} steps "
              f"over {format_offset(scenario.duration)}, speed x{speed:g}, seed {seed}")
    for source in scenario.sources:
        out.print(f"  source: {escape(source.title)} <{escape(source.url)}>")

    async with httpx.AsyncClient(base_url=control_url, timeout=10.0,
                                 transport=transport) as client:
        served: set[str] = {INTERNET}

        async def apply(step: Step) -> None:
            clock = (scenario.start + step.offset).astimezone(UTC).strftime("%H:%M:%S")
            stamp = f"[cyan]{format_offset(step.offset)}[/cyan] {clock}Z"
            if step.platform not in served:
                out.print(f"{stamp} [yellow]skipped: the simulator does not serve "
                          f"{escape(step.platform)}[/yellow]")
                return
            if step.action == "set":
                body: dict[str, Any] = {"platform": step.platform, "fault": str(step.fault)}
                if step.feature is not None:
                    body["feature"] = step.feature
                if step.rate != 1.0:
                    body["rate"] = step.rate
                if step.params:
                    body["params"] = step.params
                response = await client.post("/faults", json=body)
            else:
                query = {"fault": str(step.fault)} if step.fault else None
                response = await client.delete(f"/faults/{step.platform}", params=query)
            response.raise_for_status()
            note = f" [dim]{escape(step.note)}[/dim]" if step.note else ""
            out.print(f"{stamp} {escape(step.describe())}{note}")

        try:
            health = await client.get("/health")
            health.raise_for_status()
            served.update(health.json()["platforms"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            out.print(f"[red]no simulator control API at {escape(control_url)}: "
                      f"{escape(str(exc) or type(exc).__name__)}[/red]")
            return 1
        try:
            await _paced(timeline, timedelta(0), speed, sleep, apply)
        except httpx.HTTPStatusError as exc:
            out.print(f"[red]the simulator refused a step: {exc.response.status_code} "
                      f"{escape(exc.response.text[:300])}[/red]")
            return 1
        except httpx.HTTPError as exc:
            out.print(f"[red]lost the control API at {escape(control_url)}: "
                      f"{escape(str(exc) or type(exc).__name__)}[/red]")
            return 1
    out.print(f"[green]done: {scenario.name} replayed[/green]")
    return 0
