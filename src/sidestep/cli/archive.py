"""Commands for the archive: import, export and the site build (issue 9)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `sidestep` command."""
