from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from sidestep.clock import FrozenClock
from sidestep.config import Settings
from sidestep.runtime import Runtime
from sidestep.web.app import create_app
from tests.web.conftest import CATALOGUE, World, sign_in


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_healthz_is_ok_when_the_database_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


async def test_healthz_is_503_when_the_database_does_not_answer(
    tmp_path: Path, clock: FrozenClock
) -> None:
    # A directory where the SQLite file should be: every connection attempt fails.
    (tmp_path / "not-a-file.db").mkdir()
    settings = Settings(data_dir=tmp_path / "data",
                        database_url=f"sqlite+aiosqlite:///{tmp_path / 'not-a-file.db'}")
    runtime = Runtime.from_settings(settings, clock=clock)
    app = create_app(runtime, catalogue=CATALOGUE)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver") as client:
        response = await client.get("/healthz")
    await runtime.close()
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "error"}


async def test_healthz_is_503_for_a_database_that_was_never_migrated(
    tmp_path: Path, clock: FrozenClock
) -> None:
    runtime = Runtime.from_settings(Settings(data_dir=tmp_path / "fresh"), clock=clock)
    app = create_app(runtime, catalogue=CATALOGUE)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://testserver") as client:
        response = await client.get("/healthz")
    await runtime.close()
    assert response.status_code == 503


async def test_metrics_count_requests_by_method_route_template_and_status(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    await sign_in(client, runtime, world.viewer)
    for _ in range(2):
        await client.get("/w/acme/status")
    await client.get("/w/globex/status")  # not a member: 404, same route template
    await client.get("/some/random/path")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    values = samples(response.text)

    def count(route: str, status: str) -> float:
        key = ("http_requests_total",
               frozenset({("method", "GET"), ("route", route), ("status", status)}))
        return values.get(key, 0.0)

    assert count("/w/{slug}/status", "200") == 2
    assert count("/w/{slug}/status", "404") == 1
    assert count("<unmatched>", "404") == 1
    assert not any("/some/random/path" in str(labels) for _, labels in values)
    latency_count = values[("http_request_duration_seconds_count",
                            frozenset({("method", "GET"), ("route", "/w/{slug}/status")}))]
    assert latency_count == 3


async def test_each_app_counts_in_its_own_registry(runtime: Runtime) -> None:
    first, second = create_app(runtime, catalogue=CATALOGUE), create_app(runtime,
                                                                         catalogue=CATALOGUE)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=first),
                                 base_url="http://testserver") as client:
        for _ in range(3):
            await client.get("/healthz")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=second),
                                 base_url="http://testserver") as client:
        text = (await client.get("/metrics")).text
    key = ("http_requests_total",
           frozenset({("method", "GET"), ("route", "/healthz"), ("status", "200")}))
    assert samples(text).get(key, 0.0) == 0
