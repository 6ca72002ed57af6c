"""The charts are real PNGs with something drawn in them (not a blank canvas)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import numpy as np
from PIL import Image

from sidestep.analytics.charts import impact_chart, share_chart, shift_chart
from sidestep.analytics.impact import estimate_impact


def _inked_fraction(png: bytes) -> float:
    image = Image.open(io.BytesIO(png)).convert("L")
    pixels = np.asarray(image)
    return float(np.mean(pixels < 200))


def test_impact_chart_draws_series_band_and_cumulative_line(tmp_path) -> None:
    rng = np.random.default_rng(7)
    y = 100 + rng.normal(0, 2, 60)
    y[45:] -= 20
    impact = estimate_impact(y, n_pre=45)
    start = datetime(2021, 9, 20, tzinfo=UTC)
    png = impact_chart("Instagram reach", [start + timedelta(hours=6 * i) for i in range(60)],
                       y, impact, 45)
    (tmp_path / "impact.png").write_bytes(png)
    assert png.startswith(b"\x89PNG")
    assert Image.open(io.BytesIO(png)).size[0] > 400
    assert 0.02 < _inked_fraction(png) < 0.6


def test_shift_and_share_charts_are_not_empty() -> None:
    shift = shift_chart("Where the audience went", {"instagram": -900.0, "x": 250.0,
                                                   "email": 400.0})
    shares = share_chart("Followers by owner", {"Meta": 0.8, "X Corp": 0.1, "self": 0.1})
    for png in (shift, shares):
        assert png.startswith(b"\x89PNG")
        assert _inked_fraction(png) > 0.02
