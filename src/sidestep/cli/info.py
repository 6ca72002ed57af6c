"""`sidestep platforms`, `sidestep status`, `sidestep version`."""

from __future__ import annotations

import typer
from rich.table import Table

from sidestep import __version__
from sidestep.cli.common import WorkspaceOption, console, opened_runtime, pick_workspace, run
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


def status(workspace: str | None = WorkspaceOption) -> None:
    """Platform states as the monitor sees them, and this workspace's deliveries."""

    async def main() -> None:
        async with opened_runtime() as rt, rt.db.session() as session:
            ws = await pick_workspace(Accounts(session), workspace)
            states = await Health(session).states()
            counts = await Posts(session, workspace_id=ws.id).delivery_counts()
        if states:
            table = Table("platform", "state", "features", "since (UTC)", "reason")
            for key, st in sorted(states.items()):
                table.add_row(key, st.status, ", ".join(st.features) or "—",
                              f"{st.since:%Y-%m-%d %H:%M}", st.reason)
            console.print(table)
        else:
            console.print("No platform states yet: the monitor has not reported.")
        summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "none"
        console.print(f"Workspace [bold]{ws.slug}[/bold] deliveries: {summary}")

    run(main)


def version() -> None:
    """Print Sidestep's version."""
    console.print(f"sidestep {__version__}")
