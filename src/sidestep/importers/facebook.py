"""Facebook "Download Your Information", JSON format.

Posts are in `posts/your_posts_1.json`, `your_posts_2.json`, … (newer exports put them under
`your_facebook_activity/posts/`): a bare array, streamed. A post has `timestamp` (Unix s),
its text in `data[].post`, and `attachments[].data[]` with `media` (a file in the export),
`external_context.url` (a link), `event`, `note`, `place`. Every string is UTF-8 written as
if it were latin-1 (`tilf\\u00c3\\u00b8jet`) and is repaired here. Facebook exports no post
id, so the source id is the timestamp and a hash of the text: stable across re-exports.
"""

from __future__ import annotations

import functools
import hashlib
import mimetypes
import re
from collections.abc import Callable, Iterator
from typing import Any

from sidestep.archive.model import ImportedPost, MediaRef, SourceRef, media_kind
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

_POSTS = re.compile(r"(^|/)posts/your_posts(_\d+)?\.json$")


def read(source: ExportSource) -> Iterator[Item]:
    files = sorted(n for n in source.names() if _POSTS.search(n))
    if not files:
        raise ExportRejected(f"{source.label} has no posts/your_posts_1.json: is it a "
                             "Facebook export in JSON format?")
    names = frozenset(source.names())
    for name in files:
        prefix = name.rsplit("posts/", 1)[0]
        for position, raw in enumerate(json_items(source, name)):
            try:
                yield _post(fix_all(raw), functools.partial(_locate, names, prefix))
            except (KeyError, ValueError, TypeError, AttributeError) as exc:
                yield RecordProblem(f"{name} #{position}", f"unreadable post: {exc!r}")


def _post(post: dict[str, Any], locate: Callable[[str], str | None]) -> ImportedPost:
    created = from_unix(post["timestamp"])
    texts = [d["post"] for d in post.get("data") or [] if isinstance(d, dict) and d.get("post")]
    media: list[MediaRef] = []
    link = None
    extra: dict[str, Any] = {}
    for attachment in post.get("attachments") or []:
        for data in attachment.get("data") or []:
            if "media" in data:
                media.append(_media(data["media"], locate))
            if "external_context" in data and data["external_context"].get("url"):
                link = link or data["external_context"]["url"]
            if "note" in data:
                note = data["note"]
                texts += [t for t in (note.get("title"), note.get("text")) if t]
                media += [_media(m, locate) for m in note.get("media") or []]
            if "event" in data:
                extra["event"] = data["event"].get("name")
            if "place" in data:
                extra["place"] = data["place"].get("name")
    if post.get("title"):
        extra["title"] = post["title"]
    text = "\n\n".join(t.strip() for t in texts).strip()
    if not text and not media and not link:
        text = post.get("title") or ""
    digest = hashlib.sha256(f"{post['timestamp']}\n{text}\n{link}".encode()).hexdigest()[:16]
    return ImportedPost(
        sources=(SourceRef("facebook", f"{post['timestamp']}-{digest}", None, extra),),
        text=text, created_at=created, link=link, media=tuple(media),
    )


def _locate(names: frozenset[str], prefix: str, uri: str) -> str | None:
    return member_for(names, uri, prefix)


def _media(item: dict[str, Any], locate: Callable[[str], str | None]) -> MediaRef:
    uri = str(item.get("uri") or "")
    mime = mimetypes.guess_type(uri)[0] or "application/octet-stream"
    return MediaRef(kind=media_kind(mime), mime_type=mime, source_uri=uri, member=locate(uri))


IMPORTER = ImporterSpec(
    kind="facebook", platform="facebook", read=read,
    description='the Facebook "Download Your Information" zip, JSON format',
)
