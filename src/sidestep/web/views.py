"""Templates: one autoescaping Jinja2 environment per app, time filters, and `render`.

Autoescape is on for every template, whatever its file name: user text (post bodies,
channel names) is escaped unless a template says otherwise, and none does. Times are shown
in UTC as `2026-11-23 12:00 UTC`; "ago" phrases are measured against the runtime's clock.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from sidestep.clock import Clock, utc

TEMPLATES_DIR = Path(__file__).with_name("templates")
STATIC_DIR = Path(__file__).with_name("static")


def format_utc(value: datetime | None) -> str:
    """Return `value` as `YYYY-MM-DD HH:MM UTC`, or an em dash for None."""
    if value is None:
        return "—"
    return utc(value).strftime("%Y-%m-%d %H:%M UTC")


def format_ago(value: datetime | None, *, now: datetime) -> str:
    """Return how far `value` lies from `now` in words: `5 min ago`, `in 2 h`, `just now`."""
    if value is None:
        return ""
    seconds = int((utc(now) - utc(value)).total_seconds())
    size = abs(seconds)
    if size < 60:
        return "just now"
    if size < 3600:
        amount = f"{size // 60} min"
    elif size < 10 * 3600 and size % 3600 >= 60:
        amount = f"{size // 3600} h {size % 3600 // 60} min"
    elif size < 2 * 86400:
        amount = f"{size // 3600} h"
    else:
        amount = f"{size // 86400} days"
    return f"{amount} ago" if seconds > 0 else f"in {amount}"


def make_templates(clock: Clock) -> Jinja2Templates:
    """Return the app's templates: autoescape on, undefined names are errors."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["utc"] = format_utc
    env.filters["ago"] = lambda value: format_ago(value, now=clock.now())
    return Jinja2Templates(env=env)


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render `template` with `context` into an HTML response."""
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(
        request, template, context, status_code=status_code, headers=headers
    )
