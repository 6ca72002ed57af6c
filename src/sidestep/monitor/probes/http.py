"""HTTP probe: each catalogue probe URL of a platform, reported per feature (web, api, media).

On 2019-07-03 a Meta image-server failure broke media on WhatsApp, Instagram and Facebook
while text still worked, so media/CDN hosts are probed apart and reported with their feature.

A probe is `ok` when the status is in the catalogue probe's `expect_status` (anonymous API
probes expect 400/401: a live service refuses them) and the optional `Condition` holds;
`bad_status` for any other status; `bad_answer` when the condition fails. Network failures
are classified once, in `_fetch.classify_error` (refused, timeout, servfail, nxdomain...).
The client is injected (in tests `Simulator.client()`); bodies are read up to
`max_body_bytes` and a whole probe never outlasts `timeout_s`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx

from sidestep.catalogue.loader import Platform, Probe
from sidestep.clock import Clock
from sidestep.monitor.outcomes import Outcome, Signal
from sidestep.monitor.probes._fetch import FetchFailed, fetch_capped
from sidestep.store.health import NewObservation

__all__ = ["Condition", "HttpProbe"]

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
    """Runs catalogue HTTP probes through one injected client, with bounded concurrency."""

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        clock: Clock,
        vantage: str = "local",
        timeout_s: float = 5.0,
        concurrency: int = 64,
        max_body_bytes: int = 64 * 1024,
    ) -> None:
        if timeout_s <= 0 or concurrency < 1 or max_body_bytes < 1:
            raise ValueError("timeout_s, concurrency and max_body_bytes must be positive")
        self.client = client
        self.clock = clock
        self.vantage = vantage
        self.timeout_s = timeout_s
        self.max_body_bytes = max_body_bytes
        self._slots = asyncio.Semaphore(concurrency)

    async def check(
        self, platform: str, probe: Probe, *, condition: Condition | None = None
    ) -> NewObservation:
        """One GET of `probe.url`, judged against `probe.expect_status` and `condition`."""
        async with self._slots:
            try:
                fetched = await fetch_capped(self.client, probe.url, timeout_s=self.timeout_s,
                                             max_bytes=self.max_body_bytes)
            except FetchFailed as failed:
                return self._observation(platform, probe, failed.outcome, None, failed.detail)
        detail = f"HTTP {fetched.status}"
        if fetched.status not in probe.expect_status:
            expected = ",".join(map(str, probe.expect_status))
            return self._observation(platform, probe, Outcome.BAD_STATUS, fetched.latency_ms,
                                     f"{detail}, expected {expected}")
        why = condition.failure(fetched.body, truncated=fetched.truncated) if condition else None
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
