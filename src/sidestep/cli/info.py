"""`sidestep platforms`, `sidestep status`, `sidestep version`."""

from __future__ import annotations

import asyncio

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from sidestep import __version__
from sidestep.cli.common import WorkspaceOption, console, opened_runtime, pick_workspace, run
from sidestep.runtime import Runtime
from sidestep.store.accounts import Accounts
from sidestep.store.health import Health
from sidestep.store.posts import Posts

_SHORT_MEDIA = {"image": "img", "video": "vid", "audio": "aud", "document": "doc"}


def platforms(
    owner: str | None = typer.Option(None, help="Only platforms of this owner, e.g. Meta."),
) -> None:
    """The platform catalogue: owners, kinds, limits and how each is watched."""
    from sidestep.catalogue import default_catalogue

    table = Table("key", "owner", "kind", "text", "media", "status feed")
    shown = 0
    for p in default_catalogue().all():
        if owner and p.owner.lower() != owner.lower():
            continue
        shown += 1
        feed = p.status_feed.kind if p.status_feed else "—"
        media = " ".join(_SHORT_MEDIA[k] for k in p.limits.media_kinds) or "—"
        table.add_row(p.key, p.owner.split(" (")[0], p.kind, f"{p.limits.text_max_chars:,}",
                      media, feed)
    console.print(table if shown else f"No platform has the owner {owner!r}.")


def status(
    workspace: str | None = WorkspaceOption,
    watch: bool = typer.Option(False, "--watch", help="Keep the table live until Ctrl-C."),
    interval: float = typer.Option(2.0, "--interval", min=0.2, help="Seconds between reads."),
) -> None:
    """Platform states as the monitor sees them, and this workspace's deliveries."""

    async def main() -> None:
        async with opened_runtime() as rt:
            if watch:
                await watch_status(rt, workspace, interval_s=interval)
                return
            console.print(await status_view(rt, workspace))

    run(main)


_STYLE = {"up": "green", "degraded": "yellow", "down": "bold red", "local_outage": "bold red"}


async def status_view(rt: Runtime, workspace: str | None) -> Group:
    """The states table and the workspace's delivery summary, as one renderable."""
    async with rt.db.session() as session:
        ws = await pick_workspace(Accounts(session), workspace)
        states = await Health(session).states()
        counts = await Posts(session, workspace_id=ws.id).delivery_counts()
    parts: list[RenderableType] = []
    if states:
        table = Table("platform", "state", "features", "since (UTC)", "reason",
                      caption=f"as of {rt.clock.now():%Y-%m-%d %H:%M:%S} UTC")
        for key, st in sorted(states.items()):
            table.add_row(key, Text(st.status, style=_STYLE.get(st.status, "dim")),
                          ", ".join(st.features) or "—", f"{st.since:%Y-%m-%d %H:%M}",
                          st.reason)
        parts.append(table)
    else:
        parts.append(Text("No platform states yet: the monitor has not reported."))
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "none"
    parts.append(Text.from_markup(f"Workspace [bold]{ws.slug}[/bold] deliveries: {summary}"))
    return Group(*parts)


async def watch_status(
    rt: Runtime, workspace: str | None, *, interval_s: float, rounds: int | None = None,
) -> None:
    """Redraw `status_view` in place every `interval_s` (for `rounds` reads, or until ^C)."""
    with Live(await status_view(rt, workspace), console=console, auto_refresh=False) as live:
        done = 1
        while rounds is None or done < rounds:
            await asyncio.sleep(interval_s)
            live.update(await status_view(rt, workspace), refresh=True)
            done += 1


def version() -> None:
    """Print Sidestep's version."""
    console.print(f"sidestep {__version__}")
