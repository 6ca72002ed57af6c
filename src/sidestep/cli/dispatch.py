"""`sidestep pause` and `sidestep resume`: the emergency stop for a workspace or a channel."""

from __future__ import annotations

import typer

from sidestep.cli.common import (
    UsageError,
    WorkspaceOption,
    console,
    opened_runtime,
    pick_workspace,
    run,
)
from sidestep.dispatch.pause import PauseError, pause, pauses, resume
from sidestep.store.accounts import Accounts

_CHANNEL = typer.Option(None, "--channel", "-c", help="One channel's id; omit for all.")


def _scope(channel: int | None) -> str:
    return "the whole workspace" if channel is None else f"channel {channel}"


def _change(*, workspace: str | None, channel: int | None, pausing: bool) -> None:
    async def main() -> None:
        async with opened_runtime() as rt, rt.db.session() as session:
            ws = await pick_workspace(Accounts(session), workspace)
            action = pause if pausing else resume
            try:
                changed = await action(session, workspace_id=ws.id, channel_id=channel,
                                       by="cli", at=rt.clock.now())
            except PauseError as exc:
                raise UsageError(str(exc)) from None
            left = await pauses(session, workspace_id=ws.id)
        verb = "paused" if pausing else "resumed"
        if changed:
            console.print(f"{ws.slug}: {_scope(channel)} {verb}.")
        else:
            console.print(f"{ws.slug}: {_scope(channel)} was already "
                          f"{'paused' if pausing else 'not paused'}.")
        if left:
            names = ", ".join(_scope(p.channel_id) for p in left)
            console.print(f"Paused now: {names}. Deliveries there wait; nothing is lost.")

    run(main)


def pause_command(workspace: str | None = WorkspaceOption,
                  channel: int | None = _CHANNEL) -> None:
    """Stop sending (all channels, or one): due posts wait, nothing is lost or failed."""
    _change(workspace=workspace, channel=channel, pausing=True)


def resume_command(workspace: str | None = WorkspaceOption,
                   channel: int | None = _CHANNEL) -> None:
    """Lift a pause; the waiting deliveries go out on the workers' next pass."""
    _change(workspace=workspace, channel=channel, pausing=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `sidestep` command."""
    app.command("pause")(pause_command)
    app.command("resume")(resume_command)

