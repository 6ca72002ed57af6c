"""Retry delays by error class: bounds that hold for every attempt and every random draw."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from sidestep.channels.errors import (
    AuthExpired,
    PlatformOutage,
    PublishError,
    RateLimited,
    Rejected,
    Transient,
    Unknown,
)
from sidestep.dispatch.backoff import RATE_LIMIT_JITTER_S, next_delay_s

attempts = st.integers(min_value=0, max_value=10_000)
seeds = st.integers(min_value=0, max_value=2**32)
retryable = st.sampled_from([Transient("500"), PlatformOutage("refused"),
                             Unknown("odd answer", maybe_sent=False)])


@given(error=retryable, attempt=attempts, seed=seeds,
       base_s=st.floats(min_value=0.1, max_value=120), cap_s=st.floats(min_value=1, max_value=86_400))
def test_full_jitter_stays_between_zero_and_the_capped_exponential(
        error: PublishError, attempt: int, seed: int, base_s: float, cap_s: float) -> None:
    delay = next_delay_s(error, attempt, rng=random.Random(seed), base_s=base_s, cap_s=cap_s)
    assert delay is not None
    assert 0 <= delay <= min(cap_s, base_s * 2.0 ** min(attempt, 60))


@given(retry_after_s=st.floats(min_value=0, max_value=86_400), attempt=attempts, seed=seeds)
def test_it_obeys_the_platforms_retry_after_with_a_little_jitter(
        retry_after_s: float, attempt: int, seed: int) -> None:
    error = RateLimited("slow down", retry_after_s=retry_after_s)
    delay = next_delay_s(error, attempt, rng=random.Random(seed))
    assert delay is not None
    assert retry_after_s <= delay <= retry_after_s + max(RATE_LIMIT_JITTER_S, retry_after_s / 10)


@given(error=st.sampled_from([AuthExpired("token revoked"), Rejected("too long"),
                              Unknown("timed out after sending", maybe_sent=True)]),
       attempt=attempts, seed=seeds)
def test_it_never_retries_what_a_person_must_settle(
        error: PublishError, attempt: int, seed: int) -> None:
    assert next_delay_s(error, attempt, rng=random.Random(seed)) is None


def test_the_ceiling_grows_with_each_attempt_until_the_cap() -> None:
    def worst(attempt: int) -> float:
        delays = [next_delay_s(Transient("x"), attempt, rng=random.Random(n)) for n in range(400)]
        return max(d for d in delays if d is not None)

    assert worst(0) <= 30 < worst(2) <= 120 < worst(5) <= 960
    assert 3000 < worst(20) <= 3600
