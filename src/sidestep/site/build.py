"""`sidestep site build`: the public site of one workspace as static files.

The same pages as the server's (`sidestep.site.render`), with relative links, written under
`out`: `index.html`, `archive/…/index.html`, `posts/<id>/index.html`, `media/<sha256>.<ext>`
(only files that public posts show), `feed.xml`, `atom.xml`, `podcast.xml`, `sitemap.xml`
and `assets/site.css`. Feeds, sitemap, canonical and Open Graph URLs are absolute, made
from `base_url`, where the files will be published. There is no search page: it needs the
server. Files already in `out` are overwritten, others left alone.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from sidestep.archive.media import MediaStore
from sidestep.site import feeds, render
from sidestep.site.content import PAGE_SIZE, ArchiveView, PostView, SiteReader
from sidestep.site.links import ICON, STYLESHEET, Links, archive_path, file_of
from sidestep.site.status import CatalogueLike
from sidestep.store.db import Database
from sidestep.store.tables import Workspace

STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"
ASSETS = {STYLESHEET: STATIC_DIR / "site.css", ICON: STATIC_DIR / "favicon.svg"}
Progress = Callable[[int, int, str], None]  # done, total, what was just written


class BuildError(ValueError):
    """The site cannot be built as asked; the message says why."""


@dataclass
class BuildReport:
    out: Path
    pages: int = 0
    media: int = 0
    feeds: int = 0
    written: list[str] = field(default_factory=list)


def check_base_url(base_url: str) -> str:
    """`base_url` if it is an absolute http(s) URL; raises BuildError otherwise."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BuildError(f"the base URL must be absolute, like https://example.org/: "
                         f"{base_url!r}")
    return base_url


class _Writer:
    def __init__(self, out: Path, report: BuildReport, total: int,
                 on_progress: Progress | None) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.report = report
        self.total = total
        self.on_progress = on_progress
        self.done = 0

    def write(self, path: str, data: bytes | str) -> None:
        target = self.out / file_of(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)
        self.report.written.append(file_of(path))
        self.step(file_of(path))

    def step(self, label: str) -> None:
        self.done += 1
        if self.on_progress is not None:
            self.on_progress(self.done, max(self.total, self.done), label)


async def build_site(db: Database, *, workspace: Workspace, catalogue: CatalogueLike,
                     media_store: MediaStore, out: Path, base_url: str, now: datetime,
                     on_progress: Progress | None = None) -> BuildReport:
    """Write the site; raises BuildError when the workspace has not published it."""
    links = Links.exported(base_url=check_base_url(base_url), slug=workspace.slug)
    report = BuildReport(out=out)
    async with db.session() as session:
        reader = SiteReader(session, workspace=workspace, catalogue=catalogue,
                            media_store=media_store)
        if not await reader.is_published():
            raise BuildError(f"the site of {workspace.slug!r} is not published; turn it on "
                             f"at /w/{workspace.slug}/site first")
        platforms = await reader.platforms()
        total_posts = await reader.archive.count()
        listing_pages = 0
        for platform_key in platforms:
            count = await reader.archive.count(platform=platform_key)
            listing_pages += max(1, math.ceil(count / PAGE_SIZE))
        total = (1 + max(1, math.ceil(total_posts / PAGE_SIZE)) + listing_pages + total_posts
                 + 6)
        writer = _Writer(out, report, total, on_progress)
        writer.write("", render.home_page(await reader.home(), links))
        report.pages += 1
        shown: set[str] = set()
        for platform in [None, *platforms]:
            page = 1
            while True:
                view = await reader.archive_page(platform=platform, page=page)
                writer.write(archive_path(platform=platform, page=page),
                             render.archive_page(view, links))
                report.pages += 1
                if platform is None:
                    await _posts(writer, view, links, reader, shown, media_store)
                if page >= view.pages:
                    break
                page += 1
        brand = await reader.brand()
        latest = await reader.latest(limit=feeds.FEED_ITEMS)
        settings = workspace.settings or {}
        writer.write("feed.xml", feeds.rss(brand, latest, links, now=now))
        writer.write("atom.xml", feeds.atom(brand, latest, links, now=now))
        writer.write("podcast.xml", feeds.podcast(
            brand, await reader.audio_posts(limit=feeds.FEED_ITEMS), links, now=now,
            category=str(settings.get("podcast_category") or "Business"),
            language=str(settings.get("language") or "en")))
        entries: list[tuple[str, datetime | None]] = [("", None), ("archive/", None)]
        entries += [(archive_path(platform=p), None) for p in platforms]
        async for batch in reader.every_post():
            entries += [(post.path, post.created_at) for post in batch]
        writer.write("sitemap.xml", feeds.sitemap(entries, links))
        report.feeds = 3
        for path, source in ASSETS.items():
            writer.write(path, source.read_bytes())
    return report


async def _posts(writer: _Writer, view: ArchiveView, links: Links, reader: SiteReader,
                 shown: set[str], media_store: MediaStore) -> None:
    brand = view.brand
    for post in view.posts:
        writer.write(post.path, render.post_page(post, links, brand=brand))
        writer.report.pages += 1
        _copy_media(writer, post, shown, media_store)


def _copy_media(writer: _Writer, post: PostView, shown: set[str],
                media_store: MediaStore) -> None:
    for media in post.media:
        if media.name in shown:
            continue
        shown.add(media.name)
        target = writer.out / media.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(media_store.path(media.name.split(".", 1)[0]), target)
        writer.report.media += 1
        writer.report.written.append(media.path)
