"""Routes for incident impact and concentration-risk reports (issue 11)."""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Add this module's routes to `app`."""
