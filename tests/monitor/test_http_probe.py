"""HTTP probe against the simulator's platforms, and against bad bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sidestep.catalogue.loader import Catalogue, Probe
from sidestep.clock import FrozenClock
from sidestep.monitor.outcomes import Outcome
from sidestep.monitor.probes.http import Condition, HttpProbe
from sidestep.sim.server import Simulator
from sidestep.store.health import NewObservation

META = ("facebook", "instagram", "whatsapp")


@pytest.fixture(params=["fast", "httpx"])
async def probe(sim: Simulator, clock: FrozenClock,
                request: pytest.FixtureRequest) -> AsyncIterator[HttpProbe]:
    """The simulator's client, served by the lean HTTP/1.1 client (as the monitor does) or
    through httpx (`fast=False`): both must see the same outcomes."""
    async with sim.client() as client:
        # Generous: a simulated platform's first answer can take seconds on a loaded machine.
        probe = HttpProbe(client=client, clock=clock, vantage="test", timeout_s=10.0,
                          fast=request.param == "fast")
        assert (probe.http1 is not None) == (request.param == "fast")
        yield probe
        await probe.aclose()


def by_feature(observations: list[NewObservation]) -> dict[str, str]:
    return {o.feature: o.outcome for o in observations}


@pytest.mark.parametrize("platform", META)
async def test_every_probe_is_ok_when_healthy(
    probe: HttpProbe, catalogue: Catalogue, platform: str
) -> None:
    observations = await probe.probe_platform(catalogue.get(platform))
    assert by_feature(observations) == {"web": "ok", "api": "ok", "media": "ok"}
    for obs in observations:
        assert (obs.signal, obs.vantage, obs.platform) == ("http", "test", platform)
        assert obs.latency_ms is not None and obs.latency_ms > 0
        assert obs.detail is not None and obs.detail.startswith("HTTP ")


async def test_it_reports_bad_status_on_5xx(
    probe: HttpProbe, catalogue: Catalogue, sim: Simulator
) -> None:
    await sim.set_fault("facebook", "http_5xx")
    observations = await probe.probe_platform(catalogue.get("facebook"))
    assert by_feature(observations) == {"web": "bad_status", "api": "bad_status",
                                        "media": "bad_status"}
    assert all(o.latency_ms is not None and "expected" in (o.detail or "") for o in observations)


@pytest.mark.parametrize(("fault", "params", "outcome"), [
    ("refused", {}, Outcome.REFUSED),
    ("timeout", {}, Outcome.TIMEOUT),
    ("dns_servfail", {}, Outcome.SERVFAIL),
    ("dns_nxdomain", {}, Outcome.NXDOMAIN),
    ("timeout", {"dns": True}, Outcome.TIMEOUT),
])
async def test_it_classifies_network_faults(
    probe: HttpProbe, catalogue: Catalogue, sim: Simulator,
    fault: str, params: dict[str, Any], outcome: Outcome,
) -> None:
    await sim.set_fault("instagram", fault, **params)
    web = next(p for p in catalogue.get("instagram").probes if p.feature == "web")
    quick = HttpProbe(client=probe.client, clock=probe.clock, timeout_s=0.5,
                      fast=probe.http1 is not None)
    obs = await quick.check("instagram", web)
    await quick.aclose()
    assert obs.outcome == outcome, obs.detail
    assert obs.latency_ms is None


async def test_the_media_probe_fails_alone_when_the_cdn_does(
    sim: Simulator, catalogue: Catalogue, clock: FrozenClock
) -> None:
    # The simulator files a CDN's GET / under the "read" feature, so a partial(media) fault
    # does not reach it (see the report); the CDN's failure is played at the HTTP seam.
    real = sim.transport()

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host.endswith("fbcdn.net"):
            return httpx.Response(503, text="<html>503 Service Unavailable</html>")
        return await real.handle_async_request(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        probe = HttpProbe(client=client, clock=clock, timeout_s=3.0)
        observations = await probe.probe_platform(catalogue.get("facebook"))
    assert by_feature(observations) == {"web": "ok", "api": "ok", "media": "bad_status"}


async def test_a_partial_media_fault_reaches_the_cdn_probe(
    probe: HttpProbe, catalogue: Catalogue, sim: Simulator
) -> None:
    await sim.set_fault("facebook", "partial", feature="media")
    observations = await probe.probe_platform(catalogue.get("facebook"))
    assert by_feature(observations) == {"web": "ok", "api": "ok", "media": "bad_status"}


async def test_a_keyword_or_json_condition_can_fail_a_good_status(
    probe: HttpProbe, catalogue: Catalogue
) -> None:
    api = next(p for p in catalogue.get("facebook").probes if p.feature == "api")
    present = await probe.check("facebook", api, condition=Condition(json_path=("error",)))
    absent = await probe.check("facebook", api, condition=Condition(keyword="no-such-word"))
    wrong = await probe.check("facebook", api, condition=Condition(
        json_path=("error", "type"), json_equals="NotThisOne"))
    assert present.outcome == Outcome.OK, present.detail
    assert absent.outcome == Outcome.BAD_ANSWER
    assert wrong.outcome == Outcome.BAD_ANSWER


def mock_probe(clock: FrozenClock, response: httpx.Response, *, max_body_bytes: int) -> HttpProbe:
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: response))
    return HttpProbe(client=client, clock=clock, timeout_s=1.0, max_body_bytes=max_body_bytes)


async def test_it_reads_at_most_the_cap_of_a_giant_body(clock: FrozenClock) -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(1024):  # a gigabyte, if anyone read it all
            sent += 1
            yield b"x" * (1024 * 1024)

    probe = mock_probe(clock, httpx.Response(200, content=endless()), max_body_bytes=4096)
    web = Probe(name="web", url="https://example.com/", feature="web")
    obs = await probe.check("x", web, condition=Condition(json_path=("a",)))
    assert obs.outcome == Outcome.BAD_ANSWER
    assert sent <= 2


@pytest.mark.parametrize("body", [b"\x00\xff" * 100, b"{" * 100_000, b"[" * 5000 + b"]" * 5000])
async def test_it_handles_garbage_bodies(clock: FrozenClock, body: bytes) -> None:
    probe = mock_probe(clock, httpx.Response(200, content=body), max_body_bytes=1_000_000)
    api = Probe(name="api", url="https://example.com/", feature="api")
    obs = await probe.check("x", api, condition=Condition(json_path=("status",)))
    assert obs.outcome == Outcome.BAD_ANSWER


def test_bad_settings_are_refused(clock: FrozenClock) -> None:
    with pytest.raises(ValueError):
        HttpProbe(client=httpx.AsyncClient(), clock=clock, timeout_s=0)
    with pytest.raises(ValueError):
        HttpProbe(clock=clock, fast=False)


async def test_the_fast_client_stands_in_only_for_clients_it_can(clock: FrozenClock) -> None:
    def never(request: httpx.Request) -> httpx.Response:
        raise AssertionError

    async with httpx.AsyncClient() as plain, \
            httpx.AsyncClient(follow_redirects=True, max_redirects=4) as following, \
            httpx.AsyncClient(transport=httpx.MockTransport(never)) as mocked, \
            httpx.AsyncClient(auth=("user", "pass")) as authed, \
            httpx.AsyncClient(mounts={"all://": httpx.AsyncHTTPTransport(proxy="http://p:1")}
                              ) as proxied:
        assert HttpProbe(client=plain, clock=clock).http1 is not None
        fast = HttpProbe(client=following, clock=clock).http1
        assert fast is not None and fast.max_redirects == 4
        for client in (mocked, authed, proxied):
            assert HttpProbe(client=client, clock=clock).http1 is None
        assert HttpProbe(client=plain, clock=clock, fast=False).http1 is None
    assert HttpProbe(clock=clock).http1 is not None  # no client: the system's network
