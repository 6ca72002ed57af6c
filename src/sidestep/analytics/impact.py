"""The effect of an outage on a metric, against a counterfactual learnt from the pre-period.

In the manner of Google's CausalImpact: a structural time-series model (local level, optional
seasonality, regression on control series) fitted to the pre-period predicts what the
post-period would have been without the intervention; the effect is actual minus predicted.
CausalImpact samples the model's variances by MCMC; here their posterior is integrated on a
grid instead (the observation variance analytically, the level variance over a log grid, with
CausalImpact's priors), which is deterministic and runs thousands of series at once.

    result = estimate_impact(y, n_pre=70)                    # one series
    results = estimate_batch(Y, n_pre=70, controls=X)        # (B, T) and (B, T, k)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import gammaln
from scipy.stats import norm

from sidestep.analytics.kalman import Array, Layout, run_filter

# CausalImpact's defaults on standardised data, as inverse-gamma (shape, scale) pairs: level
# sd guess 0.01 with the weight of 32 observations; observation sd guess sqrt(1 - expected R²
# of 0.8), with almost no weight for a level-only model and the weight of 50 observations
# (its prior.df) once there is a regression on controls.
LEVEL_PRIOR = (32 / 2, 32 * 0.01**2 / 2)
NOISE_PRIOR = (0.01 / 2, 0.01 * 0.2 / 2)
NOISE_PRIOR_WITH_CONTROLS = (50 / 2, 50 * 0.2 / 2)
Q_GRID = np.logspace(-7, 0.5, 32)


class ImpactError(ValueError):
    """The data cannot support an estimate; the message says why and what to change."""


@dataclass(frozen=True)
class Impact:
    """Averages are per post-period point; `cumulative_*` are sums over the post-period.

    `p_value` is two-sided, so `significant` means exactly that the interval excludes zero
    (R's CausalImpact prints the one-sided tail area, half of it).
    """

    actual: float
    predicted: float
    point_effect: float
    point_lower: float
    point_upper: float
    cumulative_effect: float
    cumulative_lower: float
    cumulative_upper: float
    relative_effect: float
    relative_lower: float
    relative_upper: float
    p_value: float
    alpha: float
    predicted_series: Array  # the counterfactual for every point, pre and post
    predicted_lower_series: Array
    predicted_upper_series: Array

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha


def estimate_impact(
    y: ArrayLike, *, n_pre: int, controls: ArrayLike | None = None, season: int = 0,
    alpha: float = 0.05,
) -> Impact:
    """Estimate one series' impact; `controls` is (T,) or (T, k) series unaffected by it."""
    ys = np.asarray(y, dtype=float)[None, :]
    xs = None
    if controls is not None:
        x = np.asarray(controls, dtype=float)
        xs = (x[:, None] if x.ndim == 1 else x)[None, :, :]
    return estimate_batch(ys, n_pre=n_pre, controls=xs, season=season, alpha=alpha)[0]


def estimate_batch(
    y: ArrayLike, *, n_pre: int, controls: ArrayLike | None = None, season: int = 0,
    alpha: float = 0.05,
) -> list[Impact]:
    """Estimate the impact on every row of `y` (B, T); `controls` is (B, T, k) or None."""
    ys = np.asarray(y, dtype=float)
    if ys.ndim != 2:
        raise ImpactError("series must be a (series, time) array")
    xs = None if controls is None else np.asarray(controls, dtype=float)
    _validate(ys, xs, n_pre, season)
    mu, sd = _pre_moments(ys[:, :n_pre])
    z = (ys - mu[:, None]) / sd[:, None]
    zx = None
    if xs is not None:
        xmu = xs[:, :n_pre, :].mean(axis=1)
        xsd = xs[:, :n_pre, :].std(axis=1, ddof=1)
        xsd = np.where(xsd > 0, xsd, 1.0)
        zx = (xs - xmu[:, None, :]) / xsd[:, None, :]
    mean, var, cum_var = _posterior_predictive(z, zx, n_pre, season)
    return [
        _summarise(ys[i], mean[i] * sd[i] + mu[i], var[i] * sd[i] ** 2,
                   cum_var[i] * sd[i] ** 2, n_pre, alpha)
        for i in range(ys.shape[0])
    ]


def _validate(y: Array, x: Array | None, n_pre: int, season: int) -> None:
    total = y.shape[1]
    k = 0 if x is None else x.shape[2]
    needed = max(3, k + 3, 2 * season)
    if n_pre < needed:
        raise ImpactError(
            f"the pre-period has {n_pre} points; this model needs at least {needed} "
            "(import more history before the incident, or drop controls or seasonality)"
        )
    if n_pre >= total:
        raise ImpactError("there is no post-period: the incident starts after the last point")
    observed_pre = np.sum(~np.isnan(y[:, :n_pre]), axis=1)
    if np.any(observed_pre < needed):
        raise ImpactError(f"a series has fewer than {needed} observed pre-period points")
    if x is not None:
        if x.shape[:2] != y.shape:
            raise ImpactError("controls must have the same series and time points as y")
        if np.isnan(x).any():
            raise ImpactError("control series must not have gaps; fill or drop them first")


def _pre_moments(pre: Array) -> tuple[Array, Array]:
    mu = np.nanmean(pre, axis=1)
    sd = np.nanstd(pre, axis=1, ddof=1)
    # A constant pre-period has no noise to measure against; keep a tiny scale so the
    # counterfactual is the constant itself and any departure from it stands out.
    floor = 1e-6 * np.maximum(1.0, np.abs(mu))
    return mu, np.where(sd > floor, sd, floor)


def _posterior_predictive(
    z: Array, zx: Array | None, n_pre: int, season: int
) -> tuple[Array, Array, Array]:
    """Predictive mean and variance of every point, and of the post-period sum."""
    b, total = z.shape
    g = Q_GRID.size
    layout = Layout(season=season, controls=0 if zx is None else zx.shape[2])
    zz = np.repeat(z, g, axis=0)
    xx = None if zx is None else np.repeat(zx, g, axis=0)
    q = np.tile(Q_GRID, b)
    first = np.array([row[~np.isnan(row)][0] for row in z])
    fit = run_filter(zz, xx, n_pre, layout, q, np.repeat(first, g))

    a_l, b_l = LEVEL_PRIOR
    a_e, b_e = NOISE_PRIOR if zx is None else NOISE_PRIOR_WITH_CONTROLS
    shape = fit.n_obs / 2 + a_e + a_l + 1
    rate = fit.sum_v2_f / 2 + b_e + b_l / q
    # log p(log q | y), the noise variance integrated out analytically.
    log_w = -0.5 * fit.sum_log_f + gammaln(shape - 1) - (shape - 1) * np.log(rate) - a_l * np.log(q)
    log_w = log_w.reshape(b, g)
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    noise = (rate / np.maximum(shape - 2, 1e-9)).reshape(b, g)  # posterior mean variance

    means = np.concatenate([fit.pre_mean, fit.post_mean], axis=1).reshape(b, g, total)
    variances = np.concatenate([fit.pre_var, fit.post_var], axis=1).reshape(b, g, total)
    variances = variances * noise[:, :, None]
    mean = np.einsum("bg,bgt->bt", w, means)
    second = np.einsum("bg,bgt->bt", w, variances + means**2)
    var = np.maximum(second - mean**2, 0.0)

    post_obs = ~np.isnan(z[:, n_pre:])
    cum_means = np.where(post_obs[:, None, :], means[:, :, n_pre:], 0.0).sum(axis=2)
    cum_vars = fit.cum_var.reshape(b, g) * noise
    cum_mean = np.einsum("bg,bg->b", w, cum_means)
    cum_var = np.einsum("bg,bg->b", w, cum_vars + cum_means**2) - cum_mean**2
    return mean, var, np.maximum(cum_var, 0.0)


def _summarise(
    y: Array, pred: Array, var: Array, cum_var_sum: float, n_pre: int, alpha: float
) -> Impact:
    zq = float(norm.ppf(1 - alpha / 2))
    post = ~np.isnan(y[n_pre:])
    h = int(post.sum())
    if h == 0:
        raise ImpactError("every post-period point is missing; nothing to compare")
    actual_sum = float(np.nansum(y[n_pre:]))
    pred_sum = float(pred[n_pre:][post].sum())
    cum_sd = float(np.sqrt(cum_var_sum))
    cum = actual_sum - pred_sum
    p_value = float(2 * norm.sf(abs(cum) / cum_sd)) if cum_sd > 0 else float(cum == 0)
    if cum_sd == 0 and cum == 0:
        p_value = 0.5
    rel_base = pred_sum if pred_sum != 0 else float("nan")
    sd = np.sqrt(var)
    return Impact(
        actual=actual_sum / h,
        predicted=pred_sum / h,
        point_effect=cum / h,
        point_lower=(cum - zq * cum_sd) / h,
        point_upper=(cum + zq * cum_sd) / h,
        cumulative_effect=cum,
        cumulative_lower=cum - zq * cum_sd,
        cumulative_upper=cum + zq * cum_sd,
        relative_effect=cum / rel_base,
        relative_lower=(cum - zq * cum_sd) / rel_base,
        relative_upper=(cum + zq * cum_sd) / rel_base,
        p_value=p_value,
        alpha=alpha,
        predicted_series=pred,
        predicted_lower_series=pred - zq * sd,
        predicted_upper_series=pred + zq * sd,
    )
