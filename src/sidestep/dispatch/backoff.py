"""How long to wait before trying a failed publish again, by error class. Pure: no I/O.

    RateLimited            the platform's own reset (retry_after_s) plus a little jitter,
                           so many workers released at once do not all knock together
    Transient, outage      full-jitter exponential: uniform(0, min(cap, base * 2**attempt))
    Unknown(not sent)      as Transient: the platform said it did nothing
    AuthExpired, Rejected  None: a person must act (reconnect, change the content)
    Unknown(maybe sent)    None: the post may exist; it is looked up or a person decides,
                           never sent again blindly
"""

from __future__ import annotations

import random

from sidestep.channels.errors import AuthExpired, PublishError, RateLimited, Rejected, Unknown

__all__ = ["RATE_LIMIT_JITTER_S", "next_delay_s"]

# Jitter added to a platform's reset: up to a second, or up to a tenth of a longer wait.
RATE_LIMIT_JITTER_S = 1.0
# 2**MAX_EXPONENT * base is far above any sane cap; it keeps the float finite.
_MAX_EXPONENT = 60


def next_delay_s(error: PublishError, attempt: int, *, rng: random.Random,
                 base_s: float = 30.0, cap_s: float = 3600.0) -> float | None:
    """Seconds to wait before attempt `attempt + 1`, or None when no retry may happen.

    `attempt` counts the attempts made so far (1 after the first). A rate limit is obeyed
    even above `cap_s`: the platform said when, and earlier tries would only be refused.
    """
    if isinstance(error, AuthExpired | Rejected):
        return None
    if isinstance(error, Unknown) and error.maybe_sent:
        return None
    if isinstance(error, RateLimited):
        wait = error.retry_after_s
        return wait + rng.uniform(0.0, max(RATE_LIMIT_JITTER_S, wait / 10))
    # Transient, PlatformOutage, Unknown(maybe_sent=False) and any other PublishError.
    ceiling = min(cap_s, base_s * 2.0 ** min(max(attempt, 0), _MAX_EXPONENT))
    return rng.uniform(0.0, ceiling)
