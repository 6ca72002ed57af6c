"""Crash test (issue 6): workers killed with SIGKILL at random instants, simulator faults mixed
in, and every delivery ends exactly once on its platform or `unknown`/`failed` with a reason.

The harness (`bench/dispatch_soak/harness.py`, also the soak benchmark's) forks the workers
from this process, runs the simulator in a process of its own and compares the database with
the simulator's record at the end. `SIDESTEP_CRASH_SEED` replays a run's faults and schedule;
the seed is printed and named in every failure.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from bench.dispatch_soak.harness import CrashConfig, CrashReport, run_crash_trials

TRIALS = 200
# Four workers are killed in every PostgreSQL trial, so 50 trials stop 200 worker processes;
# `bench/dispatch_soak --pg URL --workers 4` runs as many more as one likes.
PG_TRIALS = 50


def _seed() -> int:
    return int(os.environ.get("SIDESTEP_CRASH_SEED") or random.SystemRandom().randrange(10**6))


def _check(report: CrashReport, trials: int = TRIALS) -> None:
    print(report.summary())  # shown with -s or -rA, and on failure
    assert report.ok, report.summary()
    assert report.trials == trials and report.sigkills + report.sigterms >= TRIALS
    assert report.states["sent"] > 0  # the run did real work, not only kills


def test_killed_workers_on_sqlite_never_duplicate_or_lose_a_delivery(tmp_path: Path) -> None:
    report = run_crash_trials(CrashConfig(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'crash.db'}", trials=TRIALS, workers=1,
        seed=_seed()))
    _check(report)


@pytest.mark.postgres
def test_four_killed_workers_sharing_postgresql_never_duplicate_or_lose_a_delivery(
        pg_url: str) -> None:
    report = run_crash_trials(CrashConfig(
        database_url=pg_url, trials=PG_TRIALS, workers=4, max_life_s=1.0, seed=_seed()))
    _check(report, PG_TRIALS)
