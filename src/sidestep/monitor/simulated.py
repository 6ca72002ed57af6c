"""Pointing the monitor at the built-in simulator instead of the internet."""

from __future__ import annotations

from typing import Any

from sidestep.monitor.probes.dns import NamedResolver
from sidestep.monitor.runner import Network
from sidestep.sim.server import Simulator

__all__ = ["simulator_network"]


def simulator_network(sim: Simulator, **client_kw: Any) -> Network:
    """The simulator's client, its DNS server as resolver, bootstrap and control resolver.

    Raises ValueError when the simulator runs without its DNS server.
    """
    if sim.dns_address is None:
        raise ValueError("the monitor needs the simulator's DNS server (dns=True)")
    resolver = NamedResolver("sim", *sim.dns_address)
    return Network(client=sim.client(**client_kw), resolvers=[resolver], bootstrap=resolver,
                   ns_port=resolver.port, control_resolvers=[resolver])
