"""The worker process: its loop, its stops, and `sidestep worker` / `serve --role all` for real."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from bench.dispatch_soak.harness import ACCOUNTS, CREDENTIALS, VAULT_KEY

from sidestep.channels.base import all_adapters
from sidestep.clock import FrozenClock
from sidestep.dispatch.process import WorkerOptions, WorkerProcess
from sidestep.sim.profile import all_profiles
from sidestep.sim.server import Simulator
from sidestep.sim.testing import running_simulator
from sidestep.store.accounts import Accounts
from sidestep.store.channels import Channels
from sidestep.store.db import Database
from sidestep.store.posts import NewPost, Posts
from sidestep.store.tables import Delivery
from sidestep.vault import Vault

PLATFORM = "bluesky"
VAULT = Vault(VAULT_KEY)


@dataclass
class Rig:
    db: Database
    sim: Simulator
    clock: FrozenClock
    workspace_id: int
    channel_id: int

    async def post(self, body: str = "We are still here.") -> int:
        async with self.db.session() as s:
            posts = Posts(s, workspace_id=self.workspace_id)
            post = await posts.create(NewPost(body=body, due_at=self.clock.now(),
                                              channel_ids=[self.channel_id]),
                                      created_by=None, at=self.clock.now())
            [delivery] = await posts.deliveries(post.id)
            return delivery.id

    async def delivery(self, delivery_id: int) -> Delivery:
        async with self.db.session() as s:
            return await s.get_one(Delivery, delivery_id)

    async def wait_for(self, delivery_id: int, state: str, timeout_s: float = 20) -> None:
        async def reached() -> bool:
            return (await self.delivery(delivery_id)).state == state

        await eventually(reached, timeout_s=timeout_s)

    def worker(self, client: httpx.AsyncClient, **options: float) -> WorkerProcess:
        adapter = all_adapters()[PLATFORM](client=client, clock=self.clock, timeout_s=5,
                                           poll_interval_s=0.01)
        return WorkerProcess(self.db, vault=VAULT, adapters={PLATFORM: adapter},
                             clock=self.clock, http=client, name="w-test",
                             options=WorkerOptions(**options))


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout_s: float = 20) -> None:
    """Return once `check()` is true; TimeoutError after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while True:
            if await check():
                return
            await asyncio.sleep(0.02)


async def passed(worker: WorkerProcess, *, errors: int = 0) -> None:
    """Return once `worker` has made a pass (or met `errors` errors)."""
    async def done() -> bool:
        return worker.stats.errors >= errors if errors else worker.stats.passes > 0

    await eventually(done)


@asynccontextmanager
async def rig(db: Database, clock: FrozenClock) -> AsyncIterator[Rig]:
    profiles = {PLATFORM: all_profiles()[PLATFORM]}
    async with running_simulator(seed=1, profiles=profiles) as sim:
        field_name, account = ACCOUNTS[PLATFORM]
        sim.world.grant_token(PLATFORM, CREDENTIALS[PLATFORM][field_name], account)
        async with db.session() as s:
            ws = await Accounts(s).create_workspace(slug="acme", name="Acme", at=clock.now())
            channel = await Channels(s, workspace_id=ws.id, vault=VAULT).add(
                platform=PLATFORM, name=PLATFORM, credentials=CREDENTIALS[PLATFORM],
                at=clock.now())
        yield Rig(db, sim, clock, ws.id, channel.id)


async def test_it_sends_what_is_due_and_stops_when_asked(db: Database,
                                                         clock: FrozenClock) -> None:
    async with rig(db, clock) as r, r.sim.client() as client:
        first, second = await r.post("first"), await r.post("second")
        worker = r.worker(client, idle_s=0.05)
        running = asyncio.create_task(worker.run())
        for delivery_id in (first, second):
            await r.wait_for(delivery_id, "sent")
            assert (await r.delivery(delivery_id)).external_id
        worker.request_stop()
        stats = await running
        assert stats.claimed == 2 and stats.errors == 0
        assert len(r.sim.world.record.all(PLATFORM)) == 2


async def test_a_new_post_wakes_an_idle_worker(db: Database, clock: FrozenClock) -> None:
    async with rig(db, clock) as r, r.sim.client() as client:
        worker = r.worker(client, idle_s=600)  # it would otherwise sleep ten minutes
        running = asyncio.create_task(worker.run())
        await passed(worker)
        await r.wait_for(await r.post(), "sent")
        worker.request_stop()
        await running


async def test_stopping_finishes_the_send_under_way(db: Database, clock: FrozenClock) -> None:
    async with rig(db, clock) as r, r.sim.client() as client:
        await r.sim.set_fault(PLATFORM, "slow", delay_s=1)
        worker = r.worker(client, idle_s=0.05)
        running = asyncio.create_task(worker.run())
        delivery_id = await r.post()
        await r.wait_for(delivery_id, "sending")
        worker.request_stop()
        stats = await running
        assert (await r.delivery(delivery_id)).state == "sent"
        assert stats.claimed == 1 and len(r.sim.world.record.all(PLATFORM)) == 1
        later = await r.post("after the stop")
        assert (await r.delivery(later)).state == "scheduled"  # no new claim


async def test_a_second_stop_leaves_the_send_to_reconciliation(db: Database,
                                                               clock: FrozenClock) -> None:
    async with rig(db, clock) as r, r.sim.client() as client:
        await r.sim.set_fault(PLATFORM, "slow", delay_s=30)
        worker = r.worker(client, idle_s=0.05)
        running = asyncio.create_task(worker.run())
        delivery_id = await r.post()
        await r.wait_for(delivery_id, "sending")
        worker.request_stop()
        worker.request_stop()
        with pytest.raises(asyncio.CancelledError):
            await running
        delivery = await r.delivery(delivery_id)
        assert delivery.state == "sending" and delivery.lease_owner == "w-test"


async def test_a_failing_pass_is_logged_and_tried_again(tmp_path: Path, clock: FrozenClock,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'not-migrated.db'}")  # no tables at all
    try:
        async with httpx.AsyncClient() as client:
            worker = WorkerProcess(db, vault=VAULT, adapters={}, clock=clock, http=client,
                                   options=WorkerOptions(max_error_pause_s=0.01))
            running = asyncio.create_task(worker.run())
            await passed(worker, errors=2)
            worker.request_stop()
            stats = await running
    finally:
        await db.close()
    assert stats.errors >= 2 and stats.claimed == 0
    assert "pass failed (OperationalError" in caplog.text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("command", [["worker"], ["serve", "--role", "all"]])
async def test_the_command_sends_through_the_simulator_and_stops_on_sigterm(
        tmp_path: Path, command: list[str]) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'sidestep.db'}")
    await db.migrate()
    clock = FrozenClock(datetime.now(UTC) - timedelta(minutes=1))  # the command reads the time
    try:
        async with rig(db, clock) as r:
            delivery_id = await r.post()
            port = _free_port()
            env = {**os.environ, "SIDESTEP_DATA_DIR": str(tmp_path / "data"),
                   "SIDESTEP_SECRET_KEY": VAULT_KEY.decode(), "SIDESTEP_LOG_LEVEL": "warning",
                   "SIDESTEP_PORT": str(port)}
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "sidestep", *command, "--simulator", r.sim.control_url,
                env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            try:
                await r.wait_for(delivery_id, "sent", timeout_s=60)
                if "serve" in command:
                    async with httpx.AsyncClient() as client:
                        answer = await client.get(f"http://127.0.0.1:{port}/login")
                    assert answer.status_code == 200
                process.send_signal(signal.SIGTERM)
                async with asyncio.timeout(30):
                    out, err = await process.communicate()
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            assert process.returncode == 0, err.decode()
            assert len(r.sim.world.record.all(PLATFORM)) == 1
    finally:
        await db.close()
