"""A Kalman filter for many local-level models at once, vectorised over the batch.

Every series in a batch has the same length, the same pre-period and the same state layout:
a random-walk level, optionally `season - 1` seasonal dummies, and one static coefficient per
control series. Variances are relative to the observation noise (which is 1 here); the caller
scales them by the posterior of that noise. Missing observations (NaN) are skipped: they
neither update the state nor add to the likelihood.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Layout:
    season: int  # 0 or 1: no seasonal component
    controls: int

    @property
    def size(self) -> int:
        return 1 + max(self.season - 1, 0) + self.controls

    def transition(self) -> Array:
        m = self.size
        t = np.eye(m)
        s = self.season - 1
        if s > 0:
            block = np.zeros((s, s))
            block[0, :] = -1.0
            block[1:, :-1] = np.eye(s - 1)
            t[1 : 1 + s, 1 : 1 + s] = block
        return t

    def disturbance(self, q: Array) -> Array:
        """State noise covariances, one per batch entry: level and season drift at `q`."""
        m = self.size
        out = np.zeros((q.shape[0], m, m))
        out[:, 0, 0] = q
        if self.season > 1:
            out[:, 1, 1] = q
        return out

    def loadings(self, x_t: Array | None, batch: int) -> Array:
        """Z_t for every batch entry: level, first seasonal dummy, then the controls."""
        z = np.zeros((batch, self.size))
        z[:, 0] = 1.0
        if self.season > 1:
            z[:, 1] = 1.0
        if self.controls and x_t is not None:
            z[:, self.size - self.controls :] = x_t
        return z


@dataclass(frozen=True)
class Filtered:
    """What the filter learnt from the pre-period and predicts for the post-period."""

    sum_log_f: Array  # (N,) pre-period log prediction variances, summed
    sum_v2_f: Array  # (N,) pre-period squared standardised innovations, summed
    n_obs: Array  # (N,) pre-period observations that contributed
    pre_mean: Array  # (N, n_pre) one-step-ahead predictions in the pre-period
    pre_var: Array  # (N, n_pre) their variances (signal + noise)
    post_mean: Array  # (N, H) predictions of the post-period
    post_var: Array  # (N, H) pointwise predictive variances (signal + noise)
    cum_var: Array  # (N,) variance of the post-period sum over observed points


def run_filter(
    y: Array, x: Array | None, n_pre: int, layout: Layout, q: Array, level_start: Array
) -> Filtered:
    """Filter `y` (N, T) through the pre-period and predict the rest without updating.

    `x` is (N, T, k) or None, `q` (N,) the relative level variance of each entry and
    `level_start` (N,) the level's prior mean. Priors: level N(level_start, 1), seasonal
    dummies N(0, 1), coefficients N(0, 1) (the data are standardised by the caller).
    """
    n, total = y.shape
    m = layout.size
    trans = layout.transition()
    dist = layout.disturbance(q)
    a = np.zeros((n, m))
    a[:, 0] = level_start
    p = np.broadcast_to(np.eye(m), (n, m, m)).copy()
    sum_log_f = np.zeros(n)
    sum_v2_f = np.zeros(n)
    n_obs = np.zeros(n)
    pre_mean = np.zeros((n, n_pre))
    pre_var = np.zeros((n, n_pre))
    horizon = total - n_pre
    post_mean = np.zeros((n, horizon))
    post_var = np.zeros((n, horizon))
    cov_state_cum = np.zeros((n, m))
    cum_var = np.zeros(n)
    for t in range(total):
        z = layout.loadings(None if x is None else x[:, t, :], n)
        pz = np.einsum("nij,nj->ni", p, z)
        f_signal = np.einsum("ni,ni->n", z, pz)
        mean = np.einsum("ni,ni->n", z, a)
        observed = ~np.isnan(y[:, t])
        if t < n_pre:
            f = f_signal + 1.0
            pre_mean[:, t], pre_var[:, t] = mean, f
            v = np.where(observed, y[:, t] - mean, 0.0)
            sum_log_f += np.where(observed, np.log(f), 0.0)
            sum_v2_f += v * v / f
            n_obs += observed
            gain = np.where(observed[:, None], pz / f[:, None], 0.0)
            a = a + gain * v[:, None]
            p = p - np.einsum("ni,nj->nij", gain, pz)
        else:
            h = t - n_pre
            post_mean[:, h], post_var[:, h] = mean, f_signal + 1.0
            # The sum of the post-period signal: track Var(sum) and Cov(state, sum).
            weight = observed.astype(float)
            cum_var += weight * (2.0 * np.einsum("ni,ni->n", z, cov_state_cum) + f_signal + 1.0)
            cov_state_cum = cov_state_cum + weight[:, None] * pz
            cov_state_cum = cov_state_cum @ trans.T
        a = a @ trans.T
        p = trans @ p @ trans.T + dist
        p = 0.5 * (p + np.transpose(p, (0, 2, 1)))
    return Filtered(sum_log_f, sum_v2_f, n_obs, pre_mean, pre_var, post_mean, post_var, cum_var)
