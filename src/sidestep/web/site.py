"""Routes for the public site: link page, status banner, archive pages, feeds, sitemap (issue 9)."""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Add this module's routes to `app`."""
