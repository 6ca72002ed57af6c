"""Routes for the campaign editor, its progress, and the bounce webhook (issue 8)."""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Add this module's routes to `app`."""
