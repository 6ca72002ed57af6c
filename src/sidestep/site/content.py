"""What the site's pages and feeds show, read from the store for one workspace.

`SiteReader` turns settings, channels, platform states, incidents and public archive posts
into plain views (`PostView`, `HomeView`, `ArchiveView`) that templates and feed writers
print. A post's media are listed only when the file is in the media store; its name (and
so the type a static host will give it) comes from `sidestep.site.media`.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.archive.media import MediaStore
from sidestep.site import media as media_rules
from sidestep.site.links import archive_path, post_path
from sidestep.site.status import (
    Banner,
    CatalogueLike,
    ChannelRow,
    ChannelView,
    IncidentRow,
    StateRow,
    banner,
    channel_views,
    platform_names,
)
from sidestep.store.site import PublicArchive, Sites
from sidestep.store.tables import Workspace
from sidestep.store.tables_archive import ArchiveMedia, ArchivePost, ArchiveSource

PAGE_SIZE = 20
LATEST_ON_HOME = 5
TITLE_CHARS = 80
# A platform names a folder of the export: only plain keys get pages (an imported Sidestep
# export could carry any string).
PLATFORM_KEY = re.compile(r"[a-z0-9_]{1,40}")
# C0 controls (but tab and newlines) and DEL: exports carry them; no page or feed shows them.
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def printable(text: str) -> str:
    return _CONTROLS.sub("", text)


@dataclass(frozen=True, slots=True)
class MediaView:
    path: str  # site path, "media/<sha256>.<ext>"
    name: str
    kind: str  # image, video, audio, document
    content_type: str
    size_bytes: int
    alt: str


@dataclass(frozen=True, slots=True)
class SourceView:
    platform: str
    platform_name: str
    permalink: str | None


@dataclass(frozen=True, slots=True)
class PostView:
    id: int
    path: str
    text: str
    title: str
    created_at: datetime
    kind: str
    link: str | None
    media: tuple[MediaView, ...]
    sources: tuple[SourceView, ...]

    @property
    def audio(self) -> MediaView | None:
        return next((m for m in self.media if m.kind == "audio" and m.content_type
                     .startswith("audio/")), None)


@dataclass(frozen=True, slots=True)
class Brand:
    slug: str
    name: str
    description: str


@dataclass(frozen=True, slots=True)
class HomeView:
    brand: Brand
    channels: list[ChannelView]
    banner: Banner
    latest: list[PostView]
    platforms: dict[str, str]  # platform key -> name, those with public posts
    has_audio: bool


@dataclass(frozen=True, slots=True)
class ArchiveView:
    brand: Brand
    posts: list[PostView]
    platform: str | None
    platform_name: str | None
    platforms: dict[str, str]
    query: str
    page: int
    pages: int
    total: int

    def page_path(self, page: int) -> str:
        return archive_path(platform=self.platform, page=page)


class NoSuchPage(LookupError):
    """A page past the end, an unknown platform: the caller answers 404."""


def title_of(text: str, *, fallback: str) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if not first:
        return fallback
    return first if len(first) <= TITLE_CHARS else first[: TITLE_CHARS - 1].rstrip() + "…"


class SiteReader:
    def __init__(self, session: AsyncSession, *, workspace: Workspace,
                 catalogue: CatalogueLike, media_store: MediaStore) -> None:
        self.session = session
        self.workspace = workspace
        self.sites = Sites(session, workspace_id=workspace.id)
        self.archive = PublicArchive(session, workspace_id=workspace.id)
        self.names, self.owned = platform_names(catalogue)
        self.media_store = media_store
        self._media_names: dict[str, str | None] = {}

    async def is_published(self) -> bool:
        settings = await self.sites.get()
        return settings is not None and settings.published

    async def brand(self) -> Brand:
        settings = await self.sites.get()
        return Brand(slug=self.workspace.slug,
                     name=(settings.title if settings else "") or self.workspace.name,
                     description=settings.description if settings else "")

    async def home(self) -> HomeView:
        settings = await self.sites.get()
        by_id = {c.id: c for c in await self.sites.channels()}
        rows = [ChannelRow(channel_id=c.id, platform=c.platform, name=c.name, handle=c.handle,
                           url=str(entry.get("url") or ""))
                for entry in (settings.channels if settings else [])
                if isinstance(entry, dict) and (c := by_id.get(int(entry.get("channel_id", 0))))]
        platforms = {r.platform for r in rows}
        states = {key: StateRow(status=s.status, reason=s.reason)
                  for key, s in (await self.sites.platform_states(platforms)).items()}
        views = channel_views(rows, states, names=self.names, owned=self.owned)
        incidents = [IncidentRow(platform=i.platform, status=i.worst_status, since=i.started_at,
                                 features=tuple(str(f) for f in i.features or []))
                     for i in await self.sites.open_incidents(platforms)]
        latest = await self._views(await self.archive.listing(limit=LATEST_ON_HOME))
        return HomeView(
            brand=await self.brand(), channels=views,
            banner=banner(message=settings.banner if settings else "", incidents=incidents,
                          views=views, names=self.names),
            latest=latest, platforms=await self.platforms(),
            has_audio=await self.has_audio())

    async def platforms(self) -> dict[str, str]:
        return {key: self.names.get(key, key) for key in await self.archive.platforms()
                if PLATFORM_KEY.fullmatch(key)}

    async def has_audio(self) -> bool:
        return any(p.audio for p in await self.audio_posts(limit=1))

    async def archive_page(self, *, platform: str | None = None, page: int = 1,
                           query: str = "") -> ArchiveView:
        """One page of the archive. Raises NoSuchPage for a page past the end."""
        platforms = await self.platforms()
        if platform is not None and platform not in platforms:
            raise NoSuchPage(f"no public posts from {platform!r}")
        total = await self.archive.count(platform=platform, query=query)
        pages = max(1, math.ceil(total / PAGE_SIZE))
        if page < 1 or page > pages:
            raise NoSuchPage(f"there are {pages} pages")
        posts = await self.archive.listing(platform=platform, query=query, limit=PAGE_SIZE,
                                           offset=(page - 1) * PAGE_SIZE)
        return ArchiveView(
            brand=await self.brand(), posts=await self._views(posts), platform=platform,
            platform_name=platforms.get(platform) if platform else None, platforms=platforms,
            query=query, page=page, pages=pages, total=total)

    async def post(self, post_id: int) -> PostView | None:
        row = await self.archive.get(post_id)
        return (await self._views([row]))[0] if row is not None else None

    async def latest(self, *, limit: int) -> list[PostView]:
        return await self._views(await self.archive.listing(limit=limit))

    async def audio_posts(self, *, limit: int) -> list[PostView]:
        """The newest public posts with a playable audio file, at most `limit`."""
        found: list[PostView] = []
        offset = 0
        while len(found) < limit:
            rows = await self.archive.listing(limit=200, offset=offset)
            if not rows:
                break
            audio_rows = [r for r in rows if r.kind == "audio"]
            found += [v for v in await self._views(audio_rows) if v.audio]
            offset += len(rows)
        return found[:limit]

    async def every_post(self) -> AsyncIterator[list[PostView]]:
        async for rows in self.archive.stream():
            yield await self._views(rows)

    async def _views(self, rows: Sequence[ArchivePost]) -> list[PostView]:
        sources = await self.archive.sources_of([r.id for r in rows])
        digests = {str(m["sha256"]) for r in rows for m in r.media or []
                   if isinstance(m, dict) and m.get("sha256")}
        media = await self.archive.media_rows(digests)
        return [self._view(r, sources.get(r.id, []), media) for r in rows]

    def _view(self, row: ArchivePost, sources: list[ArchiveSource],
              media: dict[str, ArchiveMedia]) -> PostView:
        text = printable(row.text)
        return PostView(
            id=row.id, path=post_path(row.id), text=text,
            title=title_of(text, fallback=f"Post of {row.created_at:%Y-%m-%d}"),
            created_at=row.created_at, kind=row.kind, link=_web_link(row.link),
            media=tuple(v for m in row.media or [] if (v := self._media(m, media))),
            sources=tuple(SourceView(platform=s.platform,
                                     platform_name=self.names.get(s.platform, s.platform),
                                     permalink=_web_link(s.permalink)) for s in sources))

    def _media(self, entry: Any, rows: dict[str, ArchiveMedia]) -> MediaView | None:
        if not isinstance(entry, dict) or not entry.get("sha256"):
            return None
        row = rows.get(str(entry["sha256"]))
        if row is None:
            return None
        name = self.media_name(row)
        if name is None:
            return None
        served = media_rules.extension_of(row.mime_type) == name.rsplit(".", 1)[1]
        return MediaView(
            path=f"media/{name}", name=name, kind=str(entry.get("kind") or "document"),
            content_type=row.mime_type.lower() if served else media_rules.FALLBACK_TYPE,
            size_bytes=row.size_bytes, alt=str(entry.get("alt") or ""))

    def media_name(self, row: ArchiveMedia) -> str | None:
        """The file's public name, by its checked type; None when it is not in the store."""
        if row.sha256 not in self._media_names:
            try:
                with self.media_store.open(row.sha256) as handle:
                    head = handle.read(media_rules.SNIFF_BYTES)
            except (FileNotFoundError, ValueError):
                self._media_names[row.sha256] = None
            else:
                served = media_rules.how_to_serve(row.mime_type, head)
                self._media_names[row.sha256] = (
                    media_rules.file_name(row.sha256, row.mime_type) if served.inline
                    else f"{row.sha256}.{media_rules.FALLBACK_EXTENSION}")
        return self._media_names[row.sha256]


def _web_link(url: str | None) -> str | None:
    """Only http(s) URLs become links: an export could carry `javascript:`."""
    if url and url.split(":", 1)[0].lower() in ("http", "https"):
        return url
    return None
