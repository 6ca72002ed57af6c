"""The publish-path signal: many channels failing is the platform's; one is the channel's."""

from __future__ import annotations

from datetime import datetime, timedelta

from sidestep.clock import FrozenClock
from sidestep.monitor.config import load_monitor_config
from sidestep.monitor.publish_path import Attempt, judge_attempts, publish_path_observations
from sidestep.store.db import Database
from sidestep.store.tables import Channel, Delivery, DeliveryAttempt, Post, Workspace

CONFIG = load_monitor_config().publish_path


def attempts(platform: str, results: list[str | None], at: datetime) -> list[Attempt]:
    """One attempt per channel: None = sent, else the error class."""
    return [Attempt(platform, n, at, "sent" if r is None else "error", r)
            for n, r in enumerate(results, start=1)]


def test_one_channels_expired_token_is_not_a_platform_signal(clock: FrozenClock) -> None:
    now = clock.now()
    (obs,) = judge_attempts(attempts("instagram", ["auth", None, None, None], now), CONFIG,
                            now=now)
    assert (obs.platform, obs.signal, obs.outcome) == ("instagram", "publish", "ok")
    assert "1 of 4 channels failing (authx1); not a platform signal" == obs.detail


def test_auth_and_outage_errors_on_many_channels_are_a_platform_signal(
    clock: FrozenClock,
) -> None:
    now = clock.now()
    found = judge_attempts(
        attempts("instagram", ["auth", "outage", "transient", None], now)
        + attempts("x", [None, None, None], now), CONFIG, now=now)
    outcomes = {o.platform: o.outcome for o in found}
    assert outcomes == {"instagram": "error", "x": "ok"}


def test_rate_limits_and_rejections_are_not_platform_failures(clock: FrozenClock) -> None:
    now = clock.now()
    (obs,) = judge_attempts(attempts("x", ["rate_limited", "rejected", "rejected"], now),
                            CONFIG, now=now)
    assert obs.outcome == "ok"


def test_a_channel_counts_by_its_latest_attempt(clock: FrozenClock) -> None:
    now = clock.now()
    failed = attempts("x", ["outage", "outage", "outage"], now - timedelta(seconds=60))
    (obs,) = judge_attempts(failed + attempts("x", [None, None, None], now), CONFIG, now=now)
    assert obs.outcome == "ok"


async def test_it_reads_recent_attempts_across_workspaces(db: Database,
                                                          clock: FrozenClock) -> None:
    now = clock.now()
    async with db.session() as session:
        for n in range(3):  # three workspaces, one instagram channel each
            workspace = Workspace(slug=f"w{n}", name=f"W{n}", created_at=now)
            session.add(workspace)
            await session.flush()
            channel = Channel(workspace_id=workspace.id, platform="instagram", name="ig",
                              status="active", created_at=now)
            post = Post(workspace_id=workspace.id, body="hi", due_at=now,
                        fallback_policy="hold", created_at=now)
            session.add_all([channel, post])
            await session.flush()
            delivery = Delivery(workspace_id=workspace.id, post_id=post.id,
                                channel_id=channel.id, state="retry_wait", due_at=now,
                                next_attempt_at=now, idempotency_key=f"k{n}", updated_at=now)
            session.add(delivery)
            await session.flush()
            session.add(DeliveryAttempt(delivery_id=delivery.id, started_at=now,
                                        finished_at=now, outcome="error", error_class="outage",
                                        error_detail="HTTP 503"))
            old = now - timedelta(hours=2)  # outside the window: ignored
            session.add(DeliveryAttempt(delivery_id=delivery.id, started_at=old,
                                        finished_at=old, outcome="sent", error_class=None,
                                        error_detail=None))
    async with db.session() as session:
        (obs,) = await publish_path_observations(session, CONFIG,
                                                 now=now + timedelta(seconds=30))
    assert (obs.platform, obs.outcome) == ("instagram", "error")
    assert obs.detail == "3 of 3 channels failing (outagex3)"
