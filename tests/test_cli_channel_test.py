"""`sidestep channel test`: credentials checked against the simulator, a sample post dry-run.

The command runs in-process (CliRunner) in a worker thread, with its own event loop, while
the simulator serves from the test's loop; `make_client` in the command's module is pointed
at the simulator, the one seam the command documents for this.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from typer.testing import CliRunner

import sidestep.cli.channel_test as channel_test_module
from sidestep.channels.base import all_adapters
from sidestep.cli import app
from sidestep.sim.server import Simulator
from sidestep.sim.testing import running_simulator
from tests.channels.conftest import adapter_test_module

pytestmark = pytest.mark.asyncio(loop_scope="module")
runner = CliRunner()
WITH_PREPARE = sorted(p for p in all_adapters()
                      if hasattr(adapter_test_module(p), "prepare"))


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One initialised workspace for the module (init and migrations cost seconds)."""
    data = tmp_path_factory.mktemp("cli") / "data"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SIDESTEP_DATA_DIR", str(data))
        patch.delenv("SIDESTEP_DATABASE_URL", raising=False)
        patch.delenv("SIDESTEP_WORKSPACE", raising=False)
        code, _, err = invoke_sync("init", "-w", "acme", "--email", "me@acme.example",
                                   "--password", "long enough pw")
        assert code == 0, err
        yield data


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim(workspace: Path) -> AsyncIterator[Simulator]:
    async with running_simulator(seed=11) as simulator:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(channel_test_module, "make_client", lambda: simulator.client())
            yield simulator


def invoke_sync(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


async def invoke(*args: str, input: str | None = None) -> tuple[int, str, str]:
    """Run the CLI off the event loop, so the simulator on this loop can answer it."""
    return await asyncio.to_thread(invoke_sync, *args, input=input)


async def add_channel(platform: str, name: str, credentials: dict[str, str] | None) -> None:
    args = ["channel", "add", platform, name]
    if credentials is not None:
        args.append("--credentials-stdin")
    code, _, err = await invoke(*args, input=json.dumps(credentials or {}))
    assert code == 0, err


async def telegram_credentials(sim: Simulator) -> dict[str, str]:
    prepare = adapter_test_module("telegram").prepare
    credentials: dict[str, str] = await prepare(sim)
    return credentials


async def test_it_prints_the_account_and_a_dry_run_of_the_sample_post(sim: Simulator) -> None:
    await add_channel("telegram", "News", await telegram_credentials(sim))
    published_before = len(sim.world.record.all("telegram"))

    code, out, err = await invoke("channel", "test", "News")

    assert code == 0, out + err
    assert "(Telegram): the credentials work, account" in out
    assert "Dry run of a sample post" in out and "sample.jpg (image/jpeg" in out
    assert "#SpringCollection" in out
    assert "The sample post would go to Telegram as shown." in out
    assert len(sim.world.record.all("telegram")) == published_before  # nothing was sent


async def test_it_shows_how_a_long_text_would_be_shortened(sim: Simulator) -> None:
    await add_channel("telegram", "Long", await telegram_credentials(sim))
    code, out, err = await invoke("channel", "test", "Long", "--text", "Our news. " * 600)
    assert code == 0, out + err
    assert "changed: text shortened to" in out and "with a link to the full post" in out


async def test_refused_credentials_are_one_line_that_says_what_to_do(sim: Simulator) -> None:
    await add_channel("telegram", "Stale", {"bot_token": "1:revoked", "chat_id": "@news"})

    code, out, err = await invoke("channel", "test", "Stale")

    assert code == 1
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("error: Telegram refused the credentials of channel 'Stale'")
    assert "`sidestep channel add telegram Stale --credentials-stdin`" in err
    assert "Dry run" not in out


async def test_missing_credentials_are_named(sim: Simulator) -> None:
    await add_channel("telegram", "Empty", None)
    code, _, err = await invoke("channel", "test", "Empty")
    assert code == 1
    assert "channel 'Empty' has no bot_token, chat_id stored for Telegram" in err


async def test_a_platform_that_does_not_answer_is_not_mistaken_for_bad_credentials(
    sim: Simulator,
) -> None:
    await add_channel("telegram", "Down", await telegram_credentials(sim))
    await sim.set_fault("telegram", "dns_servfail")
    try:
        code, _, err = await invoke("channel", "test", "Down")
    finally:
        await sim.clear_faults("telegram")
    assert code == 1
    assert err.startswith("error: could not check channel 'Down': Telegram did not answer")
    assert "try again later" in err


async def test_a_sample_the_platform_would_reject_exits_1_with_the_reason(sim: Simulator) -> None:
    await add_channel("telegram", "Strict", await telegram_credentials(sim))
    url = "https://example.com/" + "x" * 5000
    code, out, err = await invoke("channel", "test", "Strict", "--text", url)
    assert code == 1
    assert "problem (too_long)" in out
    assert err.startswith("error: Telegram would reject the sample post: The link "
                          "'https://example.com/xxxxxxxxxxxxxxxxxxx…' is longer than one "
                          "Telegram post can hold")


async def test_an_unknown_channel_is_a_user_mistake(sim: Simulator) -> None:
    code, _, err = await invoke("channel", "test", "nope")
    assert code == 2
    assert err.strip() == "error: no channel 'nope' in workspace acme"


async def test_a_platform_without_an_adapter_is_a_user_mistake(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_channel("snapchat", "Snaps", {"access_token": "t"})
    monkeypatch.setattr(channel_test_module, "all_adapters", dict)
    code, _, err = await invoke("channel", "test", "Snaps")
    assert code == 2
    assert "Sidestep cannot publish to snapchat yet" in err


@pytest.mark.parametrize("platform", WITH_PREPARE)
async def test_every_registered_adapter_passes_the_credential_check_on_the_simulator(
    sim: Simulator, platform: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = adapter_test_module(platform)
    options = module.adapter_options() if hasattr(module, "adapter_options") else {}
    if options:  # e.g. the webhook adapter must be allowed to reach the loopback simulator
        adapters = {platform: functools.partial(all_adapters()[platform], **options)}
        monkeypatch.setattr(channel_test_module, "all_adapters", lambda: adapters)
    credentials = await module.prepare(sim)
    await add_channel(platform, f"main-{platform}", credentials)
    published_before = len(sim.world.record.all(platform))

    code, out, err = await invoke("channel", "test", f"main-{platform}")

    assert "the credentials work, account" in out, out + err
    # Some platforms cannot take the sample (YouTube needs a video): then the reason is shown.
    assert code == 0 or (code == 1 and "would reject the sample post" in err), out + err
    assert len(sim.world.record.all(platform)) == published_before
