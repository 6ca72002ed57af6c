from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from sidestep.store.db import Database
from sidestep.store.schema import metadata

NOUN_TABLES = {
    "workspace", "member", "channel", "post", "delivery", "delivery_attempt", "observation",
    "platform_state", "incident", "event",
}


async def test_migrations_build_every_table_from_empty(db: Database) -> None:
    async with db.engine.connect() as conn:
        names = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    assert NOUN_TABLES <= names
    assert "alembic_version" in names


async def test_migrated_schema_matches_the_models(db: Database) -> None:
    # Full-text search is per engine and made only in migration 0005 (FTS5 table, GIN index).
    from sidestep.store.tables_archive import DB_ONLY_OBJECTS

    def include(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
        return name not in DB_ONLY_OBJECTS

    def diff(sync_conn):  # type: ignore[no-untyped-def]
        context = MigrationContext.configure(sync_conn, opts={"include_object": include})
        return compare_metadata(context, metadata)

    async with db.engine.connect() as conn:
        changes = await conn.run_sync(diff)
    assert changes == []


async def test_migrating_twice_changes_nothing(db: Database) -> None:
    await db.migrate()
    async with db.engine.connect() as conn:
        names = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    assert NOUN_TABLES <= names


async def test_sqlite_runs_in_wal_mode(tmp_path) -> None:  # type: ignore[no-untyped-def]
    database = Database(f"sqlite:///{tmp_path / 'x.db'}")
    await database.migrate()
    async with database.engine.connect() as conn:
        mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar()
    await database.close()
    assert mode == "wal"
