"""TikTok "Download your data", JSON format: `user_data.json` (alone or in a zip).

One object of sections → subsections → a list. The user's own videos are in
`Video.Videos.VideoList` (newer exports: `Post.Posts.VideoList`), entries `{Date, Link,
Likes, WhoCanView, Title, …}`; `Date` is `YYYY-MM-DD HH:MM:SS` (UTC, no zone), empty lists
are `null`, and key case varies between sections. The video files are not in the export,
only a download link, so a post keeps the link as its media reference. Likes, favourites,
comments and messages are someone's activity, not posts, and are not archived.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sidestep.archive.model import ImportedPost, MediaRef, SourceRef, Visibility
from sidestep.importers.base import ImporterSpec, Item, RecordProblem, json_items
from sidestep.importers.safezip import ExportRejected, ExportSource

VIDEO_LISTS = ("Video.Videos.VideoList.item", "Post.Posts.VideoList.item")
_VISIBILITY = {"everyone": Visibility.PUBLIC, "friends": Visibility.FOLLOWERS,
               "followers": Visibility.FOLLOWERS, "only me": Visibility.PRIVATE,
               "private": Visibility.PRIVATE}


def read(source: ExportSource) -> Iterator[Item]:
    files = [n for n in source.names()
             if n.lower().endswith(".json") and "user_data" in n.rsplit("/", 1)[-1].lower()]
    if not files:
        raise ExportRejected(f"{source.label} has no user_data.json: is it a TikTok export "
                             "in JSON format?")
    name = files[0]
    for prefix in VIDEO_LISTS:
        for position, video in enumerate(json_items(source, name, prefix, streamed=False)):
            try:
                yield _post({k.lower(): v for k, v in video.items()})
            except (KeyError, ValueError, TypeError, AttributeError) as exc:
                yield RecordProblem(f"{name} {prefix.rsplit('.', 1)[0]} #{position}",
                                    f"unreadable video: {exc!r}")


def _post(video: dict[str, Any]) -> ImportedPost:
    created = datetime.strptime(str(video["date"]).strip(), "%Y-%m-%d %H:%M:%S")
    link = str(video.get("link") or "")
    found = re.search(r"/video/(\d+)|item_id=(\d+)", link)
    source_id = (found.group(1) or found.group(2)) if found else (
        f"{created:%Y%m%d%H%M%S}-{hashlib.sha256(link.encode()).hexdigest()[:12]}")
    text = str(video.get("title") or video.get("description") or "").strip()
    extra = {k: video[k] for k in ("likes", "sound", "location") if video.get(k)}
    who = str(video.get("whocanview") or "").strip().lower()
    return ImportedPost(
        sources=(SourceRef("tiktok", source_id, None, extra),),
        text=text, created_at=created.replace(tzinfo=UTC),
        media=(MediaRef(kind="video", mime_type="video/mp4", source_uri=link),),
        visibility=_VISIBILITY.get(who, Visibility.PUBLIC),
    )


IMPORTER = ImporterSpec(
    kind="tiktok", platform="tiktok", read=read,
    description="TikTok's user_data.json, or the zip holding it",
)
