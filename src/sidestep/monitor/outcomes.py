"""What one probe saw, as a small closed vocabulary shared by every probe."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["FAILING", "Outcome", "Signal"]


class Outcome(StrEnum):
    """The outcome stored on a `NewObservation`; only `OK` means "answering as expected"."""

    OK = "ok"
    SERVFAIL = "servfail"  # a resolver answered SERVFAIL (the 2021 Meta outage)
    NXDOMAIN = "nxdomain"
    REFUSED = "refused"  # DNS REFUSED, or a TCP connection refused
    TIMEOUT = "timeout"
    ERROR = "error"  # anything else that went wrong: garbage, oversized, TLS, protocol
    BAD_STATUS = "bad_status"  # an HTTP status outside the probe's expected list
    BAD_ANSWER = "bad_answer"  # an answer that arrived but is wrong (empty, invalid, condition)
    MAJOR_OUTAGE = "major_outage"  # the platform's own status page says so
    PARTIAL_OUTAGE = "partial_outage"
    DEGRADED = "degraded"


class Signal(StrEnum):
    """Which kind of probe made an observation."""

    DNS = "dns"
    HTTP = "http"
    STATUSPAGE = "statuspage"
    PUBLISH = "publish"  # the dispatcher's recent outcomes (passive publish path)
    CONTROL = "control"  # hosts and resolvers unrelated to any platform: our own network


FAILING = frozenset({
    Outcome.SERVFAIL, Outcome.NXDOMAIN, Outcome.REFUSED, Outcome.TIMEOUT, Outcome.ERROR,
    Outcome.BAD_STATUS, Outcome.BAD_ANSWER, Outcome.MAJOR_OUTAGE,
})
"""Outcomes that count as a failed check for fusion (status-page partial/degraded do not)."""
