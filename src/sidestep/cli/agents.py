"""`sidestep agent` (run a probe agent; issue, list and revoke agent tokens) and
`sidestep alerts` (a workspace's team alert URLs)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.table import Table

from sidestep.cli.common import (
    UsageError,
    WorkspaceOption,
    console,
    err_console,
    opened_runtime,
    pick_workspace,
    run,
)
from sidestep.store.accounts import Accounts

agent_app = typer.Typer(help="Probe agents: the monitor's probes run from other networks.")
alerts_app = typer.Typer(help="Team alerts through Apprise URLs.", no_args_is_help=True)

DEFAULT_RESOLVERS = ("cloudflare=1.1.1.1", "google=8.8.8.8", "quad9=9.9.9.9")


def register(app: typer.Typer) -> None:
    app.add_typer(agent_app, name="agent")
    app.add_typer(alerts_app, name="alerts")


@agent_app.callback(invoke_without_command=True)
def agent(
    ctx: typer.Context,
    hub: str = typer.Option("", "--hub", help="The hub's URL, e.g. https://sidestep.example."),
    token: str = typer.Option("", "--token", envvar="SIDESTEP_AGENT_TOKEN",
                              help="The token from `sidestep agent issue` (or the env var)."),
    name: str | None = typer.Option(None, "--name", help="The vantage name the token was "
                                    "issued for; the hub refuses a batch naming another."),
    interval: float = typer.Option(60.0, "--interval", min=1.0, help="Seconds between rounds."),
    once: bool = typer.Option(False, "--once", help="One round, then exit."),
    resolver: list[str] = typer.Option(list(DEFAULT_RESOLVERS), "--resolver",
                                       help="NAME=IP[:PORT], repeatable."),
    platform: list[str] = typer.Option([], "--platform", help="Only these platforms."),
    authoritative: bool = typer.Option(True, help="Also ask the platforms' nameservers."),
) -> None:
    """Run the probes from this network and send them, signed, to the hub."""
    if ctx.invoked_subcommand is not None:
        return
    if not hub or not token:
        raise typer.BadParameter("give --hub and --token (or SIDESTEP_AGENT_TOKEN)")
    from sidestep.monitor.agent import run_agent_command

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    code = run_agent_command(hub=hub, token=token, name=name, interval_s=interval, once=once,
                             resolvers=resolver, platforms=platform,
                             authoritative=authoritative)
    raise typer.Exit(code)


@agent_app.command("issue")
def agent_issue(
    name: str = typer.Option(..., "--name", help="The agent's vantage name, e.g. fra-1."),
) -> None:
    """Register an agent and print its token, once; only an encrypted key is kept."""
    from sidestep.store.agents import Agents

    async def main() -> str:
        async with opened_runtime() as rt, rt.db.session() as session:
            with _agent_errors():
                return await Agents(session, vault=rt.vault).issue(name=name,
                                                                   at=rt.clock.now())

    token = run(main)
    err_console.print(f"Agent [bold]{name}[/bold] registered. Its token (shown once):")
    console.print(token, highlight=False, soft_wrap=True)


@agent_app.command("list")
def agent_list() -> None:
    """Registered agents and when each last reported."""
    from sidestep.store.agents import Agents

    async def main() -> None:
        async with opened_runtime() as rt, rt.db.session() as session:
            agents = await Agents(session, vault=rt.vault).all()
        table = Table("name", "key id", "created (UTC)", "last seen (UTC)", "state")
        for a in agents:
            table.add_row(a.name, a.key_id, f"{a.created_at:%Y-%m-%d %H:%M}",
                          f"{a.last_seen_at:%Y-%m-%d %H:%M}" if a.last_seen_at else "never",
                          "revoked" if a.revoked_at else "active")
        console.print(table if agents else "No agent registered; `sidestep agent issue`.")

    run(main)


@agent_app.command("revoke")
def agent_revoke(name: str = typer.Option(..., "--name", help="The agent to refuse.")) -> None:
    """Refuse an agent's token from now on."""
    from sidestep.store.agents import Agents

    async def main() -> None:
        async with opened_runtime() as rt, rt.db.session() as session:
            with _agent_errors():
                await Agents(session, vault=rt.vault).revoke(name=name, at=rt.clock.now())

    run(main)
    console.print(f"Agent {name} revoked.")


@contextmanager
def _agent_errors() -> Iterator[None]:
    from sidestep.store.agents import AgentError

    try:
        yield
    except AgentError as exc:
        raise UsageError(str(exc)) from None


@alerts_app.command("add")
def alerts_add(
    url: str = typer.Argument(..., help="An Apprise URL, e.g. tgram://BOT_TOKEN/CHAT_ID."),
    label: str = typer.Option("", "--label", help="A name for it; default: its platform."),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Alert this workspace's team through `url` (stored encrypted)."""
    from sidestep.monitor.alerts import platform_of_url
    from sidestep.store.alerting import AlertTargets

    async def main() -> str:
        try:
            platform = platform_of_url(url)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        chosen = (label or platform).strip()
        if not chosen or len(chosen) > 100:
            raise UsageError("a label needs 1 to 100 characters")
        async with opened_runtime() as rt, rt.db.session() as session:
            ws = await pick_workspace(Accounts(session), workspace)
            targets = AlertTargets(session, workspace_id=ws.id, vault=rt.vault)
            if await targets.by_label(chosen) is not None:
                raise UsageError(f"{ws.slug} already has an alert URL labelled {chosen!r}; "
                                 "pick another --label")
            await targets.add(label=chosen, url=url, platform=platform, at=rt.clock.now())
        return f"Alerts for {ws.slug} will also go to {chosen} ({platform})."

    console.print(run(main), highlight=False)


@alerts_app.command("list")
def alerts_list(workspace: str | None = WorkspaceOption) -> None:
    """This workspace's alert URLs, secrets masked, and the last alerts sent."""
    from sidestep.monitor.alerts import masked
    from sidestep.store.alerting import AlertsSent, AlertTargets

    async def main() -> None:
        async with opened_runtime() as rt, rt.db.session() as session:
            ws = await pick_workspace(Accounts(session), workspace)
            repo = AlertTargets(session, workspace_id=ws.id, vault=rt.vault)
            targets = [(t, masked(repo.url(t))) for t in await repo.all()]
            sent = await AlertsSent(session).for_workspace(ws.id, limit=10)
        if not targets:
            console.print(f"No alert URL for {ws.slug}; `sidestep alerts add URL`.")
            return
        table = Table("label", "platform", "URL (secrets hidden)")
        for target, shown in targets:
            table.add_row(target.label, target.platform, shown)
        console.print(table)
        if sent:
            recent = Table("at (UTC)", "platform", "state", "outcome", "detail")
            for s in sent:
                recent.add_row(f"{s.at:%Y-%m-%d %H:%M}", s.platform, s.state, s.outcome,
                               s.detail)
            console.print(recent)

    run(main)


@alerts_app.command("remove")
def alerts_remove(
    label: str = typer.Argument(..., help="The label shown by `sidestep alerts list`."),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Stop alerting through one URL."""
    from sidestep.store.alerting import AlertTargets

    async def main() -> str:
        async with opened_runtime() as rt, rt.db.session() as session:
            ws = await pick_workspace(Accounts(session), workspace)
            if not await AlertTargets(session, workspace_id=ws.id, vault=rt.vault).remove(label):
                raise UsageError(f"{ws.slug} has no alert URL labelled {label!r}")
        return f"Removed {label}."

    console.print(run(main), highlight=False)
