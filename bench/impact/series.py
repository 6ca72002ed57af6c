"""Generated daily series with known injected effects, shared by our run and the peers'."""

from __future__ import annotations

import numpy as np

LENGTH, N_PRE, SEASON = 100, 70, 7


def generate(count: int, seed: int = 2021) -> dict[str, np.ndarray]:
    """`count` series: noise, weekly seasonality, a control for most, a step effect for 70%."""
    rng = np.random.default_rng(seed)
    t = np.arange(LENGTH)
    ys, xs, effects = [], [], []
    for _ in range(count):
        noise_sd = rng.uniform(1, 5)
        control = 50 + np.cumsum(rng.normal(0, 0.5, LENGTH))
        beta = rng.uniform(0.5, 2) if rng.random() < 0.7 else 0.0
        amplitude = rng.uniform(0, 3) * noise_sd
        y = 100 + beta * control + amplitude * np.sin(2 * np.pi * t / SEASON)
        y += rng.normal(0, noise_sd, LENGTH)
        step = 0.0
        if rng.random() < 0.7:
            step = rng.choice([-1, 1]) * rng.choice([0.5, 1, 2, 4]) * noise_sd
        y[N_PRE:] += step
        ys.append(y)
        xs.append(control)
        effects.append(step * (LENGTH - N_PRE))
    return {"y": np.array(ys), "x": np.array(xs), "cumulative_effect": np.array(effects)}
