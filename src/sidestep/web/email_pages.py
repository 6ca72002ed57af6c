"""Routes for lists, subscribers, campaigns, and the public confirm and unsubscribe pages."""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Add this module's routes to `app`."""
