"""Sidestep's own archive export (`sidestep export`), read back without loss.

The manifest is checked first (format, version, the sha256 of `posts.jsonl`), then posts are
read a line at a time. Every post keeps all its sources, with the time each was first
imported; each media file is named by its sha256 and checked against it when stored. A
post whose recomputed content hash differs from the one exported is reported, not kept.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sidestep.archive.export import FORMAT, FORMAT_VERSION
from sidestep.archive.model import (
    ImportedPost,
    MediaRef,
    SourceRef,
    Visibility,
    content_hash,
    kind_of,
)
from sidestep.importers.base import ImporterSpec, Item, RecordProblem
from sidestep.importers.safezip import ExportRejected, ExportSource

MAX_LINE_BYTES = 16 << 20


def read(source: ExportSource) -> Iterator[Item]:
    if "manifest.json" not in source.names():
        raise ExportRejected(f"{source.label} has no manifest.json: is it a Sidestep export?")
    with source.open("manifest.json", max_bytes=source.limits.max_document_bytes) as raw:
        try:
            manifest = json.load(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ExportRejected(f"manifest.json is not JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ExportRejected("manifest.json does not describe a Sidestep archive")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ExportRejected(f"archive format version {manifest.get('format_version')!r}; "
                             f"this Sidestep reads version {FORMAT_VERSION}")
    name = str((manifest.get("posts") or {}).get("file") or "posts.jsonl")
    if name not in source.names():
        raise ExportRejected(f"{source.label} has no {name}")
    expected = (manifest.get("posts") or {}).get("sha256")
    if _sha256(source, name) != expected:
        raise ExportRejected(f"{name} does not match the sha256 in manifest.json")
    with source.open(name, max_bytes=source.limits.max_media_bytes) as stream:
        for number, line in enumerate(iter(lambda: stream.readline(MAX_LINE_BYTES + 1), b""), 1):
            if len(line) > MAX_LINE_BYTES:
                raise ExportRejected(f"{name} line {number} is longer than {MAX_LINE_BYTES}")
            try:
                yield _post(json.loads(line))
            except (KeyError, ValueError, TypeError, AttributeError) as exc:
                yield RecordProblem(f"{name} line {number}", f"unreadable post: {exc!r}")


def _sha256(source: ExportSource, name: str) -> str:
    digest = hashlib.sha256()
    with source.open(name, max_bytes=source.limits.max_media_bytes) as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _post(row: dict[str, Any]) -> ImportedPost:
    media = tuple(
        MediaRef(kind=str(m["kind"]), mime_type=str(m["mime_type"]), alt=str(m.get("alt", "")),
                 source_uri=str(m.get("source_uri", "")), sha256=m.get("sha256"),
                 member=f"media/{m['sha256']}" if m.get("sha256") else None)
        for m in row["media"]
    )
    post = ImportedPost(
        sources=tuple(
            SourceRef(str(s["platform"]), str(s["source_id"]), s.get("permalink"),
                      dict(s.get("extra") or {}), datetime.fromisoformat(s["imported_at"]))
            for s in row["sources"]
        ),
        text=str(row["text"]), created_at=datetime.fromisoformat(row["created_at"]),
        visibility=Visibility(row["visibility"]), link=row.get("link"),
        reply_to=row.get("reply_to"), media=media, main_permalink=row.get("permalink"),
    )
    if not post.sources:
        raise ValueError("a post without sources")
    recomputed = content_hash(
        kind=kind_of(media).value, text=post.text, created_at=post.created_at,
        permalink=row.get("permalink"), link=post.link, visibility=post.visibility.value,
        reply_to=post.reply_to, media=[m.as_row() for m in media])
    if recomputed != row["content_hash"] or row["kind"] != post.kind.value:
        raise ValueError("content hash does not match the post (edited or damaged?)")
    return post


IMPORTER = ImporterSpec(
    kind="sidestep", platform="sidestep", read=read,
    description="an archive written by `sidestep export`",
)
