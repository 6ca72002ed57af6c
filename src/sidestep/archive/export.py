"""`sidestep export`: a workspace's archive as one portable zip, and its digest.

The zip holds `manifest.json` (format and versions, counts, the sha256 of `posts.jsonl` and
of every media file, and the archive digest), `posts.jsonl` (one post a line with all its
sources) and `media/<sha256>` (each file once). `sidestep import sidestep FILE.zip` reads it
back (sidestep.importers.sidestep). The digest is a sha256 over the canonical rows (what
each post says and where it appeared, not database ids or when it was archived) and the
media list, so two workspaces hold the same archive exactly when their digests agree.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

from sidestep import __version__
from sidestep.archive.media import CHUNK_BYTES, MediaStore
from sidestep.archive.model import canonical_json, iso
from sidestep.store.archive import Archive
from sidestep.store.db import Database
from sidestep.store.tables_archive import ArchiveMedia, ArchivePost, ArchiveSource

FORMAT = "sidestep-archive"
FORMAT_VERSION = 1


def post_line(post: ArchivePost, sources: list[ArchiveSource]) -> dict[str, Any]:
    """One post as exported; also what the digest is computed over (less `imported_at`)."""
    return {
        "kind": post.kind, "text": post.text, "created_at": iso(post.created_at),
        "permalink": post.permalink, "link": post.link, "visibility": post.visibility,
        "reply_to": post.reply_to, "media": post.media, "content_hash": post.content_hash,
        "sources": sorted(
            ({"platform": s.platform, "source_id": s.source_id, "permalink": s.permalink,
              "extra": s.extra, "imported_at": iso(s.imported_at)} for s in sources),
            key=lambda s: (s["platform"], s["source_id"])),
    }


def _digest_of(line: dict[str, Any]) -> str:
    canonical = {**line, "sources": [{k: v for k, v in s.items() if k != "imported_at"}
                                     for s in line["sources"]]}
    return hashlib.sha256(canonical_json(canonical)).hexdigest()


def _media_line(media: ArchiveMedia) -> dict[str, Any]:
    return {"sha256": media.sha256, "mime_type": media.mime_type,
            "size_bytes": media.size_bytes}


async def archive_digest(db: Database, *, workspace_id: int) -> str:
    """The sha256 of the workspace's archive content (posts, sources and media)."""
    post_digests: list[str] = []
    async with db.session() as session:
        archive = Archive(session, workspace_id=workspace_id)
        async for posts in archive.stream():
            sources = await archive.sources_of([p.id for p in posts])
            post_digests += [_digest_of(post_line(p, sources[p.id])) for p in posts]
        media = [_media_line(m) for m in await archive.all_media()]
    return hashlib.sha256(canonical_json({"posts": sorted(post_digests),
                                          "media": media})).hexdigest()


async def export_archive(db: Database, *, workspace_id: int, workspace_slug: str,
                         media_store: MediaStore, out: Path, at: datetime) -> dict[str, Any]:
    """Write the zip to `out` (replaced only once complete); returns its manifest."""
    partial = out.with_name(out.name + ".partial")
    posts_hash = hashlib.sha256()
    count = 0
    post_digests: list[str] = []
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        async with db.session() as session:
            archive = Archive(session, workspace_id=workspace_id)
            with zf.open("posts.jsonl", "w", force_zip64=True) as stream:
                async for posts in archive.stream():
                    sources = await archive.sources_of([p.id for p in posts])
                    for post in posts:
                        line = post_line(post, sources[post.id])
                        post_digests.append(_digest_of(line))
                        data = canonical_json(line) + b"\n"
                        posts_hash.update(data)
                        stream.write(data)
                        count += 1
            media = [_media_line(m) for m in await archive.all_media()]
        for item in media:
            info = zipfile.ZipInfo(f"media/{item['sha256']}", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED  # photos and videos are compressed already
            with media_store.open(item["sha256"]) as source, \
                    zf.open(info, "w", force_zip64=True) as target:
                while chunk := source.read(CHUNK_BYTES):
                    target.write(chunk)
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "sidestep_version": __version__,
            "workspace": workspace_slug, "exported_at": iso(at),
            "posts": {"file": "posts.jsonl", "count": count, "sha256": posts_hash.hexdigest()},
            "media": media,
            "archive_digest": hashlib.sha256(canonical_json(
                {"posts": sorted(post_digests), "media": media})).hexdigest(),
        }
        zf.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))
    partial.replace(out)
    return manifest
