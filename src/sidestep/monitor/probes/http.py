"""HTTP probe: each catalogue probe URL of a platform, reported per feature (web, api, media).

On 2019-07-03 a Meta image-server failure broke media on WhatsApp, Instagram and Facebook
while text still worked, so media/CDN hosts are probed apart and reported with their feature.

A probe is `ok` when the status is in the catalogue probe's `expect_status` (anonymous API
probes expect 400/401: a live service refuses them) and the optional `Condition` holds;
`bad_status` for any other status; `bad_answer` when the condition fails. Network failures
are classified once, in `_fetch.classify_error` (refused, timeout, servfail, nxdomain...).
Over https the certificate is verified (a bad one is `error`) and its expiry is put in the
detail; with `min_cert_days`, a certificate closer to expiry than that is `bad_answer`.

The GETs go through `_http1.Http1Client`, a lean keep-alive HTTP/1.1 client (httpx's pool
cost ~40x more per probe, see bench/probes). The httpx client that is injected still decides
where requests go: a plain `httpx.AsyncClient()` becomes an `Http1Client` with its TLS
context and redirect setting, and the simulator's client (`Simulator.client()`) one that
resolves names through the simulator's resolver and connects to its port, as `SimTransport`
does. Any other client (mock transports, proxies, auth, event hooks), or `fast=False`, is
used as it is, through httpx. Bodies are read up to `max_body_bytes` and a whole probe
never outlasts `timeout_s`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx

from sidestep.catalogue.loader import Platform, Probe
from sidestep.clock import Clock
from sidestep.monitor.outcomes import Outcome, Signal
from sidestep.monitor.probes._fetch import Fetched, FetchFailed, classify_error, fetch_capped
from sidestep.monitor.probes._http1 import Http1Client, Resolver, Route, default_route
from sidestep.store.health import NewObservation

__all__ = ["Condition", "HttpProbe", "http1_for"]

_MISSING = object()


@dataclass(frozen=True, slots=True)
class Condition:
    """What the body must hold: a keyword, and/or a JSON value at a path of keys.

    `json_path=("status", "indicator"), json_equals="none"` reads body["status"]["indicator"];
    integers in the path index lists. With `json_path` and no `json_equals`, the value only
    has to exist.
    """

    keyword: str | None = None
    json_path: tuple[str | int, ...] = ()
    json_equals: object = _MISSING

    def failure(self, body: bytes, *, truncated: bool) -> str | None:
        """Why `body` does not meet the condition, or None when it does."""
        if self.keyword is not None and self.keyword.encode() not in body:
            return f"keyword {self.keyword!r} not in the first {len(body)} bytes"
        if not self.json_path:
            return None
        if truncated:
            return "body too large to check the JSON condition"
        try:
            value: object = json.loads(body)
        except (ValueError, RecursionError):
            return "body is not JSON"
        for step in self.json_path:
            value = _step(value, step)
            if value is _MISSING:
                return f"no value at {'.'.join(map(str, self.json_path))}"
        if self.json_equals is not _MISSING and value != self.json_equals:
            return f"{'.'.join(map(str, self.json_path))} is {value!r:.80}"
        return None


def _step(value: object, key: str | int) -> object:
    if isinstance(key, int) and isinstance(value, list) and -len(value) <= key < len(value):
        return value[key]
    if isinstance(key, str) and isinstance(value, dict):
        return value.get(key, _MISSING)
    return _MISSING


class HttpProbe:
    """Runs catalogue HTTP probes, with bounded concurrency (see the module docstring).

    `client` says where requests go (default: a plain client on the system's resolver);
    `http1` gives the fast client outright; `fast=False` keeps every GET on `client`.
    """

    def __init__(
        self,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Clock,
        vantage: str = "local",
        timeout_s: float = 5.0,
        concurrency: int = 64,
        max_body_bytes: int = 64 * 1024,
        http1: Http1Client | None = None,
        fast: bool = True,
        min_cert_days: float | None = None,
    ) -> None:
        if timeout_s <= 0 or concurrency < 1 or max_body_bytes < 1:
            raise ValueError("timeout_s, concurrency and max_body_bytes must be positive")
        if client is None and http1 is None and not fast:
            raise ValueError("fast=False needs an httpx client")
        if http1 is None and fast:
            http1 = Http1Client() if client is None else http1_for(client)
        self.client = client
        self.http1 = http1
        self.clock = clock
        self.vantage = vantage
        self.timeout_s = timeout_s
        self.max_body_bytes = max_body_bytes
        self.min_cert_days = min_cert_days
        self._slots = asyncio.Semaphore(concurrency)

    async def aclose(self) -> None:
        """Close the fast client's idle connections (the injected httpx client is the
        caller's to close)."""
        if self.http1 is not None:
            await self.http1.aclose()

    async def fetch(self, url: str) -> Fetched:
        """One bounded GET of `url`; raises `FetchFailed` when no answer came."""
        if self.http1 is not None:
            return await self.http1.get(url, timeout_s=self.timeout_s,
                                        max_bytes=self.max_body_bytes)
        assert self.client is not None
        return await fetch_capped(self.client, url, timeout_s=self.timeout_s,
                                  max_bytes=self.max_body_bytes)

    async def check(
        self, platform: str, probe: Probe, *, condition: Condition | None = None
    ) -> NewObservation:
        """One GET of `probe.url`, judged against `probe.expect_status` and `condition`."""
        async with self._slots:
            try:
                fetched = await self.fetch(probe.url)
            except FetchFailed as failed:
                return self._observation(platform, probe, failed.outcome, None, failed.detail)
        detail = f"HTTP {fetched.status}"
        if fetched.status not in probe.expect_status:
            expected = ",".join(map(str, probe.expect_status))
            return self._observation(platform, probe, Outcome.BAD_STATUS, fetched.latency_ms,
                                     f"{detail}, expected {expected}")
        why = condition.failure(fetched.body, truncated=fetched.truncated) if condition else None
        if fetched.cert_not_after is not None:
            days = (fetched.cert_not_after - self.clock.now().timestamp()) / 86400.0
            detail += f"; certificate expires in {days:.1f} days"
            if why is None and self.min_cert_days is not None and days < self.min_cert_days:
                why = f"certificate expires in under {self.min_cert_days:g} days"
        if why is not None:
            return self._observation(platform, probe, Outcome.BAD_ANSWER, fetched.latency_ms,
                                     f"{detail}: {why}")
        return self._observation(platform, probe, Outcome.OK, fetched.latency_ms, detail)

    async def probe_platform(
        self, platform: Platform, *, conditions: Mapping[str, Condition] | None = None
    ) -> list[NewObservation]:
        """Every catalogue probe of `platform`; `conditions` is keyed by probe name."""
        return await self.probe_all(platform.key, platform.probes, conditions=conditions)

    async def probe_all(
        self, platform: str, probes: Sequence[Probe], *,
        conditions: Mapping[str, Condition] | None = None,
    ) -> list[NewObservation]:
        """`check` each of `probes` concurrently (within the probe's concurrency bound)."""
        wanted = conditions or {}
        return list(await asyncio.gather(
            *(self.check(platform, p, condition=wanted.get(p.name)) for p in probes)))

    def _observation(
        self, platform: str, probe: Probe, outcome: Outcome, latency_ms: float | None,
        detail: str,
    ) -> NewObservation:
        return NewObservation(
            platform=platform, signal=Signal.HTTP.value, vantage=self.vantage,
            observed_at=self.clock.now(), outcome=outcome.value, latency_ms=latency_ms,
            feature=probe.feature, target=probe.url, detail=detail[:500],
        )


def http1_for(client: httpx.AsyncClient) -> Http1Client | None:
    """An `Http1Client` that sends requests where `client` would, or None when `client` does
    more than this module can stand in for (another transport, proxies, auth, hooks)."""
    if client.auth is not None or any(client.event_hooks.values()):
        return None
    mounts = getattr(client, "_mounts", None)
    if not isinstance(mounts, dict) or any(t is not None for t in mounts.values()):
        return None
    transport = getattr(client, "_transport", None)
    redirects = client.max_redirects if client.follow_redirects else 0
    from sidestep.sim.transport import SimTransport  # the sim is only needed for its type

    if isinstance(transport, SimTransport):
        return Http1Client(route=simulator_route(transport.resolver, transport.http_port),
                           max_redirects=redirects)
    if type(transport) is httpx.AsyncHTTPTransport:
        context = getattr(getattr(transport, "_pool", None), "_ssl_context", None)
        if isinstance(context, ssl.SSLContext):
            return Http1Client(ssl_context=context, max_redirects=redirects)
    return None


def simulator_route(resolver: Resolver, http_port: int) -> Route:
    """Where `SimTransport` sends a request: names resolved by `resolver`, then plain HTTP to
    that address on `http_port`; IP literals and localhost as they are. DNS failures become
    the outcomes a system resolver's errors get (see `_fetch.classify_error`)."""
    from sidestep.sim import transport as sim

    async def route(scheme: str, host: str, port: int) -> tuple[str, int, bool]:
        if host == "localhost" or _is_ip(host):
            return await default_route(scheme, host, port)
        try:
            return await resolver(host), http_port, False
        except sim.DnsTimeout as exc:
            raise FetchFailed(Outcome.TIMEOUT, f"DNS lookup of {host} timed out") from exc
        except sim.DnsNxdomain as exc:
            raise FetchFailed(Outcome.NXDOMAIN, f"{host}: name or service not known") from exc
        except sim.DnsNoAddress as exc:
            raise FetchFailed(Outcome.BAD_ANSWER, f"{host}: no address") from exc
        except sim.DnsFailure as exc:
            raise FetchFailed(Outcome.SERVFAIL, f"{host}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise FetchFailed(*classify_error(exc)) from exc

    return route


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
