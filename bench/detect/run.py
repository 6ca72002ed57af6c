"""Detection bench: replay the simulator's scenarios through fusion, 50 seeded runs each.

    .venv/bin/python bench/detect/run.py [--runs 50] [--workers 2] [--scenario NAME ...]

Each run replays one scenario at simulated time (`sidestep.monitor.replay`): the scenario's
faults (noise drawn from the run's seed), the probes modelled from the simulator's rules,
the monitor's schedule with a start phase drawn from the seed, and the packaged thresholds
(`monitor.toml`). It prints a confusion table (truth per platform and scenario against the
worst state the monitor announced) and detection latencies, checks the issue's targets, and
writes `bench/detect/RESULTS.md`. Exit code 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import platform as host_platform
import statistics
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path

from sidestep.domain.states import PlatformStatus
from sidestep.monitor.config import load_monitor_config
from sidestep.monitor.fusion import INTERNET
from sidestep.monitor.replay import replay
from sidestep.sim.scenario import load_scenario

META = ("facebook", "instagram", "whatsapp", "messenger")
# scenario -> (truth for the named platforms, truth for every other platform, onset)
TRUTH: dict[str, tuple[dict[str, str], str, timedelta]] = {
    "meta-2021-10-04": ({p: "down" for p in META}, "none", timedelta(minutes=9)),
    "flaky-week": ({}, "none", timedelta(0)),
    "local-network-down": ({}, "local", timedelta(minutes=1)),
    "whatsapp-instagram-2021-03-19": ({"whatsapp": "degraded(media)",
                                       "instagram": "degraded(media)"}, "none",
                                      timedelta(minutes=25)),
    "tiktok-partial": ({"tiktok": "degraded"}, "none", timedelta(minutes=10)),
}
SEEN = ("down", "degraded(media)", "degraded(other)", "local_outage", "unknown", "up")


def _run(job: tuple[str, int]) -> dict[str, object]:
    name, seed = job
    scenario = load_scenario(name)
    config = load_monitor_config()
    started = time.perf_counter()
    result = replay(scenario, seed=seed, config=config)
    onset = scenario.start + TRUTH[name][2]
    worst: dict[str, str] = {}
    first: dict[str, float] = {}
    local_latency = None
    rank = {s: n for n, s in enumerate(reversed(SEEN))}
    for change in result.transitions:
        if change.platform == INTERNET:
            if change.new.status is PlatformStatus.LOCAL_OUTAGE and local_latency is None:
                local_latency = (change.at - onset).total_seconds()
            continue
        status = change.new.status
        if status is PlatformStatus.DOWN:
            seen = "down"
        elif status is PlatformStatus.DEGRADED:
            seen = "degraded(media)" if "media" in change.new.features else "degraded(other)"
        elif status is PlatformStatus.UNKNOWN:
            seen = "unknown"
        else:
            seen = "up"
        if seen in ("down", "degraded(media)", "degraded(other)") and change.platform not in first:
            first[change.platform] = (change.at - onset).total_seconds()
        if rank[seen] > rank.get(worst.get(change.platform, "up"), 0):
            worst[change.platform] = seen
    down_events = sum(1 for c in result.transitions if c.announce
                      and c.new.status is PlatformStatus.DOWN)
    degraded_events = sum(1 for c in result.transitions if c.announce
                          and c.new.status is PlatformStatus.DEGRADED)
    platforms = sorted({c.platform for c in result.transitions if c.platform != INTERNET})
    return {"scenario": name, "seed": seed, "worst": worst, "first": first,
            "platforms": platforms, "local_latency": local_latency,
            "down_events": down_events, "degraded_events": degraded_events,
            "ticks": result.ticks, "seconds": time.perf_counter() - started}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _machine() -> str:
    """CPU model, cores, Python, and the load average (the machine may be shared)."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{model}, {os.cpu_count()} cores, Python {host_platform.python_version()}; "
            f"load average (1/5/15 min) {load}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--runs-for", action="append", default=[], metavar="NAME=N",
                        help="another number of runs for one scenario")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--scenario", action="append", choices=sorted(TRUTH))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    names = args.scenario or list(TRUTH)
    interval_s = load_monitor_config().probing.interval_s
    runs_for = {k: int(v) for k, v in (item.split("=", 1) for item in args.runs_for)}
    jobs = [(name, seed) for name in names
            for seed in range(1, runs_for.get(name, args.runs) + 1)]
    # the longest first, so the workers finish together
    jobs.sort(key=lambda job: load_scenario(job[0]).duration, reverse=True)
    machine_before = _machine()
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = list(pool.map(_run, jobs))
    wall = time.perf_counter() - started
    machine_after = _machine()
    cpu = sum(float(r["seconds"]) for r in results)  # type: ignore[arg-type]

    confusion: Counter[tuple[str, str]] = Counter()
    for r in results:
        named, default, _ = TRUTH[str(r["scenario"])]
        worst: dict[str, str] = r["worst"]  # type: ignore[assignment]
        for platform in r["platforms"]:  # type: ignore[attr-defined]
            truth = named.get(platform, default)
            seen = worst.get(platform, "up")
            if r["local_latency"] is not None and seen in ("up", "unknown"):
                seen = "local_outage"  # blamed on our own network, not on the platform
            confusion[(truth, seen)] += 1

    lines = ["# Detection bench (`bench/detect`)", "",
             f"{args.runs} seeded runs per scenario"
             + "".join(f" ({n} for {k})" for k, n in runs_for.items())
             + f"; probe interval {interval_s:g} s; "
             f"thresholds from the packaged `monitor.toml`; wall time {wall:.0f} s on "
             f"{args.workers} worker(s), {cpu:.0f} s of replays in all.", "",
             f"Command: `{' '.join(['.venv/bin/python bench/detect/run.py', *sys.argv[1:]])}`",
             "",
             f"Machine at the start: {machine_before}.  ", f"At the end: {machine_after}.",
             "", "## Confusion (platform-runs: truth vs the worst state announced)", "",
             "| truth \\ monitor | " + " | ".join(SEEN) + " |",
             "|---|" + "---|" * len(SEEN)]
    for truth in sorted({t for t, _ in confusion}):
        row = [str(confusion[(truth, seen)]) for seen in SEEN]
        lines.append(f"| {truth} | " + " | ".join(row) + " |")
    lines += ["", "## Per scenario", ""]
    verdicts = []
    for name in names:
        runs = [r for r in results if r["scenario"] == name]
        named, _, _ = TRUTH[name]
        downs = sum(int(r["down_events"]) for r in runs)  # type: ignore[call-overload]
        degraded = sum(int(r["degraded_events"]) for r in runs)  # type: ignore[call-overload]
        seconds = statistics.mean(float(r["seconds"]) for r in runs)  # type: ignore[arg-type]
        lines.append(f"### {name} ({len(runs)} runs)")
        lines.append(f"- DOWN events (all platforms, all runs): {downs}; DEGRADED events: "
                     f"{degraded}; mean replay time {seconds:.1f} s")
        latencies = [float(r["first"][p]) for r in runs for p in named  # type: ignore[index]
                     if p in r["first"]]  # type: ignore[operator]
        missed = sum(1 for r in runs for p in named if p not in r["first"])  # type: ignore[operator]
        if named:
            if latencies:
                med, p95 = statistics.median(latencies), _pct(latencies, 0.95)
                lines.append(f"- detection latency from onset: median {med:.0f} s "
                             f"({med / interval_s:.2f} intervals), p95 {p95:.0f} s "
                             f"({p95 / interval_s:.2f} intervals), max {max(latencies):.0f} s; "
                             f"missed {missed} of {len(runs) * len(named)}")
            else:
                med = p95 = float("inf")
                lines.append(f"- never detected ({missed} misses)")
        if name == "meta-2021-10-04":
            ok = (missed == 0 and p95 <= 2 * interval_s and all(
                r["worst"].get(p) == "down" for r in runs for p in META))  # type: ignore[attr-defined]
            others = sum(1 for r in runs for p, s in r["worst"].items()  # type: ignore[attr-defined]
                         if p not in META and s != "up")
            ok = ok and others == 0
            verdicts.append((name, ok, f"DOWN within 2 intervals (median and p95); "
                             f"{others} other platform-runs not up"))
        elif name == "flaky-week":
            verdicts.append((name, downs == 0, f"{downs} DOWN events (target 0)"))
        elif name == "local-network-down":
            local = [r["local_latency"] for r in runs if r["local_latency"] is not None]
            ok = downs == 0 and len(local) == len(runs)
            if local:
                lines.append(f"- LOCAL_OUTAGE detected in {len(local)} of {len(runs)} runs; "
                             f"latency median {statistics.median(local):.0f} s, max "  # type: ignore[type-var]
                             f"{max(local):.0f} s")  # type: ignore[type-var]
            verdicts.append((name, ok, f"LOCAL_OUTAGE in {len(local)}/{len(runs)} runs, "
                             f"{downs} platform DOWN events"))
        elif name == "whatsapp-instagram-2021-03-19":
            ok = downs == 0 and all(r["worst"].get(p) == "degraded(media)"  # type: ignore[attr-defined]
                                    for r in runs for p in named)
            verdicts.append((name, ok, f"worst state DEGRADED(media) on both in every run, "
                             f"{downs} DOWN events"))
        lines.append("")
    lines += ["## Targets (issue 7)", ""]
    for name, ok, what in verdicts:
        lines.append(f"- {'PASS' if ok else 'FAIL'} {name}: {what}")
    lines += ["", "Model: probes are computed from the simulator's fault board by "
              "`sidestep.monitor.replay.ProbeModel` (checked against the real simulator in "
              "`tests/monitor/test_replay_model.py`); a healthy answer is taken as OK. The same "
              "scenarios run end to end against the simulator's DNS and HTTP servers in "
              "`tests/monitor/test_scenarios_e2e.py`.", ""]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        Path(__file__).with_name("RESULTS.md").write_text(text)
    return 0 if all(ok for _, ok, _ in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
