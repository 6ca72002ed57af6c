"""What the dispatcher decides before a send and while a delivery is held. Pure: no I/O.

The gate (`gate`) says whether a due delivery may be sent now:

    monitor state fresh (updated within `state_fresh_s`) and not `unknown`:
        up                              send
        down, local_outage              hold (local_outage: our network, not theirs; no
                                        attempt is burnt on it)
        degraded, a feature it needs    hold (media posts need "media"; all need "text"/"api")
        degraded otherwise              send
    no fresh state: the channel's circuit breaker
        closed                          send
        open, cool-down not over        hold
        open, cool-down over            probe (one delivery goes; the breaker is half-open)
        half_open                       hold, unless the probe was lost a cool-down ago

`failover_step` says what becomes of a held delivery under its post's policy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sidestep.domain.states import BreakerState, FallbackPolicy, PlatformStatus

__all__ = ["DispatchSettings", "FailoverStep", "GateVerdict", "Verdict", "failover_step", "gate",
           "needed_features"]

SETTINGS_KEY = "dispatch"  # workspace.settings["dispatch"] holds a workspace's overrides


@dataclass(frozen=True, slots=True)
class DispatchSettings:
    """A workspace's dispatch defaults; a post's own values win where it has them."""

    fallback_policy: FallbackPolicy = FallbackPolicy.HOLD
    hold_max_s: int = 6 * 3600          # hold: fail visibly after this long held
    reroute_grace_s: int = 15 * 60      # reroute: wait this long held before rerouting
    max_age_s: int = 48 * 3600          # any delivery this long past its due time fails
    at_risk_margin_s: int = 2 * 3600    # deliverable at risk when held this near its deadline
    state_fresh_s: int = 300            # monitor states older than this are ignored
    breaker_threshold: int = 3          # consecutive outage-class failures that open it
    breaker_cooldown_s: int = 120       # open this long before one probe is let through

    @classmethod
    def from_workspace(cls, settings: Mapping[str, Any] | None) -> DispatchSettings:
        """The defaults overridden by a workspace's `settings["dispatch"]` (unknown keys and
        values of the wrong type are ignored rather than stopping dispatch)."""
        given = (settings or {}).get(SETTINGS_KEY) or {}
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in given:
                continue
            raw = given[f.name]
            if f.name == "fallback_policy":
                if raw in FallbackPolicy.__members__.values():
                    values[f.name] = FallbackPolicy(raw)
            elif isinstance(raw, int) and not isinstance(raw, bool) and raw > 0:
                values[f.name] = raw
        return cls(**values)


class Verdict(StrEnum):
    SEND = "send"
    PROBE = "probe"
    HOLD = "hold"


@dataclass(frozen=True, slots=True)
class GateVerdict:
    verdict: Verdict
    reason: str = ""
    # True when the verdict came from the monitor, not the breaker.
    from_monitor: bool = False


@dataclass(frozen=True, slots=True)
class MonitorView:
    status: PlatformStatus
    features: Sequence[str]
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class BreakerView:
    state: BreakerState
    opened_at: datetime | None
    probe_at: datetime | None


def needed_features(*, has_media: bool) -> frozenset[str]:
    """The platform features a post needs: every post the API and text; media posts media."""
    return frozenset({"api", "text", "media"} if has_media else {"api", "text"})


def gate(*, platform: str, monitor: MonitorView | None, breaker: BreakerView | None,
         has_media: bool, now: datetime, settings: DispatchSettings) -> GateVerdict:
    """May a delivery on `platform` be sent now? See the module docstring for the table."""
    fresh = (monitor is not None and monitor.status is not PlatformStatus.UNKNOWN
             and now - monitor.updated_at <= timedelta(seconds=settings.state_fresh_s))
    if fresh:
        assert monitor is not None
        if monitor.status is PlatformStatus.DOWN:
            return GateVerdict(Verdict.HOLD, f"{platform} is down", from_monitor=True)
        if monitor.status is PlatformStatus.LOCAL_OUTAGE:
            return GateVerdict(Verdict.HOLD, "our own connection is down (local outage)",
                               from_monitor=True)
        failing = needed_features(has_media=has_media) & set(monitor.features)
        if monitor.status is PlatformStatus.DEGRADED and failing:
            return GateVerdict(Verdict.HOLD, f"{platform} is degraded: "
                               f"{', '.join(sorted(failing))} failing", from_monitor=True)
        return GateVerdict(Verdict.SEND, from_monitor=True)
    if breaker is None or breaker.state is BreakerState.CLOSED:
        return GateVerdict(Verdict.SEND)
    cooldown = timedelta(seconds=settings.breaker_cooldown_s)
    if breaker.state is BreakerState.OPEN:
        if breaker.opened_at is not None and now - breaker.opened_at < cooldown:
            return GateVerdict(Verdict.HOLD, f"{platform} channel's breaker is open")
        return GateVerdict(Verdict.PROBE, "cool-down over: one probe")
    if breaker.probe_at is not None and now - breaker.probe_at >= cooldown:
        return GateVerdict(Verdict.PROBE, "the last probe was lost: another probe")
    return GateVerdict(Verdict.HOLD, f"{platform} channel's breaker is half-open (probing)")


class FailoverStep(StrEnum):
    WAIT = "wait"
    REROUTE = "reroute"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class PostTiming:
    """A post's own failover values (None: the workspace default)."""

    policy: FallbackPolicy
    has_fallbacks: bool
    hold_max_s: int | None = None
    reroute_grace_s: int | None = None
    max_age_s: int | None = None


def effective_max_age_s(post: PostTiming, settings: DispatchSettings) -> int:
    return post.max_age_s or settings.max_age_s


def too_old(*, due_at: datetime, now: datetime, post: PostTiming,
            settings: DispatchSettings) -> str | None:
    """The reason a delivery is past its maximum age, or None."""
    limit_s = effective_max_age_s(post, settings)
    if now - due_at > timedelta(seconds=limit_s):
        return f"older than its maximum age ({_span(limit_s)} after its due time); not sent"
    return None


def failover_step(*, held_since: datetime, now: datetime, post: PostTiming,
                  is_fallback: bool, settings: DispatchSettings) -> tuple[FailoverStep, str]:
    """What to do with a delivery held since `held_since`, and the reason to record.

    Fallback deliveries are only ever held (never rerouted again), so failover cannot loop.
    A reroute policy without fallback channels holds.
    """
    held = now - held_since
    can_reroute = post.has_fallbacks and not is_fallback
    if can_reroute and post.policy is FallbackPolicy.MIRROR_NOW:
        return FailoverStep.REROUTE, "mirror_now: published on the fallback channels at once"
    grace_s = post.reroute_grace_s or settings.reroute_grace_s
    if can_reroute and post.policy is FallbackPolicy.REROUTE and held >= timedelta(
            seconds=grace_s):
        return FailoverStep.REROUTE, f"reroute: held for {_span(grace_s)}, the grace period"
    hold_max_s = post.hold_max_s or settings.hold_max_s
    if held >= timedelta(seconds=hold_max_s):
        return FailoverStep.FAIL, (f"held longer than the maximum delay ({_span(hold_max_s)}) "
                                   "while the platform was unavailable; not sent")
    return FailoverStep.WAIT, ""


def _span(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
