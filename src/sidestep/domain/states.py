"""The lifecycles of Sidestep's nouns, each a `StrEnum` with one table of allowed transitions.

A transition not in the table is a bug in the caller, so `check_*` raises `IllegalTransition`
rather than returning False: the store's compare-and-set updates call it before writing.
"""

from __future__ import annotations

from enum import StrEnum


class IllegalTransition(ValueError):
    """Raised when a state change is not in the lifecycle's transition table."""


class DeliveryState(StrEnum):
    """One post on one channel; the unit of durable work."""

    SCHEDULED = "scheduled"
    DUE = "due"
    SENDING = "sending"
    SENT = "sent"
    RETRY_WAIT = "retry_wait"
    HELD = "held"
    REROUTED = "rerouted"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    @property
    def is_final(self) -> bool:
        return self in _FINAL_DELIVERY_STATES


_FINAL_DELIVERY_STATES = frozenset(
    {DeliveryState.SENT, DeliveryState.REROUTED, DeliveryState.FAILED, DeliveryState.CANCELLED}
)

_D = DeliveryState
DELIVERY_TRANSITIONS: dict[DeliveryState, frozenset[DeliveryState]] = {
    _D.SCHEDULED: frozenset({_D.DUE, _D.HELD, _D.CANCELLED}),
    # due → retry_wait: a quota has no token left; the delivery waits for one, never fails.
    _D.DUE: frozenset({_D.SENDING, _D.RETRY_WAIT, _D.HELD, _D.REROUTED, _D.FAILED,
                       _D.CANCELLED}),
    _D.SENDING: frozenset({_D.SENT, _D.RETRY_WAIT, _D.HELD, _D.FAILED, _D.UNKNOWN}),
    _D.RETRY_WAIT: frozenset({_D.DUE, _D.HELD, _D.REROUTED, _D.FAILED, _D.CANCELLED}),
    _D.HELD: frozenset({_D.DUE, _D.REROUTED, _D.FAILED, _D.CANCELLED}),
    # A person (or reconciliation that found the post) settles an unknown outcome.
    _D.UNKNOWN: frozenset({_D.SENT, _D.DUE, _D.FAILED, _D.CANCELLED}),
    _D.SENT: frozenset(),
    # Catch-up: a post that asked for it goes out on its own platform once that returns,
    # unless it is stale by then. It was never sent there, so this cannot duplicate it.
    _D.REROUTED: frozenset({_D.DUE}),
    _D.FAILED: frozenset(),
    _D.CANCELLED: frozenset(),
}


def check_delivery_transition(old: DeliveryState, new: DeliveryState) -> None:
    """Raise `IllegalTransition` unless a delivery may go from `old` to `new`."""
    if new not in DELIVERY_TRANSITIONS[old]:
        raise IllegalTransition(f"delivery cannot go from {old} to {new}")


class PlatformStatus(StrEnum):
    """What the monitor believes about a platform."""

    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"
    UNKNOWN = "unknown"
    # Not a platform's state: the workspace's own connection (the controls fail too).
    LOCAL_OUTAGE = "local_outage"

    @property
    def is_up(self) -> bool:
        return self is PlatformStatus.UP


class ChannelStatus(StrEnum):
    """Whether a channel can be published to, as far as its own credentials go."""

    ACTIVE = "active"
    PAUSED = "paused"
    NEEDS_RECONNECT = "needs_reconnect"


class Role(StrEnum):
    """A member's role in a workspace; each role can do everything the ones below it can."""

    VIEWER = "viewer"
    EDITOR = "editor"
    OWNER = "owner"

    @property
    def rank(self) -> int:
        return _ROLE_RANK[self]

    def allows(self, needed: Role) -> bool:
        """True when this role may do what `needed` may do."""
        return self.rank >= needed.rank


_ROLE_RANK = {Role.VIEWER: 0, Role.EDITOR: 1, Role.OWNER: 2}


class FallbackPolicy(StrEnum):
    """What happens to a due post whose platform is down."""

    HOLD = "hold"
    REROUTE = "reroute"
    MIRROR_NOW = "mirror_now"


class BreakerState(StrEnum):
    """A channel's circuit breaker, used when the monitor has no fresh state of its platform.

    closed → open after N consecutive outage-class failures; open → half_open when the
    cool-down has passed and one probe is let through; half_open → closed when the probe
    succeeds, → open again when it fails.
    """

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


_B = BreakerState
BREAKER_TRANSITIONS: dict[BreakerState, frozenset[BreakerState]] = {
    _B.CLOSED: frozenset({_B.OPEN}),
    _B.OPEN: frozenset({_B.HALF_OPEN, _B.CLOSED}),
    # half_open → half_open: the probe's worker died; a new probe after another cool-down.
    _B.HALF_OPEN: frozenset({_B.CLOSED, _B.OPEN, _B.HALF_OPEN}),
}


def check_breaker_transition(old: BreakerState, new: BreakerState) -> None:
    """Raise `IllegalTransition` unless a breaker may go from `old` to `new`."""
    if new not in BREAKER_TRANSITIONS[old]:
        raise IllegalTransition(f"breaker cannot go from {old} to {new}")


class DeliverableStatus(StrEnum):
    """A sponsored deliverable: a post promised to a partner by a deadline."""

    PENDING = "pending"
    AT_RISK = "at_risk"
    FULFILLED = "fulfilled"
