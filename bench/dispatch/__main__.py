"""Dispatch throughput and claim latency, end to end against the simulator.

    .venv/bin/python -m bench.dispatch [--deliveries 3000] [--pg postgresql://...]

For each database (SQLite, and PostgreSQL when `--pg` names a server database this may fill):

- baseline: the same publish calls made by the adapters straight to the simulator, no
  database, at the same concurrency, from the same number of processes (the ceiling);
- dispatch: `deliveries` posts due now, one channel each, spread over 10 channels per
  platform; `workers` forked worker processes (`WorkerProcess`, as `sidestep worker` runs)
  until every delivery is settled. Reported: deliveries per second, the ratio to the
  baseline, and the claim transaction's latency (p50/p95, measured inside the workers).

Every process reads `ScaledClock` (600x), so platform quotas and backoffs, which count in
platform time, do not throttle a benchmark that is about the machinery.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import tempfile
import time
import uuid
from typing import Any

import psycopg

from bench.dispatch_soak.harness import (
    CREDENTIALS,
    PLATFORMS,
    VAULT_KEY,
    ScaledClock,
    _settled,
    _SimulatorProcess,
)
from sidestep.channels.base import all_adapters
from sidestep.channels.http import make_client
from sidestep.dispatch import worker as worker_module
from sidestep.dispatch.process import WorkerOptions, WorkerProcess
from sidestep.domain.content import Content
from sidestep.sim.transport import DnsResolver, SimTransport
from sidestep.store.accounts import Accounts
from sidestep.store.channels import Channels
from sidestep.store.db import Database
from sidestep.store.posts import NewPost, Posts
from sidestep.vault import Credentials, Vault

CHANNELS_PER_PLATFORM = 10
CONCURRENCY = 32
BATCH = 64


def _adapters(http: Any, clock: ScaledClock) -> dict[str, Any]:
    classes = all_adapters()
    return {p: classes[p](client=http, clock=clock, timeout_s=10, poll_interval_s=0.01)
            for p in PLATFORMS}


def _transport(sim: tuple[int, tuple[str, int]]) -> SimTransport:
    http_port, dns = sim
    return SimTransport(resolver=DnsResolver(*dns), http_port=http_port)


def _baseline_child(sim: tuple[int, tuple[str, int]], clock: ScaledClock, count: int,
                    conn: Any) -> None:
    async def go() -> None:
        async with make_client(_transport(sim)) as http:
            adapters = _adapters(http, clock)
            gate = asyncio.Semaphore(CONCURRENCY)

            async def one(n: int) -> None:
                platform = PLATFORMS[n % len(PLATFORMS)]
                async with gate:
                    await adapters[platform].publish(
                        Content(text=f"Baseline {uuid.uuid4().hex[:8]} {n}"),
                        Credentials(CREDENTIALS[platform]), idempotency_key=uuid.uuid4().hex)

            await one(0)  # sessions, connections
            began = time.monotonic()
            await asyncio.gather(*(one(n) for n in range(1, count)))
            conn.send((count - 1) / (time.monotonic() - began))

    asyncio.run(go())


def _worker_child(url: str, sim: tuple[int, tuple[str, int]], clock: ScaledClock,
                  conn: Any) -> None:
    claims: list[float] = []
    original = worker_module.claim_admitted  # type: ignore[attr-defined]

    async def timed_claim(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            claims.append(time.perf_counter() - began)

    worker_module.claim_admitted = timed_claim  # type: ignore[attr-defined]

    async def go() -> None:
        db = Database(url)
        async with make_client(_transport(sim)) as http:
            process = WorkerProcess(db, vault=Vault(VAULT_KEY), adapters=_adapters(http, clock),
                                    clock=clock, http=http, options=WorkerOptions(
                                        batch=BATCH, concurrency=CONCURRENCY, idle_s=0.01,
                                        lease_s=600 * 60, reconcile_every_s=5))
            running = asyncio.create_task(process.run())
            while True:
                if await _settled(db):
                    break
                await asyncio.sleep(0.05)
            process.request_stop()
            stats = await running
        await db.close()
        conn.send((stats.claimed, claims))

    asyncio.run(go())


async def _seed(url: str, clock: ScaledClock, deliveries: int) -> None:
    db = Database(url)
    await db.migrate()
    now = clock.now()
    async with db.session() as s:
        ws = await Accounts(s).create_workspace(slug=f"b{uuid.uuid4().hex[:6]}", name="Bench",
                                                at=now)
        channels = Channels(s, workspace_id=ws.id, vault=Vault(VAULT_KEY))
        ids = [(await channels.add(platform=p, name=f"{p}-{n}", credentials=CREDENTIALS[p],
                                   at=now)).id
               for n in range(CHANNELS_PER_PLATFORM) for p in PLATFORMS]
        posts = Posts(s, workspace_id=ws.id)
        for n in range(deliveries):
            await posts.create(NewPost(body=f"Bench post {n}", due_at=now,
                                       channel_ids=[ids[n % len(ids)]]), created_by=None, at=now)
    await db.close()


def _fan_out(fork: Any, target: Any, args_for: list[tuple[Any, ...]]) -> list[Any]:
    pipes, processes = [], []
    for args in args_for:
        parent, child = fork.Pipe()
        process = fork.Process(target=target, args=(*args, child))
        process.start()
        pipes.append(parent)
        processes.append(process)
    results = [pipe.recv() for pipe in pipes]
    for process in processes:
        process.join()
    return results


def measure(name: str, url: str, *, workers: int, deliveries: int, fork: Any,
            sim: _SimulatorProcess, clock: ScaledClock) -> dict[str, Any]:
    where = (sim.http_port, sim.dns)
    baseline = sum(_fan_out(fork, _baseline_child,
                            [(where, clock, deliveries // workers)] * workers))
    asyncio.run(_seed(url, clock, deliveries))
    began = time.monotonic()
    results = _fan_out(fork, _worker_child, [(url, where, clock)] * workers)
    seconds = time.monotonic() - began
    claimed = sum(r[0] for r in results)
    claims = sorted(c for r in results for c in r[1])
    rate = deliveries / seconds
    row = {"database": name, "workers": workers, "deliveries": deliveries,
           "claimed": claimed, "seconds": seconds, "rate": rate, "baseline": baseline,
           "ratio": rate / baseline, "claims": len(claims),
           "claim_p50_ms": 1000 * statistics.median(claims),
           "claim_p95_ms": 1000 * claims[int(0.95 * (len(claims) - 1))]}
    print(f"{name}, {workers} worker(s): {deliveries} deliveries in {seconds:.1f} s = "
          f"{rate:.0f}/s; baseline {baseline:.0f}/s (ratio {row['ratio']:.2f}); claim "
          f"p50 {row['claim_p50_ms']:.1f} ms, p95 {row['claim_p95_ms']:.1f} ms "
          f"({len(claims)} claims)", flush=True)
    return row


def _fresh_pg(admin: str) -> str:
    name = f"sidestep_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{admin.rsplit('/', 1)[0]}/{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=3000)
    parser.add_argument("--pg", help="PostgreSQL server URL (a scratch database is made)")
    parser.add_argument("--tmp", default=tempfile.gettempdir(),
                        help="Where the SQLite file goes")
    args = parser.parse_args()
    fork = multiprocessing.get_context("fork")
    clock = ScaledClock(epoch=time.time(), speed=600)
    with _SimulatorProcess(fork, clock, seed=1) as sim:
        measure("SQLite", f"sqlite+aiosqlite:///{args.tmp}/bench-{uuid.uuid4().hex[:8]}.db",
                workers=1, deliveries=args.deliveries, fork=fork, sim=sim, clock=clock)
        if args.pg:
            for workers in (1, 2):
                url = _fresh_pg(args.pg)
                try:
                    measure("PostgreSQL", url, workers=workers, deliveries=args.deliveries,
                            fork=fork, sim=sim, clock=clock)
                finally:
                    with psycopg.connect(args.pg, autocommit=True) as conn:
                        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" '
                                     "WITH (FORCE)")


if __name__ == "__main__":
    main()
