"""Probe agents: a real agent loop probing the simulator and posting to the app under uvicorn;
the hub refusing unsigned, forged, replayed, stale, oversized and malformed batches."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select

from sidestep.catalogue.loader import Catalogue
from sidestep.clock import FrozenClock
from sidestep.monitor.agent import HubClient, HubRefused, ProbeRound, run_agent
from sidestep.monitor.hub import BatchRejected, Hub
from sidestep.monitor.probes.dns import DnsProbe, NamedResolver
from sidestep.monitor.probes.http import HttpProbe
from sidestep.monitor.probes.statuspage import StatusPageProbe
from sidestep.monitor.signing import AgentToken, sign
from sidestep.runtime import Runtime
from sidestep.sim.server import Simulator
from sidestep.store.agents import AgentError, Agents
from sidestep.store.db import Database
from sidestep.store.health import NewObservation
from sidestep.store.tables import Observation
from sidestep.vault import Fernet, Vault
from sidestep.web.app import create_app

PATH = "/api/v1/agent/observations"


async def issue(runtime: Runtime, name: str = "fra-1") -> AgentToken:
    async with runtime.db.session() as s:
        return AgentToken.parse(await Agents(s, vault=runtime.vault).issue(
            name=name, at=runtime.clock.now()))


@pytest.fixture
def app(runtime: Runtime, catalogue: Catalogue) -> FastAPI:
    return create_app(runtime, catalogue=catalogue)


@pytest.fixture
async def hub_url(app: FastAPI) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    async with asyncio.timeout(10):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://hub") as c:
        yield c


def batch(clock: FrozenClock, n: int = 1, **fields: object) -> bytes:
    one = {"platform": "facebook", "signal": "dns", "observed_at": clock.now().isoformat(),
           "outcome": "servfail", "feature": "dns", "target": "facebook.com@resolver:x",
           **fields}
    return json.dumps({"observations": [one] * n}).encode()


def signed(token: AgentToken, body: bytes, clock: FrozenClock, **kw: object) -> dict[str, str]:
    return sign(token.signing_key, key_id=token.key_id, body=body,
                timestamp=int(clock.now().timestamp()), **kw)  # type: ignore[arg-type]


async def stored(runtime: Runtime) -> list[Observation]:
    async with runtime.db.session() as s:
        return list((await s.scalars(select(Observation).order_by(Observation.id))).all())


async def test_an_agent_round_reaches_the_hub_with_its_vantage(
    runtime: Runtime, hub_url: str, sim: Simulator, sim_resolver: NamedResolver,
    catalogue: Catalogue, clock: FrozenClock,
) -> None:
    token = await issue(runtime)
    assert sim.dns_address is not None
    async with sim.client() as probe_client, httpx.AsyncClient() as hub_client:
        probes = ProbeRound(
            platforms=[catalogue.get("facebook"), catalogue.get("telegram")],
            http=HttpProbe(client=probe_client, clock=clock, timeout_s=3.0),
            dns=DnsProbe(clock=clock), status=StatusPageProbe(client=probe_client, clock=clock),
            resolvers=[sim_resolver], bootstrap=sim_resolver, ns_port=sim.dns_address[1])
        hub = HubClient(hub_url=hub_url, token=token, client=hub_client, clock=clock,
                        vantage="fra-1", batch_size=5)
        healthy = await run_agent(probes, hub, interval_s=60, once=True)
        await sim.set_fault("facebook", "dns_servfail")
        failing = await run_agent(probes, hub, interval_s=60, once=True)
    assert healthy.accepted > 5 and healthy.pending == 0 and healthy.dropped == 0
    assert failing.accepted == healthy.accepted
    rows = await stored(runtime)
    assert len(rows) == 2 * healthy.accepted
    assert {r.vantage for r in rows} == {"fra-1"}
    assert {r.platform for r in rows} == {"facebook", "telegram"}
    second = rows[healthy.accepted:]
    facebook_dns = [r for r in second if r.platform == "facebook" and r.signal == "dns"]
    assert facebook_dns and {r.outcome for r in facebook_dns} == {"servfail"}
    assert {r.target.split("@")[1].split(":")[0] for r in facebook_dns} == {
        "resolver", "authoritative"}
    async with runtime.db.session() as s:
        agent = await Agents(s, vault=runtime.vault).by_name("fra-1")
    assert agent is not None and agent.last_seen_at == clock.now()


async def test_the_agent_keeps_observations_while_the_hub_is_unreachable(
    clock: FrozenClock,
) -> None:
    token = AgentToken.parse("ssa_0123456789abcdef_" + "a" * 43)
    async with httpx.AsyncClient() as c:
        hub = HubClient(hub_url="http://127.0.0.1:9", token=token, client=c, clock=clock,
                        batch_size=1, max_pending=3)
        one = NewObservation(platform="x", signal="dns", vantage="v", observed_at=clock.now(),
                             outcome="ok")
        report = await hub.send([one, one])
        again = await hub.send([one, one])
    assert (report.accepted, report.pending) == (0, 2)
    assert (again.accepted, again.dropped, again.pending) == (0, 1, 3)


async def test_a_revoked_or_forged_token_stops_the_agent(
    runtime: Runtime, hub_url: str, clock: FrozenClock,
) -> None:
    token = await issue(runtime)
    forged = AgentToken(token.key_id, "b" * 43)
    one = NewObservation(platform="x", signal="http", vantage="", observed_at=clock.now(),
                         outcome="ok", feature="web")
    async with httpx.AsyncClient() as c:
        with pytest.raises(HubRefused, match="bad signature"):
            await HubClient(hub_url=hub_url, token=forged, client=c, clock=clock).send([one])
        async with runtime.db.session() as s:
            await Agents(s, vault=runtime.vault).revoke(name="fra-1", at=clock.now())
        with pytest.raises(HubRefused):
            await HubClient(hub_url=hub_url, token=token, client=c, clock=clock).send([one])
    assert await stored(runtime) == []


async def test_it_rejects_an_unsigned_batch(client: httpx.AsyncClient, clock: FrozenClock) -> None:
    response = await client.post(PATH, content=batch(clock))
    assert response.status_code == 401
    assert response.json()["detail"].startswith("unsigned batch")


async def test_it_rejects_a_badly_signed_batch(
    runtime: Runtime, client: httpx.AsyncClient, clock: FrozenClock,
) -> None:
    token = await issue(runtime)
    body = batch(clock)
    headers = signed(token, body, clock)
    tampered = body.replace(b"servfail", b"ok")
    response = await client.post(PATH, content=tampered, headers=headers)
    assert response.status_code == 401 and "bad signature" in response.json()["detail"]
    headers["X-Sidestep-Signature"] = "v1=" + "0" * 64
    assert (await client.post(PATH, content=body, headers=headers)).status_code == 401
    headers["X-Sidestep-Signature"] = "sha1=abc"
    response = await client.post(PATH, content=body, headers=headers)
    assert response.status_code == 401 and "malformed" in response.json()["detail"]
    assert await stored(runtime) == []


async def test_it_rejects_a_replayed_batch(
    runtime: Runtime, client: httpx.AsyncClient, clock: FrozenClock,
) -> None:
    token = await issue(runtime)
    body = batch(clock)
    headers = signed(token, body, clock)
    first = await client.post(PATH, content=body, headers=headers)
    replay = await client.post(PATH, content=body, headers=headers)
    assert (first.status_code, first.json()) == (202, {"accepted": 1})
    assert replay.status_code == 409 and "replayed" in replay.json()["detail"]
    assert len(await stored(runtime)) == 1


async def test_it_rejects_a_stale_batch(
    runtime: Runtime, client: httpx.AsyncClient, clock: FrozenClock,
) -> None:
    token = await issue(runtime)
    body = batch(clock)
    old = sign(token.signing_key, key_id=token.key_id, body=body,
               timestamp=int(clock.now().timestamp()) - 301)
    response = await client.post(PATH, content=body, headers=old)
    assert response.status_code == 401 and "stale batch" in response.json()["detail"]
    early = sign(token.signing_key, key_id=token.key_id, body=body,
                 timestamp=int(clock.now().timestamp()) + 3600)
    assert (await client.post(PATH, content=body, headers=early)).status_code == 401


async def test_it_rejects_oversized_batches(
    runtime: Runtime, client: httpx.AsyncClient, clock: FrozenClock, app: FastAPI,
) -> None:
    token = await issue(runtime)
    hub: Hub = app.state.agent_hub
    many = batch(clock, n=hub.max_observations + 1)
    response = await client.post(PATH, content=many, headers=signed(token, many, clock))
    assert response.status_code == 413 and "at most 2000" in response.json()["detail"]
    huge = b'{"observations": []' + b" " * hub.max_bytes + b"}"
    response = await client.post(PATH, content=huge, headers=signed(token, huge, clock))
    assert response.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: read until the cap
        for _ in range(20):
            yield b" " * (hub.max_bytes // 10)

    response = await client.post(PATH, content=chunks(), headers=signed(token, b"", clock))
    assert response.status_code == 413
    assert await stored(runtime) == []


@pytest.mark.parametrize(("fields", "message"), [
    ({"platform": "myspace"}, "unknown platform 'myspace'"),
    ({"outcome": "fine"}, "observations.0.outcome"),
    ({"observed_at": "2020-01-01T00:00:00+00:00"}, "outside the last hour"),
    ({"observed_at": "2026-11-23T12:00:00"}, "UTC offset"),
    ({"vantage": "x"}, "observations.0.vantage"),
])
async def test_it_rejects_malformed_observations(
    runtime: Runtime, client: httpx.AsyncClient, clock: FrozenClock,
    fields: dict[str, object], message: str,
) -> None:
    token = await issue(runtime)
    body = batch(clock, **fields)
    response = await client.post(PATH, content=body, headers=signed(token, body, clock))
    assert response.status_code == 422 and message in response.json()["detail"]
    garbage = b"\xff not json"
    response = await client.post(PATH, content=garbage, headers=signed(token, garbage, clock))
    assert response.status_code == 422
    assert await stored(runtime) == []


async def test_a_batch_naming_another_vantage_is_refused(
    runtime: Runtime, client: httpx.AsyncClient, clock: FrozenClock,
) -> None:
    token = await issue(runtime)
    body = json.dumps({"vantage": "local", "observations": []}).encode()
    response = await client.post(PATH, content=body, headers=signed(token, body, clock))
    assert response.status_code == 422 and "belongs to the agent 'fra-1'" in response.text


async def test_replays_are_refused_on_both_engines(db: Database, clock: FrozenClock) -> None:
    vault = Vault(Fernet.generate_key())
    async with db.session() as s:
        token = AgentToken.parse(await Agents(s, vault=vault).issue(name="sgp", at=clock.now()))
    hub = Hub(db=db, vault=vault, clock=clock, platforms=["facebook"])
    body = batch(clock, n=3)
    headers = signed(token, body, clock, nonce="ab" * 16)
    assert await hub.accept(headers, body) == 3
    with pytest.raises(BatchRejected) as rejected:
        await hub.accept(headers, body)
    assert rejected.value.status == 409
    clock.advance(seconds=700)  # the old nonce is forgotten, but its timestamp is stale now
    with pytest.raises(BatchRejected) as rejected:
        await hub.accept(headers, body)
    assert rejected.value.status == 401


async def test_agent_names_are_checked(runtime: Runtime) -> None:
    async with runtime.db.session() as s:
        agents = Agents(s, vault=runtime.vault)
        for bad in ("local", "Fra 1", "", "x" * 64):
            with pytest.raises(AgentError):
                await agents.issue(name=bad, at=runtime.clock.now())
        await agents.issue(name="fra-1", at=runtime.clock.now())
        with pytest.raises(AgentError, match="exists"):
            await agents.issue(name="fra-1", at=runtime.clock.now())
        await agents.revoke(name="fra-1", at=runtime.clock.now())
        assert (await agents.issue(name="fra-1", at=runtime.clock.now())).startswith("ssa_")
