"""A simulator on a frozen clock, the catalogue, and the DNS address of the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sidestep.catalogue.loader import Catalogue, default_catalogue
from sidestep.clock import FrozenClock
from sidestep.monitor.probes.dns import NamedResolver
from sidestep.sim.server import Simulator
from sidestep.sim.testing import running_simulator


@pytest.fixture
async def sim(clock: FrozenClock) -> AsyncIterator[Simulator]:
    async with running_simulator(seed=1, clock=clock) as simulator:
        yield simulator


@pytest.fixture
def catalogue() -> Catalogue:
    return default_catalogue()


@pytest.fixture
def sim_resolver(sim: Simulator) -> NamedResolver:
    assert sim.dns_address is not None
    return NamedResolver("sim", *sim.dns_address)
