"""Helpers for tests that need the simulator.

    async with running_simulator(seed=1) as sim:
        async with sim.client() as client:   # real platform URLs, sent to the simulator
            await sim.set_fault("mastodon", "rate_limited", retry_after_s=5)
            ...
        assert len(sim.world.record.all("mastodon")) == 1

or, as a fixture in a conftest.py:

    sim = simulator_fixture(seed=1)          # a pytest-asyncio fixture named `sim`
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sidestep.clock import Clock, SystemClock
from sidestep.sim.server import Simulator
from sidestep.sim.world import SimWorld

__all__ = ["running_simulator", "simulator_fixture"]


@asynccontextmanager
async def running_simulator(
    *,
    seed: int = 0,
    clock: Clock | None = None,
    world: SimWorld | None = None,
    **simulator_kw: Any,
) -> AsyncIterator[Simulator]:
    """A started `Simulator` (free ports, loopback), stopped on exit.

    The world is `world`, or a new one with `seed` and `clock` (default: the system clock).
    Other keyword arguments go to `Simulator` (`profiles=`, `dns=`, ...). Raises ValueError
    when both `world` and `seed`/`clock` are given: the world already has its own.
    """
    if world is None:
        world = SimWorld(clock=clock or SystemClock(), seed=seed)
    elif clock is not None or seed != 0:
        raise ValueError("give either a world or a seed/clock for a new one, not both")
    async with Simulator(world=world, **simulator_kw) as sim:
        yield sim


def simulator_fixture(**kw: Any) -> Callable[[], AsyncIterator[Simulator]]:
    """A pytest-asyncio fixture (function scope) yielding `running_simulator(**kw)`.

    Assign it in a conftest or test module: `sim = simulator_fixture(seed=1)`.
    """
    import pytest_asyncio  # test-only dependency, imported only when a fixture is made

    async def _simulator() -> AsyncIterator[Simulator]:
        async with running_simulator(**kw) as sim:
            yield sim

    fixture: Callable[[], AsyncIterator[Simulator]] = pytest_asyncio.fixture(_simulator)
    return fixture
