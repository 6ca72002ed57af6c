"""The archive repository: posts merged across sources, listing, search, media by hash.

Every query is scoped to the workspace the repository was built for; a post, source or
media digest of another workspace is "not found". How posts are judged the same is in
`sidestep.archive.model`; `add_many` applies it to a batch with a fixed number of queries,
so an import of 100,000 posts does not make 100,000 round trips.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.archive.model import (
    MERGE_WINDOW,
    ImportedPost,
    SourceRef,
    content_hash,
    text_key,
)
from sidestep.store.tables_archive import ArchiveMedia, ArchivePost, ArchiveSource

IN_CHUNK = 500  # values per IN (...) list: SQLite allows 32,766 parameters, stay far below


class Outcome(StrEnum):
    IMPORTED = "imported"  # a new archive post
    MERGED = "merged"  # a new source of a post already archived from elsewhere
    DUPLICATE = "duplicate"  # every source was archived already; nothing changed


@dataclass(frozen=True, slots=True)
class MediaRow:
    sha256: str
    mime_type: str
    size_bytes: int


@dataclass(slots=True)
class _Candidate:
    post_id: int | None  # None until a post made in this batch is inserted
    batch_index: int | None
    created_at: datetime
    platforms: set[str]


class Archive:
    def __init__(self, session: AsyncSession, *, workspace_id: int) -> None:
        self.session = session
        self.workspace_id = workspace_id

    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    # -- writing -------------------------------------------------------------------------

    async def add_many(
        self, posts: Sequence[ImportedPost], *, media: Sequence[MediaRow] = (), at: datetime
    ) -> list[Outcome]:
        """Archive `posts` (media already stored and named by sha256); one outcome each."""
        await self._add_media(media, at=at)
        known = await self._known_sources(posts)
        keys = [text_key(p.text) for p in posts]
        candidates = await self._candidates({k for k in keys if k is not None})
        origins = await self._origins({p.origin_post_id for p in posts} - {None})
        outcomes: list[Outcome] = []
        new_rows: list[dict[str, Any]] = []
        # (post_id or None, batch index of a new post, source) to insert once ids are known
        pending: list[tuple[int | None, int | None, SourceRef]] = []
        for post, key in zip(posts, keys, strict=True):
            fresh = [s for s in post.sources if (s.platform, s.source_id) not in known]
            hits = [known[(s.platform, s.source_id)] for s in post.sources
                    if (s.platform, s.source_id) in known]
            await self._claim_deliveries([s for s in post.sources if s not in fresh])
            if not fresh:
                outcomes.append(Outcome.DUPLICATE)
                continue
            target: tuple[int | None, int | None] | None = hits[0] if hits else None
            if target is None and post.origin_post_id is not None:
                target = origins.get(post.origin_post_id)
            if target is None and key is not None:
                target = _closest(candidates.get(key, []), post)
            if target is None:
                index = len(new_rows)
                new_rows.append(self._post_row(post, key, at=at))
                target = (None, index)
                if post.origin_post_id is not None:
                    origins[post.origin_post_id] = target
                if key is not None:
                    candidates.setdefault(key, []).append(_Candidate(
                        None, index, post.created_at, {s.platform for s in fresh}))
                outcomes.append(Outcome.IMPORTED)
            else:
                outcomes.append(Outcome.MERGED)
                for candidate in candidates.get(key or "", []):
                    if (candidate.post_id, candidate.batch_index) == target:
                        candidate.platforms |= {s.platform for s in fresh}
            for source in fresh:
                known[(source.platform, source.source_id)] = target
                pending.append((target[0], target[1], source))
        new_ids = await self._insert_posts(new_rows)
        source_rows = [
            self._source_row(post_id if post_id is not None else new_ids[index or 0], source, at)
            for post_id, index, source in pending
        ]
        if source_rows:
            await self.session.execute(insert(ArchiveSource), source_rows)
        return outcomes

    async def add_one(self, post: ImportedPost, *, at: datetime) -> Outcome:
        return (await self.add_many([post], at=at))[0]

    def _post_row(self, post: ImportedPost, key: str | None, *, at: datetime) -> dict[str, Any]:
        media = [m.as_row() for m in post.media]
        return {
            "workspace_id": self.workspace_id, "kind": post.kind.value, "text": post.text,
            "text_key": key, "created_at": post.created_at, "permalink": post.permalink,
            "link": post.link, "visibility": post.visibility.value, "reply_to": post.reply_to,
            "media": media, "origin_post_id": post.origin_post_id, "archived_at": at,
            "content_hash": content_hash(
                kind=post.kind.value, text=post.text, created_at=post.created_at,
                permalink=post.permalink, link=post.link, visibility=post.visibility.value,
                reply_to=post.reply_to, media=media,
            ),
        }

    def _source_row(self, post_id: int, source: SourceRef, at: datetime) -> dict[str, Any]:
        return {
            "workspace_id": self.workspace_id, "post_id": post_id, "platform": source.platform,
            "source_id": source.source_id, "permalink": source.permalink, "extra": source.extra,
            "delivery_id": source.delivery_id, "channel_id": source.channel_id,
            "imported_at": source.imported_at or at,
        }

    async def _insert_posts(self, rows: list[dict[str, Any]]) -> list[int]:
        """Insert in one statement and return the new ids in the order of `rows`."""
        if not rows:
            return []
        if self._dialect() != "sqlite":
            result = await self.session.execute(
                insert(ArchivePost).returning(ArchivePost.id, sort_by_parameter_order=True),
                rows)
            return list(result.scalars().all())
        # SQLite cannot promise RETURNING order for many rows, so SQLAlchemy would insert
        # them one by one. But its rowids are handed out in insertion order, and after the
        # first write this transaction holds the database's only write lock: the newest
        # len(rows) ids are ours, in order.
        await self.session.execute(insert(ArchivePost), rows)
        newest = await self.session.scalars(
            select(ArchivePost.id).order_by(ArchivePost.id.desc()).limit(len(rows)))
        return sorted(newest.all())

    async def _add_media(self, media: Sequence[MediaRow], *, at: datetime) -> None:
        rows = {m.sha256: {"workspace_id": self.workspace_id, "sha256": m.sha256,
                           "mime_type": m.mime_type[:100], "size_bytes": m.size_bytes,
                           "added_at": at} for m in media}
        if not rows:
            return
        dialect = sqlite if self._dialect() == "sqlite" else postgresql
        statement = dialect.insert(ArchiveMedia).on_conflict_do_nothing(
            index_elements=["workspace_id", "sha256"]
        )
        await self.session.execute(statement, list(rows.values()))

    async def _origins(
        self, post_ids: set[int | None]
    ) -> dict[int, tuple[int | None, int | None]]:
        if not post_ids:
            return {}
        rows = await self.session.execute(
            select(ArchivePost.origin_post_id, ArchivePost.id).where(
                ArchivePost.workspace_id == self.workspace_id,
                ArchivePost.origin_post_id.in_(sorted(i for i in post_ids if i is not None))))
        return {origin: (post_id, None) for origin, post_id in rows if origin is not None}

    async def _claim_deliveries(self, sources: list[SourceRef]) -> None:
        """A delivery whose platform id was archived already (say, by an import) is marked
        on that source, so it counts as archived and is not picked again."""
        for source in sources:
            if source.delivery_id is None:
                continue
            await self.session.execute(
                update(ArchiveSource).where(
                    ArchiveSource.workspace_id == self.workspace_id,
                    ArchiveSource.platform == source.platform,
                    ArchiveSource.source_id == source.source_id,
                    ArchiveSource.delivery_id.is_(None),
                ).values(delivery_id=source.delivery_id, channel_id=source.channel_id))

    async def _known_sources(
        self, posts: Sequence[ImportedPost]
    ) -> dict[tuple[str, str], tuple[int | None, int | None]]:
        wanted = {(s.platform, s.source_id) for p in posts for s in p.sources}
        ids = sorted({source_id for _, source_id in wanted})
        known: dict[tuple[str, str], tuple[int | None, int | None]] = {}
        for start in range(0, len(ids), IN_CHUNK):
            rows = await self.session.execute(
                select(ArchiveSource.platform, ArchiveSource.source_id, ArchiveSource.post_id)
                .where(ArchiveSource.workspace_id == self.workspace_id,
                       ArchiveSource.source_id.in_(ids[start:start + IN_CHUNK]))
            )
            for platform, source_id, post_id in rows:
                if (platform, source_id) in wanted:
                    known[(platform, source_id)] = (post_id, None)
        return known

    async def _candidates(self, keys: set[str]) -> dict[str, list[_Candidate]]:
        found: dict[str, list[_Candidate]] = {}
        ordered = sorted(keys)
        by_id: dict[int, _Candidate] = {}
        for start in range(0, len(ordered), IN_CHUNK):
            rows = await self.session.execute(
                select(ArchivePost.id, ArchivePost.text_key, ArchivePost.created_at)
                .where(ArchivePost.workspace_id == self.workspace_id,
                       ArchivePost.text_key.in_(ordered[start:start + IN_CHUNK]))
            )
            for post_id, key, created_at in rows:
                candidate = _Candidate(post_id, None, created_at, set())
                by_id[post_id] = candidate
                found.setdefault(key or "", []).append(candidate)
        post_ids = sorted(by_id)
        for start in range(0, len(post_ids), IN_CHUNK):
            pairs = await self.session.execute(
                select(ArchiveSource.post_id, ArchiveSource.platform)
                .where(ArchiveSource.post_id.in_(post_ids[start:start + IN_CHUNK]))
            )
            for post_id, platform in pairs:
                by_id[post_id].platforms.add(platform)
        return found

    # -- reading -------------------------------------------------------------------------

    async def get(self, post_id: int) -> ArchivePost | None:
        return await self.session.scalar(select(ArchivePost).where(
            ArchivePost.id == post_id, ArchivePost.workspace_id == self.workspace_id))

    async def by_source(self, platform: str, source_id: str) -> ArchivePost | None:
        return await self.session.scalar(
            select(ArchivePost).join(ArchiveSource, ArchiveSource.post_id == ArchivePost.id)
            .where(ArchiveSource.workspace_id == self.workspace_id,
                   ArchiveSource.platform == platform, ArchiveSource.source_id == source_id)
        )

    async def sources_of(self, post_ids: Sequence[int]) -> dict[int, list[ArchiveSource]]:
        """The sources of several posts in one query per chunk, oldest import first."""
        found: dict[int, list[ArchiveSource]] = {post_id: [] for post_id in post_ids}
        ids = list(post_ids)
        for start in range(0, len(ids), IN_CHUNK):
            rows = await self.session.scalars(
                select(ArchiveSource).where(
                    ArchiveSource.workspace_id == self.workspace_id,
                    ArchiveSource.post_id.in_(ids[start:start + IN_CHUNK]),
                ).order_by(ArchiveSource.id)
            )
            for source in rows:
                found[source.post_id].append(source)
        return found

    def _listing(self, platform: str | None, channel_id: int | None) -> Any:
        query = select(ArchivePost).where(ArchivePost.workspace_id == self.workspace_id)
        if platform is not None or channel_id is not None:
            sources = select(ArchiveSource.post_id).where(
                ArchiveSource.workspace_id == self.workspace_id)
            if platform is not None:
                sources = sources.where(ArchiveSource.platform == platform)
            if channel_id is not None:
                sources = sources.where(ArchiveSource.channel_id == channel_id)
            query = query.where(ArchivePost.id.in_(sources))
        return query

    async def listing(
        self, *, platform: str | None = None, channel_id: int | None = None,
        limit: int = 50, offset: int = 0,
    ) -> list[ArchivePost]:
        """Newest first; `platform`/`channel_id` keep posts with a source there."""
        query = self._listing(platform, channel_id).order_by(
            ArchivePost.created_at.desc(), ArchivePost.id.desc()).limit(limit).offset(offset)
        return list((await self.session.scalars(query)).all())

    async def count(self, *, platform: str | None = None, channel_id: int | None = None) -> int:
        inner = self._listing(platform, channel_id).with_only_columns(ArchivePost.id)
        return int(await self.session.scalar(select(func.count()).select_from(inner.subquery()))
                   or 0)

    async def platforms(self) -> dict[str, int]:
        """Posts per source platform (a merged post counts once for each of its platforms)."""
        rows = await self.session.execute(
            select(ArchiveSource.platform, func.count(func.distinct(ArchiveSource.post_id)))
            .where(ArchiveSource.workspace_id == self.workspace_id)
            .group_by(ArchiveSource.platform).order_by(ArchiveSource.platform)
        )
        return {platform: int(n) for platform, n in rows}

    async def search(self, query: str, *, limit: int = 50, offset: int = 0) -> list[ArchivePost]:
        """Posts whose text has every word of `query`, newest first; [] for no words."""
        words = query.split()
        if not words:
            return []
        base = select(ArchivePost).where(ArchivePost.workspace_id == self.workspace_id)
        if self._dialect() == "sqlite":
            # Each word quoted, so the user's text is never read as FTS5 query syntax.
            match = " ".join('"' + w.replace('"', '""') + '"' for w in words)
            base = base.where(ArchivePost.id.in_(
                text("SELECT rowid FROM archive_post_fts WHERE archive_post_fts MATCH :q")
                .bindparams(q=match)))
        else:
            # Same expression as the GIN index in migration 0005, or the index is not used.
            vector = func.to_tsvector(text("'simple'"), ArchivePost.text)
            base = base.where(vector.bool_op("@@")(
                func.plainto_tsquery(text("'simple'"), " ".join(words))))
        base = base.order_by(ArchivePost.created_at.desc(), ArchivePost.id.desc())
        return list((await self.session.scalars(base.limit(limit).offset(offset))).all())

    async def media(self, sha256: str) -> ArchiveMedia | None:
        """The workspace's media row for this digest; None for another workspace's file."""
        return await self.session.scalar(select(ArchiveMedia).where(
            ArchiveMedia.workspace_id == self.workspace_id, ArchiveMedia.sha256 == sha256))

    async def all_media(self) -> list[ArchiveMedia]:
        return list((await self.session.scalars(
            select(ArchiveMedia).where(ArchiveMedia.workspace_id == self.workspace_id)
            .order_by(ArchiveMedia.sha256))).all())

    async def stream(self, *, batch: int = 1000) -> AsyncIterator[list[ArchivePost]]:
        """Every post in id order, `batch` at a time (keyset pages: memory stays flat)."""
        last = 0
        while True:
            rows = list((await self.session.scalars(
                select(ArchivePost).where(ArchivePost.workspace_id == self.workspace_id,
                                          ArchivePost.id > last)
                .order_by(ArchivePost.id).limit(batch))).all())
            if not rows:
                return
            yield rows
            last = rows[-1].id


def _closest(
    candidates: list[_Candidate], post: ImportedPost
) -> tuple[int | None, int | None] | None:
    platforms = {s.platform for s in post.sources}
    best: _Candidate | None = None
    for candidate in candidates:
        gap = abs(candidate.created_at - post.created_at)
        if gap > MERGE_WINDOW or candidate.platforms & platforms:
            continue
        if best is None or gap < abs(best.created_at - post.created_at):
            best = candidate
    return None if best is None else (best.post_id, best.batch_index)
