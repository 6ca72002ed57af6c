"""Pure text helpers adapters share: grapheme clusters, URLs, Bluesky rich text and keys.

`grapheme_count` approximates Unicode extended grapheme clusters (UAX #29,
https://www.unicode.org/reports/tr29/) with `unicodedata` alone, so no third-party package
is needed: CR LF, combining and spacing marks, variation selectors, emoji modifiers, tag
characters, zero-width-joiner sequences, regional-indicator pairs (flags) and Hangul jamo
stay in one cluster. Prepend characters and the Indic conjunct rule are not modelled; they
only matter for a few scripts and make the count at most slightly high, never low.

`find_spans` finds what Bluesky turns into facets (links, @mentions, #hashtags), following
https://docs.bsky.app/docs/advanced-guides/post-richtext, with UTF-8 byte offsets, since
facet indexes count bytes, not characters; `facets_for` turns them into facet objects.

`record_key_for` and `AtUri` are the atproto identifiers the Bluesky adapter needs: TIDs
(https://atproto.com/specs/tid) and at:// URIs (https://atproto.com/specs/at-uri-scheme).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["URL_RE", "AtUri", "Span", "facets_for", "find_spans", "grapheme_count",
           "record_key_for", "utf8_offset"]

# A web address as people type it into posts; trailing punctuation is not part of it.
URL_RE = re.compile(r"https?://[^\s<>\"'`]+[^\s<>\"'`.,;:!?)\]}]")
_MENTION_RE = re.compile(
    r"(?:^|(?<=[\s(]))@((?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+"
    r"[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)")
_TAG_RE = re.compile(r"(?:^|(?<=\s))[#＃]([^\s\u00AD\u2060\u200A\u200B\u200C\u200D\u20e2]+)")
TAG_MAX_GRAPHEMES = 64
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
_TID_BASE_US = 1_672_531_200_000_000  # 2023-01-01T00:00:00Z


def _is_extender(char: str) -> bool:
    code = ord(char)
    return (unicodedata.category(char) in ("Mn", "Me", "Mc")
            or 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF  # variation selectors
            or 0x1F3FB <= code <= 0x1F3FF  # skin-tone modifiers
            or 0xE0020 <= code <= 0xE007F  # tag characters (subdivision flags)
            or code == 0x200D)


def _hangul(char: str) -> str:
    """The Hangul syllable type of UAX #29 (L, V, T, LV, LVT), or ""."""
    code = ord(char)
    if 0x1100 <= code <= 0x115F or 0xA960 <= code <= 0xA97C:
        return "L"
    if 0x1160 <= code <= 0x11A7 or 0xD7B0 <= code <= 0xD7C6:
        return "V"
    if 0x11A8 <= code <= 0x11FF or 0xD7CB <= code <= 0xD7FB:
        return "T"
    if 0xAC00 <= code <= 0xD7A3:
        return "LV" if (code - 0xAC00) % 28 == 0 else "LVT"
    return ""


_HANGUL_JOINS = {("L", "L"), ("L", "V"), ("L", "LV"), ("L", "LVT"), ("LV", "V"), ("LV", "T"),
                 ("V", "V"), ("V", "T"), ("LVT", "T"), ("T", "T")}


def _joins(previous: str, char: str, flag_open: bool) -> bool:
    """Whether `char` continues the cluster that `previous` is in (no break between them)."""
    if previous == "\r":
        return char == "\n"
    if previous in "\n" or unicodedata.category(previous) == "Cc":
        return False
    if unicodedata.category(char) == "Cc":
        return False
    if _is_extender(char) or previous == "\u200d":
        return True
    if (_hangul(previous), _hangul(char)) in _HANGUL_JOINS:
        return True
    return flag_open and 0x1F1E6 <= ord(char) <= 0x1F1FF


def grapheme_count(text: str) -> int:
    """How many user-perceived characters `text` has (see the module docstring)."""
    count = 0
    previous = ""
    flag_open = False  # one regional indicator seen, waiting for its pair
    for char in text:
        regional = 0x1F1E6 <= ord(char) <= 0x1F1FF
        if previous and _joins(previous, char, flag_open):
            flag_open = False
        else:
            count += 1
            flag_open = regional
        previous = char
    return count


def utf8_offset(text: str, index: int) -> int:
    """The UTF-8 byte offset of the character at `index` in `text`."""
    return len(text[:index].encode("utf-8"))


@dataclass(frozen=True, slots=True)
class Span:
    """A link, mention or hashtag in a text, located by UTF-8 byte offsets (end exclusive)."""

    kind: Literal["link", "mention", "tag"]
    byte_start: int
    byte_end: int
    value: str  # the URL, the handle without "@", the tag without "#"


def _strip_trailing_punctuation(tag: str) -> str:
    while tag and unicodedata.category(tag[-1]).startswith("P"):
        tag = tag[:-1]
    return tag


def find_spans(text: str) -> list[Span]:
    """Links, @handle mentions and #hashtags in `text`, in order of appearance.

    Returns spans that never overlap: a mention or hashtag inside a URL is part of the link.
    """
    spans: list[tuple[int, int, Span]] = []
    taken: list[tuple[int, int]] = []

    def add(kind: Literal["link", "mention", "tag"], start: int, end: int, value: str) -> None:
        if any(start < t_end and t_start < end for t_start, t_end in taken):
            return
        taken.append((start, end))
        spans.append((start, end, Span(kind, utf8_offset(text, start), utf8_offset(text, end),
                                       value)))

    for match in URL_RE.finditer(text):
        add("link", match.start(), match.end(), match.group(0))
    for match in _MENTION_RE.finditer(text):
        handle = match.group(1)
        if handle.rsplit(".", 1)[-1].isalpha():  # a TLD; "@1.5" is not a handle
            add("mention", match.start(), match.end(), handle.lower())
    for match in _TAG_RE.finditer(text):
        tag = _strip_trailing_punctuation(match.group(1))
        if not tag or tag.isdigit() or grapheme_count(tag) > TAG_MAX_GRAPHEMES:
            continue
        start = match.start()
        add("tag", start, start + 1 + len(tag), tag)
    return [span for _, _, span in sorted(spans, key=lambda s: s[0])]


def facets_for(text: str, dids: Mapping[str, str]) -> list[dict[str, Any]]:
    """`app.bsky.richtext.facet` objects for the links, hashtags and mentions in `text`.

    `dids` maps the handles that resolved to their DIDs; other mentions stay plain text,
    as the Bluesky app leaves them.
    """
    facets: list[dict[str, Any]] = []
    for span in find_spans(text):
        if span.kind == "link":
            feature = {"$type": "app.bsky.richtext.facet#link", "uri": span.value}
        elif span.kind == "tag":
            feature = {"$type": "app.bsky.richtext.facet#tag", "tag": span.value}
        elif span.value in dids:
            feature = {"$type": "app.bsky.richtext.facet#mention", "did": dids[span.value]}
        else:
            continue
        facets.append({"index": {"byteStart": span.byte_start, "byteEnd": span.byte_end},
                       "features": [feature]})
    return facets


def record_key_for(idempotency_key: str) -> str:
    """The TID record key `idempotency_key` always maps to (13 base32-sortable characters).

    The time part comes from the key's hash, placed within 2023 so that it never lies in
    the future; the last 10 bits (the TID's clock id) come from the hash too.
    """
    digest = int.from_bytes(hashlib.sha256(idempotency_key.encode()).digest()[:8], "big")
    micros = _TID_BASE_US + (digest >> 10) % (1 << 44)
    value = (micros << 10) | (digest & 0x3FF)  # below 2**63: the TID's top bit stays 0
    return "".join(TID_ALPHABET[(value >> shift) & 31] for shift in range(60, -1, -5))


@dataclass(frozen=True, slots=True)
class AtUri:
    """An at://repo/collection/rkey record address."""

    repo: str
    collection: str
    rkey: str

    @classmethod
    def parse(cls, uri: str) -> AtUri | None:
        """The parts of a record's at:// URI, or None if `uri` is not one."""
        parts = uri.removeprefix("at://").split("/") if uri.startswith("at://") else []
        return cls(*parts) if len(parts) == 3 and all(parts) else None
