"""Every HTTP-level fault as a plain httpx client, talking to the platform's address, sees it."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sidestep.clock import SystemClock
from sidestep.sim.profile import ErrorKind
from sidestep.sim.server import WATCH_INTERVAL_S, Simulator
from sidestep.sim.testing import running_simulator, simulator_fixture
from sidestep.sim.world import Fault, SimWorld
from tests.sim.conftest import TOKEN, TestplatProfile

AUTH = {"Authorization": f"Bearer {TOKEN}"}


class OtherProfile(TestplatProfile):
    __test__ = False
    key = "otherplat"
    hosts = ("api.otherplat.example",)


async def post_text(client: httpx.AsyncClient, sim: Simulator, text: str = "hello",
                    **kw: object) -> httpx.Response:
    return await client.post(f"{sim.base_url('testplat')}/v1/posts", json={"text": text},
                             headers=AUTH, **kw)  # type: ignore[arg-type]


async def post_media(client: httpx.AsyncClient, sim: Simulator) -> httpx.Response:
    return await client.post(f"{sim.base_url('testplat')}/v1/media", content=b"\x89PNG",
                             headers=AUTH)


async def test_it_records_each_accepted_post_exactly_once(sim: Simulator) -> None:
    async with httpx.AsyncClient() as client:
        first = await post_text(client, sim, "one")
        second = await post_text(client, sim, "two")
    assert (first.status_code, second.status_code) == (201, 201)
    posts = sim.world.record.all("testplat")
    assert [p.payload["text"] for p in posts] == ["one", "two"]
    assert [p.external_id for p in posts] == [first.json()["id"], second.json()["id"]]
    assert {p.account for p in posts} == {"brand"}


async def test_it_gives_each_platform_its_own_loopback_ip_on_one_port() -> None:
    profiles = {"testplat": TestplatProfile, "otherplat": OtherProfile}
    async with running_simulator(profiles=profiles, dns=False) as sim:
        assert sim.ip_of("otherplat") == "127.0.1.1"  # sorted keys, N from 1
        assert sim.ip_of("testplat") == "127.0.1.2"
        assert sim.host_map() == {
            "api.otherplat.example": "127.0.1.1",
            "api.testplat.example": "127.0.1.2",
            "cdn.testplat.example": "127.0.1.2",
        }
        await sim.set_fault("otherplat", Fault.REFUSED)
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(f"{sim.base_url('otherplat')}/v1/posts")
            response = await client.post(f"{sim.base_url('testplat')}/v1/posts",
                                         json={"text": "x"})
        assert response.status_code == 401  # testplat answers; it only lacks a token


async def test_refused_closes_the_listener_until_the_fault_clears(sim: Simulator) -> None:
    async with httpx.AsyncClient() as client:
        assert (await post_text(client, sim)).status_code == 201  # a kept-alive connection
        await sim.set_fault("testplat", Fault.REFUSED)
        with pytest.raises(httpx.ConnectError):
            await post_text(client, sim)  # the pooled connection was dropped as well
        await sim.clear_faults("testplat")
        assert (await post_text(client, sim)).status_code == 201
    assert len(sim.world.record.all()) == 2


async def test_a_refused_fault_set_straight_on_the_world_is_picked_up(sim: Simulator) -> None:
    sim.world.faults.set("testplat", Fault.REFUSED)
    await asyncio.sleep(WATCH_INTERVAL_S * 4)
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await post_text(client, sim)
        sim.world.faults.clear()
        await asyncio.sleep(WATCH_INTERVAL_S * 4)
        assert (await post_text(client, sim)).status_code == 201


async def test_timeout_accepts_the_request_and_never_answers(sim: Simulator) -> None:
    await sim.set_fault("testplat", Fault.TIMEOUT)
    async with httpx.AsyncClient() as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await post_text(client, sim, timeout=0.3)
        assert time.monotonic() - started >= 0.3
    assert sim.world.record.all() == []


async def test_slow_answers_normally_after_the_delay(sim: Simulator) -> None:
    await sim.set_fault("testplat", Fault.SLOW, delay_s=0.3)
    async with httpx.AsyncClient() as client:
        started = time.monotonic()
        response = await post_text(client, sim)
    assert response.status_code == 201
    assert time.monotonic() - started >= 0.3


async def test_slow_past_the_clients_timeout_is_a_read_timeout(sim: Simulator) -> None:
    await sim.set_fault("testplat", Fault.SLOW)  # default delay_s: 5
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ReadTimeout):
            await post_text(client, sim, timeout=0.2)


async def test_http_5xx_is_the_platforms_own_server_error(sim: Simulator) -> None:
    await sim.set_fault("testplat", Fault.HTTP_5XX)
    async with httpx.AsyncClient() as client:
        response = await post_text(client, sim)
        await sim.set_fault("testplat", Fault.HTTP_5XX, kind="unavailable")
        unavailable = await post_text(client, sim)
    assert response.status_code == 500
    assert response.json()["error"]["kind"] == "server_error"
    assert unavailable.status_code == 503
    assert unavailable.json()["error"]["kind"] == "unavailable"
    assert sim.world.record.all() == []


async def test_rate_limited_is_a_429_with_retry_after(sim: Simulator) -> None:
    await sim.set_fault("testplat", Fault.RATE_LIMITED, retry_after_s=120)
    async with httpx.AsyncClient() as client:
        response = await post_text(client, sim)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "120"
    assert response.json()["error"]["kind"] == "rate_limited"


async def test_rate_limited_defaults_to_thirty_seconds(sim: Simulator) -> None:
    await sim.set_fault("testplat", Fault.RATE_LIMITED)
    async with httpx.AsyncClient() as client:
        response = await post_text(client, sim)
    assert response.headers["retry-after"] == "30"


async def test_auth_expired_is_the_platforms_invalid_token_error(sim: Simulator) -> None:
    await sim.set_fault("testplat", Fault.AUTH_EXPIRED)
    async with httpx.AsyncClient() as client:
        response = await post_text(client, sim)
    assert response.status_code == 401
    assert response.json()["error"]["kind"] == "auth_expired"


async def test_partial_fails_media_while_text_still_works(sim: Simulator) -> None:
    await sim.set_fault("testplat", Fault.PARTIAL, feature="media")
    async with httpx.AsyncClient() as client:
        media = await post_media(client, sim)
        text = await post_text(client, sim)
    assert media.status_code == 422
    assert media.json()["error"]["kind"] == "media_failed"
    assert text.status_code == 201
    assert len(sim.world.record.all()) == 1


async def test_a_fault_with_a_rate_hits_only_that_share_of_requests(sim: Simulator) -> None:
    await sim.set_fault("testplat", Fault.HTTP_5XX, rate=0.5)
    async with httpx.AsyncClient() as client:
        statuses = [(await post_text(client, sim, str(i))).status_code for i in range(40)]
    assert {500, 201} == set(statuses)
    assert 8 <= statuses.count(500) <= 32
    assert len(sim.world.record.all()) == statuses.count(201)


async def test_garbage_json_is_invalid_json_labelled_as_json(sim: Simulator) -> None:
    await sim.set_fault("testplat", Fault.GARBAGE, variant="json")
    async with httpx.AsyncClient() as client:
        response = await post_text(client, sim)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        response.json()


async def test_garbage_html_is_a_cdns_502_page(sim: Simulator) -> None:
    await sim.set_fault("testplat", Fault.GARBAGE, variant="html")
    async with httpx.AsyncClient() as client:
        response = await post_text(client, sim)
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert "502 Bad Gateway" in response.text
    with pytest.raises(json.JSONDecodeError):
        response.json()


async def test_garbage_truncated_closes_before_the_declared_length(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    await sim.set_fault("testplat", Fault.GARBAGE, variant="truncated")
    caplog.set_level(logging.INFO, logger="uvicorn.error")
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.RemoteProtocolError, match="incomplete|complete message body"):
            await post_text(client, sim)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # cut on purpose


async def test_garbage_without_a_variant_is_chosen_by_the_seed() -> None:
    async def variants(seed: int) -> list[str]:
        seen = []
        world = SimWorld(clock=SystemClock(), seed=seed)
        async with Simulator(world=world, profiles={"testplat": TestplatProfile},
                             dns=False) as sim:
            await sim.set_fault("testplat", Fault.GARBAGE)
            async with httpx.AsyncClient() as client:
                for _ in range(8):
                    try:
                        response = await post_text(client, sim)
                    except httpx.RemoteProtocolError:
                        seen.append("truncated")
                    else:
                        seen.append("html" if response.status_code == 502 else "json")
        return seen

    first = await variants(7)
    assert first == await variants(7)
    assert len(set(first)) > 1


async def test_dns_faults_do_not_touch_requests_that_arrive_by_address(sim: Simulator) -> None:
    await sim.set_fault("testplat", Fault.DNS_SERVFAIL)
    await sim.set_fault("testplat", Fault.RATE_LIMITED)
    async with httpx.AsyncClient() as client:
        response = await post_text(client, sim)
    assert response.status_code == 429  # the HTTP fault behind the DNS one still applies


async def test_an_unknown_path_gets_the_platforms_not_found_error(sim: Simulator) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{sim.base_url('testplat')}/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["kind"] == "not_found"


async def test_stopping_drops_requests_that_are_held(sim: Simulator) -> None:
    await sim.set_fault("testplat", Fault.TIMEOUT)
    async with httpx.AsyncClient() as client:
        pending = asyncio.create_task(post_text(client, sim, timeout=10))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await sim.stop()
        assert time.monotonic() - started < 2
        with pytest.raises(httpx.RemoteProtocolError):
            await pending


@pytest.mark.parametrize(
    ("kwargs", "address"),
    [
        ({"bind_base": "10.1.2"}, "10.1.2.1"),
        ({"control_host": "0.0.0.0"}, "0.0.0.0"),  # noqa: S104 - that is the point
        ({"bind_base": "192.168.0"}, "192.168.0.1"),
    ],
)
def test_it_refuses_to_bind_an_address_that_is_not_loopback(
    kwargs: dict[str, str], address: str
) -> None:
    with pytest.raises(ValueError, match=f"refusing to bind {address}"):
        Simulator(profiles={"testplat": TestplatProfile}, dns=False, **kwargs)  # type: ignore[arg-type]


def test_two_profiles_claiming_one_host_are_refused() -> None:
    class Twin(TestplatProfile):
        __test__ = False
        key = "twin"

    with pytest.raises(ValueError, match="api.testplat.example is claimed by both"):
        Simulator(profiles={"testplat": TestplatProfile, "twin": Twin}, dns=False)


async def test_set_fault_refuses_what_it_could_not_honour(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="unknown platform 'nope'"):
        await sim.set_fault("nope", Fault.REFUSED)
    with pytest.raises(ValueError, match="unknown fault 'meltdown'"):
        await sim.set_fault("testplat", "meltdown")
    with pytest.raises(ValueError, match="needs the feature"):
        await sim.set_fault("testplat", Fault.PARTIAL)
    with pytest.raises(ValueError, match="variant"):
        await sim.set_fault("testplat", Fault.GARBAGE, variant="xml")
    with pytest.raises(ValueError, match="delay_s"):
        await sim.set_fault("testplat", Fault.SLOW, delay_s="soon")
    assert sim.world.faults.active() == []


async def test_ports_and_urls_are_known_only_once_started() -> None:
    sim = Simulator(profiles={"testplat": TestplatProfile}, dns=False)
    with pytest.raises(RuntimeError, match="not started"):
        _ = sim.http_port
    async with sim:
        assert sim.http_port > 0
        assert sim.control_url.startswith("http://127.0.0.1:")
        assert sim.dns_address is None


fixture_sim = simulator_fixture(seed=2, profiles={"testplat": TestplatProfile}, dns=False)


async def test_simulator_fixture_makes_a_fixture_named_by_its_variable(
    fixture_sim: Simulator,
) -> None:
    assert fixture_sim.platforms == ["testplat"]
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{fixture_sim.base_url('testplat')}/v1/posts",
                                     json={"text": "x"})
    assert response.status_code == 401  # running; no token granted in this world


async def test_running_simulator_takes_a_world_or_a_seed_not_both() -> None:
    world = SimWorld(clock=SystemClock(), seed=5)
    with pytest.raises(ValueError, match="not both"):
        async with running_simulator(world=world, seed=5, profiles={}):
            pass


async def test_a_taken_port_fails_start_with_an_os_error(sim: Simulator) -> None:
    clash = Simulator(profiles={"testplat": TestplatProfile}, dns=False,
                      http_port=sim.http_port)  # 127.0.1.1:<port> is the running one's
    with pytest.raises(OSError):
        await clash.start()
    again = Simulator(profiles={"testplat": TestplatProfile}, dns=False, bind_base="127.0.2",
                      http_port=sim.http_port)
    async with again:  # the same port on other addresses is free
        assert again.http_port == sim.http_port


class SharedHostProfile(TestplatProfile):
    """testplat's host also serves a product of its own ("guestplat") under /guest."""

    __test__ = False

    def routes(self) -> list[BaseRoute]:
        return [*super().routes(), Route("/guest", self.guest, methods=["GET"])]

    def platform_of(self, request: Request) -> str:
        return "guestplat" if request.url.path.startswith("/guest") else self.key

    def error_for(self, request: Request, kind: ErrorKind, message: str, *,
                  retry_after_s: float | None = None) -> Response:
        response = self.error(kind, message, retry_after_s=retry_after_s)
        response.headers["x-product"] = self.platform_of(request)
        return response

    async def guest(self, request: Request) -> Response:
        return JSONResponse({"guest": True})


async def test_a_product_on_a_shared_host_meets_its_own_faults_in_its_own_words() -> None:
    async with running_simulator(profiles={"testplat": SharedHostProfile}, dns=False) as sim:
        guest = f"{sim.base_url('testplat')}/guest"
        async with httpx.AsyncClient() as client:
            sim.world.faults.set("guestplat", Fault.RATE_LIMITED)
            limited = await client.get(guest)
            assert (limited.status_code, limited.headers["x-product"]) == (429, "guestplat")
            assert (await post_text(client, sim)).status_code == 401  # testplat: no fault
            sim.world.faults.clear()

            await sim.set_fault("testplat", Fault.HTTP_5XX)
            assert (await client.get(guest)).status_code == 200  # not the guest's fault
            await sim.clear_faults()

            sim.world.faults.set("guestplat", Fault.TIMEOUT)  # connection faults are the host's
            assert (await client.get(guest)).status_code == 200
            sim.world.faults.clear()
            await sim.set_fault("testplat", Fault.TIMEOUT)
            with pytest.raises(httpx.ReadTimeout):
                await client.get(guest, timeout=0.2)
