"""The control API over HTTP, and `sidestep sim ...` driving a simulator that runs elsewhere."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import types
from collections.abc import Iterator

import httpx
import pytest
from typer.testing import CliRunner

from sidestep.clock import SystemClock
from sidestep.sim.cli import sim_app
from sidestep.sim.server import Simulator
from sidestep.sim.world import Fault, SimWorld
from tests.sim.conftest import TOKEN, TestplatProfile

AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def control(sim: Simulator, method: str, path: str, **kw: object) -> httpx.Response:
    async with httpx.AsyncClient(base_url=sim.control_url) as client:
        return await client.request(method, path, **kw)  # type: ignore[arg-type]


async def test_health_names_the_platforms(sim: Simulator) -> None:
    response = await control(sim, "GET", "/health")
    assert response.json() == {"status": "ok", "platforms": ["testplat"]}


async def test_a_fault_posted_is_in_force_and_listed(sim: Simulator) -> None:
    response = await control(sim, "POST", "/faults", json={
        "platform": "testplat", "fault": "rate_limited", "params": {"retry_after_s": 9},
    })
    assert response.status_code == 201
    assert response.json()["fault"] == "rate_limited"
    listed = (await control(sim, "GET", "/faults")).json()["faults"]
    assert [(f["platform"], f["fault"], f["params"]) for f in listed] == [
        ("testplat", "rate_limited", {"retry_after_s": 9})
    ]
    async with httpx.AsyncClient() as client:
        hit = await client.post(f"{sim.base_url('testplat')}/v1/posts", json={"text": "x"},
                                headers=AUTH)
    assert (hit.status_code, hit.headers["retry-after"]) == (429, "9")


async def test_refused_through_the_control_api_closes_the_listener_at_once(
    sim: Simulator,
) -> None:
    await control(sim, "POST", "/faults", json={"platform": "testplat", "fault": "refused"})
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{sim.base_url('testplat')}/v1/posts")
    assert (await control(sim, "DELETE", "/faults/testplat")).json() == {"cleared": 1}
    async with httpx.AsyncClient() as client:
        assert (await client.post(f"{sim.base_url('testplat')}/v1/posts", json={"text": "x"},
                                  headers=AUTH)).status_code == 201


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"platform": "myspace", "fault": "refused"}, "unknown platform 'myspace'"),
        ({"platform": "testplat", "fault": "meltdown"}, "unknown fault 'meltdown'"),
        ({"platform": "testplat", "fault": "partial"}, "needs the feature"),
        ({"platform": "testplat", "fault": "http_5xx", "rate": 2}, "rate"),
        ({"platform": "testplat"}, "fault: Field required"),
        ({"platform": "testplat", "fault": "slow", "extra": 1}, "extra"),
    ],
)
async def test_a_bad_fault_is_a_400_with_one_clear_line(
    sim: Simulator, body: dict[str, object], message: str
) -> None:
    response = await control(sim, "POST", "/faults", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert sim.world.faults.active() == []


async def test_a_body_that_is_not_json_is_a_400(sim: Simulator) -> None:
    response = await control(sim, "POST", "/faults", content=b"{nope")
    assert response.status_code == 400
    assert "error" in response.json()


async def test_clearing_all_faults_says_how_many(sim: Simulator) -> None:
    await sim.set_fault("testplat", Fault.SLOW, delay_s=1)
    await sim.set_fault("testplat", Fault.PARTIAL, feature="media")
    assert (await control(sim, "DELETE", "/faults")).json() == {"cleared": 2}
    unknown = await control(sim, "DELETE", "/faults/myspace")
    assert unknown.status_code == 400


async def test_clearing_one_fault_of_a_platform_leaves_its_others(sim: Simulator) -> None:
    await sim.set_fault("testplat", Fault.SLOW, delay_s=1)
    await sim.set_fault("testplat", Fault.PARTIAL, feature="media")
    await sim.set_fault("testplat", Fault.PARTIAL, feature="read")
    cleared = await control(sim, "DELETE", "/faults/testplat", params={"fault": "partial"})
    assert cleared.json() == {"cleared": 2}  # that fault, on every feature
    assert [f.fault for f in sim.world.faults.active()] == [Fault.SLOW]
    unknown = await control(sim, "DELETE", "/faults/testplat", params={"fault": "meltdown"})
    assert unknown.status_code == 400
    assert "unknown fault 'meltdown'" in unknown.json()["error"]


async def test_the_record_lists_clears_and_filters_accepted_posts(sim: Simulator) -> None:
    async with sim.client() as client:
        await client.post("https://api.testplat.example/v1/posts", json={"text": "a"},
                          headers={**AUTH, "Idempotency-Key": "k1"})
    posts = (await control(sim, "GET", "/record?platform=testplat")).json()["posts"]
    assert [(p["seq"], p["platform"], p["payload"], p["idempotency_marker"]) for p in posts] == [
        (1, "testplat", {"text": "a"}, "k1")
    ]
    assert (await control(sim, "GET", "/record?platform=myspace")).status_code == 400
    assert (await control(sim, "DELETE", "/record")).json() == {"cleared": 1}
    assert (await control(sim, "GET", "/record")).json() == {"posts": []}


async def test_a_granted_token_is_accepted_by_the_platform(sim: Simulator) -> None:
    response = await control(sim, "POST", "/tokens",
                             json={"platform": "testplat", "token": "new", "account": "shop"})
    assert response.status_code == 201
    async with sim.client() as client:
        posted = await client.post("https://api.testplat.example/v1/posts", json={"text": "a"},
                                   headers={"Authorization": "Bearer new"})
    assert posted.status_code == 201
    assert sim.world.record.all()[0].account == "shop"


async def test_hosts_maps_every_hostname_to_its_platform_ip(sim: Simulator) -> None:
    answer = (await control(sim, "GET", "/hosts")).json()
    assert answer == {
        "hosts": {"api.testplat.example": "127.0.1.1", "cdn.testplat.example": "127.0.1.1"},
        "http_port": sim.http_port,
        "dns": None,
    }


# --- the CLI, against a simulator running in another thread ----------------------------------

runner = CliRunner()


@pytest.fixture
def served() -> Iterator[Simulator]:
    """A simulator in its own event loop and thread, as `sidestep sim serve` would run it."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    world = SimWorld(clock=SystemClock(), seed=1)
    sim = Simulator(world=world, profiles={"testplat": TestplatProfile}, dns=False)
    asyncio.run_coroutine_threadsafe(sim.start(), loop).result(timeout=10)
    try:
        yield sim
    finally:
        asyncio.run_coroutine_threadsafe(sim.stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(sim_app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_fault_turns_a_fault_on_with_params(served: Simulator) -> None:
    code, out, err = invoke("fault", "testplat", "rate_limited", "--param", "retry_after_s=120",
                            "--rate", "0.5", "--control", served.control_url)
    assert code == 0, err
    assert "fault on: testplat rate_limited" in out
    (active,) = served.world.faults.active()
    assert (active.fault, active.rate, active.params) == (Fault.RATE_LIMITED, 0.5,
                                                          {"retry_after_s": 120})


def test_cli_partial_takes_a_feature(served: Simulator) -> None:
    code, out, err = invoke("fault", "testplat", "partial", "--feature", "media",
                            "--control", served.control_url)
    assert code == 0, err
    assert served.world.faults.active()[0].feature == "media"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("fault", "myspace", "refused"), "unknown platform 'myspace'"),
        (("fault", "testplat", "meltdown"), "unknown fault 'meltdown'"),
        (("fault", "testplat", "slow", "--param", "delay"), "--param takes name=value"),
        (("clear", "myspace"), "unknown platform 'myspace'"),
    ],
)
def test_cli_mistakes_are_one_line_and_exit_code_2(
    served: Simulator, args: tuple[str, ...], message: str
) -> None:
    code, out, err = invoke(*args, "--control", served.control_url)
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err + out


def test_cli_clear_record_and_hosts(served: Simulator) -> None:
    served.world.faults.set("testplat", Fault.SLOW)
    code, out, _ = invoke("clear", "--control", served.control_url)
    assert (code, out.strip()) == (0, "cleared 1 fault(s)")
    served.world.record.add(platform="testplat", account="brand", kind="post",
                            external_id="tp-9", payload={}, idempotency_marker="m-1")
    code, out, _ = invoke("record", "--platform", "testplat", "--control", served.control_url)
    assert code == 0 and "tp-9" in out and "m-1" in out
    code, out, _ = invoke("hosts", "--control", served.control_url)
    assert code == 0 and "api.testplat.example" in out and "127.0.1.1" in out


def test_cli_says_so_when_no_simulator_answers() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, _, err = invoke("hosts", "--control", f"http://127.0.0.1:{port}")
    assert code == 1
    assert "no simulator answers" in err and len(err.strip().splitlines()) == 1


def test_cli_run_scenario_without_the_scenario_module_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "sidestep.sim.scenario", None)  # as if it were missing
    code, _, err = invoke("run-scenario", "meta-2021")
    assert code == 2
    assert "sidestep.sim.scenario is missing" in err


def test_cli_run_scenario_hands_over_to_the_scenario_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[object, ...]] = []
    fake = types.ModuleType("sidestep.sim.scenario")
    fake.run_cli = lambda *args: calls.append(args)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sidestep.sim.scenario", fake)
    code, _, err = invoke("run-scenario", "meta-2021", "--speed", "60", "--seed", "3")
    assert code == 0, err
    assert calls == [("meta-2021", 60.0, 3, "http://127.0.0.1:8790")]
    fake.run_cli = lambda *args: 1  # type: ignore[attr-defined]
    assert invoke("run-scenario", "meta-2021")[0] == 1  # its exit code is passed on


def test_cli_run_scenario_exits_with_the_real_replays_code() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    unreachable = invoke("run-scenario", "tiktok-partial", "--control", f"http://127.0.0.1:{port}")
    assert unreachable[0] == 1, unreachable
    assert invoke("run-scenario", "no-such-scenario")[0] == 2


def test_cli_run_scenario_replays_against_a_running_simulator(served: Simulator) -> None:
    code, out, err = invoke("run-scenario", "tiktok-partial", "--speed", "inf",
                            "--control", served.control_url)
    assert code == 0, out + err
    assert "skipped: the simulator does not serve tiktok" in out


def test_cli_serve_prints_the_host_map_and_stops_on_ctrl_c() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        control_port = probe.getsockname()[1]
    code = "from sidestep.sim.cli import sim_app; sim_app()"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--control-port", str(control_port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "Control API" in line:
                break
        assert f"http://127.0.0.1:{control_port}" in lines[-1], "".join(lines)
        health = httpx.get(f"http://127.0.0.1:{control_port}/health", timeout=5)
        assert health.json()["status"] == "ok"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
