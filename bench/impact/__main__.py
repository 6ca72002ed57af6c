"""bench/impact: accuracy and speed of the impact model against two Python ports.

    .venv/bin/python -m bench.impact [--series 1000] [--peer-series 100]

Ours runs on every generated series; pycausalimpact and tfcausalimpact (each installed by
bench/impact/setup-peers.sh into its own environment, never into Sidestep's) run on the first
`--peer-series` of the same series, and ours is scored on that subset too.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.impact.series import N_PRE, SEASON, generate
from sidestep.analytics.impact import estimate_batch

HERE = Path(__file__).resolve().parent
PEERS = {"pycausalimpact": HERE / ".peers", "tfcausalimpact": HERE / ".peers-tf"}


def score(effect: np.ndarray, lower: np.ndarray, upper: np.ndarray, p: np.ndarray,
          truth: np.ndarray) -> dict[str, float]:
    null = truth == 0
    return {
        "mae": float(np.mean(np.abs(effect - truth))),
        "coverage": float(np.mean((lower <= truth) & (truth <= upper))),
        "false_positive_rate": float(np.mean(p[null] < 0.05)) if null.any() else float("nan"),
        "n": int(truth.size),
    }


def run_ours(data: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], float]:
    started = time.perf_counter()
    results = estimate_batch(data["y"], n_pre=N_PRE, controls=data["x"][:, :, None],
                             season=SEASON)
    elapsed = time.perf_counter() - started
    columns = {
        "effect": np.array([r.cumulative_effect for r in results]),
        "lower": np.array([r.cumulative_lower for r in results]),
        "upper": np.array([r.cumulative_upper for r in results]),
        "p": np.array([r.p_value for r in results]),
    }
    return columns, elapsed


def run_peer(name: str, data: dict[str, np.ndarray], count: int) -> dict[str, object] | None:
    python = PEERS[name] / "bin" / "python"
    if not python.exists():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        series, out = Path(tmp) / "series.npz", Path(tmp) / "out.json"
        np.savez(series, y=data["y"], x=data["x"], n_pre=N_PRE)
        done = subprocess.run([  # noqa: S603 (our own peer script)
            str(python), str(HERE / "peer.py"), str(series), str(count), str(out),
        ], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return {"error": done.stderr.strip().splitlines()[-1:]}
        loaded: dict[str, object] = json.loads(out.read_text())
        return loaded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--peer-series", type=int, default=100)
    parser.add_argument("--peers", default=",".join(PEERS),
                        help="comma-separated: which ports to run (tfcausalimpact takes minutes "
                        "per series here)")
    args = parser.parse_args()
    data = generate(args.series)
    truth = data["cumulative_effect"]
    ours, seconds = run_ours(data)
    lines = [f"machine: {platform.machine()}, 2 cores; {args.series} series of 100 days, "
             f"pre-period 70, weekly seasonality, one control; 30% without effect", ""]
    lines.append("| model | series | MAE cumulative | 95% coverage | false positives | "
                 "ms per series |")
    lines.append("|---|---|---|---|---|---|")
    full = score(ours["effect"], ours["lower"], ours["upper"], ours["p"], truth)
    lines.append(_row("sidestep", full, seconds / args.series))
    k = args.peer_series
    sub = score(ours["effect"][:k], ours["lower"][:k], ours["upper"][:k], ours["p"][:k],
                truth[:k])
    lines.append(_row("sidestep (peer subset)", sub, seconds / args.series))
    for name in [p for p in args.peers.split(",") if p in PEERS] if k else []:
        peer = run_peer(name, data, k)
        if peer is None:
            lines.append(f"| {name} | not installed (run bench/impact/setup-peers.sh) |||||")
            continue
        if "error" in peer:
            lines.append(f"| {name} | failed: {peer['error']} |||||")
            continue
        rows = peer["results"]
        assert isinstance(rows, list)
        cols = {key: np.array([r[key] for r in rows]) for key in ("effect", "lower", "upper", "p")}
        peer_score = score(cols["effect"], cols["lower"], cols["upper"], cols["p"], truth[:k])
        per = float(peer["seconds"]) / k  # type: ignore[arg-type]
        speedup = per / (seconds / args.series)
        lines.append(_row(name, peer_score, per) + f" ours {speedup:,.0f}x faster")
    print("\n".join(lines))


def _row(name: str, s: dict[str, float], seconds_per_series: float) -> str:
    return (f"| {name} | {s['n']} | {s['mae']:.1f} | {s['coverage']:.1%} | "
            f"{s['false_positive_rate']:.1%} | {seconds_per_series * 1000:.2f} |")


if __name__ == "__main__":
    main()
