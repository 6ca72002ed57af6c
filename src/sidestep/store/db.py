"""The database handle: engine, sessions, and migrations on start.

SQLite runs in WAL mode with foreign keys on and a busy timeout; PostgreSQL is used as is.
Both go through the same tables and the same Alembic migrations.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from sidestep.store.events import EventBus, attach_bus

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class Database:
    """One engine and its session factory; `session()` is a unit of work."""

    def __init__(self, url: str, *, bus: EventBus | None = None) -> None:
        self.url = _async_url(url)
        self.bus = bus or EventBus()
        self.engine: AsyncEngine = _make_engine(self.url)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits when the block ends and rolls back on error."""
        async with self._sessions() as session:
            attach_bus(session, self.bus)
            async with session.begin():
                yield session

    async def ping(self) -> bool:
        """True when the database answers and has been migrated."""
        try:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1 FROM alembic_version")
        except Exception:  # noqa: BLE001 - any failure means "not ready", reported as such
            return False
        return True

    async def migrate(self) -> None:
        """Apply every Alembic migration not yet applied."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade_to_head)

    async def close(self) -> None:
        await self.engine.dispose()


def _upgrade_to_head(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _async_url(url: str) -> str:
    """Accept plain URLs too: sqlite:/// and postgresql:// get their async drivers."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def _make_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
