"""Routes for the composer, the calendar and each post's delivery timeline (issue 6)."""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Add this module's routes to `app`."""
