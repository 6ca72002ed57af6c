"""Instagram export, JSON format: posts, reels and stories with their media.

Files (older exports under `content/`, newer under `your_instagram_activity/content/`):
`posts_1.json` (a bare array of `{"media": [...]}`), `reels.json` (`{"ig_reels_media":
[{"media": [...]}]}`), `stories.json` (`{"ig_stories": [media, ...]}`, one story each).
A single-media post keeps its caption (`title`) and `creation_timestamp` on the media item,
a carousel on the post. Captions are Meta's latin-1 mojibake and are repaired. Media `uri`s
are relative to the archive root. Instagram exports no post id: the source id is the
first media file's name, which carries Instagram's media id.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterator
from typing import Any

from sidestep.archive.model import ImportedPost, MediaRef, SourceRef, Visibility, media_kind
from sidestep.importers.base import (
    ImporterSpec,
    Item,
    RecordProblem,
    fix_all,
    from_unix,
    json_items,
    member_for,
)
from sidestep.importers.safezip import ExportRejected, ExportSource

_FILES = (
    (re.compile(r"(^|/)posts(_\d+)?\.json$"), "item", "post"),
    (re.compile(r"(^|/)reels\.json$"), "ig_reels_media.item", "reel"),
    (re.compile(r"(^|/)stories\.json$"), "ig_stories.item", "story"),
)


def read(source: ExportSource) -> Iterator[Item]:
    names = frozenset(source.names())
    chosen = [(name, prefix, what) for pattern, prefix, what in _FILES
              for name in sorted(names) if pattern.search(name)]
    if not chosen:
        raise ExportRejected(f"{source.label} has no content/posts_1.json: is it an "
                             "Instagram export in JSON format?")
    for name, prefix, what in chosen:
        for position, raw in enumerate(json_items(source, name, prefix)):
            try:
                entry = fix_all(raw)
                if what == "story":
                    entry = {"media": [entry]}
                yield _post(entry, what, names, _root(name))
            except (KeyError, ValueError, TypeError, AttributeError) as exc:
                yield RecordProblem(f"{name} #{position}", f"unreadable {what}: {exc!r}")


def _root(name: str) -> str:
    """The archive's own top folder, when it was zipped inside one."""
    for marker in ("your_instagram_activity/", "content/"):
        if marker in name:
            return name.split(marker, 1)[0]
    return name.rsplit("/", 1)[0] + "/" if "/" in name else ""


def _post(entry: dict[str, Any], what: str, names: frozenset[str], root: str) -> ImportedPost:
    items = entry.get("media") or []
    if not items:
        raise ValueError("no media")
    first = items[0]
    caption = entry.get("title") or first.get("title") or ""
    created = from_unix(entry.get("creation_timestamp") or first["creation_timestamp"])
    media = []
    for item in items:
        uri = str(item.get("uri") or "")
        mime = mimetypes.guess_type(uri)[0] or _sniff(item)
        media.append(MediaRef(kind=media_kind(mime), mime_type=mime, source_uri=uri,
                              member=member_for(names, uri, root)))
    source_id = (str(first.get("uri") or "").rsplit("/", 1)[-1]
                 or f"{what}-{int(created.timestamp())}")
    extra: dict[str, Any] = {"type": what}
    if app := (first.get("cross_post_source") or {}).get("source_app"):
        extra["cross_posted_from"] = app
    return ImportedPost(
        sources=(SourceRef("instagram", source_id, None, extra),),
        text=caption.strip(), created_at=created, media=tuple(media),
        # A story is gone after a day: it stays in the brand's archive, not on its pages.
        visibility=Visibility.UNLISTED if what == "story" else Visibility.PUBLIC,
    )


def _sniff(item: dict[str, Any]) -> str:
    """Some media have no extension; their metadata says whether they are video."""
    metadata = item.get("media_metadata") or {}
    return "video/mp4" if "video_metadata" in metadata else "image/jpeg"


IMPORTER = ImporterSpec(
    kind="instagram", platform="instagram", read=read,
    description="the Instagram export zip, JSON format (posts, reels, stories, media)",
)
