"""Mastodon account archive: `outbox.json` (ActivityStreams) and `media_attachments/`.

`orderedItems` is streamed: `Create` activities carry the post (`Note`, or `Question` for a
poll) with HTML `content`, `summary` (content warning), `inReplyTo`, and `attachment[]`
whose `url` is archive-relative (`/<instance>/media_attachments/files/…`). Visibility is
only in `to`/`cc`: `#Public` in `to` is public, in `cc` unlisted, a followers collection
alone is followers-only, else direct (private). `Announce` (a boost) is someone else's post
and is skipped. `totalItems` is not to be trusted (it never matches the list).
"""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

from sidestep.archive.model import ImportedPost, MediaRef, SourceRef, Visibility, media_kind
from sidestep.importers.base import (
    ImporterSpec,
    Item,
    RecordProblem,
    Skipped,
    from_iso,
    json_items,
    member_for,
)
from sidestep.importers.safezip import ExportRejected, ExportSource

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
_BLOCKS = {"p", "br", "li", "blockquote", "pre"}


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag in _BLOCKS and self.parts:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts).strip()


def read(source: ExportSource) -> Iterator[Item]:
    outboxes = [n for n in source.names() if n == "outbox.json" or n.endswith("/outbox.json")]
    if not outboxes:
        raise ExportRejected(f"{source.label} has no outbox.json: is it a Mastodon archive?")
    name = outboxes[0]
    names = frozenset(source.names())
    root = name.rsplit("outbox.json", 1)[0]
    for position, activity in enumerate(json_items(source, name, "orderedItems.item")):
        if not isinstance(activity, dict):
            yield RecordProblem(f"{name} #{position}", "not an activity object")
        elif activity.get("type") == "Announce":
            yield Skipped("repost")
        elif activity.get("type") != "Create" or not isinstance(activity.get("object"), dict):
            yield Skipped(f"{activity.get('type')} activity")
        else:
            try:
                yield _post(activity, names, root)
            except (KeyError, ValueError, TypeError) as exc:
                yield RecordProblem(f"{name} #{position}", f"unreadable post: {exc!r}")


def _post(activity: dict[str, Any], names: frozenset[str], root: str) -> ImportedPost:
    note = activity["object"]
    text = html_to_text(str(note.get("content") or ""))
    if note.get("summary"):
        text = f"{note['summary']}\n\n{text}".strip()
    media = []
    for attachment in note.get("attachment") or []:
        url = str(attachment.get("url") or "")
        mime = str(attachment.get("mediaType") or "application/octet-stream")
        media.append(MediaRef(kind=media_kind(mime), mime_type=mime, source_uri=url,
                              alt=str(attachment.get("name") or ""),
                              member=member_for(names, url, root)))
    extra: dict[str, Any] = {"tags": [t.get("name") for t in note.get("tag") or []
                                      if t.get("type") == "Hashtag"]}
    if note.get("sensitive"):
        extra["sensitive"] = True
    return ImportedPost(
        sources=(SourceRef("mastodon", str(note["id"]), note.get("url") or note["id"],
                           {k: v for k, v in extra.items() if v}),),
        text=text, created_at=from_iso(note.get("published") or activity["published"]),
        reply_to=note.get("inReplyTo"), media=tuple(media),
        visibility=_visibility(activity.get("to") or [], activity.get("cc") or []),
    )


def _visibility(to: list[str], cc: list[str]) -> Visibility:
    if PUBLIC in to:
        return Visibility.PUBLIC
    if PUBLIC in cc:
        return Visibility.UNLISTED
    if any(str(a).endswith("/followers") for a in to):
        return Visibility.FOLLOWERS
    return Visibility.PRIVATE


IMPORTER = ImporterSpec(
    kind="mastodon", platform="mastodon", read=read,
    description="the Mastodon archive (outbox.json and media_attachments/) as a zip",
)
