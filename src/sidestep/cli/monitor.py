"""Commands for the monitor loop and probe agents (issue 7)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `sidestep` command."""
    from sidestep.cli import agents  # `sidestep agent` and `sidestep alerts`

    agents.register(app)
