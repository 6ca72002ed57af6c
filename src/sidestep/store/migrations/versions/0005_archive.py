"""archive tables, with full-text search per engine

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# SQLite: an external-content FTS5 table (the text is stored once, in archive_post) kept in
# step by triggers, so every writer of archive_post keeps search current without knowing it.
SQLITE_FTS = [
    "CREATE VIRTUAL TABLE archive_post_fts USING fts5("
    "text, content='archive_post', content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER archive_post_fts_ai AFTER INSERT ON archive_post BEGIN "
    "INSERT INTO archive_post_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER archive_post_fts_ad AFTER DELETE ON archive_post BEGIN "
    "INSERT INTO archive_post_fts(archive_post_fts, rowid, text) "
    "VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER archive_post_fts_au AFTER UPDATE OF text ON archive_post BEGIN "
    "INSERT INTO archive_post_fts(archive_post_fts, rowid, text) "
    "VALUES ('delete', old.id, old.text); "
    "INSERT INTO archive_post_fts(rowid, text) VALUES (new.id, new.text); END",
]
# PostgreSQL: an expression index; queries use the same expression, so no column to maintain.
POSTGRES_FTS = [
    "CREATE INDEX ix_archive_post_search ON archive_post "
    "USING gin (to_tsvector('simple', text))",
]


def upgrade() -> None:
    op.create_table(
        "archive_post",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("workspace_id", BIG_ID, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("text_key", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("permalink", sa.String(length=2048), nullable=True),
        sa.Column("link", sa.String(length=2048), nullable=True),
        sa.Column("visibility", sa.String(length=12), nullable=False),
        sa.Column("reply_to", sa.String(length=2048), nullable=True),
        sa.Column("media", sa.JSON(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("origin_post_id", BIG_ID, nullable=True),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspace.id"],
            name=op.f("fk_archive_post_workspace_id_workspace"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["origin_post_id"], ["post.id"],
            name=op.f("fk_archive_post_origin_post_id_post"), ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_archive_post")),
        sa.UniqueConstraint("origin_post_id", name=op.f("uq_archive_post_origin_post_id")),
    )
    with op.batch_alter_table("archive_post", schema=None) as batch_op:
        batch_op.create_index(
            "ix_archive_post_listing", ["workspace_id", "created_at", "id"], unique=False
        )
        batch_op.create_index(
            "ix_archive_post_text_key", ["workspace_id", "text_key", "created_at"], unique=False
        )

    op.create_table(
        "archive_source",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("workspace_id", BIG_ID, nullable=False),
        sa.Column("post_id", BIG_ID, nullable=False),
        sa.Column("platform", sa.String(length=40), nullable=False),
        sa.Column("source_id", sa.String(length=300), nullable=False),
        sa.Column("permalink", sa.String(length=2048), nullable=True),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("delivery_id", BIG_ID, nullable=True),
        sa.Column("channel_id", BIG_ID, nullable=True),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspace.id"],
            name=op.f("fk_archive_source_workspace_id_workspace"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["post_id"], ["archive_post.id"],
            name=op.f("fk_archive_source_post_id_archive_post"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"], ["delivery.id"],
            name=op.f("fk_archive_source_delivery_id_delivery"), ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["channel.id"],
            name=op.f("fk_archive_source_channel_id_channel"), ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_archive_source")),
        sa.UniqueConstraint(
            "workspace_id", "platform", "source_id",
            name=op.f("uq_archive_source_workspace_id"),
        ),
        sa.UniqueConstraint("delivery_id", name=op.f("uq_archive_source_delivery_id")),
    )
    with op.batch_alter_table("archive_source", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_archive_source_post_id"), ["post_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_archive_source_channel_id"), ["channel_id"], unique=False
        )

    op.create_table(
        "archive_media",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("workspace_id", BIG_ID, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("mime_type", sa.String(length=100), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"], ["workspace.id"],
            name=op.f("fk_archive_media_workspace_id_workspace"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_archive_media")),
        sa.UniqueConstraint(
            "workspace_id", "sha256", name=op.f("uq_archive_media_workspace_id")
        ),
    )

    statements = SQLITE_FTS if op.get_bind().dialect.name == "sqlite" else POSTGRES_FTS
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("archive_post_fts_ai", "archive_post_fts_ad", "archive_post_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS archive_post_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_archive_post_search")
    op.drop_table("archive_media")
    with op.batch_alter_table("archive_source", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_archive_source_channel_id"))
        batch_op.drop_index(batch_op.f("ix_archive_source_post_id"))
    op.drop_table("archive_source")
    with op.batch_alter_table("archive_post", schema=None) as batch_op:
        batch_op.drop_index("ix_archive_post_text_key")
        batch_op.drop_index("ix_archive_post_listing")
    op.drop_table("archive_post")
