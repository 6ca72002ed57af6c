"""Cutting text at safe places, for threads and shortened posts.

Text is cut only between grapheme clusters (an emoji with its skin tone and joiners, a letter
with its accents, a flag: what a reader sees as one character), preferably at whitespace and
after a sentence, and never inside a URL, a @mention (X, Bluesky or Mastodon style) or a
#hashtag. How long a piece may be is the caller's `fits` predicate: each platform counts in
its own way, so this module never counts.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

import regex

__all__ = ["URL", "Piece", "Unsplittable", "join", "pack", "take", "words"]

# URLs without the punctuation that ends a sentence or closes a bracket after them.
URL = re.compile(r"(?:https?://|www\.)\S+?(?=[.,;:!?'\")\]]*(?:\s|$))", re.IGNORECASE)
_PROTECTED = re.compile(rf"{URL.pattern}|@\w[\w.-]*(?:@\w[\w.-]*)?|#\w+", re.IGNORECASE)
_GRAPHEME = regex.compile(r"\X")
_SENTENCE_ENDS = (".", "!", "?", "…", "。", "！", "？", "؟", "।")


@dataclass(frozen=True, slots=True)
class Piece:
    """A word (or, once a word is too long, a piece of one) and the whitespace before it."""

    sep: str
    text: str


class Unsplittable(Exception):
    """One unit (a URL, mention, hashtag or grapheme cluster) does not fit on its own."""

    def __init__(self, unit: str) -> None:
        super().__init__(unit)
        self.unit = unit

    @property
    def kind(self) -> str:
        """What the unit is, for a person: "link", "mention", "hashtag"."""
        what = {"@": "mention", "#": "hashtag"}.get(self.unit[:1], "")
        return what or ("link" if URL.match(self.unit) else "sequence of characters")


def words(text: str) -> list[Piece]:
    """Runs of grapheme clusters split at whitespace clusters (a space with a combining mark
    on it is part of a word, so no cluster is ever cut)."""
    pieces: list[Piece] = []
    sep: list[str] = []
    word: list[str] = []
    for cluster in _GRAPHEME.findall(text):
        if cluster.isspace():
            if word:
                pieces.append(Piece("".join(sep), "".join(word)))
                sep, word = [], []
            sep.append(cluster)
        else:
            word.append(cluster)
    if word:
        pieces.append(Piece("".join(sep), "".join(word)))
    return pieces


def _units(piece: Piece) -> list[Piece]:
    """A word cut at every grapheme boundary that is not inside a URL, mention or hashtag."""
    text = piece.text
    cuts = {0, len(text)}
    position = 0
    for cluster in _GRAPHEME.findall(text):
        position += len(cluster)
        cuts.add(position)
    for match in _PROTECTED.finditer(text):
        cuts -= set(range(match.start() + 1, match.end()))
    bounds = sorted(cuts)
    return [Piece(piece.sep if start == 0 else "", text[start:end])
            for start, end in pairwise(bounds)]


def join(pieces: list[Piece], start: int, end: int) -> str:
    """The text of `pieces[start:end]`, without the whitespace before the first one."""
    return pieces[start].text + "".join(p.sep + p.text for p in pieces[start + 1:end])


def pack(pieces: list[Piece], fits: Callable[[int, str], bool]) -> list[str]:
    """Greedy parts (`fits(part_index, body)`): as many pieces as fit, ending on a sentence
    where one ends late enough."""
    pieces = list(pieces)
    parts: list[str] = []
    start = 0
    while start < len(pieces):
        index = len(parts)
        end = take(pieces, start, functools.partial(fits, index), sentences=True)
        parts.append(join(pieces, start, end))
        start = end
    return parts


def take(pieces: list[Piece], start: int, fits: Callable[[str], bool], *,
          sentences: bool) -> int:
    """The end index of the longest run of pieces from `start` that fits.

    A first piece that fits on its own in no part is cut into units in place (`pieces`
    changes); raises Unsplittable when a single unit does not fit.
    """
    while not fits(pieces[start].text):
        units = _units(pieces[start])
        if len(units) == 1:
            raise Unsplittable(units[0].text)
        pieces[start:start + 1] = units
    # Exponential, then binary search: `fits` costs a count of the whole candidate.
    good, bad, probe = 1, len(pieces) - start + 1, 2
    while probe < bad:
        if fits(join(pieces, start, start + probe)):
            good, probe = probe, probe * 2
        else:
            bad = probe
    while bad - good > 1:
        middle = (good + bad) // 2
        if fits(join(pieces, start, start + middle)):
            good = middle
        else:
            bad = middle
    end = start + good
    if not sentences or end == len(pieces):
        return end
    for candidate in range(end, start + good // 2, -1):
        ends_sentence = pieces[candidate - 1].text.endswith(_SENTENCE_ENDS)
        boundary = pieces[candidate].sep
        if boundary and (ends_sentence or "\n" in boundary):
            return candidate
    return end
