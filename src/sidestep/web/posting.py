"""Checks the web layer makes on a new post before the repository sees it.

The repository (`Posts.create`) guards what must always hold (text, known channels, no
duplicates) and raises `PostError`; here we add what a person typing into the composer or a
client of the API should be told at once: the due time must carry its zone and not lie in
the past, a link must be a web address. Both the forms and the API use these, so they accept
the same posts. The composer reads times as the wall clock of a time zone (the workspace's
`settings["timezone"]`, UTC without one; see `workspace_zone`) and stores them in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

MAX_BODY_CHARS = 20_000
MAX_LINK_CHARS = 2048
# The workspace setting that names its IANA time zone ("Europe/Berlin"); UTC without it.
TIMEZONE_SETTING = "timezone"
# A post submitted "for now" reaches the server a little later; do not call that the past.
DUE_GRACE_S = 120
FORM_TIME_FORMAT = "%Y-%m-%dT%H:%M"


def due_time_problem(due_at: datetime, *, now: datetime) -> str | None:
    """Return why `due_at` is not acceptable as a due time, or None when it is."""
    if due_at.tzinfo is None:
        return "give the due time with its time zone (UTC)"
    if due_at < now - timedelta(seconds=DUE_GRACE_S):
        return "the due time is in the past (times are UTC)"
    return None


def parse_form_time(text: str) -> datetime | None:
    """Parse a `datetime-local` form value (`2026-11-23T14:30`, seconds allowed) as UTC.

    Returns None when the text is not such a time.
    """
    text = text.strip()
    for pattern in (FORM_TIME_FORMAT, FORM_TIME_FORMAT + ":%S"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def form_time(value: datetime, zone: tzinfo = UTC) -> str:
    """Format `value` for a `datetime-local` input, as the wall clock in `zone` shows it."""
    return value.astimezone(zone).strftime(FORM_TIME_FORMAT)


def body_problem(body: str) -> str | None:
    """Return why `body` cannot be posted, or None."""
    if not body.strip():
        return "write something to post"
    if len(body) > MAX_BODY_CHARS:
        return f"a post may have at most {MAX_BODY_CHARS} characters"
    return None


def parse_zone(name: str) -> ZoneInfo | None:
    """The IANA time zone called `name` ("Europe/Berlin", "UTC"), or None for an unknown name."""
    name = name.strip()
    if not name or name.startswith(("/", ".")) or ".." in name:
        return None  # ZoneInfo would read such names as file paths
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def workspace_zone(settings: dict[str, Any]) -> ZoneInfo:
    """The workspace's time zone from its settings; UTC when none (or an unknown one) is set."""
    value = settings.get(TIMEZONE_SETTING)
    return (parse_zone(value) if isinstance(value, str) else None) or ZoneInfo("UTC")


def zone_names() -> list[str]:
    """Every IANA zone name this machine knows, sorted (for the composer's suggestions)."""
    return sorted(available_timezones())


def parse_local_time(text: str, zone: tzinfo) -> datetime | None:
    """Parse a `datetime-local` value as a wall-clock time in `zone`; return it in UTC.

    A time that does not exist there (skipped by a daylight-saving jump) or exists twice is
    read as the clocks show it before the change (`fold=0`). Returns None for unreadable text.
    """
    parsed = parse_form_time(text)
    if parsed is None:
        return None
    return parsed.replace(tzinfo=zone).astimezone(UTC)


def link_problem(link: str) -> str | None:
    """Return why `link` cannot be attached to a post, or None (an empty link is fine)."""
    if not link:
        return None
    if len(link) > MAX_LINK_CHARS:
        return f"a link may have at most {MAX_LINK_CHARS} characters"
    parts = urlsplit(link)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in link):
        return "give a full web address starting with https://"
    return None
