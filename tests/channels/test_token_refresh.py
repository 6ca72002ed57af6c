"""Stored OAuth tokens: encrypted at rest, renewed before they expire (time moved by a frozen
clock), and an unrenewable grant turns the channel to needs_reconnect with an event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from sidestep.channels.oauth import (
    OAuthApp,
    OAuthAppSettings,
    TokenSet,
    exchange_code,
    start_authorization,
)
from sidestep.channels.token_refresh import (
    CONNECTED_EVENT,
    FAILED_EVENT,
    refresh_due_tokens,
    save_connection,
    state_already_used,
)
from sidestep.clock import FrozenClock
from sidestep.domain.states import ChannelStatus
from sidestep.runtime import Runtime
from sidestep.sim.platforms._oauth import authorization_server
from sidestep.sim.server import Simulator
from sidestep.sim.testing import running_simulator
from sidestep.store.accounts import Accounts
from sidestep.store.channels import ChannelError, Channels
from sidestep.store.db import Database
from sidestep.store.tables import Channel, Event
from sidestep.vault import Vault

REDIRECT = "http://127.0.0.1:8765/callback"
APPS = OAuthAppSettings(
    x_client_id="x-app", x_client_secret="x-app-secret",
    facebook_client_id="fb-app", facebook_client_secret="fb-app-secret",
    threads_client_id="th-app", threads_client_secret="th-app-secret",
)


@pytest.fixture
async def sim(clock: FrozenClock) -> AsyncIterator[Simulator]:
    async with running_simulator(seed=5, clock=clock) as simulator:
        for platform in ("x", "facebook", "threads"):
            app = APPS.app(platform)
            authorization_server(simulator.world, platform).register_client(
                app.client_id, app.client_secret)
        yield simulator


@pytest.fixture
async def http(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    async with sim.client(timeout=10) as client:
        yield client


async def workspace_id(db: Database, clock: FrozenClock) -> int:
    async with db.session() as s:
        return (await Accounts(s).create_workspace(slug="acme", name="Acme", at=clock.now())).id


async def connect(db: Database, vault: Vault, http: httpx.AsyncClient, clock: FrozenClock,
                  platform: str, *, ws: int, name: str) -> tuple[int, TokenSet]:
    """The whole flow, the person played by a GET with sim_consent=approve."""
    app = APPS.app(platform)
    url, pending = start_authorization(platform, redirect_uri=REDIRECT, client_id=app.client_id,
                                       now=clock.now())
    location = (await http.get(url + "&sim_consent=approve&sim_account=acme")).headers["location"]
    answer = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    tokens = await exchange_code(http, pending, code=answer["code"], state=answer["state"],
                                 app=app, now=clock.now())
    async with db.session() as s:
        channel, _ = await save_connection(Channels(s, workspace_id=ws, vault=vault),
                                           platform=platform, name=name, tokens=tokens,
                                           at=clock.now(), state=pending.state)
        return channel.id, tokens


async def stored(db: Database, vault: Vault, channel_id: int) -> tuple[Channel, TokenSet]:
    async with db.session() as s:
        channel = await s.get(Channel, channel_id)
        assert channel is not None
        repo = Channels(s, workspace_id=channel.workspace_id, vault=vault)
        return channel, TokenSet.from_credentials(repo.credentials(channel))


async def events(db: Database, event_type: str) -> list[Event]:
    async with db.session() as s:
        return list((await s.scalars(select(Event).where(Event.type == event_type)
                                     .order_by(Event.id))).all())


def read_database_files(data_dir: Path) -> bytes:
    files = sorted(data_dir.glob("sidestep.db*"))  # the database, its WAL and shared memory
    assert files
    return b"".join(path.read_bytes() for path in files)


async def test_tokens_are_encrypted_in_the_database_file(
        runtime: Runtime, sim: Simulator, http: httpx.AsyncClient, clock: FrozenClock) -> None:
    ws = await workspace_id(runtime.db, clock)
    _, tokens = await connect(runtime.db, runtime.vault, http, clock, "x", ws=ws, name="X")
    await runtime.db.close()  # checkpoint the WAL: every byte written is in the files now
    content = await asyncio.to_thread(read_database_files, runtime.settings.data_dir)
    assert tokens.refresh_token
    for secret in (tokens.access_token, tokens.refresh_token):
        assert secret.encode() not in content


async def test_a_token_about_to_expire_is_renewed_and_the_new_one_works(
        runtime: Runtime, sim: Simulator, http: httpx.AsyncClient, clock: FrozenClock) -> None:
    ws = await workspace_id(runtime.db, clock)
    channel_id, first = await connect(runtime.db, runtime.vault, http, clock, "x", ws=ws,
                                      name="X")
    assert first.expires_at is not None
    clock.set(first.expires_at - timedelta(minutes=30))
    report = await refresh_due_tokens(runtime.db, runtime.vault, clock, http, within_s=3600,
                                      apps=APPS)
    assert report.refreshed == [channel_id]
    channel, renewed = await stored(runtime.db, runtime.vault, channel_id)
    assert channel.status == ChannelStatus.ACTIVE
    assert renewed.access_token != first.access_token
    assert renewed.refresh_token != first.refresh_token  # X rotates refresh tokens
    assert renewed.expires_at is not None and renewed.expires_at > clock.now() + timedelta(hours=1)
    assert sim.world.account_for("x", renewed.access_token) == "acme"
    assert [e.payload["channel_id"] for e in
            await events(runtime.db, "channel.credentials_changed")] == [channel_id]


async def test_a_token_far_from_expiry_is_left_alone(
        runtime: Runtime, sim: Simulator, http: httpx.AsyncClient, clock: FrozenClock) -> None:
    ws = await workspace_id(runtime.db, clock)
    channel_id, first = await connect(runtime.db, runtime.vault, http, clock, "x", ws=ws,
                                      name="X")
    calls = len(authorization_server(sim.world, "x").token_calls)
    report = await refresh_due_tokens(runtime.db, runtime.vault, clock, http, within_s=600,
                                      apps=APPS)
    assert report.not_due == [channel_id] and not report.refreshed
    assert len(authorization_server(sim.world, "x").token_calls) == calls
    assert (await stored(runtime.db, runtime.vault, channel_id))[1] == first


async def test_a_revoked_grant_marks_the_channel_needs_reconnect_and_tells_its_owner(
        runtime: Runtime, sim: Simulator, http: httpx.AsyncClient, clock: FrozenClock) -> None:
    ws = await workspace_id(runtime.db, clock)
    channel_id, first = await connect(runtime.db, runtime.vault, http, clock, "x", ws=ws,
                                      name="X")
    authorization_server(sim.world, "x").revoke_account("acme")
    assert first.expires_at is not None
    clock.set(first.expires_at - timedelta(minutes=5))
    report = await refresh_due_tokens(runtime.db, runtime.vault, clock, http, apps=APPS)
    assert report.needs_reconnect == [channel_id]
    channel, kept = await stored(runtime.db, runtime.vault, channel_id)
    assert channel.status == ChannelStatus.NEEDS_RECONNECT
    assert kept == first
    [changed] = await events(runtime.db, "channel.status_changed")
    assert changed.workspace_id == ws
    assert changed.payload == {"channel_id": channel_id, "old": "active", "new": "needs_reconnect"}
    [failed] = await events(runtime.db, FAILED_EVENT)
    assert failed.payload["error_class"] == "auth"
    assert first.refresh_token and first.refresh_token not in str(failed.payload)
    again = await refresh_due_tokens(runtime.db, runtime.vault, clock, http, apps=APPS)
    assert again.needs_reconnect == [] and again.failed == []  # not retried until reconnected


async def test_facebook_tokens_that_cannot_be_renewed_ask_for_a_reconnect_before_they_expire(
        runtime: Runtime, sim: Simulator, http: httpx.AsyncClient, clock: FrozenClock) -> None:
    ws = await workspace_id(runtime.db, clock)
    channel_id, first = await connect(runtime.db, runtime.vault, http, clock, "facebook",
                                      ws=ws, name="Page")
    assert first.expires_at is not None
    assert first.expires_at - clock.now() > timedelta(days=59)  # the long-lived swap happened
    clock.set(first.expires_at - timedelta(minutes=59))
    report = await refresh_due_tokens(runtime.db, runtime.vault, clock, http, apps=APPS)
    assert report.needs_reconnect == [channel_id]
    assert (await stored(runtime.db, runtime.vault, channel_id))[0].status == "needs_reconnect"


async def test_threads_tokens_are_renewed_by_swapping_the_token_itself(
        runtime: Runtime, sim: Simulator, http: httpx.AsyncClient, clock: FrozenClock) -> None:
    ws = await workspace_id(runtime.db, clock)
    channel_id, first = await connect(runtime.db, runtime.vault, http, clock, "threads",
                                      ws=ws, name="Threads")
    assert first.expires_at is not None and first.refresh_token is None
    clock.set(first.expires_at - timedelta(minutes=10))
    report = await refresh_due_tokens(runtime.db, runtime.vault, clock, http, apps=APPS)
    assert report.refreshed == [channel_id]
    renewed = (await stored(runtime.db, runtime.vault, channel_id))[1]
    assert renewed.expires_at is not None and renewed.expires_at - clock.now() > timedelta(days=59)


async def test_an_outage_at_the_token_endpoint_keeps_the_channel_active_and_is_retried(
        runtime: Runtime, sim: Simulator, http: httpx.AsyncClient, clock: FrozenClock) -> None:
    ws = await workspace_id(runtime.db, clock)
    channel_id, first = await connect(runtime.db, runtime.vault, http, clock, "x", ws=ws,
                                      name="X")
    assert first.expires_at is not None
    clock.set(first.expires_at - timedelta(minutes=20))
    await sim.set_fault("x", "http_5xx", kind="unavailable")
    report = await refresh_due_tokens(runtime.db, runtime.vault, clock, http, apps=APPS)
    assert report.failed == [channel_id]
    assert (await stored(runtime.db, runtime.vault, channel_id))[0].status == "active"
    [failed] = await events(runtime.db, FAILED_EVENT)
    assert failed.payload["error_class"] == "outage"
    await sim.clear_faults()
    assert (await refresh_due_tokens(runtime.db, runtime.vault, clock, http, apps=APPS)
            ).refreshed == [channel_id]


async def test_a_platform_without_app_credentials_is_reported_not_disconnected(
        runtime: Runtime, sim: Simulator, http: httpx.AsyncClient, clock: FrozenClock) -> None:
    ws = await workspace_id(runtime.db, clock)
    channel_id, first = await connect(runtime.db, runtime.vault, http, clock, "x", ws=ws,
                                      name="X")
    assert first.expires_at is not None
    clock.set(first.expires_at)
    report = await refresh_due_tokens(runtime.db, runtime.vault, clock, http,
                                      apps=OAuthAppSettings(x_client_id=None, x_client_secret=None))
    assert report.failed == [channel_id]
    assert (await stored(runtime.db, runtime.vault, channel_id))[0].status == "active"
    [failed] = await events(runtime.db, FAILED_EVENT)
    assert "SIDESTEP_OAUTH_X_CLIENT_ID" in failed.payload["detail"]


async def test_reconnecting_replaces_the_tokens_keeps_other_fields_and_reactivates(
        runtime: Runtime, clock: FrozenClock) -> None:
    ws = await workspace_id(runtime.db, clock)
    async with runtime.db.session() as s:
        repo = Channels(s, workspace_id=ws, vault=runtime.vault)
        channel = await repo.add(platform="x", name="X", credentials={
            "access_token": "old", "refresh_token": "old-r", "expires_at": "", "scope": "",
            "account_id": "", "note": "kept"}, at=clock.now())
        await repo.set_status(channel, ChannelStatus.NEEDS_RECONNECT, at=clock.now())
        new = TokenSet(access_token="new", refresh_token=None, expires_at=clock.now())
        again, reconnected = await save_connection(repo, platform="x", name="X", tokens=new,
                                                   at=clock.now(), state="st")
        assert reconnected and again.id == channel.id
        assert again.status == ChannelStatus.ACTIVE
        creds = repo.credentials(again)
        assert creds["access_token"] == "new" and creds["refresh_token"] == ""
        assert creds["note"] == "kept"
        with pytest.raises(ChannelError, match="is a x channel"):
            await save_connection(repo, platform="youtube", name="X", tokens=new,
                                  at=clock.now())
        assert await state_already_used(s, workspace_id=ws, state="st", now=clock.now())
        assert not await state_already_used(s, workspace_id=ws, state="other", now=clock.now())
        [connected] = (await s.scalars(select(Event).where(Event.type == CONNECTED_EVENT))).all()
        assert connected.payload["reconnected"] is True and "st" != connected.payload[
            "state_digest"]


async def test_renewal_works_on_each_database_engine(
        db: Database, clock: FrozenClock) -> None:
    vault = Vault(Fernet.generate_key())
    async with running_simulator(seed=6, clock=clock) as simulator:
        app: OAuthApp = APPS.app("x")
        authorization_server(simulator.world, "x").register_client(app.client_id,
                                                                   app.client_secret)
        async with simulator.client(timeout=10) as client:
            ws = await workspace_id(db, clock)
            channel_id, first = await connect(db, vault, client, clock, "x", ws=ws, name="X")
            assert first.expires_at is not None
            clock.set(first.expires_at - timedelta(minutes=1))
            report = await refresh_due_tokens(db, vault, clock, client, apps=APPS)
    assert report.refreshed == [channel_id]
