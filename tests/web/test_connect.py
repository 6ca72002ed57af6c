"""Connecting an account from the dashboard, end to end: the owner's Connect button, the
simulated consent page (played through the simulator's client), the callback into the app over
the ASGI transport, and every way a callback is refused without storing anything."""

from __future__ import annotations

import asyncio
import html
import re
import socket
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import Route, async_playwright
from sqlalchemy import select

from sidestep.clock import FrozenClock
from sidestep.domain.states import ChannelStatus
from sidestep.runtime import Runtime
from sidestep.sim.platforms._oauth import authorization_server
from sidestep.sim.server import Simulator
from sidestep.sim.testing import running_simulator
from sidestep.store.channels import Channels
from sidestep.store.tables import Channel, Event
from sidestep.web.app import create_app
from sidestep.web.connect import PENDING_COOKIE
from tests.web.conftest import CATALOGUE, PASSWORD, World, sign_in

_CONTINUE = re.compile(r'id="continue" href="([^"]+)"')


@pytest.fixture
async def sim(clock: FrozenClock, app: FastAPI, monkeypatch: pytest.MonkeyPatch
              ) -> AsyncIterator[Simulator]:
    async with running_simulator(seed=9, clock=clock) as simulator:
        for platform, client_id in (("x", "x-web-app"), ("instagram", "ig-web-app")):
            prefix = f"SIDESTEP_OAUTH_{platform.upper()}"
            monkeypatch.setenv(f"{prefix}_CLIENT_ID", client_id)
            monkeypatch.setenv(f"{prefix}_CLIENT_SECRET", f"{client_id}-secret")
            authorization_server(simulator.world, platform).register_client(
                client_id, f"{client_id}-secret")
        monkeypatch.delenv("SIDESTEP_OAUTH_YOUTUBE_CLIENT_ID", raising=False)
        app.state.oauth_transport = simulator.transport()
        yield simulator


@pytest.fixture
async def browser(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    """The person's browser out on the internet (the consent pages)."""
    async with sim.client(timeout=10) as http:
        yield http


async def start(client: httpx.AsyncClient, csrf: str, platform: str = "x",
                name: str = "") -> tuple[httpx.Response, str]:
    """Press Connect; return the answer and the consent URL it forwards to."""
    response = await client.post(f"/w/acme/channels/connect/{platform}",
                                 data={"csrf_token": csrf, "name": name})
    assert response.status_code == 200, response.text
    match = _CONTINUE.search(response.text)
    assert match
    return response, html.unescape(match.group(1))


async def consent(browser: httpx.AsyncClient, url: str, answer: str = "approve") -> str:
    """Play the consent page; return the path and query the platform redirects back to."""
    redirect = await browser.get(f"{url}&sim_consent={answer}&sim_account=acme-brand")
    assert redirect.status_code == 302
    back = urlsplit(redirect.headers["location"])
    assert back.path.startswith("/oauth/callback/")
    return f"{back.path}?{back.query}"


async def channel_named(runtime: Runtime, name: str) -> Channel | None:
    async with runtime.db.session() as s:
        return await s.scalar(select(Channel).where(Channel.name == name))


async def test_an_owner_connects_x_and_the_tokens_are_stored_encrypted(
        client: httpx.AsyncClient, runtime: Runtime, world: World, sim: Simulator,
        browser: httpx.AsyncClient) -> None:
    csrf = await sign_in(client, runtime, world.owner)
    page = (await client.get("/w/acme/channels")).text
    assert 'action="/w/acme/channels/connect/x"' in page and "Connect X" in page
    assert "Connect YouTube" not in page  # not configured: named in the hint, no button
    assert "To connect" in page and "YouTube" in page and "SIDESTEP_OAUTH_" in page
    answer, url = await start(client, csrf)
    assert url.startswith("https://x.com/i/oauth2/authorize?")
    assert 'http-equiv="refresh"' in answer.text
    cookie = answer.headers["set-cookie"]
    assert f"{PENDING_COOKIE}=" in cookie and "HttpOnly" in cookie
    assert "Path=/oauth/callback" in cookie and "SameSite=lax" in cookie
    assert "code_verifier" not in url

    done = await client.get(await consent(browser, url))
    assert done.status_code == 303
    assert done.headers["location"] == "/w/acme/channels?connected=x"
    assert f'{PENDING_COOKIE}=""' in done.headers["set-cookie"]  # single use

    channel = await channel_named(runtime, "X")
    assert channel is not None and channel.status == ChannelStatus.ACTIVE
    assert channel.credentials_encrypted is not None
    async with runtime.db.session() as s:
        creds = Channels(s, workspace_id=channel.workspace_id,
                         vault=runtime.vault).credentials(channel)
    assert sim.world.account_for("x", creds["access_token"]) == "acme-brand"
    assert creds["refresh_token"] and creds["expires_at"]
    assert creds["access_token"].encode() not in channel.credentials_encrypted
    notice = (await client.get("/w/acme/channels?connected=x")).text
    assert "X account connected." in notice


async def test_only_owners_see_connect_buttons_and_may_start(
        client: httpx.AsyncClient, runtime: Runtime, world: World, sim: Simulator) -> None:
    csrf = await sign_in(client, runtime, world.editor)
    assert "Connect X" not in (await client.get("/w/acme/channels")).text
    refused = await client.post("/w/acme/channels/connect/x", data={"csrf_token": csrf})
    assert refused.status_code == 403
    assert PENDING_COOKIE not in refused.headers.get("set-cookie", "")


async def test_starting_needs_the_sessions_csrf_token(
        client: httpx.AsyncClient, runtime: Runtime, world: World, sim: Simulator) -> None:
    await sign_in(client, runtime, world.owner)
    refused = await client.post("/w/acme/channels/connect/x", data={"csrf_token": "forged"})
    assert refused.status_code == 403
    assert (await client.get("/w/acme/channels/connect/x")).status_code == 405


async def test_a_callback_with_another_state_is_refused_and_stores_nothing(
        client: httpx.AsyncClient, runtime: Runtime, world: World, sim: Simulator,
        browser: httpx.AsyncClient) -> None:
    csrf = await sign_in(client, runtime, world.owner)
    _, url = await start(client, csrf)
    back = await consent(browser, url)
    forged = re.sub(r"state=[^&]+", "state=attacker-state", back)
    refused = await client.get(forged)
    assert refused.status_code == 400
    assert "does not belong to this connection attempt" in refused.text
    assert await channel_named(runtime, "X") is None
    assert authorization_server(sim.world, "x").token_calls == []


async def test_a_callback_without_the_pending_cookie_is_refused(
        client: httpx.AsyncClient, runtime: Runtime, world: World, sim: Simulator,
        browser: httpx.AsyncClient) -> None:
    csrf = await sign_in(client, runtime, world.owner)
    _, url = await start(client, csrf)
    back = await consent(browser, url)
    client.cookies.delete(PENDING_COOKIE, domain="testserver.local", path="/oauth/callback")
    refused = await client.get(back)
    assert refused.status_code == 400 and "did not start here" in refused.text
    assert await channel_named(runtime, "X") is None


async def test_a_callback_in_another_session_of_the_same_user_is_refused(
        client: httpx.AsyncClient, runtime: Runtime, world: World, sim: Simulator,
        browser: httpx.AsyncClient) -> None:
    csrf = await sign_in(client, runtime, world.owner)
    _, url = await start(client, csrf)
    back = await consent(browser, url)
    await sign_in(client, runtime, world.owner)  # a new session, the old pending cookie
    refused = await client.get(back)
    assert refused.status_code == 400
    assert await channel_named(runtime, "X") is None


async def test_a_callback_after_ten_minutes_is_refused(
        client: httpx.AsyncClient, runtime: Runtime, world: World, sim: Simulator,
        browser: httpx.AsyncClient, clock: FrozenClock) -> None:
    csrf = await sign_in(client, runtime, world.owner)
    _, url = await start(client, csrf)
    back = await consent(browser, url)
    clock.advance(seconds=601)
    refused = await client.get(back)
    assert refused.status_code == 400 and "longer than 10 minutes" in refused.text
    assert await channel_named(runtime, "X") is None


async def test_a_replayed_callback_is_refused_even_with_the_cookie_put_back(
        client: httpx.AsyncClient, runtime: Runtime, world: World, sim: Simulator,
        browser: httpx.AsyncClient) -> None:
    csrf = await sign_in(client, runtime, world.owner)
    answer, url = await start(client, csrf)
    sealed = answer.cookies[PENDING_COOKIE]
    back = await consent(browser, url)
    assert (await client.get(back)).status_code == 303
    calls = len(authorization_server(sim.world, "x").token_calls)
    client.cookies.set(PENDING_COOKIE, sealed, domain="testserver.local", path="/oauth/callback")
    replayed = await client.get(back)
    assert replayed.status_code == 400 and "used already" in replayed.text
    assert len(authorization_server(sim.world, "x").token_calls) == calls
    async with runtime.db.session() as s:
        connected = (await s.scalars(select(Event).where(Event.type == "channel.connected")))
        assert len(connected.all()) == 1


async def test_a_declined_consent_returns_to_the_channels_page_with_a_note(
        client: httpx.AsyncClient, runtime: Runtime, world: World, sim: Simulator,
        browser: httpx.AsyncClient) -> None:
    csrf = await sign_in(client, runtime, world.owner)
    _, url = await start(client, csrf)
    back = await client.get(await consent(browser, url, answer="deny"))
    assert back.status_code == 303 and back.headers["location"] == "/w/acme/channels?declined=x"
    assert "X did not grant access" in (await client.get(back.headers["location"])).text
    assert await channel_named(runtime, "X") is None


async def test_an_unconfigured_platform_names_the_variable_to_set(
        client: httpx.AsyncClient, runtime: Runtime, world: World, sim: Simulator) -> None:
    csrf = await sign_in(client, runtime, world.owner)
    refused = await client.post("/w/acme/channels/connect/youtube", data={"csrf_token": csrf})
    assert refused.status_code == 503
    assert "SIDESTEP_OAUTH_YOUTUBE_CLIENT_ID" in refused.text
    unknown = await client.post("/w/acme/channels/connect/telegram", data={"csrf_token": csrf})
    assert unknown.status_code == 404


async def test_a_channel_that_needs_reconnect_gets_a_button_that_reconnects_it(
        client: httpx.AsyncClient, runtime: Runtime, world: World, sim: Simulator,
        browser: httpx.AsyncClient, clock: FrozenClock) -> None:
    async with runtime.db.session() as s:
        instagram = await s.get(Channel, world.instagram_id)
        assert instagram is not None
        repo = Channels(s, workspace_id=instagram.workspace_id, vault=runtime.vault)
        await repo.set_status(instagram, ChannelStatus.NEEDS_RECONNECT, at=clock.now())
    csrf = await sign_in(client, runtime, world.owner)
    page = (await client.get("/w/acme/channels")).text
    assert "Reconnect Instagram main" in page
    _, url = await start(client, csrf, platform="instagram", name="Instagram main")
    done = await client.get(await consent(browser, url))
    assert done.headers["location"] == "/w/acme/channels?connected=instagram"
    async with runtime.db.session() as s:
        again = await s.get(Channel, world.instagram_id)
        assert again is not None and again.status == ChannelStatus.ACTIVE
        creds = Channels(s, workspace_id=again.workspace_id,
                         vault=runtime.vault).credentials(again)
    assert sim.world.account_for("instagram", creds["access_token"]) == "acme-brand"
    expires = creds["expires_at"]
    assert expires and datetime.fromisoformat(expires) > clock.now() + timedelta(days=59)


# --- in a real browser: the CSP lets the forward through, the cookies come back ---------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture
async def served(runtime: Runtime, world: World, sim: Simulator) -> AsyncIterator[str]:
    """The app under uvicorn on a free loopback port, calling the simulator's platforms, with
    its public URL (and so its redirect URIs) set to that port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    runtime.settings.base_url = base_url
    app = create_app(runtime, catalogue=CATALOGUE)
    app.state.oauth_transport = sim.transport()
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    async with asyncio.timeout(10):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
    try:
        yield base_url
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
def chromium_path() -> Path:
    """Debian's Chromium; its absence fails the test (never skips it)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test`, which installs Chromium")
    return CHROMIUM


@pytest.mark.browser
async def test_in_chromium_connect_reaches_the_consent_page_and_comes_back_connected(
        served: str, runtime: Runtime, sim: Simulator, browser: httpx.AsyncClient,
        chromium_path: Path) -> None:
    blocked: list[str] = []

    async def consent_page(route: Route) -> None:
        """x.com, played by the simulator: the person allows at once."""
        answer = await browser.get(route.request.url + "&sim_consent=approve"
                                   "&sim_account=acme-brand")
        await route.fulfill(status=answer.status_code,
                            headers={"location": answer.headers["location"]})

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(chromium_path),
                                                    args=CHROMIUM_ARGS, headless=True)
        try:
            page = await chromium.new_page()
            page.on("console", lambda m: blocked.append(m.text)
                    if "Content Security Policy" in m.text else None)
            await page.route("https://x.com/**", consent_page)
            await page.goto(served + "/login?next=/w/acme/channels")
            await page.fill('input[name="email"]', "owner@example.org")
            await page.fill('input[name="password"]', PASSWORD)
            await page.click('button[type="submit"]')
            await page.wait_for_url(served + "/w/acme/channels")
            await page.click('button:has-text("Connect X")')
            await page.wait_for_url(served + "/w/acme/channels?connected=x")
            assert await page.text_content("p.notice") == "X account connected."
        finally:
            await chromium.close()
    assert blocked == []
    channel = await channel_named(runtime, "X")
    assert channel is not None and channel.status == ChannelStatus.ACTIVE
