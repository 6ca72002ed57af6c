"""Archiving what Sidestep itself published: every delivery that reached `sent`.

`archive_published` takes sent deliveries that no archive source names yet, oldest first,
and archives each as a source (platform of the channel, the platform's id for the post) of
one archive post per Sidestep post, so a post sent to five channels is one archived post
with five sources. It is idempotent (a delivery is archived once: `archive_source.
delivery_id` is unique) and safe to call from the worker loop as often as wanted.
Composer images (`Post.media` entries with a `ref` under `<data_dir>/media/<workspace>/`)
are copied into the archive's content-addressed store.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import exists, select

from sidestep.archive.media import MediaStore
from sidestep.archive.model import ImportedPost, MediaRef, SourceRef, media_kind
from sidestep.clock import Clock
from sidestep.domain.states import DeliveryState
from sidestep.store.archive import Archive, MediaRow
from sidestep.store.db import Database
from sidestep.store.tables import Channel, Delivery, Post
from sidestep.store.tables_archive import ArchiveSource

_REF = re.compile(r"[0-9a-f]{64}\.[a-z0-9]{1,5}")


async def archive_published(db: Database, *, data_dir: Path, clock: Clock,
                            limit: int = 500) -> int:
    """Archive up to `limit` sent deliveries not archived yet; returns how many it took."""
    store = MediaStore.under(data_dir)
    async with db.session() as session:
        rows = (await session.execute(
            select(Delivery, Post, Channel)
            .join(Post, Post.id == Delivery.post_id)
            .join(Channel, Channel.id == Delivery.channel_id)
            .where(Delivery.state == DeliveryState.SENT.value,
                   ~exists().where(ArchiveSource.delivery_id == Delivery.id))
            .order_by(Delivery.id).limit(limit)
        )).all()
        by_workspace: dict[int, list[tuple[Delivery, Post, Channel]]] = {}
        for delivery, post, channel in rows:
            by_workspace.setdefault(delivery.workspace_id, []).append((delivery, post, channel))
        for workspace_id, group in by_workspace.items():
            media_rows: dict[str, MediaRow] = {}
            posts = [_as_imported(d, p, c, store, data_dir, media_rows) for d, p, c in group]
            await Archive(session, workspace_id=workspace_id).add_many(
                posts, media=list(media_rows.values()), at=clock.now())
    return len(rows)


def _as_imported(delivery: Delivery, post: Post, channel: Channel, store: MediaStore,
                 data_dir: Path, media_rows: dict[str, MediaRow]) -> ImportedPost:
    media = tuple(_media(entry, post.workspace_id, store, data_dir, media_rows)
                  for entry in post.media or [] if isinstance(entry, dict))
    return ImportedPost(
        sources=(SourceRef(
            platform=channel.platform,
            source_id=delivery.external_id or f"sidestep-delivery-{delivery.id}",
            permalink=delivery.external_url, delivery_id=delivery.id, channel_id=channel.id,
            extra={"channel": channel.name},
        ),),
        text=post.body, created_at=delivery.updated_at, link=post.link, media=media,
        origin_post_id=post.id,
    )


def _media(entry: dict[str, Any], workspace_id: int, store: MediaStore, data_dir: Path,
           media_rows: dict[str, MediaRow]) -> MediaRef:
    ref = str(entry.get("ref") or "")
    mime = str(entry.get("mime_type") or "application/octet-stream")
    kind = str(entry.get("kind") or media_kind(mime))
    path = data_dir / "media" / str(workspace_id) / ref
    if not _REF.fullmatch(ref) or not path.is_file():
        return MediaRef(kind=kind, mime_type=mime, alt=str(entry.get("alt") or ""),
                        source_uri=ref)
    with path.open("rb") as stream:
        stored = store.put_stream(stream, max_bytes=path.stat().st_size)
    media_rows[stored.sha256] = MediaRow(stored.sha256, mime, stored.size_bytes)
    return MediaRef(kind=kind, mime_type=mime, alt=str(entry.get("alt") or ""),
                    source_uri=ref, sha256=stored.sha256)
