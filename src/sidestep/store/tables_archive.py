"""Tables for the archive capability (see docs/ARCHITECTURE.md). Changes need a migration.

    archive_post    one post the brand made, wherever it appeared; merged across sources
    archive_source  one appearance of a post: a platform's id for it (an import, or a
                    delivery Sidestep sent); several sources can point at one post
    archive_media   a file of the workspace's archive, by sha256; the bytes live in the
                    content-addressed store under the data directory (sidestep.archive.media)

Full-text search lives outside the models because the two engines do it differently; the
migration creates it, and `DB_ONLY_OBJECTS` names what the schema comparison must ignore:
SQLite an FTS5 table over `archive_post.text` kept current by triggers, PostgreSQL a GIN
index on `to_tsvector('simple', text)` (the 'simple' configuration: posts mix languages, so
no stemming is better than the wrong language's).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from sidestep.store.tables import Base, BigId

DB_ONLY_OBJECTS = frozenset({
    "archive_post_fts", "archive_post_fts_data", "archive_post_fts_idx",
    "archive_post_fts_content", "archive_post_fts_docsize", "archive_post_fts_config",
    "ix_archive_post_search",
})


class ArchivePost(Base):
    __tablename__ = "archive_post"
    __table_args__ = (
        Index("ix_archive_post_listing", "workspace_id", "created_at", "id"),
        Index("ix_archive_post_text_key", "workspace_id", "text_key", "created_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))  # text, image, video, audio
    text: Mapped[str] = mapped_column(Text)
    # The normalised text (sidestep.archive.model.text_key) hashed: how merges find a post.
    text_key: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    permalink: Mapped[str | None] = mapped_column(String(2048))
    link: Mapped[str | None] = mapped_column(String(2048))
    visibility: Mapped[str] = mapped_column(String(12))  # public, unlisted, followers, private
    reply_to: Mapped[str | None] = mapped_column(String(2048))
    # [{sha256 | None, kind, mime_type, alt, source_uri}]; sha256 None: not in the export.
    media: Mapped[list[Any]] = mapped_column(default=list)
    content_hash: Mapped[str] = mapped_column(String(64))
    # The Sidestep post it was published from, when Sidestep published it.
    origin_post_id: Mapped[int | None] = mapped_column(
        ForeignKey("post.id", ondelete="SET NULL"), unique=True
    )
    archived_at: Mapped[datetime]


class ArchiveSource(Base):
    __tablename__ = "archive_source"
    __table_args__ = (UniqueConstraint("workspace_id", "platform", "source_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    post_id: Mapped[int] = mapped_column(
        ForeignKey("archive_post.id", ondelete="CASCADE"), index=True
    )
    platform: Mapped[str] = mapped_column(String(40))
    source_id: Mapped[str] = mapped_column(String(300))
    permalink: Mapped[str | None] = mapped_column(String(2048))
    # What the platform says beyond the common fields (lang, counts, hashtags, title).
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Set when Sidestep published it: the delivery that did, on which channel.
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("delivery.id", ondelete="SET NULL"), unique=True
    )
    channel_id: Mapped[int | None] = mapped_column(
        ForeignKey("channel.id", ondelete="SET NULL"), index=True
    )
    imported_at: Mapped[datetime]


class ArchiveMedia(Base):
    __tablename__ = "archive_media"
    __table_args__ = (UniqueConstraint("workspace_id", "sha256"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64))
    mime_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    added_at: Mapped[datetime]
