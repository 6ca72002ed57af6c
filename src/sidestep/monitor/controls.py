"""Controls: hosts and resolvers unrelated to any platform, asked every round.

When they fail too, the trouble is our own connection, not the platform's: fusion then calls
a local outage (`fusion.INTERNET` goes `local_outage`) and no platform is blamed. The hosts
and resolvers are data (`[controls]` in `monitor.toml`); each check is one A query of a
control hostname through one control resolver, recorded as signal `control` on the
pseudo-platform `internet`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

from sidestep.monitor.config import Controls
from sidestep.monitor.fusion import INTERNET
from sidestep.monitor.outcomes import Signal
from sidestep.monitor.probes.dns import DnsProbe, NamedResolver
from sidestep.store.health import NewObservation

__all__ = ["ControlProbe", "control_resolvers"]


def control_resolvers(controls: Controls) -> list[NamedResolver]:
    return [NamedResolver(r.name, r.ip, r.port) for r in controls.resolvers]


class ControlProbe:
    """Each control hostname through each control resolver, with the DNS probe's bounds."""

    def __init__(self, dns: DnsProbe, *, hostnames: Sequence[str],
                 resolvers: Sequence[NamedResolver]) -> None:
        if not hostnames or not resolvers:
            raise ValueError("controls need at least one hostname and one resolver")
        self.dns = dns
        self.hostnames = list(hostnames)
        self.resolvers = list(resolvers)

    async def probe(self) -> list[NewObservation]:
        found = await asyncio.gather(*(
            self.dns.observe(INTERNET, host, resolver, via="resolver")
            for host in self.hostnames for resolver in self.resolvers))
        return [replace(obs, signal=Signal.CONTROL.value, feature="control") for obs in found]
