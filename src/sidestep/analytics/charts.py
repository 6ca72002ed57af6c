"""PNG charts for the impact and risk reports (matplotlib, no display needed)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime

import matplotlib

matplotlib.use("Agg")  # before pyplot: servers and CI have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from sidestep.analytics.impact import Impact  # noqa: E402

ACTUAL, PREDICTED, BAND, LOSS, GAIN = "#1f2933", "#2f6fde", "#b9cdf5", "#c0392b", "#1e8449"


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def impact_chart(
    title: str, times: Sequence[datetime], actual: Sequence[float], impact: Impact, n_pre: int
) -> bytes:
    """Actual against the counterfactual with its 95% band, and the cumulative effect below."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True,
                                      gridspec_kw={"height_ratios": [2, 1]})
    x = list(times)
    y = np.asarray(actual, dtype=float)
    top.fill_between(x, impact.predicted_lower_series, impact.predicted_upper_series,
                     color=BAND, label="expected without the outage (95%)")
    top.plot(x, impact.predicted_series, color=PREDICTED, linestyle="--", linewidth=1.2)
    top.plot(x, y, color=ACTUAL, linewidth=1.4, label="actual")
    top.axvline(x[n_pre], color="#6b7280", linestyle=":", linewidth=1)
    top.set_title(title, loc="left", fontsize=11)
    top.legend(loc="upper left", fontsize=8, frameon=False)
    gap = np.where(np.isnan(y), 0.0, y - impact.predicted_series)
    gap[:n_pre] = 0.0
    bottom.plot(x, np.cumsum(gap), color=LOSS if impact.cumulative_effect < 0 else GAIN)
    bottom.axhline(0, color="#6b7280", linewidth=0.8)
    bottom.set_ylabel("cumulative effect", fontsize=8)
    fig.autofmt_xdate()
    return _png(fig)


def shift_chart(title: str, effects: Mapping[str, float]) -> bytes:
    """One bar per channel: the loss on the fallen platform, the gain elsewhere."""
    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.45 * max(len(effects), 1)))
    names = list(effects)
    values = [effects[n] for n in names]
    ax.barh(names, values, color=[LOSS if v < 0 else GAIN for v in values])
    ax.axvline(0, color="#6b7280", linewidth=0.8)
    ax.invert_yaxis()
    ax.set_title(title, loc="left", fontsize=11)
    return _png(fig)


def share_chart(title: str, shares: Mapping[str, float]) -> bytes:
    """Shares by owner (or platform) as horizontal bars labelled in percent."""
    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.45 * max(len(shares), 1)))
    names = list(shares)
    values = [100 * shares[n] for n in names]
    bars = ax.barh(names, values, color=PREDICTED)
    ax.bar_label(bars, labels=[f"{v:.0f}%" for v in values], fontsize=8, padding=2)
    ax.set_xlim(0, 105)
    ax.invert_yaxis()
    ax.set_title(title, loc="left", fontsize=11)
    return _png(fig)
