"""Status pages: Atlassian Statuspage v2 JSON and Meta's RSS feeds, lagging the faults."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import feedparser  # type: ignore[import-untyped]
import httpx
import pytest
from starlette.applications import Starlette

from sidestep.catalogue.loader import default_catalogue
from sidestep.clock import FrozenClock
from sidestep.sim.platforms.status import DEFAULT_LAG_S, META_FEEDS, PAGES, StatusProfile
from sidestep.sim.profile import ErrorKind
from sidestep.sim.testing import running_simulator
from sidestep.sim.world import Fault, SimWorld

COMPONENT_STATUSES = {"operational", "degraded_performance", "partial_outage", "major_outage",
                      "under_maintenance"}
INDICATORS = {"none", "minor", "major", "critical"}
INCIDENT_STATUSES = {"investigating", "identified", "monitoring", "resolved", "postmortem"}
LAG = DEFAULT_LAG_S


@pytest.fixture
def world(clock: FrozenClock) -> SimWorld:
    return SimWorld(clock=clock, seed=1)


@pytest.fixture
def profile(world: SimWorld) -> StatusProfile:
    return StatusProfile(world)


@pytest.fixture
async def client(profile: StatusProfile) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=profile.routes())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://discordstatus.com") as http:
        yield http


async def get_json(client: httpx.AsyncClient, path: str, host: str = "discordstatus.com") -> Any:
    response = await client.get(path, headers={"Host": host})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def is_timestamp(value: Any) -> bool:
    return isinstance(value, str) and datetime.fromisoformat(value).tzinfo is not None


def check_page(page: dict[str, Any], host: str) -> None:
    assert set(page) == {"id", "name", "url", "time_zone", "updated_at"}
    assert page["url"] == f"https://{host}"
    assert is_timestamp(page["updated_at"])


def check_component(component: dict[str, Any]) -> None:
    assert {"id", "name", "status", "created_at", "updated_at", "position", "description",
            "showcase", "start_date", "group_id", "page_id", "group",
            "only_show_if_degraded"} <= set(component)
    assert component["status"] in COMPONENT_STATUSES
    assert is_timestamp(component["created_at"]) and is_timestamp(component["updated_at"])


def check_incident(incident: dict[str, Any]) -> None:
    assert {"id", "name", "status", "created_at", "updated_at", "monitoring_at", "resolved_at",
            "impact", "shortlink", "started_at", "page_id", "incident_updates",
            "components"} <= set(incident)
    assert incident["status"] in INCIDENT_STATUSES
    assert incident["impact"] in {"none", "minor", "major", "critical"}
    for update in incident["incident_updates"]:
        assert {"id", "status", "body", "incident_id", "created_at", "updated_at",
                "display_at", "affected_components"} <= set(update)
        assert update["incident_id"] == incident["id"]
        assert update["status"] in INCIDENT_STATUSES
    for component in incident["components"]:
        check_component(component)


def statuses(body: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in body["components"]}


async def test_it_serves_every_statuspage_endpoint_in_the_v2_shape(
    client: httpx.AsyncClient,
) -> None:
    for page in PAGES:
        summary = await get_json(client, "/api/v2/summary.json", page.host)
        assert set(summary) == {"page", "components", "incidents", "scheduled_maintenances",
                                "status"}
        check_page(summary["page"], page.host)
        for component in summary["components"]:
            check_component(component)
        assert summary["status"] == {"indicator": "none", "description": "All Systems Operational"}
        status = await get_json(client, "/api/v2/status.json", page.host)
        assert set(status) == {"page", "status"}
        components = await get_json(client, "/api/v2/components.json", page.host)
        assert set(components) == {"page", "components"}
        assert [c["position"] for c in components["components"]] == \
            list(range(1, len(page.components) + 1))
        incidents = await get_json(client, "/api/v2/incidents.json", page.host)
        assert incidents == {"page": summary["page"], "incidents": []}


async def test_it_shows_a_fault_only_after_the_lag(
    client: httpx.AsyncClient, world: SimWorld, clock: FrozenClock
) -> None:
    world.faults.set("discord", Fault.HTTP_5XX)
    clock.advance(seconds=LAG - 1)
    body = await get_json(client, "/api/v2/summary.json")
    assert set(statuses(body).values()) == {"operational"}
    assert body["incidents"] == []
    clock.advance(seconds=1)
    body = await get_json(client, "/api/v2/summary.json")
    assert set(statuses(body).values()) == {"major_outage"}
    assert body["status"] == {"indicator": "critical", "description": "Major Service Outage"}
    [incident] = body["incidents"]
    check_incident(incident)
    assert incident["status"] == "investigating"
    assert incident["created_at"] == body["page"]["updated_at"]


async def test_it_resolves_after_the_lag_and_keeps_the_incident(
    client: httpx.AsyncClient, world: SimWorld, clock: FrozenClock
) -> None:
    world.faults.set("discord", Fault.DNS_SERVFAIL)
    clock.advance(seconds=3600)
    assert (await get_json(client, "/api/v2/status.json"))["status"]["indicator"] == "critical"
    world.faults.clear("discord")
    clock.advance(seconds=LAG - 1)
    assert (await get_json(client, "/api/v2/status.json"))["status"]["indicator"] == "critical"
    clock.advance(seconds=1)
    assert (await get_json(client, "/api/v2/status.json"))["status"]["indicator"] == "none"
    assert (await get_json(client, "/api/v2/incidents/unresolved.json"))["incidents"] == []
    [incident] = (await get_json(client, "/api/v2/incidents.json"))["incidents"]
    check_incident(incident)
    assert incident["status"] == "resolved"
    assert [u["status"] for u in incident["incident_updates"]] == ["resolved", "investigating"]
    started = datetime.fromisoformat(incident["started_at"])
    resolved = datetime.fromisoformat(incident["resolved_at"])
    assert (resolved - started).total_seconds() == 3600


async def test_a_silent_fault_never_reaches_the_page(
    client: httpx.AsyncClient, world: SimWorld, clock: FrozenClock
) -> None:
    world.faults.set("discord", Fault.HTTP_5XX, status_page="silent")
    clock.advance(seconds=LAG * 10)
    assert (await get_json(client, "/api/v2/status.json"))["status"]["indicator"] == "none"
    world.faults.clear("discord")
    clock.advance(seconds=LAG * 10)
    assert (await get_json(client, "/api/v2/incidents.json"))["incidents"] == []


async def test_a_fault_nobody_saw_while_it_was_on_is_never_told(
    client: httpx.AsyncClient, world: SimWorld, clock: FrozenClock
) -> None:
    # As in local-network-down: the status host itself was unreachable all along.
    world.faults.set("discord", Fault.REFUSED)
    clock.advance(seconds=LAG * 3)
    world.faults.clear("discord")
    clock.advance(seconds=LAG / 2)
    assert (await get_json(client, "/api/v2/status.json"))["status"]["indicator"] == "none"
    assert (await get_json(client, "/api/v2/incidents.json"))["incidents"] == []


async def test_a_blip_shorter_than_the_lag_never_reaches_the_page(
    client: httpx.AsyncClient, world: SimWorld, clock: FrozenClock
) -> None:
    world.faults.set("discord", Fault.TIMEOUT)
    for _ in range(3):  # a monitor polls the page every 30 s through the blip
        assert (await get_json(client, "/api/v2/status.json"))["status"]["indicator"] == "none"
        clock.advance(seconds=30)
    world.faults.clear("discord")
    for _ in range(10):
        clock.advance(seconds=60)
        assert (await get_json(client, "/api/v2/status.json"))["status"]["indicator"] == "none"
    assert (await get_json(client, "/api/v2/incidents.json"))["incidents"] == []


async def test_a_partial_media_fault_marks_only_the_media_component(
    client: httpx.AsyncClient, world: SimWorld, clock: FrozenClock
) -> None:
    world.faults.set("discord", Fault.PARTIAL, feature="media")
    clock.advance(seconds=LAG)
    body = await get_json(client, "/api/v2/summary.json")
    assert statuses(body) == {"API": "operational", "Gateway": "operational",
                              "Media Proxy": "partial_outage",
                              "Push Notifications": "operational"}
    assert body["status"]["indicator"] == "major"
    assert body["incidents"][0]["impact"] == "major"


@pytest.mark.parametrize(
    ("fault", "rate", "expected"),
    [(Fault.SLOW, 1.0, "degraded_performance"), (Fault.HTTP_5XX, 0.3, "partial_outage"),
     (Fault.REFUSED, 1.0, "major_outage"), (Fault.HTTP_5XX, 0.01, "operational"),
     (Fault.RATE_LIMITED, 1.0, "operational")],
)
async def test_it_maps_each_fault_to_a_component_status(
    client: httpx.AsyncClient, world: SimWorld, clock: FrozenClock,
    fault: Fault, rate: float, expected: str,
) -> None:
    world.faults.set("reddit", fault, rate=rate)
    clock.advance(seconds=LAG)
    body = await get_json(client, "/api/v2/components.json", "www.redditstatus.com")
    assert set(statuses(body).values()) == {expected}


async def test_the_lag_is_configurable_per_fault_and_through_the_world(
    client: httpx.AsyncClient, world: SimWorld, clock: FrozenClock
) -> None:
    world.status_lag_s = {"discord": 30.0}  # type: ignore[attr-defined]
    world.faults.set("discord", Fault.HTTP_5XX)
    world.faults.set("reddit", Fault.HTTP_5XX, status_lag_s=1200)
    clock.advance(seconds=30)
    assert (await get_json(client, "/api/v2/status.json"))["status"]["indicator"] == "critical"
    clock.advance(seconds=1200 - 30 - 1)
    reddit = "www.redditstatus.com"
    assert (await get_json(client, "/api/v2/status.json", reddit))["status"]["indicator"] == "none"
    clock.advance(seconds=1)
    assert (await get_json(client, "/api/v2/status.json", reddit))["status"]["indicator"] \
        == "critical"


async def test_faults_on_other_platforms_leave_a_page_green(
    client: httpx.AsyncClient, world: SimWorld, clock: FrozenClock
) -> None:
    world.faults.set("tiktok", Fault.HTTP_5XX)
    world.faults.set("facebook", Fault.DNS_SERVFAIL)
    clock.advance(seconds=LAG * 2)
    assert (await get_json(client, "/api/v2/status.json"))["status"]["indicator"] == "none"


def test_it_serves_exactly_the_status_feeds_the_catalogue_names() -> None:
    expected = {urlsplit(p.status_feed.url).hostname for p in default_catalogue().all()
                if p.status_feed is not None}
    assert set(StatusProfile.hosts) == expected
    assert {"discordstatus.com", "www.redditstatus.com", "metastatus.com"} <= expected
    served = {platform for page in PAGES for platform in page.platforms}
    served |= {platform for feed in META_FEEDS for platform in feed.platforms}
    assert served.isdisjoint({"tiktok", "youtube", "x", "threads", "telegram"})
    assert {feed.org: set(feed.platforms) for feed in META_FEEDS} == {
        "graph-api": {"facebook", "instagram", "messenger"},
        "whatsapp-business-api": {"whatsapp"},
    }


async def test_a_fault_whose_rate_falls_stays_one_incident(
    client: httpx.AsyncClient, world: SimWorld, clock: FrozenClock
) -> None:
    world.faults.set("discord", Fault.HTTP_5XX)
    for rate in (0.5, 0.2):
        await get_json(client, "/api/v2/status.json")  # a monitor polls while it is on
        clock.advance(seconds=600)
        world.faults.set("discord", Fault.HTTP_5XX, rate=rate)
    clock.advance(seconds=LAG)
    body = await get_json(client, "/api/v2/summary.json")
    assert set(statuses(body).values()) == {"partial_outage"}
    clock.advance(seconds=120)  # the 0.2 version is shorter than the lag, and still shown
    world.faults.clear("discord")
    clock.advance(seconds=LAG)
    [incident] = (await get_json(client, "/api/v2/incidents.json"))["incidents"]
    assert incident["status"] == "resolved"
    assert incident["impact"] == "critical"


async def test_it_answers_404_for_a_host_it_does_not_serve(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v2/summary.json", headers={"Host": "status.tiktok.com"})
    assert response.status_code == 404
    response = await client.get("/api/v2/summary.json", headers={"Host": "metastatus.com"})
    assert response.status_code == 404


async def meta_feed(client: httpx.AsyncClient, org: str) -> Any:
    response = await client.get(f"/outage-events-feed-{org}.rss",
                                headers={"Host": "metastatus.com:443"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    parsed = feedparser.parse(response.text)
    assert not parsed.bozo, parsed.bozo_exception
    return parsed


async def test_metas_product_feed_is_empty_while_all_is_well(client: httpx.AsyncClient) -> None:
    parsed = await meta_feed(client, "graph-api")
    assert parsed.version == "rss20"
    assert parsed.feed.title == "Graph API Status"
    assert parsed.entries == []


async def test_metas_product_feed_carries_an_open_outage_after_the_lag(
    client: httpx.AsyncClient, world: SimWorld, clock: FrozenClock
) -> None:
    world.faults.set("whatsapp", Fault.DNS_SERVFAIL)
    clock.advance(seconds=LAG - 1)
    assert (await meta_feed(client, "whatsapp-business-api")).entries == []
    clock.advance(seconds=1)
    parsed = await meta_feed(client, "whatsapp-business-api")
    [entry] = parsed.entries
    assert entry.title == "WhatsApp Business Platform: High disruptions"
    assert parsed.feed.title == "WhatsApp Business Platform Status"
    assert (await meta_feed(client, "graph-api")).entries == []
    world.faults.clear("whatsapp")
    clock.advance(seconds=LAG)
    assert (await meta_feed(client, "whatsapp-business-api")).entries == []


async def test_an_instagram_fault_shows_on_the_graph_api_feed(
    client: httpx.AsyncClient, world: SimWorld, clock: FrozenClock
) -> None:
    world.faults.set("instagram", Fault.PARTIAL, feature="media")
    clock.advance(seconds=LAG)
    [entry] = (await meta_feed(client, "graph-api")).entries
    assert entry.title == "Graph API: Medium disruptions"
    assert (await meta_feed(client, "whatsapp-business-api")).entries == []


async def test_an_unknown_meta_feed_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/outage-events-feed-nope.rss", headers={"Host": "metastatus.com"})
    assert response.status_code == 404


def test_its_errors_are_plain_html(profile: StatusProfile) -> None:
    response = profile.error(ErrorKind.SERVER_ERROR, "boom <b>")
    assert response.status_code == 500
    assert response.media_type == "text/html"
    assert b"boom &lt;b&gt;" in bytes(response.body)
    limited = profile.error(ErrorKind.RATE_LIMITED, "slow down", retry_after_s=30)
    assert (limited.status_code, limited.headers["retry-after"]) == (429, "30")
    assert profile.error(ErrorKind.UNAVAILABLE, "x").status_code == 503


async def test_the_simulator_serves_the_pages_by_their_real_names_through_its_dns(
    clock: FrozenClock,
) -> None:
    async with running_simulator(clock=clock, profiles={"status": StatusProfile}) as sim:
        assert sim.dns_address is not None
        async with sim.client() as http:
            url = "https://discordstatus.com/api/v2/status.json"
            assert (await http.get(url)).json()["status"]["indicator"] == "none"
            sim.world.faults.set("discord", Fault.HTTP_5XX)
            clock.advance(seconds=LAG)
            assert (await http.get(url)).json()["status"]["indicator"] == "critical"
            feed = await http.get("https://metastatus.com/outage-events-feed-graph-api.rss")
            assert feedparser.parse(feed.text).feed.title == "Graph API Status"
