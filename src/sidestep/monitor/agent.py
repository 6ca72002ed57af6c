"""A probe agent: the hub's probes, run from another network, sent back signed.

    probes = ProbeRound(platforms=catalogue.rented(), http=..., dns=..., status=...,
                        resolvers=[NamedResolver("cloudflare", "1.1.1.1")])
    hub = HubClient(hub_url="https://sidestep.example", token=AgentToken.parse(t),
                    client=httpx.AsyncClient())
    await run_agent(probes, hub, interval_s=60)

Each round's observations go to the hub in batches (`sidestep.monitor.signing`). What the
hub could not take because it was unreachable or failing (a network error, 5xx) is kept and
sent with the next round, up to `max_pending` observations (oldest dropped first: the hub
refuses observations over an hour old anyway). A refusal that retrying cannot cure (401:
wrong token or clock; 413/422: a batch the hub will never take) raises `HubRefused` for a
401, and drops the batch for the others, logging why.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from sidestep.catalogue.loader import Platform
from sidestep.clock import Clock
from sidestep.monitor.probes.dns import DnsProbe, NamedResolver
from sidestep.monitor.probes.http import HttpProbe
from sidestep.monitor.probes.statuspage import StatusPageProbe
from sidestep.monitor.signing import AgentToken, sign
from sidestep.store.health import NewObservation

__all__ = ["HubClient", "HubRefused", "ProbeRound", "SendReport", "run_agent"]

log = logging.getLogger(__name__)
OBSERVATIONS_PATH = "/api/v1/agent/observations"


class HubRefused(Exception):
    """The hub refused the agent itself (401): a wrong or revoked token, or a wrong clock."""


@dataclass(frozen=True, slots=True)
class SendReport:
    accepted: int
    dropped: int
    pending: int


@dataclass
class ProbeRound:
    """One round of the same probes the hub runs, over `platforms`."""

    platforms: Sequence[Platform]
    http: HttpProbe
    dns: DnsProbe
    status: StatusPageProbe
    resolvers: Sequence[NamedResolver]
    # Resolves the nameservers' names for authoritative probing; None skips that probing.
    bootstrap: NamedResolver | None = None
    ns_port: int = 53

    async def run(self) -> list[NewObservation]:
        jobs = []
        for platform in self.platforms:
            jobs.append(self.http.probe_platform(platform))
            jobs.append(self.dns.probe_resolvers(platform, self.resolvers))
            jobs.append(self.status.probe_platform(platform))
            if self.bootstrap is not None:
                jobs.append(self.dns.probe_authoritative(platform, self.bootstrap,
                                                         ns_port=self.ns_port))
        return [obs for group in await asyncio.gather(*jobs) for obs in group]


class HubClient:
    """Sends observations to the hub, signed with the agent's token."""

    def __init__(
        self, *, hub_url: str, token: AgentToken, client: httpx.AsyncClient, clock: Clock,
        vantage: str | None = None, batch_size: int = 500, max_pending: int = 20_000,
        timeout_s: float = 30.0,
    ) -> None:
        if batch_size < 1 or max_pending < batch_size:
            raise ValueError("batch_size must be positive and max_pending at least batch_size")
        self.url = hub_url.rstrip("/") + OBSERVATIONS_PATH
        self.token, self.client, self.clock = token, client, clock
        self.vantage = vantage
        self.batch_size, self.max_pending, self.timeout_s = batch_size, max_pending, timeout_s
        self.pending: list[NewObservation] = []

    async def send(self, observations: Sequence[NewObservation]) -> SendReport:
        """Send what is pending plus `observations`; raises `HubRefused` on a 401."""
        self.pending.extend(observations)
        dropped = max(0, len(self.pending) - self.max_pending)
        del self.pending[:dropped]
        accepted = 0
        while self.pending:
            batch = self.pending[:self.batch_size]
            try:
                response = await self._post(batch)
            except httpx.HTTPError as exc:
                log.warning("hub unreachable, keeping %d observations: %s",
                            len(self.pending), type(exc).__name__)
                break
            if response.status_code >= 500:
                log.warning("hub answered %d, keeping %d observations",
                            response.status_code, len(self.pending))
                break
            del self.pending[:len(batch)]
            if response.status_code == 401:
                raise HubRefused(f"the hub refused this agent: {_reason(response)}")
            if response.is_success:
                accepted += int(response.json().get("accepted", 0))
            else:
                dropped += len(batch)
                log.error("hub refused a batch of %d (%d): %s", len(batch),
                          response.status_code, _reason(response))
        return SendReport(accepted=accepted, dropped=dropped, pending=len(self.pending))

    async def _post(self, batch: Sequence[NewObservation]) -> httpx.Response:
        document: dict[str, object] = {"observations": [_encode(o) for o in batch]}
        if self.vantage:
            document["vantage"] = self.vantage
        body = json.dumps(document, separators=(",", ":")).encode()
        headers = sign(self.token.signing_key, key_id=self.token.key_id,
                       timestamp=int(self.clock.now().timestamp()), body=body)
        headers["Content-Type"] = "application/json"
        return await self.client.post(self.url, content=body, headers=headers,
                                      timeout=self.timeout_s)


async def run_agent(
    probes: ProbeRound, hub: HubClient, *, interval_s: float, once: bool = False,
) -> SendReport:
    """Probe and send every `interval_s` seconds; with `once`, one round. Returns the last
    round's report; raises `HubRefused` when the hub refuses the agent."""
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    loop = asyncio.get_running_loop()
    while True:
        started = loop.time()
        report = await hub.send(await probes.run())
        log.info("round sent: %d accepted, %d dropped, %d pending",
                 report.accepted, report.dropped, report.pending)
        if once:
            return report
        await asyncio.sleep(max(0.0, interval_s - (loop.time() - started)))


def _encode(o: NewObservation) -> dict[str, object]:
    return {"platform": o.platform, "signal": o.signal, "observed_at": o.observed_at.isoformat(),
            "outcome": o.outcome, "latency_ms": o.latency_ms, "feature": o.feature,
            "target": o.target[:300], "detail": o.detail}


def _reason(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    return str(detail or response.text[:200] or response.reason_phrase)


def parse_resolver(text: str) -> NamedResolver:
    """`NAME=IP[:PORT]` (as `--resolver` takes it); raises ValueError when malformed."""
    name, _, address = text.partition("=")
    ip, _, port = address.partition(":")
    if not name or not ip or (port and not port.isdigit()):
        raise ValueError(f"{text!r}: give a resolver as NAME=IP or NAME=IP:PORT")
    return NamedResolver(name, ip, int(port or 53))


def run_agent_command(
    *, hub: str, token: str, name: str | None, interval_s: float, once: bool,
    resolvers: Sequence[str], platforms: Sequence[str], authoritative: bool,
) -> int:
    """What `sidestep agent` does; returns the exit code (2 for a refusal or bad input)."""
    from sidestep.catalogue.loader import default_catalogue
    from sidestep.clock import SystemClock
    from sidestep.monitor.signing import BadAgentToken

    try:
        parsed = AgentToken.parse(token)
        servers = [parse_resolver(r) for r in resolvers]
        catalogue = default_catalogue()
        chosen = [catalogue.get(p) for p in platforms] if platforms else catalogue.rented()
    except (BadAgentToken, ValueError) as exc:
        log.error("%s", exc)
        return 2
    clock = SystemClock()

    async def main() -> SendReport:
        async with httpx.AsyncClient() as probe_client, httpx.AsyncClient() as hub_client:
            probes = ProbeRound(
                platforms=chosen, resolvers=servers,
                http=HttpProbe(client=probe_client, clock=clock),
                dns=DnsProbe(clock=clock), status=StatusPageProbe(client=probe_client, clock=clock),
                bootstrap=servers[0] if authoritative and servers else None)
            client = HubClient(hub_url=hub, token=parsed, client=hub_client, clock=clock,
                               vantage=name)
            return await run_agent(probes, client, interval_s=interval_s, once=once)

    try:
        report = asyncio.run(main())
    except HubRefused as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0 if report.accepted or not report.pending else 1
