"""Commands for the monitor loop and probe agents (issue 7)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

import httpx
import typer
from rich.table import Table

from sidestep.cli.common import UsageError, console, opened_runtime, run

monitor_app = typer.Typer(help="Watch the platforms: DNS, HTTP, status pages, publish path.",
                          no_args_is_help=True)
PlatformOption = typer.Option(None, "--platform", "-p", help="Only these platforms.")
SimOption = typer.Option(None, "--sim-control",
                         help="Probe a running `sidestep sim serve` (its control URL).")


async def simulator_network_at(sim_control: str | None) -> tuple[Any, list[str] | None]:
    """The probes' network: the internet, or the simulator behind `sim_control`."""
    if sim_control is None:
        return None, None
    from sidestep.monitor.probes.dns import NamedResolver
    from sidestep.monitor.runner import Network
    from sidestep.sim.transport import DnsResolver, SimTransport

    try:
        async with httpx.AsyncClient(base_url=sim_control, timeout=5.0) as control:
            hosts = (await control.get("/hosts")).raise_for_status().json()
        ip, port = hosts["dns"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"no simulator with DNS at {sim_control}: {exc}") from exc
    resolver = NamedResolver("sim", ip, int(port))
    client = httpx.AsyncClient(transport=SimTransport(resolver=DnsResolver(ip, int(port)),
                                                      http_port=int(hosts["http_port"])))
    network = Network(client=client, resolvers=[resolver], bootstrap=resolver,
                      ns_port=int(port), control_resolvers=[resolver])
    return network, list(hosts["hosts"])


@monitor_app.command("once")
def monitor_once(platform: list[str] | None = PlatformOption,
                 sim_control: str | None = SimOption) -> None:
    """Probe every platform once and print what each probe saw (one round is no verdict)."""
    from sidestep.catalogue import default_catalogue
    from sidestep.monitor.config import load_monitor_config
    from sidestep.monitor.outcomes import FAILING
    from sidestep.monitor.probes.dns import NamedResolver
    from sidestep.monitor.runner import MonitorRunner, Network
    from sidestep.monitor.targets import targets_for

    async def main() -> None:
        config = load_monitor_config()
        network, served = await simulator_network_at(sim_control)
        try:
            targets = targets_for(default_catalogue(), platforms=platform, served_hosts=served)
        except KeyError as exc:
            raise UsageError(f"unknown platform {exc}") from None
        if network is None:
            first = config.controls.resolvers[0]
            resolver = NamedResolver(first.name, first.ip, first.port)
            network = Network(client=httpx.AsyncClient(), resolvers=[resolver],
                              bootstrap=resolver)
        async with opened_runtime() as runtime, network.client:
            runner = MonitorRunner(db=runtime.db, targets=targets, network=network,
                                   config=config, clock=runtime.clock)
            await runner.tick()
            async with runtime.db.session() as session:
                from sidestep.store.health import Health

                health = Health(session)
                since = runtime.clock.now() - timedelta(minutes=5)
                table = Table("platform", "checks", "failing", "first failure")
                for target in targets:
                    rows = await health.observations(platform=target.key, since=since)
                    bad = [r for r in rows if r.outcome in FAILING]
                    first_bad = f"{bad[0].target}: {bad[0].outcome}" if bad else ""
                    table.add_row(target.key, str(len(rows)), str(len(bad)), first_bad[:80])
        console.print(table)
        local = runner.fusion.controls_failing()
        console.print("controls: " + ("[red]failing: our own network?[/red]" if local
                                      else "[green]answering[/green]"))

    run(main)


@monitor_app.command("run")
def monitor_run(platform: list[str] | None = PlatformOption,
                sim_control: str | None = SimOption) -> None:
    """Probe, fuse and record platform states until Ctrl-C."""
    from sidestep.monitor.runner import run_monitor

    async def main() -> None:
        network, served = await simulator_network_at(sim_control)
        stop = asyncio.Event()
        async with opened_runtime() as runtime:
            console.print("Monitoring (Ctrl-C stops it).")
            try:
                await run_monitor(runtime, stop=stop, network=network, platforms=platform,
                                  served_hosts=served)
            finally:
                if network is not None:
                    with contextlib.suppress(Exception):
                        await network.client.aclose()

    run(main)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `sidestep` command."""
    app.add_typer(monitor_app, name="monitor")
    from sidestep.cli import agents  # `sidestep agent` and `sidestep alerts`

    agents.register(app)
