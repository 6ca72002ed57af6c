from __future__ import annotations

import numpy as np
import pytest

from sidestep.analytics.impact import ImpactError, estimate_batch, estimate_impact


def _series(rng: np.random.Generator, n: int = 120, level: float = 100.0, sd: float = 2.0,
            season: int = 0) -> np.ndarray:
    y = level + rng.normal(0, sd, n)
    if season:
        y += 10 * np.sin(2 * np.pi * np.arange(n) / season)
    return y


def test_a_known_drop_is_measured_with_an_interval_that_covers_it() -> None:
    rng = np.random.default_rng(1)
    y = _series(rng)
    y[90:] -= 30  # the outage: 30 fewer per point for 30 points
    result = estimate_impact(y, n_pre=90)
    assert result.cumulative_lower <= -900 <= result.cumulative_upper
    assert result.point_effect == pytest.approx(-30, abs=2)
    assert result.significant
    assert result.relative_effect == pytest.approx(-0.3, abs=0.03)


def test_no_effect_gives_a_large_tail_probability() -> None:
    rng = np.random.default_rng(2)
    result = estimate_impact(_series(rng), n_pre=90)
    assert result.p_value > 0.05
    assert not result.significant
    assert result.point_lower < 0 < result.point_upper


def test_controls_explain_a_shared_movement() -> None:
    rng = np.random.default_rng(3)
    control = 50 + np.cumsum(rng.normal(0, 1, 120))
    y = 2 * control + rng.normal(0, 1, 120)
    # The control and the metric rise together after point 90: that is not an effect.
    control[90:] += 20
    y[90:] += 40
    assert estimate_impact(y, n_pre=90, controls=control).p_value > 0.05
    # Without the control the same rise looks like an effect.
    assert estimate_impact(y, n_pre=90).significant


def test_weekly_seasonality_keeps_the_counterfactual_on_the_weekly_pattern() -> None:
    rng = np.random.default_rng(4)
    y = _series(rng, n=140, sd=1.0, season=7)
    y[119:] -= 5
    with_season = estimate_impact(y, n_pre=119, season=7)
    without = estimate_impact(y, n_pre=119)
    assert with_season.point_effect == pytest.approx(-5, abs=1)
    width = with_season.point_upper - with_season.point_lower
    assert width < without.point_upper - without.point_lower


def test_gaps_are_skipped_not_read_as_zero() -> None:
    rng = np.random.default_rng(5)
    y = _series(rng)
    y[[10, 11, 40, 95, 100]] = np.nan
    result = estimate_impact(y, n_pre=90)
    assert np.isfinite(result.point_effect)
    assert abs(result.point_effect) < 3  # a gap read as zero would be an effect of -100/25
    assert result.actual == pytest.approx(np.nanmean(y[90:]))


def test_too_short_a_pre_period_is_a_clear_error() -> None:
    with pytest.raises(ImpactError, match="pre-period has 2 points"):
        estimate_impact([1.0, 2.0, 3.0, 4.0], n_pre=2)
    with pytest.raises(ImpactError, match="no post-period"):
        estimate_impact(np.ones(10), n_pre=10)
    with pytest.raises(ImpactError, match="at least 14"):
        estimate_impact(np.ones(30), n_pre=10, season=7)


def test_controls_with_gaps_are_refused() -> None:
    x = np.ones(20)
    x[3] = np.nan
    with pytest.raises(ImpactError, match="gaps"):
        estimate_impact(np.arange(20.0), n_pre=15, controls=x)


def test_a_constant_series_has_no_effect_until_it_moves() -> None:
    flat = estimate_impact(np.full(40, 7.0), n_pre=30)
    assert flat.point_effect == pytest.approx(0, abs=1e-6)
    assert not flat.significant
    moved = np.full(40, 7.0)
    moved[30:] = 5.0
    result = estimate_impact(moved, n_pre=30)
    assert result.point_effect == pytest.approx(-2, abs=1e-3)
    assert result.significant


def test_a_batch_gives_the_same_answers_as_one_series_at_a_time() -> None:
    rng = np.random.default_rng(6)
    ys = np.stack([_series(rng) for _ in range(5)])
    ys[2, 90:] += 15
    batch = estimate_batch(ys, n_pre=90)
    for row, result in zip(ys, batch, strict=True):
        single = estimate_impact(row, n_pre=90)
        assert result.point_effect == pytest.approx(single.point_effect)
        assert result.cumulative_upper == pytest.approx(single.cumulative_upper)
    assert [r.significant for r in batch][2]
