"""The calendar (`/w/{slug}/calendar`): a week or a month of posts in the workspace's zone.

`?view=week|month&date=YYYY-MM-DD` picks the week (Monday to Sunday) or the month holding
that date; today (in the workspace's time zone) by default. Each post sits on the day and at
the time it is due there, with each channel's delivery state as a coloured badge that also
says the state in words.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from sidestep.store.channels import Channels
from sidestep.store.post_history import posts_due_between
from sidestep.store.posts import Posts
from sidestep.store.tables import Channel, Delivery, Post
from sidestep.web.deps import AsViewer, get_runtime
from sidestep.web.pages import chrome
from sidestep.web.posting import workspace_zone
from sidestep.web.views import render

router = APIRouter(include_in_schema=False)

VIEWS = ("week", "month")


@dataclass(frozen=True, slots=True)
class Badge:
    channel_name: str
    platform: str
    state: str


@dataclass(frozen=True, slots=True)
class CalendarPost:
    post: Post
    local_time: str  # "14:30" on the wall clock of the workspace's zone
    badges: list[Badge]


@dataclass(frozen=True, slots=True)
class Day:
    day: date
    in_range: bool  # False for the neighbouring month's days that fill a month's weeks
    is_today: bool
    posts: list[CalendarPost]


@router.get("/w/{slug}/calendar")
async def calendar_page(request: Request, access: AsViewer, view: str = "week",
                        on: Annotated[str | None, Query(alias="date")] = None) -> Response:
    if view not in VIEWS:
        raise HTTPException(400, "view must be week or month")
    zone = workspace_zone(access.workspace.settings)
    today = get_runtime(request).clock.now().astimezone(zone).date()
    try:
        anchor = _parse_date(on) if on else today
    except ValueError:
        raise HTTPException(400, "give the date as YYYY-MM-DD") from None
    first, last, shown_first, shown_last = _span(view, anchor)
    start = _utc_midnight(shown_first, zone)
    end = _utc_midnight(shown_last + timedelta(days=1), zone)
    posts = await posts_due_between(access.session, workspace_id=access.workspace.id,
                                    start=start, end=end)
    deliveries = await Posts(access.session, workspace_id=access.workspace.id).deliveries_for(
        [p.id for p in posts])
    channels = {c.id: c for c in await Channels(
        access.session, workspace_id=access.workspace.id, vault=get_runtime(request).vault
    ).all()}
    by_day: dict[date, list[CalendarPost]] = {}
    for post in posts:
        local = post.due_at.astimezone(zone)
        by_day.setdefault(local.date(), []).append(CalendarPost(
            post=post, local_time=local.strftime("%H:%M"),
            badges=_badges(deliveries[post.id], channels)))
    days = [Day(day=d, in_range=first <= d <= last, is_today=d == today,
                posts=by_day.get(d, []))
            for d in _dates(shown_first, shown_last)]
    context: dict[str, Any] = {
        **await chrome(access, "calendar"),
        "view": view, "zone": zone.key, "title": _title(view, first, last),
        "weeks": [days[i:i + 7] for i in range(0, len(days), 7)],
        "prev": _shift(view, anchor, -1).isoformat(), "next": _shift(view, anchor, 1).isoformat(),
        "anchor": anchor.isoformat(), "today": today.isoformat(), "post_count": len(posts),
        "weekdays": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
    }
    return render(request, "calendar.html", context)


def _parse_date(text: str) -> date:
    value = date.fromisoformat(text)
    if not 1900 <= value.year <= 9000:
        raise ValueError("out of range")
    return value


def _span(view: str, anchor: date) -> tuple[date, date, date, date]:
    """(first, last) day of the period and (first, last) day shown: whole weeks."""
    if view == "week":
        monday = anchor - timedelta(days=anchor.weekday())
        return monday, monday + timedelta(days=6), monday, monday + timedelta(days=6)
    first = anchor.replace(day=1)
    last = _shift("month", first, 1) - timedelta(days=1)
    shown_first = first - timedelta(days=first.weekday())
    shown_last = last + timedelta(days=6 - last.weekday())
    return first, last, shown_first, shown_last


def _shift(view: str, anchor: date, step: int) -> date:
    if view == "week":
        return anchor + timedelta(weeks=step)
    month = anchor.month - 1 + step
    year = anchor.year + month // 12
    return date(year, month % 12 + 1, 1)


def _dates(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _utc_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def _title(view: str, first: date, last: date) -> str:
    if view == "month":
        return first.strftime("%B %Y")
    if first.year != last.year:
        return f"{first:%-d %b %Y} – {last:%-d %b %Y}"
    if first.month != last.month:
        return f"{first:%-d %b} – {last:%-d %b %Y}"
    return f"{first:%-d} – {last:%-d %B %Y}"


def _badges(deliveries: list[Delivery], channels: dict[int, Channel]) -> list[Badge]:
    badges = []
    for d in deliveries:
        channel = channels.get(d.channel_id)
        badges.append(Badge(channel_name=channel.name if channel else f"channel {d.channel_id}",
                            platform=channel.platform if channel else "", state=d.state))
    return badges
