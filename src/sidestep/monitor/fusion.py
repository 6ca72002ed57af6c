"""Fusion: from probe observations to one state per platform, with hysteresis and evidence.

Pure: no I/O, no clock of its own (each `ingest` carries observation times, each `evaluate`
is told `now`), so a replay at simulated time gives the same transitions as live probing.

Rounds. Each `ingest` call is one round per (platform, signal, vantage): the checks one
probe pass made. A round *fails* when at least `round_fail_ratio` of its checks failed
(`outcomes.FAILING`). Status pages fail only on `major_outage`: a page that does not answer,
or answers garbage, says nothing about the platform and makes no round. HTTP checks also
feed per-feature timelines (`FEATURE_OF_PROBE`: web -> feed, api, media; the publish path
-> text), and answers slower than `slow_ms` the `latency` feature.

States (`PlatformStatus`), decided in `evaluate(now)`:

- DOWN: failures that lasted `confirm_s` without an OK round, on at least
  `min_down_signals` independent signals (dns, http, statuspage, publish) or from at least
  `min_down_vantages` vantage points. A blip shorter than `confirm_s` never gets there.
- DEGRADED(features): a feature failed for at least `feature_fail_share` of the last
  `feature_window_s` (time-weighted, so re-probing a suspect platform more often does not
  inflate it): media only, the feed, the API, or latency.
- UP otherwise. A worse state is taken at once (the confirmation is in the rules above); a
  better one only after the latest rounds said so for `recover_s` without a break.
- LOCAL_OUTAGE: the controls (hosts and resolvers unrelated to any platform) failed for
  `local_confirm_s`. The pseudo-platform `internet` takes that state; every platform goes
  `unknown` without an announcement and what it had gathered is forgotten. While the
  controls fail, platform rounds from that vantage are dropped, so our own broken network
  can never make a platform DOWN.

Every `Transition` carries its evidence: the rule that fired, and per failing signal the
vantage, since when, how many rounds and a few checks (target, outcome, detail).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sidestep.domain.states import PlatformStatus
from sidestep.monitor.config import FusionConfig
from sidestep.monitor.outcomes import FAILING, Outcome, Signal
from sidestep.store.health import NewObservation

__all__ = ["FEATURE_OF_PROBE", "INTERNET", "Fusion", "Transition", "Verdict"]

INTERNET = "internet"  # the pseudo-platform whose state is LOCAL_OUTAGE or UP
FEATURE_OF_PROBE = {"web": "feed", "api": "api", "login": "api", "media": "media",
                    "text": "text"}
_SEVERITY = {PlatformStatus.UP: 0, PlatformStatus.DEGRADED: 1, PlatformStatus.DOWN: 2}
_MAX_SAMPLES = 6  # checks quoted per signal in the evidence


@dataclass(frozen=True, slots=True)
class Verdict:
    status: PlatformStatus
    features: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.status is PlatformStatus.DEGRADED and self.features:
            return f"degraded({', '.join(self.features)})"
        return self.status.value


UNKNOWN = Verdict(PlatformStatus.UNKNOWN)
UP = Verdict(PlatformStatus.UP)


@dataclass(frozen=True, slots=True)
class Transition:
    """A platform's state changed; `announce` False means: record it, raise no event."""

    platform: str
    old: Verdict
    new: Verdict
    at: datetime
    reason: str
    evidence: dict[str, Any]
    announce: bool = True


@dataclass(slots=True)
class _Streak:
    """The latest rounds of one (signal, vantage) of one platform."""

    last_at: datetime
    failed: bool
    first_fail: datetime | None
    rounds: int  # rounds in the current run (failing or OK)
    checks: list[NewObservation]  # the latest round's, quoted (a few) in the evidence


@dataclass(slots=True)
class _Platform:
    verdict: Verdict = UNKNOWN
    streaks: dict[tuple[str, str], _Streak] = field(default_factory=dict)
    # (feature, vantage) -> [(round time, failed)], oldest first
    features: dict[tuple[str, str], list[tuple[datetime, bool]]] = field(
        default_factory=lambda: defaultdict(list))
    better_since: datetime | None = None
    better_worst: Verdict | None = None
    last_failure: datetime | None = None  # of any round or feature round


def _sample(checks: list[NewObservation]) -> list[dict[str, str]]:
    ordered = sorted(checks, key=lambda c: c.outcome == Outcome.OK)  # failures first
    return [{"target": c.target, "outcome": c.outcome, "detail": (c.detail or "")[:120]}
            for c in ordered[:_MAX_SAMPLES]]


# Plain strings for the hot paths (an enum member's attribute lookup costs more).
_FAILING_VALUES = frozenset(str(o.value) for o in FAILING)
_OK, _MAJOR = Outcome.OK.value, Outcome.MAJOR_OUTAGE.value
_CONTROL, _STATUSPAGE = Signal.CONTROL.value, Signal.STATUSPAGE.value
_BY_FEATURE = (Signal.HTTP.value, Signal.PUBLISH.value)  # signals that feed feature timelines


def _failed_share(checks: list[NewObservation]) -> float:
    failing, count = _FAILING_VALUES, 0
    for check in checks:
        if check.outcome in failing:
            count += 1
    return count / len(checks)


class Fusion:
    """One state machine per platform, plus the controls; see the module docstring."""

    def __init__(self, config: FusionConfig, *, platforms: Iterable[str] = ()) -> None:
        self.config = config
        self._platforms: dict[str, _Platform] = {p: _Platform() for p in platforms}
        self._order: list[str] = []  # the platform keys, sorted (evaluation order)
        self._controls: dict[str, _Streak] = {}  # vantage -> control rounds
        self.local = UP
        self.dropped_rounds = 0

    # -- reading ------------------------------------------------------------------------------

    def verdict(self, platform: str) -> Verdict:
        return self._platforms[platform].verdict if platform in self._platforms else UNKNOWN

    def verdicts(self) -> dict[str, Verdict]:
        return {key: p.verdict for key, p in self._platforms.items()}

    def suspect(self, platform: str) -> bool:
        """True while the platform is not plainly up: probe it again soon."""
        state = self._platforms.get(platform)
        if state is None:
            return False
        if state.verdict != UP or any(s.failed for s in state.streaks.values()):
            return True
        latest = max((s.last_at for s in state.streaks.values()), default=None)
        return latest is not None and state.last_failure is not None and (
            (latest - state.last_failure).total_seconds() < self.config.suspect_s)

    def controls_failing(self) -> bool:
        return any(s.failed for s in self._controls.values())

    # -- ingest -------------------------------------------------------------------------------

    def ingest(self, observations: Iterable[NewObservation]) -> None:
        """Take one probe pass: each (platform, signal, vantage) group is one round."""
        groups: dict[tuple[str, str, str], list[NewObservation]] = {}
        for obs in observations:
            key = (obs.platform, obs.signal, obs.vantage)
            group = groups.get(key)
            if group is None:
                groups[key] = [obs]
            else:
                group.append(obs)
        controls = {k: v for k, v in groups.items() if k[1] == _CONTROL}
        for (_, _, vantage), checks in controls.items():
            failed = _failed_share(checks) >= self.config.controls_fail_ratio
            self._controls[vantage] = self._advance(
                self._controls.get(vantage), checks, failed,
                max([c.observed_at for c in checks]))
        local_outage = self.local.status is PlatformStatus.LOCAL_OUTAGE
        for (platform, signal, vantage), checks in groups.items():
            if signal == _CONTROL:
                continue
            control = self._controls.get(vantage)
            if local_outage or (control is not None and control.failed):
                self.dropped_rounds += 1  # our network, not theirs: this round proves nothing
                continue
            self._round(self._platforms.setdefault(platform, _Platform()), signal, vantage,
                        checks)

    def _round(self, state: _Platform, signal: str, vantage: str,
               checks: list[NewObservation]) -> None:
        at = max([c.observed_at for c in checks])
        if signal == _STATUSPAGE:
            told = [c for c in checks if c.outcome != _MAJOR and
                    c.outcome not in _FAILING_VALUES]
            majors = [c for c in checks if c.outcome == _MAJOR]
            if not majors and not told:
                return  # the page did not answer usefully: no opinion
            failed = bool(majors)
        else:
            failed = _failed_share(checks) >= self.config.round_fail_ratio
        key = (signal, vantage)
        state.streaks[key] = self._advance(state.streaks.get(key), checks, failed, at)
        if failed:
            state.last_failure = at
        if signal not in _BY_FEATURE:
            return
        by_feature: dict[str, list[NewObservation]] = {}
        for check in checks:
            feature = FEATURE_OF_PROBE.get(check.feature, check.feature or "text")
            group = by_feature.get(feature)
            if group is None:
                by_feature[feature] = [check]
            else:
                group.append(check)
        ratio = self.config.round_fail_ratio
        for feature, group in by_feature.items():
            self._feature_round(state, (feature, vantage), at, _failed_share(group) >= ratio)
        timed = [c.latency_ms for c in checks if c.outcome == _OK and c.latency_ms]
        if timed:
            slow = max(timed) > self.config.slow_ms
            self._feature_round(state, ("latency", vantage), at, slow)

    @staticmethod
    def _feature_round(state: _Platform, key: tuple[str, str], at: datetime,
                       failed: bool) -> None:
        rounds = state.features[key]
        if failed:
            state.last_failure = at
        elif len(rounds) >= 2 and not rounds[-1][1] and not rounds[-2][1]:
            rounds[-1] = (at, False)  # an OK run needs only its first and latest rounds
            return
        rounds.append((at, failed))

    @staticmethod
    def _advance(streak: _Streak | None, checks: list[NewObservation], failed: bool,
                 at: datetime) -> _Streak:
        """`at` is the round's time (its latest check)."""
        if streak is None or streak.failed != failed:
            return _Streak(at, failed, at if failed else None, 1, checks)
        streak.last_at, streak.rounds, streak.checks = at, streak.rounds + 1, checks
        return streak

    # -- evaluate -----------------------------------------------------------------------------

    def evaluate(self, now: datetime) -> list[Transition]:
        """Every state change due at `now`, in a stable order."""
        local = self._evaluate_local(now)
        if local is not None:
            return local
        if self.local.status is PlatformStatus.LOCAL_OUTAGE or self.controls_failing():
            return []
        changes = []
        quiet_s = max(self.config.feature_window_s, self.config.confirm_s)
        if len(self._order) != len(self._platforms):  # platforms are only ever added
            self._order = sorted(self._platforms)
        for key in self._order:
            state = self._platforms[key]
            if state.verdict is UP and (state.last_failure is None or
                                        (now - state.last_failure).total_seconds() > quiet_s):
                continue  # as `_evaluate_platform` would decide, without its cost
            change = self._evaluate_platform(key, state, now)
            if change is not None:
                changes.append(change)
        return changes

    def _evaluate_local(self, now: datetime) -> list[Transition] | None:
        failing = {v: s for v, s in self._controls.items() if s.failed and s.first_fail}
        confirmed = {v: s for v, s in failing.items() if s.first_fail and
                     (now - s.first_fail).total_seconds() >= self.config.local_confirm_s}
        if confirmed and self.local.status is not PlatformStatus.LOCAL_OUTAGE:
            evidence = {"rule": f"controls failing for >= {self.config.local_confirm_s:g} s",
                        "controls": [self._streak_evidence("control", v, s)
                                     for v, s in sorted(confirmed.items())]}
            changes = [Transition(INTERNET, self.local, Verdict(PlatformStatus.LOCAL_OUTAGE),
                                  now, "the controls fail too: our own network is down",
                                  evidence)]
            self.local = Verdict(PlatformStatus.LOCAL_OUTAGE)
            for key in sorted(self._platforms):
                old = self._platforms[key].verdict
                self._platforms[key] = _Platform()
                if old != UNKNOWN:
                    changes.append(Transition(key, old, UNKNOWN, now,
                                              "unknown while our own network is down",
                                              {"rule": "local outage"}, announce=False))
            return changes
        if (self.local.status is PlatformStatus.LOCAL_OUTAGE and not failing
                and self._controls):
            old, self.local = self.local, UP
            return [Transition(INTERNET, old, UP, now, "the controls answer again",
                               {"rule": "controls answering"})]
        return None

    def _evaluate_platform(self, key: str, state: _Platform, now: datetime) -> Transition | None:
        quiet_s = max(self.config.feature_window_s, self.config.confirm_s)
        if state.verdict == UP and (state.last_failure is None or
                                    (now - state.last_failure).total_seconds() > quiet_s):
            return None  # nothing failed within any window: nothing can change
        self._forget_stale(state, now)
        shares: dict[str, float] = {}  # filled once, by the first `_judge` that needs them
        strict, strict_evidence = self._judge(state, now, sustained=True, shares=shares)
        relaxed, _ = self._judge(state, now, sustained=False, shares=shares)
        current = state.verdict
        target: Verdict | None = None
        why = strict_evidence
        if current == UNKNOWN:
            if strict.status is not PlatformStatus.UP:
                target = strict
            elif relaxed == UP and state.streaks:
                target = UP
        elif _worse(strict, current):
            target = _merge(strict, current)
        elif _better(relaxed, current):
            if state.better_since is None:
                state.better_since, state.better_worst = now, relaxed
            elif state.better_worst is not None and _worse(relaxed, state.better_worst):
                state.better_worst = _merge(relaxed, state.better_worst)
            held = (now - state.better_since).total_seconds()
            if held >= self.config.recover_s and state.better_worst is not None:
                target = state.better_worst
                why = {**strict_evidence, "rule": f"better for {held:.0f} s "
                       f"(>= recover_s {self.config.recover_s:g})"}
        else:
            state.better_since = state.better_worst = None
        if target is None or target == current:
            return None
        state.verdict, state.better_since, state.better_worst = target, None, None
        why = {**why, "signals": [self._streak_evidence(s, v, streak)  # quoted only now
                                  for s, v, streak in why["signals"]]}
        return Transition(key, current, target, now, _reason(target, why), why)

    def _judge(self, state: _Platform, now: datetime, *, sustained: bool,
               shares: dict[str, float] | None = None) -> tuple[Verdict, dict[str, Any]]:
        """The state the rounds call for, and why; `shares` caches `_feature_shares(state,
        now)`. The evidence names the failing streaks as (signal, vantage, streak): the
        caller quotes them (`_streak_evidence`) only for a transition."""
        cfg = self.config
        failing = {k: s for k, s in state.streaks.items() if s.failed and s.first_fail and (
            not sustained or (now - s.first_fail).total_seconds() >= cfg.confirm_s)}
        signals = {signal for signal, _ in failing}
        vantages = {vantage for _, vantage in failing}
        evidence: dict[str, Any] = {
            "signals": [(s, v, streak) for (s, v), streak in sorted(failing.items())]}
        if len(signals) >= cfg.min_down_signals or len(vantages) >= cfg.min_down_vantages:
            evidence["rule"] = (f"{len(signals)} signal(s) from {len(vantages)} vantage(s) "
                                f"failing" + (f" for >= {cfg.confirm_s:g} s" if sustained
                                              else ""))
            return Verdict(PlatformStatus.DOWN), evidence
        if shares is None:
            shares = self._feature_shares(state, now)
        elif not shares:
            shares.update(self._feature_shares(state, now))
        bad = {f: share for f, share in shares.items() if share >= cfg.feature_fail_share}
        if not sustained:
            bad |= {feature: shares.get(feature, 0.0) for (feature, _), rounds
                    in state.features.items() if rounds and rounds[-1][1]}
        if bad:
            evidence["rule"] = (f"feature(s) failing >= {cfg.feature_fail_share:.0%} of "
                                f"{cfg.feature_window_s:g} s")
            evidence["features"] = {f: round(s, 3) for f, s in sorted(bad.items())}
            return Verdict(PlatformStatus.DEGRADED, tuple(sorted(bad))), evidence
        evidence["rule"] = "no sustained failure"
        return UP, evidence

    def _feature_shares(self, state: _Platform, now: datetime) -> dict[str, float]:
        """The time-weighted share of the window each feature spent failing (worst vantage)."""
        window = timedelta(seconds=self.config.feature_window_s)
        start = now - window
        shares: dict[str, float] = {}
        for (feature, _), rounds in state.features.items():
            while len(rounds) > 1 and rounds[1][0] <= start:
                rounds.pop(0)  # the newest round at or before the window start is kept
            failed_s = 0.0
            for index, (at, failed) in enumerate(rounds):
                until = rounds[index + 1][0] if index + 1 < len(rounds) else now
                if failed:
                    failed_s += max(0.0, (min(until, now) - max(at, start)).total_seconds())
            share = failed_s / window.total_seconds()
            shares[feature] = max(shares.get(feature, 0.0), share)
        return shares

    def _forget_stale(self, state: _Platform, now: datetime) -> None:
        stale = timedelta(seconds=self.config.stale_s)
        for key in [k for k, s in state.streaks.items() if now - s.last_at > stale]:
            del state.streaks[key]

    @staticmethod
    def _streak_evidence(signal: str, vantage: str, streak: _Streak) -> dict[str, Any]:
        return {"signal": signal, "vantage": vantage, "rounds": streak.rounds,
                "since": streak.first_fail.isoformat() if streak.first_fail else None,
                "checks": _sample(streak.checks)}


def _worse(a: Verdict, b: Verdict) -> bool:
    """True when `a` is more severe than `b`, or degraded in a feature `b` is not."""
    if a.status not in _SEVERITY or b.status not in _SEVERITY:
        return False
    if _SEVERITY[a.status] != _SEVERITY[b.status]:
        return _SEVERITY[a.status] > _SEVERITY[b.status]
    return a.status is PlatformStatus.DEGRADED and not set(a.features) <= set(b.features)


def _better(a: Verdict, b: Verdict) -> bool:
    if a.status not in _SEVERITY or b.status not in _SEVERITY:
        return False
    if _SEVERITY[a.status] != _SEVERITY[b.status]:
        return _SEVERITY[a.status] < _SEVERITY[b.status]
    return a.status is PlatformStatus.DEGRADED and set(a.features) < set(b.features)


def _merge(a: Verdict, b: Verdict) -> Verdict:
    """`a`, with `b`'s features kept when both are DEGRADED."""
    if a.status is PlatformStatus.DEGRADED and b.status is PlatformStatus.DEGRADED:
        return Verdict(a.status, tuple(sorted(set(a.features) | set(b.features))))
    return a


def _reason(verdict: Verdict, evidence: dict[str, Any]) -> str:
    failing = ", ".join(f"{s['signal']}@{s['vantage']}" for s in evidence.get("signals", []))
    text = f"{verdict.describe()}: {evidence.get('rule', '')}"
    return f"{text} ({failing})" if failing else text
