"""Shared fixtures: a migrated database on SQLite and on PostgreSQL, a frozen clock.

PostgreSQL tests use the server named by SIDESTEP_TEST_PG_URL (set by `make test`, which
starts a throwaway server when none runs). Without that variable they fail with a message
saying so: they are never skipped silently.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from sidestep.clock import FrozenClock
from sidestep.config import Settings
from sidestep.runtime import Runtime
from sidestep.store.db import Database

START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def pg_admin_url() -> str:
    url = os.environ.get("SIDESTEP_TEST_PG_URL")
    if not url:
        pytest.fail(
            "SIDESTEP_TEST_PG_URL is not set: run the suite with `make test`, which starts a "
            "PostgreSQL server when none runs, or point it at one (postgresql://user@host/db)"
        )
    return url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    admin = pg_admin_url()
    name = f"sidestep_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.migrate()
    yield database
    await database.close()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


@pytest.fixture
async def runtime(settings: Settings, clock: FrozenClock) -> AsyncIterator[Runtime]:
    rt = Runtime.from_settings(settings, clock=clock)
    await rt.start()
    yield rt
    await rt.close()
