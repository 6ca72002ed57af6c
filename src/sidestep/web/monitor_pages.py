"""Routes for the live status board, platform history and the agents' observations."""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Add this module's routes to `app`."""
