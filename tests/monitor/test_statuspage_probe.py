"""Status-page probe: the simulator's Statuspage and Meta RSS pages, and bad answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from sidestep.catalogue.loader import Catalogue
from sidestep.clock import FrozenClock
from sidestep.monitor.outcomes import Outcome
from sidestep.monitor.probes.statuspage import StatusPageProbe
from sidestep.sim.platforms.status import DEFAULT_LAG_S
from sidestep.sim.server import Simulator
from sidestep.store.health import NewObservation


@pytest.fixture
async def probe(sim: Simulator, clock: FrozenClock) -> AsyncIterator[StatusPageProbe]:
    async with sim.client() as client:
        yield StatusPageProbe(client=client, clock=clock, vantage="test", timeout_s=3.0)


def outcomes(observations: list[NewObservation]) -> dict[str, str]:
    return {o.target.rpartition("#")[2]: o.outcome for o in observations}


@pytest.mark.parametrize("platform", ["discord", "reddit", "facebook", "whatsapp"])
async def test_every_feed_is_ok_when_healthy(
    probe: StatusPageProbe, catalogue: Catalogue, platform: str
) -> None:
    observations = await probe.probe_platform(catalogue.get(platform))
    assert observations
    assert {o.outcome for o in observations} == {Outcome.OK}
    assert all(o.signal == "statuspage" and o.platform == platform for o in observations)


async def test_a_platform_without_a_feed_gives_nothing(
    probe: StatusPageProbe, catalogue: Catalogue
) -> None:
    assert await probe.probe_platform(catalogue.get("tiktok")) == []


async def test_statuspage_shows_major_outage_only_after_its_lag(
    probe: StatusPageProbe, catalogue: Catalogue, sim: Simulator, clock: FrozenClock
) -> None:
    discord = catalogue.get("discord")
    await sim.set_fault("discord", "http_5xx")
    clock.advance(seconds=DEFAULT_LAG_S - 1)
    assert {o.outcome for o in await probe.probe_platform(discord)} == {Outcome.OK}
    clock.advance(seconds=2)
    after = await probe.probe_platform(discord)
    assert len(after) > 1  # one per component
    assert {o.outcome for o in after} == {Outcome.MAJOR_OUTAGE}


async def test_statuspage_marks_only_the_components_of_a_partial_fault(
    probe: StatusPageProbe, catalogue: Catalogue, sim: Simulator, clock: FrozenClock
) -> None:
    await sim.set_fault("discord", "partial", feature="media")
    clock.advance(seconds=DEFAULT_LAG_S + 1)
    seen = outcomes(await probe.probe_platform(catalogue.get("discord")))
    assert seen.pop("Media Proxy") == Outcome.PARTIAL_OUTAGE
    assert set(seen.values()) == {Outcome.OK}


async def test_meta_feed_shows_an_outage_after_its_lag(
    probe: StatusPageProbe, catalogue: Catalogue, sim: Simulator, clock: FrozenClock
) -> None:
    facebook = catalogue.get("facebook")
    await sim.set_fault("facebook", "http_5xx")
    assert [o.outcome for o in await probe.probe_platform(facebook)] == [Outcome.OK]
    clock.advance(seconds=DEFAULT_LAG_S + 1)
    assert [o.outcome for o in await probe.probe_platform(facebook)] == [Outcome.MAJOR_OUTAGE]


@pytest.mark.parametrize("platform", ["discord", "facebook"])
async def test_silent_faults_are_never_shown(
    probe: StatusPageProbe, catalogue: Catalogue, sim: Simulator, clock: FrozenClock,
    platform: str,
) -> None:
    await sim.set_fault(platform, "http_5xx", status_page="silent")
    await probe.probe_platform(catalogue.get(platform))
    clock.advance(seconds=10 * DEFAULT_LAG_S)
    assert {o.outcome for o in await probe.probe_platform(catalogue.get(platform))} \
        == {Outcome.OK}


# -- bad answers, at the HTTP seam ------------------------------------------------------------

URL = "https://status.example.com/api/v2/summary.json"
FEED = "https://status.example.com/feed.rss"
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<rss version="2.0"><channel><item><title>&lol3;</title></item></channel></rss>"""


def mock(
    clock: FrozenClock, response: httpx.Response, *, max_body_bytes: int = 1024 * 1024,
    window_s: float = 6 * 3600.0,
) -> StatusPageProbe:
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: response))
    return StatusPageProbe(client=client, clock=clock, timeout_s=2.0,
                           max_body_bytes=max_body_bytes, window_s=window_s)


@pytest.mark.parametrize(("kind", "body"), [
    ("statuspage", b"<html><h1>502 Bad Gateway</h1></html>"),
    ("statuspage", b'{"components": [{"name": "API"'),
    ("statuspage", b"[1, 2, 3]"),
    ("statuspage", b'{"components": "all good"}'),
    ("statuspage", b'{"components": [{"name": 3, "status": []}]}'),
    ("statuspage", b"[" * 200_000),
    ("statuspage", b"\xff\xfe\x00garbage"),
    ("rss", BILLION_LAUGHS),
    ("rss", BILLION_LAUGHS.decode().encode("utf-16")),
    ("rss", b"<rss><channel><item><pubDate>not a date</pubDate></item></channel></rss>"),
    ("rss", b"<html><body>not a feed</body></html>"),
    ("rss", b"<rss><channel><item>"),
    ("atom", b'{"feed": []}'),
])
async def test_garbage_is_an_error_never_a_crash(
    clock: FrozenClock, kind: str, body: bytes
) -> None:
    observations = await mock(clock, httpx.Response(200, content=body)).probe_feed("x", kind, URL)
    assert [o.outcome for o in observations] == [Outcome.ERROR]


@pytest.mark.parametrize("declared", [True, False])
async def test_a_gigabyte_answer_is_cut_at_the_cap(clock: FrozenClock, declared: bool) -> None:
    sent = 0

    async def gigabyte() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(1024):
            sent += 1
            yield b'{"components": [' + b" " * (1024 * 1024 - 16)

    headers = {"content-length": str(1024 ** 3)} if declared else {}
    response = httpx.Response(200, content=gigabyte(), headers=headers)
    observations = await mock(clock, response, max_body_bytes=64 * 1024).probe_feed(
        "x", "statuspage", URL)
    assert [o.outcome for o in observations] == [Outcome.ERROR]
    assert sent <= 1


async def test_a_non_200_page_is_bad_status(clock: FrozenClock) -> None:
    observations = await mock(clock, httpx.Response(503, text="down")).probe_feed(
        "x", "statuspage", URL)
    assert [o.outcome for o in observations] == [Outcome.BAD_STATUS]


async def test_a_page_without_components_is_read_from_its_indicator(clock: FrozenClock) -> None:
    body = b'{"status": {"indicator": "critical", "description": "Major"}}'
    observations = await mock(clock, httpx.Response(200, content=body)).probe_feed(
        "x", "statuspage", URL)
    assert [o.outcome for o in observations] == [Outcome.MAJOR_OUTAGE]


@pytest.mark.parametrize(("age_s", "outcome"), [(60, Outcome.MAJOR_OUTAGE), (86_400, Outcome.OK)])
async def test_an_atom_entry_counts_only_within_the_window(
    clock: FrozenClock, age_s: int, outcome: Outcome
) -> None:
    stamp = (clock.now() - timedelta(seconds=age_s)).isoformat()
    body = (f'<feed xmlns="http://www.w3.org/2005/Atom"><title>s</title>'
            f"<entry><title>Outage</title><updated>{stamp}</updated></entry></feed>").encode()
    observations = await mock(clock, httpx.Response(200, content=body),
                              window_s=3600).probe_feed("x", "atom", FEED)
    assert [o.outcome for o in observations] == [outcome]


@pytest.mark.parametrize(("title", "level"), [
    ("Graph API: High disruptions", "major_outage"),
    ("Graph API: Medium disruptions", "partial_outage"),
    ("WhatsApp Business Platform: Low disruptions", "degraded"),
    ("Something odd is happening", "major_outage"),
])
def test_an_outage_item_title_gives_its_level(title: str, level: str) -> None:
    from sidestep.monitor.probes.statuspage import item_level

    assert item_level(title) == level
