"""The owned site's queries: its settings, and the archive as the public may see it.

`PublicArchive` is the archive narrowed to what a workspace publishes: posts whose
visibility is `public`, and media files that such a post shows. Every query filters on the
workspace it was built for, so one workspace's site never names another's posts or files.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, cast, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.store.tables import Channel, Incident, PlatformState
from sidestep.store.tables_archive import ArchiveMedia, ArchivePost, ArchiveSource
from sidestep.store.tables_site import SiteSettings

PUBLIC = "public"
BANNER_MAX = 500


class SiteError(ValueError):
    """Settings that cannot be saved; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class ShownChannel:
    channel_id: int
    url: str


class Sites:
    """One workspace's site settings."""

    def __init__(self, session: AsyncSession, *, workspace_id: int) -> None:
        self.session = session
        self.workspace_id = workspace_id

    async def get(self) -> SiteSettings | None:
        return await self.session.get(SiteSettings, self.workspace_id)

    async def _row(self, at: datetime) -> SiteSettings:
        row = await self.get()
        if row is None:
            row = SiteSettings(workspace_id=self.workspace_id, published=False, title="",
                               description="", banner="", channels=[], updated_at=at)
            self.session.add(row)
        return row

    async def save(self, *, published: bool, title: str, description: str, banner: str,
                   channels: Sequence[ShownChannel], at: datetime) -> SiteSettings:
        """Replace the settings. Raises SiteError for a channel that is not the workspace's."""
        if len(title) > 200:
            raise SiteError("the name is longer than 200 characters")
        if len(banner) > BANNER_MAX:
            raise SiteError(f"the banner is longer than {BANNER_MAX} characters")
        owned = set((await self.session.scalars(
            select(Channel.id).where(Channel.workspace_id == self.workspace_id))).all())
        for shown in channels:
            if shown.channel_id not in owned:
                raise SiteError("that channel is not one of this workspace's")
        row = await self._row(at)
        if banner != row.banner:
            row.banner_set_at = at if banner else None
        row.published = published
        row.title = title
        row.description = description
        row.banner = banner
        row.channels = [{"channel_id": c.channel_id, "url": c.url} for c in channels]
        row.updated_at = at
        await self.session.flush()
        return row

    async def set_banner(self, banner: str, *, at: datetime) -> None:
        """Set (or clear, with "") the banner alone: what a playbook action calls."""
        if len(banner) > BANNER_MAX:
            raise SiteError(f"the banner is longer than {BANNER_MAX} characters")
        row = await self._row(at)
        row.banner = banner
        row.banner_set_at = at if banner else None
        row.updated_at = at
        await self.session.flush()

    async def channels(self) -> list[Channel]:
        return list((await self.session.scalars(
            select(Channel).where(Channel.workspace_id == self.workspace_id)
            .order_by(Channel.name))).all())

    async def platform_states(self, platforms: set[str]) -> dict[str, PlatformState]:
        rows = await self.session.scalars(
            select(PlatformState).where(PlatformState.platform.in_(sorted(platforms))))
        return {row.platform: row for row in rows}

    async def open_incidents(self, platforms: set[str]) -> list[Incident]:
        return list((await self.session.scalars(
            select(Incident).where(Incident.platform.in_(sorted(platforms)),
                                   Incident.ended_at.is_(None))
            .order_by(Incident.started_at))).all())


class PublicArchive:
    """The workspace's public archive posts, newest first, and the files they show."""

    def __init__(self, session: AsyncSession, *, workspace_id: int) -> None:
        self.session = session
        self.workspace_id = workspace_id

    def _base(self, platform: str | None) -> Any:
        query = select(ArchivePost).where(ArchivePost.workspace_id == self.workspace_id,
                                          ArchivePost.visibility == PUBLIC)
        if platform is not None:
            query = query.where(ArchivePost.id.in_(
                select(ArchiveSource.post_id).where(
                    ArchiveSource.workspace_id == self.workspace_id,
                    ArchiveSource.platform == platform)))
        return query

    def _matching(self, query: Any, words: list[str]) -> Any:
        if self.session.get_bind().dialect.name == "sqlite":
            # Each word quoted, so a visitor's text is never read as FTS5 query syntax.
            match = " ".join('"' + w.replace('"', '""') + '"' for w in words)
            return query.where(ArchivePost.id.in_(
                text("SELECT rowid FROM archive_post_fts WHERE archive_post_fts MATCH :q")
                .bindparams(q=match)))
        # The expression of the GIN index in migration 0005, so the index is used.
        vector = func.to_tsvector(text("'simple'"), ArchivePost.text)
        return query.where(vector.bool_op("@@")(
            func.plainto_tsquery(text("'simple'"), " ".join(words))))

    async def listing(self, *, platform: str | None = None, query: str = "",
                      limit: int, offset: int = 0) -> list[ArchivePost]:
        """Public posts (with a source on `platform`, with every word of `query`)."""
        base = self._base(platform)
        if query.split():
            base = self._matching(base, query.split())
        base = base.order_by(ArchivePost.created_at.desc(), ArchivePost.id.desc())
        return list((await self.session.scalars(base.limit(limit).offset(offset))).all())

    async def count(self, *, platform: str | None = None, query: str = "") -> int:
        base = self._base(platform)
        if query.split():
            base = self._matching(base, query.split())
        inner = base.with_only_columns(ArchivePost.id).subquery()
        return int(await self.session.scalar(select(func.count()).select_from(inner)) or 0)

    async def get(self, post_id: int) -> ArchivePost | None:
        post: ArchivePost | None = await self.session.scalar(
            self._base(None).where(ArchivePost.id == post_id))
        return post

    async def platforms(self) -> dict[str, int]:
        """Public posts per source platform, platforms sorted."""
        rows = await self.session.execute(
            select(ArchiveSource.platform, func.count(func.distinct(ArchiveSource.post_id)))
            .join(ArchivePost, ArchivePost.id == ArchiveSource.post_id)
            .where(ArchiveSource.workspace_id == self.workspace_id,
                   ArchivePost.workspace_id == self.workspace_id,
                   ArchivePost.visibility == PUBLIC)
            .group_by(ArchiveSource.platform).order_by(ArchiveSource.platform))
        return {platform: int(n) for platform, n in rows}

    async def sources_of(self, post_ids: Sequence[int]) -> dict[int, list[ArchiveSource]]:
        found: dict[int, list[ArchiveSource]] = {post_id: [] for post_id in post_ids}
        if post_ids:
            rows = await self.session.scalars(select(ArchiveSource).where(
                ArchiveSource.workspace_id == self.workspace_id,
                ArchiveSource.post_id.in_(list(post_ids))).order_by(ArchiveSource.id))
            for source in rows:
                found[source.post_id].append(source)
        return found

    async def media_rows(self, sha256s: set[str]) -> dict[str, ArchiveMedia]:
        """The workspace's media rows for these digests (others' files are not found)."""
        if not sha256s:
            return {}
        rows = await self.session.scalars(select(ArchiveMedia).where(
            ArchiveMedia.workspace_id == self.workspace_id,
            ArchiveMedia.sha256.in_(sorted(sha256s))))
        return {row.sha256: row for row in rows}

    async def published_media(self, sha256: str) -> ArchiveMedia | None:
        """The media row when a public post of this workspace shows the file, else None.

        `sha256` must already be checked to be 64 hex digits: it is matched inside the
        posts' JSON text, which is safe only for such a plain string.
        """
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError("not a sha256 digest")
        row = await self.session.scalar(select(ArchiveMedia).where(
            ArchiveMedia.workspace_id == self.workspace_id, ArchiveMedia.sha256 == sha256))
        if row is None:
            return None
        shown = await self.session.scalar(
            self._base(None).with_only_columns(ArchivePost.id)
            .where(cast(ArchivePost.media, String).contains(sha256)).limit(1))
        return row if shown is not None else None

    async def stream(self, *, batch: int = 500) -> AsyncIterator[list[ArchivePost]]:
        """Every public post in id order, `batch` at a time (keyset pages)."""
        last = 0
        while True:
            rows = list((await self.session.scalars(
                self._base(None).where(ArchivePost.id > last)
                .order_by(ArchivePost.id).limit(batch))).all())
            if not rows:
                return
            yield rows
            last = rows[-1].id
