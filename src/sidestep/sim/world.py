"""The simulator's state: which faults are on, and what every platform has accepted.

`SimWorld` is shared by the HTTP servers, the DNS server, the status feeds and scenario
replay. It holds no sockets; everything in it reads time from an injected clock and
randomness from one seeded generator, so a replay is deterministic.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sidestep.clock import Clock


class Fault(StrEnum):
    DNS_SERVFAIL = "dns_servfail"
    DNS_NXDOMAIN = "dns_nxdomain"
    REFUSED = "refused"
    TIMEOUT = "timeout"  # accept the connection and never answer
    HTTP_5XX = "http_5xx"
    RATE_LIMITED = "rate_limited"
    SLOW = "slow"
    PARTIAL = "partial"  # one feature fails (needs `feature`), the rest works
    AUTH_EXPIRED = "auth_expired"
    GARBAGE = "garbage"  # malformed JSON, an HTML error page, or a truncated body

    @property
    def is_dns(self) -> bool:
        return self in (Fault.DNS_SERVFAIL, Fault.DNS_NXDOMAIN)


@dataclass(frozen=True, slots=True)
class ActiveFault:
    platform: str
    fault: Fault
    since: datetime
    feature: str | None = None  # None: every feature of the platform
    # Share of requests affected, 0..1 (tiktok-partial: 0.3 of calls answer 5xx).
    rate: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)

    def covers(self, feature: str | None) -> bool:
        return self.feature is None or self.feature == feature


@dataclass(frozen=True, slots=True)
class FaultChange:
    at: datetime
    platform: str
    fault: Fault
    feature: str | None
    on: bool
    rate: float = 1.0
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordedPost:
    """One post a simulated platform accepted; tests read these to prove exactly-once."""

    seq: int
    platform: str
    account: str
    kind: str  # "post", "media", "message", ...
    external_id: str
    payload: dict[str, Any]
    idempotency_marker: str | None
    at: datetime


class FaultBoard:
    """The faults in force, per platform and feature, with their on/off history."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._active: dict[tuple[str, Fault, str | None], ActiveFault] = {}
        self.history: list[FaultChange] = []

    def set(
        self,
        platform: str,
        fault: Fault,
        *,
        feature: str | None = None,
        rate: float = 1.0,
        **params: Any,
    ) -> ActiveFault:
        """Turn a fault on (replacing the same fault on the same feature)."""
        if fault is Fault.PARTIAL and feature is None:
            raise ValueError("a partial fault needs the feature that fails (e.g. media)")
        if not 0.0 < rate <= 1.0:
            raise ValueError("rate is the share of requests affected, in (0, 1]")
        now = self._clock.now()
        active = ActiveFault(platform, fault, now, feature, rate, dict(params))
        self._active[(platform, fault, feature)] = active
        self.history.append(FaultChange(now, platform, fault, feature, True, rate, dict(params)))
        return active

    def clear(self, platform: str | None = None, fault: Fault | None = None) -> int:
        """Turn faults off (all of a platform's, one kind, or everything); return how many."""
        now = self._clock.now()
        gone = [
            key for key in self._active
            if (platform is None or key[0] == platform) and (fault is None or key[1] == fault)
        ]
        for key in gone:
            ended = self._active.pop(key)
            self.history.append(
                FaultChange(now, key[0], key[1], key[2], False, ended.rate, dict(ended.params))
            )
        return len(gone)

    def active(self, platform: str | None = None) -> list[ActiveFault]:
        return [f for f in self._active.values() if platform is None or f.platform == platform]

    def applicable(
        self, platform: str, feature: str | None, rng: random.Random
    ) -> ActiveFault | None:
        """The fault that hits one request to `platform` for `feature`, if any.

        DNS and connection faults come first (nothing else is reached past them); a fault with
        rate < 1 hits each request with that probability, drawn from the world's generator.
        """
        order = list(Fault)
        for active in sorted(self.active(platform), key=lambda f: order.index(f.fault)):
            if active.covers(feature) and (active.rate >= 1.0 or rng.random() < active.rate):
                return active
        return None


class PostRecord:
    """Every post every simulated platform accepted, in order."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._posts: list[RecordedPost] = []
        self._seq = itertools.count(1)

    def add(
        self,
        *,
        platform: str,
        account: str,
        kind: str,
        external_id: str,
        payload: dict[str, Any],
        idempotency_marker: str | None,
    ) -> RecordedPost:
        post = RecordedPost(
            next(self._seq), platform, account, kind, external_id, payload,
            idempotency_marker, self._clock.now(),
        )
        self._posts.append(post)
        return post

    def all(self, platform: str | None = None) -> list[RecordedPost]:
        return [p for p in self._posts if platform is None or p.platform == platform]

    def find(self, platform: str, external_id: str) -> RecordedPost | None:
        for post in self._posts:
            if post.platform == platform and post.external_id == external_id:
                return post
        return None

    def with_marker(self, platform: str, marker: str) -> list[RecordedPost]:
        return [p for p in self._posts if p.platform == platform and p.idempotency_marker == marker]

    def clear(self) -> None:
        self._posts.clear()


class SimWorld:
    """Faults, records, tokens and randomness shared by every part of the simulator."""

    def __init__(self, *, clock: Clock, seed: int = 0) -> None:
        self.clock = clock
        self.rng = random.Random(seed)  # noqa: S311 - replayable fault draws, not secrets
        self.faults = FaultBoard(clock)
        self.record = PostRecord(clock)
        # platform -> token -> account name. Profiles accept only these tokens.
        self.tokens: dict[str, dict[str, str]] = {}
        self._ids = itertools.count(1)

    def grant_token(self, platform: str, token: str, account: str) -> None:
        self.tokens.setdefault(platform, {})[token] = account

    def account_for(self, platform: str, token: str) -> str | None:
        return self.tokens.get(platform, {}).get(token)

    def next_number(self) -> int:
        """A process-wide increasing number profiles turn into their platform's id format."""
        return next(self._ids)
