from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from sidestep.web.views import format_ago, format_utc

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_it_shows_times_in_utc_whatever_zone_they_come_in() -> None:
    paris = timezone(timedelta(hours=1))
    assert format_utc(datetime(2026, 11, 23, 13, 30, tzinfo=paris)) == "2026-11-23 12:30 UTC"
    assert format_utc(datetime(2026, 11, 23, 12, 30)) == "2026-11-23 12:30 UTC"  # naive = UTC
    assert format_utc(None) == "—"


def test_it_words_distances_in_time_from_the_clocks_now() -> None:
    assert format_ago(NOW - timedelta(seconds=20), now=NOW) == "just now"
    assert format_ago(NOW - timedelta(minutes=42), now=NOW) == "42 min ago"
    assert format_ago(NOW - timedelta(hours=3), now=NOW) == "3 h ago"
    assert format_ago(NOW - timedelta(hours=3, minutes=5), now=NOW) == "3 h 5 min ago"
    assert format_ago(NOW + timedelta(hours=2), now=NOW) == "in 2 h"
    assert format_ago(NOW - timedelta(hours=20), now=NOW) == "20 h ago"
    assert format_ago(NOW - timedelta(days=3), now=NOW) == "3 days ago"
    assert format_ago(None, now=NOW) == ""
