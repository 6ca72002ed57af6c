"""The bench's probe model agrees with the real probes against the real simulator."""

from __future__ import annotations

from typing import Any

import pytest

from sidestep.catalogue import default_catalogue
from sidestep.clock import FrozenClock
from sidestep.monitor.config import load_monitor_config
from sidestep.monitor.fusion import INTERNET
from sidestep.monitor.probes.dns import DnsProbe, NamedResolver
from sidestep.monitor.probes.http import HttpProbe
from sidestep.monitor.replay import ProbeModel
from sidestep.monitor.targets import Target, targets_for
from sidestep.sim.server import Simulator

CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("facebook", "none", {}),
    ("facebook", "dns_servfail", {}),
    ("facebook", "dns_nxdomain", {}),
    ("facebook", "timeout", {"dns": True}),
    ("facebook", "refused", {}),
    ("facebook", "timeout", {}),
    ("facebook", "http_5xx", {}),
    ("facebook", "partial", {"feature": "media"}),
    ("facebook", "garbage", {"variant": "html"}),
    ("facebook", "rate_limited", {}),
    ("facebook", "auth_expired", {}),
    ("whatsapp", "http_5xx", {}),  # its graph_api URL is on graph.facebook.com
    ("whatsapp", "partial", {"feature": "media"}),
    ("internet", "timeout", {"dns": True}),
    # web pages on a host another profile serves (x.com is oauth_hosts'), CDNs, fresh routes
    ("x", "http_5xx", {}),
    ("x", "partial", {"feature": "media"}),
    ("pinterest", "partial", {"feature": "media"}),
    ("tiktok", "rate_limited", {}),
    ("mastodon", "auth_expired", {}),
    ("telegram", "refused", {}),
]


def _target(key: str, sim: Simulator) -> Target:
    (target,) = targets_for(default_catalogue(), platforms=[key], served_hosts=sim.host_map())
    return target


@pytest.mark.parametrize(("faulted", "fault", "params"), CASES)
async def test_the_model_sees_what_the_probes_see(
    sim: Simulator, sim_resolver: NamedResolver, clock: FrozenClock,
    faulted: str, fault: str, params: dict[str, Any],
) -> None:
    await sim.load_specs()
    config = load_monitor_config().with_changes(probing={"http_timeout_s": 2.0})
    if fault != "none":
        feature = params.pop("feature", None)
        await sim.set_fault(faulted, fault, feature=feature, **params)
    model = ProbeModel(sim.world, config)
    dns = DnsProbe(clock=clock, timeout_s=1.0)
    async with sim.client() as client:
        http = HttpProbe(client=client, clock=clock, timeout_s=2.0)
        for key in [k for k in dict.fromkeys(("facebook", "whatsapp", faulted)) if k != INTERNET]:
            target = _target(key, sim)
            real_dns = [await dns.observe(key, h, sim_resolver, via="resolver")
                        for h in target.platform.hostnames]
            real_dns += await dns.probe_authoritative(target.platform, sim_resolver,
                                                      ns_port=sim_resolver.port)
            real_http = await http.probe_all(key, target.probes)
            modelled_dns = model.dns(target, clock.now())
            modelled_http = model.http(target, clock.now())
            assert {o.outcome for o in modelled_dns} == {o.outcome for o in real_dns}, key
            assert ({o.target: o.outcome for o in modelled_http}
                    == {o.target: o.outcome for o in real_http}), key
