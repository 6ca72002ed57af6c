"""What every adapter test module provides, and the simulator the battery shares.

Each `tests/channels/test_<platform>.py` defines:

    async def prepare(sim: Simulator) -> dict[str, str]
        set up the account on the simulator (tokens, boards, chats) and return the
        channel's credentials as the adapter expects them;
    def text_content() -> Content
        the simplest post the platform takes (an image post for Instagram, a video for
        YouTube and TikTok);
    def media_content() -> Content | None
        a post with media, for the partial (media fails, text works) fault; None if the
        platform takes no media.

and may define `adapter_options() -> dict` with extra constructor arguments (the webhook
adapter's `allow_private_targets`, since the simulator lives on loopback).
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from types import ModuleType
from urllib.parse import urlparse

import httpx
import pytest
import pytest_asyncio

from sidestep.channels.base import Adapter
from sidestep.sim.server import Simulator
from sidestep.sim.testing import running_simulator

# A 1x1 PNG, for posts that need an image.
PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c63f8cfc0f01f00050001ff89993d1d0000000049454e44ae426082"
)


class FastClock:
    """World time running 1000 times faster than the wall clock, so media the simulator
    'processes' for seconds is ready after a few quick polls."""

    def __init__(self) -> None:
        self._start, self._t0 = datetime.now(UTC), time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=(time.monotonic() - self._t0) * 1000)


def answer(status: int, body: object, headers: dict[str, str] | None = None,
           ) -> Callable[[httpx.Request], httpx.Response]:
    """A MockTransport handler giving one documented answer (for error codes no fault makes)."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return lambda request: httpx.Response(status, content=content, headers=headers)


def adapter_test_module(platform: str) -> ModuleType:
    return importlib.import_module(f"tests.channels.test_{platform}")


def host_owner(sim: Simulator, adapter_cls: type[Adapter]) -> str:
    """The simulated platform whose listener serves the adapter's API host (connection
    faults such as DNS and refused connections act on hosts, not on products)."""
    from sidestep.catalogue import default_catalogue

    urls = default_catalogue().get(adapter_cls.platform).api_base_urls
    if not urls:  # an owned kind (webhook): its host is the simulated receiver itself
        return adapter_cls.platform
    host = urlparse(urls[0]).hostname
    for key, profile in sim.profiles.items():
        if host in profile.hosts:
            return key
    raise AssertionError(f"no simulated profile serves {host}")


@pytest.fixture(scope="session", autouse=True)
def loaded_specs() -> None:
    """Load every simulated platform's published spec once, before any adapter test: the
    large ones take seconds, which must not fall inside an adapter's short test timeout."""
    from sidestep.sim.profile import all_profiles
    from sidestep.sim.specs import load_spec, require_specs

    require_specs()  # without the specs, requests would go unchecked: fail, do not pass quietly
    for profile in all_profiles().values():
        if profile.spec is not None:
            load_spec(profile.spec)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_sim() -> AsyncIterator[Simulator]:
    async with running_simulator(seed=7) as sim:
        await sim.load_specs()  # some take seconds: not inside an adapter's short timeout
        yield sim
