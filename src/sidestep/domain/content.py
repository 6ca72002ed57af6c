"""What a post says, independent of any platform, and the problems found when checking it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum


class MediaKind(StrEnum):
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    DOCUMENT = "document"


@dataclass(frozen=True, slots=True)
class MediaItem:
    """One attached file. `data` is the file itself; adapters upload it as each API wants."""

    kind: MediaKind
    mime_type: str
    data: bytes = field(repr=False)
    alt: str = ""
    filename: str = "media"
    # A public URL of the same file, for APIs that fetch media themselves (Instagram, Threads).
    url: str | None = None

    @property
    def size_bytes(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True, slots=True)
class Content:
    """One post's content for one channel (after per-channel variants were applied)."""

    text: str
    link: str | None = None
    media: tuple[MediaItem, ...] = ()
    title: str = ""  # for platforms that need one (YouTube, Pinterest, Reddit)
    # The external id of the post this one replies to, for threads split over several posts.
    reply_to: str | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    """Why content cannot go to a channel as it is, in words a person understands."""

    code: str  # "too_long", "too_many_media", "media_too_large", "media_kind", "empty", ...
    message: str
