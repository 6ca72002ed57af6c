"""The crash harness: dispatch workers killed with SIGKILL at random instants, faults mixed in.

One run:

1. The simulator starts in a process of its own (Telegram, Mastodon and Bluesky: two
   platforms that cannot be asked whether a post exists and one that can). Every process
   reads the same `ScaledClock`, which runs `SPEED` times faster than the wall clock, so
   backoffs of minutes and leases pass in a fraction of a second.
2. The database gets a workspace, one channel per platform, and `posts_per_trial` posts per
   trial (each on one to three channels), due one after another across the run.
3. Each trial sets faults on the simulator (5xx, timeouts, 429 with Retry-After, DNS
   SERVFAIL; or none), forks `workers` worker processes from this already-imported process
   (each runs `WorkerProcess`, the loop `sidestep worker` runs) and, at an instant drawn for
   each, kills it with SIGKILL; one time in ten it sends SIGTERM instead and the worker must
   stop by itself, after the sends under way.
4. Faults cleared, one last worker runs until nothing is left to do.
5. The verdict compares the database with the simulator's record of accepted posts. Each
   delivery must be `sent` with exactly one post on its platform (the one whose id it
   holds), or `unknown`/`failed` with a reason and at most one post; no post may be on a
   platform twice, none may be there that no delivery asked for, no delivery may be left
   anywhere else.

Every random choice comes from `seed` (printed in the report); kill instants are wall-clock
times, so a replay repeats the faults and the schedule, not the exact interleaving.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from sidestep.channels.base import all_adapters
from sidestep.channels.http import make_client
from sidestep.dispatch.process import WorkerOptions, WorkerProcess
from sidestep.sim.profile import all_profiles
from sidestep.sim.server import Simulator
from sidestep.sim.transport import DnsResolver, SimTransport
from sidestep.sim.world import SimWorld
from sidestep.store.accounts import Accounts
from sidestep.store.channels import Channels
from sidestep.store.db import Database
from sidestep.store.posts import NewPost, Posts
from sidestep.store.tables import Channel, Delivery, Post
from sidestep.vault import Vault

# Backoffs (30 s base, 1 h cap) pass in a second or two up to half a minute; the maximum age
# of a delivery (48 h) is half an hour, which no backlog of a loaded machine reaches.
SPEED = 100.0
START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
VAULT_KEY = b"0" * 43 + b"="
PLATFORMS = ("telegram", "mastodon", "bluesky")
CREDENTIALS = {
    "telegram": {"bot_token": "700001:AAHsidestep-crash-token", "chat_id": "@brandchannel"},
    "mastodon": {"access_token": "mastodon-crash-token-1", "instance_url": "https://mastodon.social"},
    "bluesky": {"identifier": "brand.bsky.social", "app_password": "abcd-efgh-ijkl-mnop",
                "service": "https://bsky.social"},
}
ACCOUNTS = {"telegram": ("bot_token", "brand700001"), "mastodon": ("access_token", "brand"),
            "bluesky": ("app_password", "brand.bsky.social")}
FAULTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("http_5xx", {}), ("timeout", {}), ("rate_limited", {"retry_after_s": 5}),
    ("dns_servfail", {}),
)
PENDING = frozenset({"scheduled", "due", "sending", "retry_wait", "held"})
FINDABLE = frozenset(p for p in PLATFORMS if all_adapters()[p].can_find)


class ScaledClock:
    """`START` at `epoch` (a wall-clock time), then `speed` seconds per wall-clock second.
    Picklable and shared by every process of a run, the simulator's included."""

    def __init__(self, *, epoch: float, speed: float = SPEED) -> None:
        self.epoch, self.speed = epoch, speed

    def now(self) -> datetime:
        return START + timedelta(seconds=(time.time() - self.epoch) * self.speed)


@dataclass(frozen=True, slots=True, kw_only=True)
class CrashConfig:
    database_url: str
    trials: int = 200
    workers: int = 1  # worker processes per trial, all sharing the queue
    posts_per_trial: int = 2
    batch: int = 4  # a killed worker strands its whole claimed batch
    concurrency: int = 4
    seed: int = 0
    max_life_s: float = 0.4  # a worker is stopped uniform(0, max_life_s) into its loop
    term_share: float = 0.1  # SIGTERM instead of SIGKILL
    fault_share: float = 0.6  # trials with faults
    adapter_timeout_s: float = 0.25
    lease_s: float = 3.0 * SPEED  # three wall-clock seconds: far above a send's timeout
    drain_timeout_s: float = 300.0


@dataclass(slots=True)
class CrashReport:
    seed: int
    trials: int = 0
    sigkills: int = 0
    sigterms: int = 0
    deliveries: int = 0
    states: Counter[str] = field(default_factory=Counter)
    unknown_published: int = 0  # unknown, and the platform does have the post
    records: int = 0
    before_drain: Counter[str] = field(default_factory=Counter)  # states when trials end
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems and self.deliveries > 0

    def summary(self) -> str:
        states = ", ".join(f"{k} {v}" for k, v in sorted(self.states.items()))
        before = ", ".join(f"{k} {v}" for k, v in sorted(self.before_drain.items()))
        head = (f"seed {self.seed}: {self.trials} trials, {self.sigkills} SIGKILL, "
                f"{self.sigterms} SIGTERM, {self.deliveries} deliveries ({states}; "
                f"{self.unknown_published} of the unknown are on the platform), "
                f"{self.records} posts on the platforms, {len(self.problems)} problems, "
                f"{self.seconds:.0f} s; when the trials ended: {before})")
        return "\n".join([head, *self.problems[:20]])


def run_crash_trials(config: CrashConfig) -> CrashReport:
    """Run the whole experiment (see the module docstring) and return its verdict."""
    began = time.monotonic()
    report = CrashReport(seed=config.seed)
    clock = ScaledClock(epoch=time.time())
    rng = random.Random(config.seed)  # noqa: S311 - replayable schedules, not secrets
    fork = multiprocessing.get_context("fork")
    with _SimulatorProcess(fork, clock, seed=config.seed) as sim:
        asyncio.run(_prepare(config, clock, rng))
        with httpx.Client(base_url=sim.control_url, timeout=10) as control:
            for _ in range(config.trials):
                trial_rng = random.Random(rng.random())  # noqa: S311 - as above
                _trial(config, fork, sim, control, clock, trial_rng, report)
                report.trials += 1
            control.delete("/faults").raise_for_status()
            report.before_drain = asyncio.run(_states(config.database_url))
            asyncio.run(_drain(config, sim, clock))
            records = control.get("/record").raise_for_status().json()["posts"]
        asyncio.run(_verdict(config, records, report))
    report.seconds = time.monotonic() - began
    return report


class _SimulatorProcess:
    """The simulator in a forked process; `control_url`, `http_port` and `dns` once up."""

    def __init__(self, fork: Any, clock: ScaledClock, *, seed: int) -> None:
        self._parent, child = fork.Pipe()
        self._process = fork.Process(target=_simulator_main, args=(child, clock, seed),
                                     daemon=True)
        self.control_url = ""
        self.http_port = 0
        self.dns: tuple[str, int] = ("", 0)

    def __enter__(self) -> _SimulatorProcess:
        self._process.start()
        if not self._parent.poll(60):
            self._process.kill()
            raise RuntimeError("the simulator did not start within 60 s")
        self.control_url, self.http_port, self.dns = self._parent.recv()
        return self

    def __exit__(self, *exc: object) -> None:
        self._parent.send("stop")
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()


def _simulator_main(conn: multiprocessing.connection.Connection, clock: ScaledClock,
                    seed: int) -> None:
    async def serve() -> None:
        world = SimWorld(clock=clock, seed=seed)
        for platform, (field_name, account) in ACCOUNTS.items():
            world.grant_token(platform, CREDENTIALS[platform][field_name], account)
        profiles = {key: cls for key, cls in all_profiles().items() if key in PLATFORMS}
        async with Simulator(world=world, profiles=profiles) as sim:
            await sim.load_specs()
            conn.send((sim.control_url, sim.http_port, sim.dns_address))
            while True:  # until the parent says stop (a pipe is no awaitable)
                if conn.poll():
                    break
                await asyncio.sleep(0.1)

    asyncio.run(serve())


async def _prepare(config: CrashConfig, clock: ScaledClock, rng: random.Random) -> None:
    """A workspace, a channel per platform, and every post of the run, due one after
    another at about the pace trials will go."""
    db = Database(config.database_url)
    await db.migrate()
    vault = Vault(VAULT_KEY)
    now = clock.now()
    spacing_s = config.max_life_s / 2 * SPEED / config.posts_per_trial
    async with db.session() as s:
        workspace = await Accounts(s).create_workspace(slug="crash", name="Crash", at=now)
        channels = Channels(s, workspace_id=workspace.id, vault=vault)
        ids = [(await channels.add(platform=p, name=p, credentials=CREDENTIALS[p], at=now)).id
               for p in PLATFORMS]
        posts = Posts(s, workspace_id=workspace.id)
        for n in range(config.trials * config.posts_per_trial):
            targets = rng.sample(ids, rng.randint(1, len(ids)))
            await posts.create(NewPost(body=f"Crash post {n}: we are still here.",
                                       due_at=now + timedelta(seconds=n * spacing_s),
                                       channel_ids=targets), created_by=None, at=now)
    await db.close()


def _trial(config: CrashConfig, fork: Any, sim: _SimulatorProcess, control: httpx.Client,
           clock: ScaledClock, rng: random.Random, report: CrashReport) -> None:
    control.delete("/faults").raise_for_status()
    if rng.random() < config.fault_share:
        for platform in rng.sample(PLATFORMS, rng.randint(1, 2)):
            fault, params = rng.choice(FAULTS)
            control.post("/faults", json={"platform": platform, "fault": fault, "params": params,
                                          "rate": rng.choice((0.3, 0.6, 1.0))}
                         ).raise_for_status()
    # Forking with other threads alive could copy a lock another thread holds.
    if threading.active_count() != 1:
        raise RuntimeError("refusing to fork with other threads alive")
    started = []
    for _ in range(config.workers):
        ready = fork.Event()
        process = fork.Process(target=_worker_main,
                               args=(config, sim.http_port, sim.dns, clock, ready))
        process.start()
        started.append((process, ready))
    workers = []
    for process, ready in started:
        # The instant counts from when the worker's loop starts (its signal handlers are in
        # place), so that kills land in the loop however slowly a loaded machine boots it.
        if not ready.wait(60):
            report.problems.append("a worker did not start within 60 s")
        stop_at = time.monotonic() + rng.uniform(0.0, config.max_life_s)
        workers.append((stop_at, rng.random() < config.term_share, process))
    for stop_at, graceful, process in sorted(workers, key=lambda w: w[0]):
        time.sleep(max(0.0, stop_at - time.monotonic()))
        if graceful:
            report.sigterms += 1
            process.terminate()
            process.join(config.lease_s / SPEED + 5)
            if process.is_alive():
                report.problems.append(f"a worker did not stop within {config.lease_s / SPEED + 5}"
                                       " s of SIGTERM")
                process.kill()
            elif process.exitcode != 0:
                report.problems.append(f"a worker stopped by SIGTERM exited {process.exitcode}")
        else:
            report.sigkills += 1
            process.kill()
        process.join()


def _worker_main(config: CrashConfig, http_port: int, dns: tuple[str, int],
                 clock: ScaledClock, ready: Any) -> None:
    """A forked worker: what `sidestep worker --simulator ...` runs, with short timeouts."""
    asyncio.run(_work(config, http_port, dns, clock, ready=ready))


async def _work(config: CrashConfig, http_port: int, dns: tuple[str, int], clock: ScaledClock,
                *, ready: Any = None) -> None:
    """Run a worker: until a signal when `ready` (an Event, set once the signal handlers are
    in place) is given, else until every delivery has settled."""
    db = Database(config.database_url)
    transport = SimTransport(resolver=DnsResolver(*dns, timeout_s=0.5), http_port=http_port)
    # The last worker (no `ready`) has the whole backlog to itself: bigger passes.
    batch, concurrency = (config.batch, config.concurrency) if ready else (20, 8)
    options = WorkerOptions(lease_s=config.lease_s, batch=batch, concurrency=concurrency,
                            idle_s=0.02, reconcile_every_s=0.1, refresh_every_s=0.5)
    try:
        async with make_client(transport) as http:
            classes = all_adapters()
            adapters = {p: classes[p](client=http, clock=clock, timeout_s=config.adapter_timeout_s,
                                      poll_interval_s=0.01) for p in PLATFORMS}
            worker = WorkerProcess(db, vault=Vault(VAULT_KEY), adapters=adapters, clock=clock,
                                   http=http, options=options)
            if ready is not None:
                worker.install_signal_handlers()
                ready.set()
                await worker.run()
                return
            running = asyncio.create_task(worker.run())
            while True:
                if await _settled(db):
                    break
                await asyncio.sleep(0.1)
            worker.request_stop()
            await running
    finally:
        await db.close()


async def _drain(config: CrashConfig, sim: _SimulatorProcess, clock: ScaledClock) -> None:
    """One worker, never killed, until every delivery has settled (or the time is up)."""
    try:
        await asyncio.wait_for(_work(config, sim.http_port, sim.dns, clock),
                               config.drain_timeout_s)
    except TimeoutError:
        pass  # the verdict names what did not settle


async def _states(url: str) -> Counter[str]:
    db = Database(url)
    async with db.session() as s:
        rows = (await s.execute(select(Delivery.state, func.count()).group_by(Delivery.state)))
        counts = Counter({state: count for state, count in rows.all()})
    await db.close()
    return counts


async def _settled(db: Database) -> bool:
    """Nothing left to do: no delivery pending, and no `unknown` one a platform can settle."""
    async with db.session() as s:
        rows = (await s.execute(
            select(Delivery.state, Channel.platform, func.count())
            .join(Channel, Channel.id == Delivery.channel_id)
            .group_by(Delivery.state, Channel.platform))).all()
    return not any(state in PENDING or (state == "unknown" and platform in FINDABLE)
                   for state, platform, _ in rows)


async def _verdict(config: CrashConfig, records: list[dict[str, Any]],
                   report: CrashReport) -> None:
    db = Database(config.database_url)
    async with db.session() as s:
        rows = (await s.execute(
            select(Delivery, Post.body, Channel.platform)
            .join(Post, Post.id == Delivery.post_id)
            .join(Channel, Channel.id == Delivery.channel_id))).all()
    await db.close()
    on_platform: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        on_platform.setdefault((record["platform"], _text(record["payload"])), []).append(record)
    report.records = len(records)
    for delivery, body, platform in rows:
        report.deliveries += 1
        report.states[delivery.state] += 1
        found = on_platform.pop((platform, body), [])
        where = f"delivery {delivery.id} ({platform}, {delivery.state})"
        if len(found) > 1:
            report.problems.append(f"{where}: DUPLICATE, {len(found)} posts on the platform")
        if delivery.state == "sent":
            if [r["external_id"] for r in found] != [delivery.external_id]:
                report.problems.append(f"{where}: LOST, recorded sent as "
                                       f"{delivery.external_id} but the platform has "
                                       f"{[r['external_id'] for r in found]}")
        elif delivery.state in ("unknown", "failed"):
            if not delivery.last_error:
                report.problems.append(f"{where}: no reason given")
            if delivery.state == "failed" and found:
                report.problems.append(f"{where}: failed, yet the post is on the platform")
            report.unknown_published += delivery.state == "unknown" and bool(found)
        else:
            report.problems.append(f"{where}: LOST, left {delivery.state} "
                                   f"({delivery.last_error or 'no error'})")
    for (platform, text), extra in on_platform.items():
        report.problems.append(f"{platform}: {len(extra)} posts no delivery asked for: {text!r}")


def _text(payload: dict[str, Any]) -> str:
    """The post's text, as each simulated platform records it."""
    record = payload.get("record")
    if isinstance(record, dict):
        return str(record.get("text", ""))
    return str(payload.get("text") or payload.get("status") or "")
