"""`sidestep sim ...`: run the platform simulator and drive a running one.

    sidestep sim serve --control-port 8790 --seed 1
    sidestep sim fault facebook dns_servfail
    sidestep sim fault instagram partial --feature media --param kind=media_failed
    sidestep sim fault mastodon rate_limited --param retry_after_s=120 --rate 0.5
    sidestep sim clear [facebook]
    sidestep sim record [--platform mastodon]
    sidestep sim hosts
    sidestep sim run-scenario meta-2021 --speed 60

Every command but `serve` talks to the control API at --control (default
http://127.0.0.1:8790). A mistake (unknown platform or fault, a malformed --param) is one line
on stderr and exit code 2; a simulator that does not answer is one line and exit code 1.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import signal
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from sidestep.clock import SystemClock
from sidestep.sim.world import Fault, SimWorld

__all__ = ["DEFAULT_CONTROL_URL", "sim_app"]

DEFAULT_CONTROL_URL = "http://127.0.0.1:8790"

sim_app = typer.Typer(
    help="The platform simulator: serve it, inject faults, read what it accepted.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

ControlOption = typer.Option(DEFAULT_CONTROL_URL, "--control", help="The simulator's control URL.")


def _fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _call(control: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One control API call; its JSON answer. API errors exit 2, no answer exits 1."""

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(base_url=control, timeout=10.0) as client:
            return await client.request(method, path, json=body)

    try:
        response = asyncio.run(go())
    except httpx.HTTPError as exc:
        raise _fail(f"no simulator answers at {control} ({exc or type(exc).__name__})", 1) \
            from None
    try:
        answer = response.json()
    except ValueError:
        raise _fail(f"{control} is not a simulator control API (HTTP {response.status_code})",
                    1) from None
    if response.status_code >= 400:
        raise _fail(str(answer.get("error", answer) if isinstance(answer, dict) else answer))
    return answer


def _parse_params(pairs: list[str]) -> dict[str, Any]:
    """`k=v` pairs; values are read as JSON when they can be (5, 0.5, true), else as text."""
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise _fail(f"--param takes name=value, not {pair!r}")
        try:
            params[name] = json.loads(raw)
        except ValueError:
            params[name] = raw
    return params


@sim_app.command()
def serve(
    port: int = typer.Option(0, "--port", help="HTTP port on every platform IP (0: a free one)."),
    control_port: int = typer.Option(8790, "--control-port", help="Control API port."),
    seed: int = typer.Option(0, "--seed", help="Seed of the simulator's randomness."),
) -> None:
    """Run every simulated platform until Ctrl-C; print the host map and control URL."""
    from sidestep.sim.server import Simulator

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        world = SimWorld(clock=SystemClock(), seed=seed)
        async with Simulator(world=world, http_port=port, control_port=control_port) as sim:
            table = Table("host", "platform ip", title=f"HTTP port {sim.http_port}")
            for host, ip in sorted(sim.host_map().items()):
                table.add_row(host, ip)
            console.print(table)
            dns = sim.dns_address
            console.print(f"DNS server: {dns[0]}:{dns[1]}" if dns else "DNS server: none")
            console.print(f"Control API: {sim.control_url}   (Ctrl-C stops)")
            await stop.wait()

    try:
        asyncio.run(run())
    except (OSError, ValueError) as exc:
        raise _fail(f"the simulator cannot start: {exc}", 1) from None


@sim_app.command()
def fault(
    platform: str = typer.Argument(..., help="Platform key, e.g. facebook (or internet)."),
    fault_name: str = typer.Argument(..., metavar="FAULT", help=", ".join(Fault)),
    feature: str | None = typer.Option(None, "--feature", help="Only this feature (media...)."),
    rate: float = typer.Option(1.0, "--rate", help="Share of requests hit, in (0, 1]."),
    param: list[str] = typer.Option([], "--param", "-p", help="name=value, repeatable."),  # noqa: B006
    control: str = ControlOption,
) -> None:
    """Turn a fault on for a platform (and optionally one feature)."""
    if fault_name not in set(Fault):
        raise _fail(f"unknown fault {fault_name!r}; choose one of {', '.join(Fault)}")
    body = {"platform": platform, "fault": fault_name, "feature": feature, "rate": rate,
            "params": _parse_params(param)}
    answer = _call(control, "POST", "/faults", body)
    scope = f"feature {answer['feature']}" if answer["feature"] else "every feature"
    extra = f", {json.dumps(answer['params'])}" if answer["params"] else ""
    console.print(f"fault on: {answer['platform']} {answer['fault']} "
                  f"({scope}, rate {answer['rate']}{extra})")


@sim_app.command()
def clear(
    platform: str | None = typer.Argument(None, help="Only this platform's faults."),
    control: str = ControlOption,
) -> None:
    """Turn faults off: one platform's, or all."""
    answer = _call(control, "DELETE", f"/faults/{platform}" if platform else "/faults")
    console.print(f"cleared {answer['cleared']} fault(s)")


@sim_app.command()
def record(
    platform: str | None = typer.Option(None, "--platform", help="Only this platform."),
    control: str = ControlOption,
) -> None:
    """Every post the simulated platforms accepted, in order."""
    query = f"/record?platform={platform}" if platform else "/record"
    posts = _call(control, "GET", query)["posts"]
    table = Table("#", "platform", "account", "kind", "external id", "marker", "at",
                  title=f"{len(posts)} accepted post(s)")
    for post in posts:
        table.add_row(str(post["seq"]), post["platform"], post["account"], post["kind"],
                      post["external_id"], post["idempotency_marker"] or "", post["at"])
    console.print(table)


@sim_app.command()
def hosts(control: str = ControlOption) -> None:
    """The simulated hostnames and the loopback IP each resolves to."""
    answer = _call(control, "GET", "/hosts")
    table = Table("host", "ip", title=f"HTTP port {answer['http_port']}")
    for host, ip in sorted(answer["hosts"].items()):
        table.add_row(host, ip)
    console.print(table)
    dns = answer.get("dns")
    console.print(f"DNS server: {dns[0]}:{dns[1]}" if dns else "DNS server: none")


@sim_app.command("run-scenario")
def run_scenario(
    name: str = typer.Argument(..., help="Scenario name, e.g. meta-2021."),
    speed: float = typer.Option(1.0, "--speed", help="Simulated seconds per real second."),
    seed: int = typer.Option(0, "--seed", help="Seed of the scenario's randomness."),
    control: str = ControlOption,
) -> None:
    """Replay a recorded outage scenario against a running simulator (its exit code)."""
    try:  # a colleague's module; imported here so the rest works without it
        scenario = importlib.import_module("sidestep.sim.scenario")
    except ModuleNotFoundError as exc:
        if exc.name != "sidestep.sim.scenario":
            raise
        raise _fail("scenario replay is not available (sidestep.sim.scenario is missing)") \
            from None
    result = scenario.run_cli(name, speed, seed, control)
    if inspect.isawaitable(result):
        result = asyncio.run(_await(result))
    if isinstance(result, int) and result:
        raise typer.Exit(result)  # run_cli reports its own errors; pass its exit code on


async def _await(awaitable: Any) -> Any:
    return await awaitable
