"""Each platform's own reset signal read into the wait of a rate limit (pure parsers)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from sidestep.channels.adapters._graph import regain_wait_s
from sidestep.channels.errors import RateLimited
from sidestep.channels.http import (
    generic_status_error,
    retry_after_s,
    seconds_until_iso,
    seconds_until_unix,
)
from sidestep.clock import FrozenClock
from sidestep.store.db import Database
from tests.dispatch.harness import harness

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def answer(status: int = 429, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers)


@pytest.mark.parametrize(("value", "expected"), [
    ("120", 120.0),
    ("0", 0.0),
    (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
    (format_datetime(NOW - timedelta(seconds=90), usegmt=True), 0.0),  # already past
    ("soon", 60.0),  # unreadable: the default
])
def test_it_reads_retry_after_in_seconds_or_as_an_http_date(value: str, expected: float) -> None:
    assert retry_after_s(answer(**{"Retry-After": value}), now=NOW) == expected


def test_a_429_without_an_adapter_rule_obeys_retry_after() -> None:
    error = generic_status_error(answer(**{"Retry-After": "42"}), platform="p", now=NOW)
    assert isinstance(error, RateLimited) and error.retry_after_s == 42


def test_it_reads_xs_reset_as_unix_seconds() -> None:
    reset = str(int(NOW.timestamp()) + 900)
    assert seconds_until_unix(reset, now=NOW) == 900
    assert seconds_until_unix(None, now=NOW, default_s=5) == 5
    assert seconds_until_unix("garbage", now=NOW, default_s=5) == 5


def test_it_reads_mastodons_reset_as_iso_8601() -> None:
    assert seconds_until_iso("2026-11-23T12:05:00.000Z", now=NOW) == 300
    assert seconds_until_iso("2026-11-23T12:05:00", now=NOW) == 300  # no zone: UTC
    assert seconds_until_iso("not a time", now=NOW, default_s=7) == 7


def test_it_reads_metas_time_to_regain_access_in_minutes() -> None:
    usage = {"1234": [{"type": "pages", "call_count": 100, "total_cputime": 40,
                       "total_time": 30, "estimated_time_to_regain_access": 3},
                      {"type": "ads_management", "estimated_time_to_regain_access": 12}]}
    response = answer(**{"X-Business-Use-Case-Usage": json.dumps(usage),
                         "X-App-Usage": json.dumps({"call_count": 100})})
    assert regain_wait_s(response, now=NOW, default_s=60) == 12 * 60


def test_metas_app_usage_alone_gives_no_time_so_the_rules_wait_applies() -> None:
    response = answer(**{"X-App-Usage": json.dumps({"call_count": 100, "total_time": 100})})
    assert regain_wait_s(response, now=NOW, default_s=3600) == 3600
    broken = answer(**{"X-Business-Use-Case-Usage": "{not json"})
    assert regain_wait_s(broken, now=NOW, default_s=60) == 60


@pytest.mark.parametrize(("platform", "wait_s"), [("x", 900), ("discord", 45), ("mastodon", 300)])
async def test_the_worker_waits_as_long_as_the_simulated_platform_says(
        db: Database, clock: FrozenClock, platform: str, wait_s: int) -> None:
    """X: 429 with code 88 and x-rate-limit-reset (Unix); Discord: JSON retry_after;
    Mastodon: X-RateLimit-Reset (ISO 8601)."""
    async with harness(db, clock, platform) as h:
        [delivery_id] = await h.post(platform)
        await h.sim.set_fault(platform, "rate_limited", retry_after_s=wait_s)
        assert await h.run() == 1
        delivery = await h.delivery(delivery_id)
        assert delivery.state == "retry_wait" and "rate_limited" in (delivery.last_error or "")
        waited = (delivery.next_attempt_at - clock.now()).total_seconds()
        assert wait_s - 1 <= waited <= wait_s + max(1.0, wait_s / 10) + 1
        assert h.recorded(platform) == 0
