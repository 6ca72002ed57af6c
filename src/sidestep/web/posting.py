"""Checks the web layer makes on a new post before the repository sees it.

The repository (`Posts.create`) guards what must always hold (text, known channels, no
duplicates) and raises `PostError`; here we add what a person typing into the composer or a
client of the API should be told at once: the due time must be given in UTC and not lie in
the past. Both the form and the API use these, so they accept the same posts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

MAX_BODY_CHARS = 20_000
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


def form_time(value: datetime) -> str:
    """Format `value` for a `datetime-local` input, in UTC."""
    return value.astimezone(UTC).strftime(FORM_TIME_FORMAT)


def body_problem(body: str) -> str | None:
    """Return why `body` cannot be posted, or None."""
    if not body.strip():
        return "write something to post"
    if len(body) > MAX_BODY_CHARS:
        return f"a post may have at most {MAX_BODY_CHARS} characters"
    return None
