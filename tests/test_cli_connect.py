"""`sidestep channel connect`: one-line mistakes from the command, and the loopback flow end to
end (RFC 8252): the test plays the browser, GETting the consent URL through the simulator and
following the redirect to the command's listener on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from sidestep.channels.oauth import (
    AuthorizationDenied,
    OAuthApp,
    StateMismatch,
)
from sidestep.cli import app as cli
from sidestep.cli.connect import CallbackTimeout, Connected, LoopbackReceiver, connect_via_loopback
from sidestep.clock import FrozenClock
from sidestep.runtime import Runtime
from sidestep.sim.platforms._oauth import authorization_server
from sidestep.sim.server import Simulator
from sidestep.sim.testing import running_simulator
from sidestep.store.accounts import Accounts
from sidestep.store.channels import Channels
from sidestep.store.tables import Channel

runner = CliRunner()
APP = OAuthApp(client_id="cli-app", client_secret="cli-app-secret")


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIDESTEP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SIDESTEP_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    for name in ("X", "YOUTUBE"):
        monkeypatch.delenv(f"SIDESTEP_OAUTH_{name}_CLIENT_ID", raising=False)
        monkeypatch.delenv(f"SIDESTEP_OAUTH_{name}_CLIENT_SECRET", raising=False)


@pytest.mark.usefixtures("cli_env")
@pytest.mark.parametrize(("platform", "message"), [
    ("nope", "unknown platform 'nope'"),
    ("telegram", "error: telegram does not connect through a consent page (it uses bot_token); "
                 "add it with `sidestep channel add telegram <name>`"),
    ("google_business_profile", "connecting google_business_profile through its consent page "
                                "is not supported yet"),
    ("x", "error: Sidestep has no x app configured: set SIDESTEP_OAUTH_X_CLIENT_ID and "
          "SIDESTEP_OAUTH_X_CLIENT_SECRET"),
])
def test_a_platform_that_cannot_be_connected_is_one_clear_line(platform: str, message: str
                                                               ) -> None:
    code, _, err = invoke("channel", "connect", platform)
    assert code == 2
    assert message in " ".join(err.split())
    assert len(err.strip().splitlines()) <= 2  # one line, maybe wrapped by the terminal width


@pytest.mark.usefixtures("cli_env")
def test_a_redirect_port_in_use_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = invoke("init", "-w", "acme", "--email", "me@acme.example", "--password",
                          "long enough pw")
    assert code == 0, err
    monkeypatch.setenv("SIDESTEP_OAUTH_X_CLIENT_ID", "id")
    monkeypatch.setenv("SIDESTEP_OAUTH_X_CLIENT_SECRET", "secret")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = invoke("channel", "connect", "x", "--no-browser", "--redirect-port",
                              str(port))
    assert code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in err


# --- the loopback flow against the simulator ---------------------------------------------------


@pytest.fixture
async def sim(clock: FrozenClock) -> AsyncIterator[Simulator]:
    async with running_simulator(seed=4, clock=clock) as simulator:
        authorization_server(simulator.world, "x").register_client(APP.client_id,
                                                                   APP.client_secret)
        yield simulator


@pytest.fixture
async def workspace(runtime: Runtime, clock: FrozenClock) -> str:
    async with runtime.db.session() as s:
        await Accounts(s).create_workspace(slug="acme", name="Acme", at=clock.now())
    return "acme"


def browser(sim: Simulator, *, answer: str = "approve", tamper: Callable[[str], str] = str,
            ) -> tuple[Callable[[str], Awaitable[None]], list[httpx.Response]]:
    """A `show` that plays the person: consent page through the simulator, then the redirect
    to the loopback listener. Returns it and the listener's answers."""
    answers: list[httpx.Response] = []
    tasks: set[asyncio.Task[None]] = set()

    async def person(url: str) -> None:
        async with sim.client(timeout=10) as internet:
            redirect = await internet.get(f"{url}&sim_consent={answer}&sim_account=acme-x")
        location = tamper(redirect.headers["location"])
        assert location.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(timeout=10) as local:
            answers.append(await local.get(location))

    async def show(url: str) -> None:
        task = asyncio.create_task(person(url))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    return show, answers


async def run_connect(runtime: Runtime, sim: Simulator, show: Callable[[str], Awaitable[None]],
                      *, name: str | None = None, timeout_s: float = 10.0) -> Connected:
    async with sim.client(timeout=10) as client:
        return await connect_via_loopback(runtime=runtime, client=client, platform="x",
                                          app=APP, show=show, workspace="acme", name=name,
                                          timeout_s=timeout_s)


async def stored_channels(runtime: Runtime) -> list[Channel]:
    async with runtime.db.session() as s:
        return list((await s.scalars(select(Channel))).all())


async def test_the_loopback_flow_connects_x_with_tokens_encrypted(
        runtime: Runtime, sim: Simulator, workspace: str) -> None:
    show, answers = browser(sim)
    done = await run_connect(runtime, sim, show, name="X main")
    assert done.name == "X main" and done.workspace == "acme" and not done.reconnected
    assert answers[0].status_code == 200 and "return to the terminal" in answers[0].text
    [channel] = await stored_channels(runtime)
    assert channel.platform == "x" and channel.status == "active"
    async with runtime.db.session() as s:
        creds = Channels(s, workspace_id=channel.workspace_id,
                         vault=runtime.vault).credentials(channel)
    assert sim.world.account_for("x", creds["access_token"]) == "acme-x"
    assert channel.credentials_encrypted is not None
    assert creds["refresh_token"].encode() not in channel.credentials_encrypted
    again = await run_connect(runtime, sim, browser(sim)[0], name="X main")
    assert again.reconnected and again.channel_id == done.channel_id


async def test_a_callback_with_a_foreign_state_stores_nothing(
        runtime: Runtime, sim: Simulator, workspace: str) -> None:
    def forge(location: str) -> str:
        head, _, _ = location.partition("state=")
        return head + "state=forged"

    show, _ = browser(sim, tamper=forge)
    with pytest.raises(StateMismatch):
        await run_connect(runtime, sim, show)
    assert await stored_channels(runtime) == []
    assert authorization_server(sim.world, "x").token_calls == []


async def test_a_declined_consent_stores_nothing(
        runtime: Runtime, sim: Simulator, workspace: str) -> None:
    show, _ = browser(sim, answer="deny")
    with pytest.raises(AuthorizationDenied, match="access_denied"):
        await run_connect(runtime, sim, show)
    assert await stored_channels(runtime) == []


async def test_no_answer_within_the_wait_is_a_timeout(
        runtime: Runtime, sim: Simulator, workspace: str) -> None:
    async def nobody(url: str) -> None:
        return None

    with pytest.raises(CallbackTimeout, match="nothing was stored"):
        await run_connect(runtime, sim, nobody, timeout_s=0.2)
    assert await stored_channels(runtime) == []


async def test_the_listener_takes_one_callback_and_ignores_other_paths() -> None:
    async with LoopbackReceiver() as receiver, httpx.AsyncClient(timeout=5) as local:
        base = receiver.redirect_uri.removesuffix("/callback")
        assert (await local.get(f"{base}/favicon.ico")).status_code == 404
        assert (await local.get(f"{receiver.redirect_uri}?code=c&state=s")).status_code == 200
        assert (await local.get(f"{receiver.redirect_uri}?code=d&state=t")).status_code == 409
        assert await receiver.wait(1) == {"code": "c", "state": "s"}
