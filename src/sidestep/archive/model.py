"""What an archived post is, independent of where it came from, and how posts are compared.

Two appearances are "the same post" when they carry the same platform id (a re-import), or
when they come from different platforms, say the same thing (`text_key`: text normalised
with NFKC, case folded, links, punctuation and spacing removed, because each platform
rewrites links and some style letters as 𝗯𝗼𝗹𝗱) and were made within `MERGE_WINDOW` of each
other (cross-posting tools and Sidestep itself publish to every channel within minutes).
Posts on one platform with different ids are never merged: a platform does not export the
same post twice.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import regex

MERGE_WINDOW = timedelta(minutes=15)
# Punctuation, spacing and control characters; letters, digits and symbols (emoji) remain.
_SEPARATORS = regex.compile(r"[\p{P}\p{Z}\p{C}]+")
_URL = re.compile(r"https?://\S+|\bwww\.\S+", re.IGNORECASE)


class PostKind(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"


class Visibility(StrEnum):
    PUBLIC = "public"
    UNLISTED = "unlisted"
    FOLLOWERS = "followers"
    PRIVATE = "private"


@dataclass(frozen=True, slots=True)
class MediaRef:
    """One attached file. `member` names it inside the export; `sha256` is set once stored."""

    kind: str  # image, video, audio, document
    mime_type: str = "application/octet-stream"
    alt: str = ""
    source_uri: str = ""  # as the export wrote it (a relative path, a CDN URL, a blob CID)
    member: str | None = None
    sha256: str | None = None

    def as_row(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "kind": self.kind, "mime_type": self.mime_type,
                "alt": self.alt, "source_uri": self.source_uri}


@dataclass(frozen=True, slots=True)
class SourceRef:
    platform: str
    source_id: str
    permalink: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    imported_at: datetime | None = None  # kept when a Sidestep export is read back
    delivery_id: int | None = None  # set when Sidestep published it
    channel_id: int | None = None


@dataclass(frozen=True, slots=True)
class ImportedPost:
    """One post as an importer read it; `sources` has one entry except in Sidestep exports."""

    sources: tuple[SourceRef, ...]
    text: str
    created_at: datetime
    visibility: Visibility = Visibility.PUBLIC
    link: str | None = None
    reply_to: str | None = None
    media: tuple[MediaRef, ...] = ()
    origin_post_id: int | None = None  # the Sidestep post it was published from
    main_permalink: str | None = None  # else the first source's

    @property
    def kind(self) -> PostKind:
        return kind_of(self.media)

    @property
    def permalink(self) -> str | None:
        if self.main_permalink:
            return self.main_permalink
        return next((s.permalink for s in self.sources if s.permalink), None)


def kind_of(media: tuple[MediaRef, ...] | list[MediaRef]) -> PostKind:
    kinds = {m.kind for m in media}
    for kind in (PostKind.VIDEO, PostKind.AUDIO, PostKind.IMAGE):
        if kind.value in kinds:
            return kind
    return PostKind.TEXT


def media_kind(mime_type: str) -> str:
    major = mime_type.split("/", 1)[0]
    return major if major in ("image", "video", "audio") else "document"


def text_key(text: str) -> str | None:
    """The hash of `text` normalised for merging, or None when nothing is left to compare."""
    folded = unicodedata.normalize("NFKC", _URL.sub(" ", text)).casefold()
    words = _SEPARATORS.sub(" ", folded).split()
    if not words:
        return None
    return hashlib.sha256(" ".join(words).encode()).hexdigest()


def canonical_json(value: Any) -> bytes:
    """One byte string per value: sorted keys, no spaces, UTF-8; what content hashes are of."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode()


def content_hash(*, kind: str, text: str, created_at: datetime, permalink: str | None,
                 link: str | None, visibility: str, reply_to: str | None,
                 media: list[dict[str, Any]]) -> str:
    """The sha256 of what a post says (not where or when it was archived)."""
    return hashlib.sha256(canonical_json({
        "kind": kind, "text": text, "created_at": iso(created_at), "permalink": permalink,
        "link": link, "visibility": visibility, "reply_to": reply_to, "media": media,
    })).hexdigest()


def iso(when: datetime) -> str:
    """UTC, to the microsecond: the same instant always gives the same text."""
    return when.astimezone(UTC).isoformat(timespec="microseconds")
