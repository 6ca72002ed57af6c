"""The worker process: the dispatch loop, run until it is told to stop.

Each turn of the loop:

1. reconcile, at start and then every `reconcile_every_s`: deliveries left `sending` by a
   worker that died, and `unknown` outcomes a platform can be asked about (`reconcile`);
2. renew OAuth tokens that expire soon, every `refresh_every_s` (`refresh_due_tokens`);
3. one pass of `run_once`: promote what is due, claim a batch with a lease, send, record;
4. when the pass claimed nothing, wait up to `idle_s`. A committed `post.*` event in this
   process (the web app's new post, when both run in one process) ends the wait at once;
   other processes' posts are found by the next poll.

Stopping (SIGTERM, Ctrl-C, or `request_stop()`): the pass under way finishes, so every
delivery it claimed is sent and recorded, and no new claim is made. A second signal cancels
at once; deliveries then in flight stay `sending` until their lease runs out and another
worker reconciles them, exactly as after a crash.

A pass that raises (the database unreachable, a bug) is logged by error class and retried
after a pause that doubles up to `max_error_pause_s`: a database restart does not kill the
worker. Logs carry counts, ids and error classes, never credentials or post text.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import signal
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from sidestep.archive.published import archive_published
from sidestep.channels.base import Adapter, all_adapters
from sidestep.channels.errors import capped
from sidestep.channels.token_refresh import DEFAULT_WINDOW_S, refresh_due_tokens
from sidestep.channels.uploads import MediaHost
from sidestep.clock import Clock
from sidestep.dispatch.worker import DEFAULT_CONCURRENCY, reconcile, run_once
from sidestep.store.db import Database
from sidestep.store.events import EventNotice
from sidestep.vault import Vault

__all__ = ["WorkerOptions", "WorkerProcess", "WorkerStats", "build_adapters", "worker_name"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerOptions:
    """How one worker paces itself. Durations are wall-clock seconds except `lease_s`,
    which is measured by the injected clock like every time stored in the database."""

    lease_s: float = 120.0  # far above any adapter's timeout: a live send never loses it
    batch: int = 20
    concurrency: int = DEFAULT_CONCURRENCY  # sends under way at once within a pass
    idle_s: float = 1.0
    reconcile_every_s: float = 30.0
    refresh_every_s: float = 300.0
    refresh_window_s: float = DEFAULT_WINDOW_S
    max_error_pause_s: float = 30.0
    report_every_s: float = 60.0
    archive_every_s: float = 30.0  # sent posts copied into the archive


@dataclass(slots=True)
class WorkerStats:
    """What a worker did since it started."""

    passes: int = 0
    claimed: int = 0
    reconciled: int = 0
    tokens_refreshed: int = 0
    errors: int = 0
    started_at: float = field(default_factory=time.monotonic)


def worker_name() -> str:
    """A name no other live worker has: host, process id and a random suffix."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def build_adapters(client: httpx.AsyncClient, *, clock: Clock,
                   timeout_s: float | None = None) -> dict[str, Adapter]:
    """One adapter per platform Sidestep can publish to, all over `client`."""
    return {platform: cls(client=client, clock=clock, timeout_s=timeout_s)
            for platform, cls in sorted(all_adapters().items())}


class WorkerProcess:
    """One worker: `await run()` until `request_stop()` or a signal; returns its stats."""

    def __init__(self, db: Database, *, vault: Vault, adapters: Mapping[str, Adapter],
                 clock: Clock, http: httpx.AsyncClient, name: str | None = None,
                 options: WorkerOptions | None = None,
                 rng: random.Random | None = None,
                 media_host: MediaHost | None = None) -> None:
        self.db = db
        self.vault = vault
        self.adapters = dict(adapters)
        self.clock = clock
        self.http = http
        self.name = name or worker_name()
        self.options = options or WorkerOptions()
        self.rng = rng or random.Random()  # noqa: S311 - backoff jitter, not a secret
        # Files of posts are read from, and given public URLs under, its data directory;
        # sent posts are archived there too.
        self.media_host = media_host
        self.stats = WorkerStats()
        self._stopping = False
        self._wake: asyncio.Event | None = None  # new work announced, or a stop
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[WorkerStats] | None = None
        db.bus.subscribe("post.*", self._on_new_work)

    @property
    def stopping(self) -> bool:
        return self._stopping

    def request_stop(self) -> None:
        """Finish the pass under way, then return from `run()`; a second call cancels it."""
        if self._stopping and self._task is not None and not self._task.done():
            log.warning("worker %s: stopping now; in-flight deliveries are left to "
                        "reconciliation", self.name)
            self._task.cancel()
            return
        self._stopping = True
        if self._wake is not None and self._stop is not None:
            self._wake.set()
            self._stop.set()

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT call `request_stop()` (in the running loop)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("worker %s: %s received, finishing the sends under way", self.name, sig.name)
        self.request_stop()

    def _on_new_work(self, _notice: EventNotice) -> None:
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> WorkerStats:
        """Loop until stopped. Returns the stats; raises CancelledError on a forced stop."""
        self._task = asyncio.current_task()
        wake = self._wake = asyncio.Event()
        stop = self._stop = asyncio.Event()
        if self._stopping:
            stop.set()
        opts = self.options
        log.info("worker %s: started (%d platforms, batch %d, lease %.0f s)", self.name,
                 len(self.adapters), opts.batch, opts.lease_s)
        next_reconcile = next_refresh = next_report = next_archive = time.monotonic()
        error_pause_s = 0.0
        while not self._stopping:
            now = time.monotonic()
            try:
                if now >= next_reconcile:
                    next_reconcile = now + opts.reconcile_every_s
                    await self._reconcile()
                if now >= next_refresh and not self._stopping:
                    next_refresh = now + opts.refresh_every_s
                    await self._refresh_tokens()
                if now >= next_archive and not self._stopping and self.media_host is not None:
                    next_archive = now + opts.archive_every_s
                    await archive_published(self.db, data_dir=self.media_host.data_dir,
                                            clock=self.clock)
                # Cleared before the pass, so work announced during it is not missed.
                wake.clear()
                claimed = 0 if self._stopping else await self._pass()
            except Exception as exc:  # noqa: BLE001 - logged, counted, retried after a pause
                self.stats.errors += 1
                error_pause_s = min(opts.max_error_pause_s, max(0.5, error_pause_s * 2))
                log.error("worker %s: pass failed (%s: %s); trying again in %.1f s",
                          self.name, type(exc).__name__, capped(str(exc), 200), error_pause_s,
                          exc_info=log.isEnabledFor(logging.DEBUG))
                await self._sleep(error_pause_s, stop)
                continue
            error_pause_s = 0.0
            if now >= next_report:
                next_report = now + opts.report_every_s
                self._report()
            if claimed == 0:
                await self._sleep(opts.idle_s, wake)
        self._report()
        log.info("worker %s: stopped", self.name)
        return self.stats

    async def _pass(self) -> int:
        claimed = await run_once(self.db, vault=self.vault, adapters=self.adapters,
                                 worker=self.name, clock=self.clock, rng=self.rng,
                                 lease_s=self.options.lease_s, batch=self.options.batch,
                                 concurrency=self.options.concurrency,
                                 media_host=self.media_host)
        self.stats.passes += 1
        self.stats.claimed += claimed
        if claimed:
            log.debug("worker %s: settled %d deliveries", self.name, claimed)
        return claimed

    async def _reconcile(self) -> None:
        settled = await reconcile(self.db, adapters=self.adapters, vault=self.vault,
                                  clock=self.clock)
        self.stats.reconciled += settled
        if settled:
            log.info("worker %s: reconciled %d deliveries", self.name, settled)

    async def _refresh_tokens(self) -> None:
        report = await refresh_due_tokens(self.db, self.vault, self.clock, self.http,
                                          within_s=self.options.refresh_window_s)
        self.stats.tokens_refreshed += len(report.refreshed)
        if report.refreshed or report.needs_reconnect or report.failed:
            log.info("worker %s: tokens renewed for %d channels, %d need reconnecting, "
                     "%d to try again", self.name, len(report.refreshed),
                     len(report.needs_reconnect), len(report.failed))

    async def _sleep(self, seconds: float, until: asyncio.Event) -> None:
        """Wait `seconds`, or less when `until` is set (a stop sets both events)."""
        try:
            await asyncio.wait_for(until.wait(), timeout=seconds)
        except TimeoutError:
            pass

    def _report(self) -> None:
        stats = self.stats
        log.info("worker %s: %d passes, %d deliveries claimed, %d reconciled, %d errors in "
                 "%.0f s", self.name, stats.passes, stats.claimed, stats.reconciled,
                 stats.errors, time.monotonic() - stats.started_at)
