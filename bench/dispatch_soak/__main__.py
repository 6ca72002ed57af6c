"""Crash soak: the crash test's experiment with thousands of trials, reporting the counts.

    .venv/bin/python -m bench.dispatch_soak [--trials 2000] [--seed N] [--pg URL --workers 4]

Runs in slices of `--slice` trials (each slice a fresh simulator and database, so the
verdict's bookkeeping stays small) and sums them. Exit code 1 when any slice found a
duplicate, a loss or a delivery without a reason.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg

from bench.dispatch_soak.harness import CrashConfig, CrashReport, run_crash_trials


def _database(pg: str | None, tmp: Path) -> str:
    if pg is None:
        return f"sqlite+aiosqlite:///{tmp / f'soak-{uuid.uuid4().hex[:8]}.db'}"
    name = f"sidestep_soak_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{pg.rsplit('/', 1)[0]}/{name}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--slice", type=int, default=250)
    parser.add_argument("--seed", type=int, default=random.SystemRandom().randrange(10**6))
    parser.add_argument("--pg", help="PostgreSQL server URL (scratch databases are made)")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    print(f"seed {args.seed}: {args.trials} trials, {args.workers} worker(s) per trial, on "
          f"{'PostgreSQL' if args.pg else 'SQLite'}", flush=True)
    totals = CrashReport(seed=args.seed)
    done = 0
    with tempfile.TemporaryDirectory() as tmp:
        while done < args.trials:
            trials = min(args.slice, args.trials - done)
            report = run_crash_trials(CrashConfig(
                database_url=_database(args.pg, Path(tmp)), trials=trials,
                workers=args.workers, seed=args.seed + done))
            print(report.summary(), flush=True)
            done += trials
            _add(totals, report)
    print(f"TOTAL {totals.summary()}")
    return 0 if totals.ok else 1


def _add(totals: CrashReport, report: CrashReport) -> None:
    for name in ("trials", "sigkills", "sigterms", "deliveries", "unknown_published",
                 "records", "seconds"):
        setattr(totals, name, getattr(totals, name) + getattr(report, name))
    totals.states += report.states
    totals.before_drain += report.before_drain
    totals.problems += [f"seed {report.seed}: {p}" for p in report.problems]


if __name__ == "__main__":
    sys.exit(main())

