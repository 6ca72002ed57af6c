"""Properties of `adapt` and `validate` for any text and media, on every adapter.

Every registered adapter (whatever `all_adapters()` holds while colleagues add them) is run,
and stand-ins as well, so the rules are exercised on every kind of counting even before the
real adapters exist: the base count (code points) with each catalogue platform's limits, an
X-like weighted count (URLs 23, CJK 2) and a Bluesky-like grapheme count.
"""

from __future__ import annotations

import io
from typing import ClassVar

import httpx
import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from sidestep.catalogue import default_catalogue
from sidestep.channels.adapt import ELLIPSIS, Adaptation, adapt, numbering
from sidestep.channels.base import Adapter, all_adapters
from sidestep.domain.content import Content, MediaItem, MediaKind

# Adapters never touch the network in adapt() or validate(); a client that answers nothing.
CLIENT = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(599)))
PERMALINK = "https://brand.example/archive/2026/11/the-full-post"
URL = regex.compile(r"https?://\S+")
CJK = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]")
GRAPHEME = regex.compile(r"\X")


def tiny_png() -> bytes:
    """A valid 1x1 PNG (conftest's PNG_1PX has a bad IDAT checksum: Pillow rejects it)."""
    buffer = io.BytesIO()
    Image.new("RGBA", (1, 1), (255, 0, 0, 128)).save(buffer, "PNG")
    return buffer.getvalue()


PNG_1PX = tiny_png()


class WeightedLikeX(Adapter):
    """X's way, simplified: a URL counts 23, a CJK character 2, anything else 1."""

    platform: ClassVar[str] = "x"
    credential_fields: ClassVar[tuple[str, ...]] = ()

    def text_length(self, text: str) -> int:
        without_urls = URL.sub("", text)
        return 23 * len(URL.findall(text)) + len(without_urls) + len(CJK.findall(without_urls))


class GraphemesLikeBluesky(Adapter):
    platform: ClassVar[str] = "bluesky"
    credential_fields: ClassVar[tuple[str, ...]] = ()

    def text_length(self, text: str) -> int:
        return len(GRAPHEME.findall(text))


def stand_in(platform: str) -> Adapter:
    """The base adapter (code-point count, generic checks) with `platform`'s catalogue limits."""
    cls = type(f"StandIn_{platform}", (Adapter,), {"platform": platform, "credential_fields": ()})
    return cls(client=CLIENT)


def adapters_under_test() -> dict[str, Adapter]:
    """Every registered adapter, then stand-ins (by a readable test id): the base count with
    the limits of each catalogue platform that has no adapter yet, and the two counts above.

    Stand-ins are left out for limits over 5,000 characters: the drawn texts rarely exceed
    them, so they would add time and no coverage."""
    found: dict[str, Adapter] = {
        f"registered-{key}": cls(client=CLIENT) for key, cls in sorted(all_adapters().items())
    }
    registered = {adapter.platform for adapter in found.values()}
    for platform in sorted(default_catalogue().all(), key=lambda p: p.key):
        if platform.key not in registered and platform.limits.text_max_chars <= 5000:
            found[f"catalogue-{platform.key}"] = stand_in(platform.key)
    found["weighted-x"] = WeightedLikeX(client=CLIENT)
    found["graphemes-bluesky"] = GraphemesLikeBluesky(client=CLIENT)
    return found


ADAPTERS = adapters_under_test()
IDS = sorted(ADAPTERS)

# Pieces of text that break naive splitters: families and flags joined by ZWJ, skin tones,
# combining accents, right-to-left marks and scripts, zero-width spaces, CJK, every kind of
# whitespace, and the things that must never be cut (URLs, mentions, hashtags).
TRICKY = [
    "👩‍👩‍👧‍👦", "🏳️‍🌈", "🧑🏽‍💻", "🇫🇷🇩🇪", "🇫", "e\u0301", "a\u0301\u0302\u0303", "\u0301",
    "\u200f", "\u200e", "\u200b", "\u200d", "\u2066", "שָׁלוֹם", "مرحبا بالعالم", "漢字テスト",
    "한국어", "ǅ", "ﷺ", "#hashtag", "#ünïcödé", "#漢字", "@alice", "@bob@mastodon.social",
    "@carol.bsky.social", "https://example.com/a/b?c=d&e=f#frag", "www.example.org/x",
    "(https://example.com/p).", "Hello.", "Wait!", "Why?", "done…", "。", "x" * 40,
    "https://example.com/" + "long-path-" * 8,
]
SEPARATORS = [" ", " ", " ", "\n", "\n\n", "\r\n", "\t", "", "\u00a0", "\u3000", "\u2029", "  "]
word = st.one_of(st.sampled_from(TRICKY), st.text(min_size=1, max_size=10))


@st.composite
def texts(draw: st.DrawFn) -> str:
    """Short or very long text: drawn words and separators, the lot repeated up to 25 times."""
    pairs = draw(st.lists(st.tuples(word, st.sampled_from(SEPARATORS)), max_size=40))
    body = "".join(w + s for w, s in pairs)
    return body * draw(st.integers(min_value=1, max_value=25))


SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def nonspace_clusters(text: str) -> list[str]:
    return [c for c in GRAPHEME.findall(text) if not c.isspace()]


def thread_bodies(adaptation: Adaptation) -> list[str]:
    """The parts' texts without the " 2/5" numbering adapt() added."""
    total = len(adaptation.parts)
    if total == 1:
        return [adaptation.parts[0].text]
    bodies = []
    for index, part in enumerate(adaptation.parts, 1):
        suffix = numbering(index, total)
        assert part.text.endswith(suffix) or part.text == suffix.lstrip(), part.text
        bodies.append(part.text.removesuffix(suffix) if part.text != suffix.lstrip() else "")
    return bodies


@pytest.mark.parametrize("key", IDS)
@SETTINGS
@given(text=texts(), permalink=st.sampled_from([None, PERMALINK]))
def test_any_text_adapts_without_crashing_and_every_part_fits(
    key: str, text: str, permalink: str | None
) -> None:
    adapter = ADAPTERS[key]
    limits = adapter.entry.limits

    adaptation = adapt(Content(text=text), adapter, permalink=permalink)

    assert adaptation.parts
    for problem in adaptation.problems:
        assert problem.code.strip() and problem.message.strip()
    assert all(part.reply_to is None for part in adaptation.parts)
    if any(p.code == "too_long" for p in adaptation.problems):
        return  # impossible, and said why (a cluster or a URL longer than a whole post)
    for part in adaptation.parts:
        assert adapter.text_length(part.text) <= limits.text_max_chars
    if not limits.links_clickable:
        return  # URLs were removed on purpose
    original = nonspace_clusters(text)
    if limits.supports_threads:
        kept = [c for body in thread_bodies(adaptation) for c in nonspace_clusters(body)]
        assert "".join("".join(kept).split()) == "".join(text.split())  # no word lost
        assert kept == original  # and no grapheme cluster cut in two
    elif any(change.startswith("text shortened") for change in adaptation.changes):
        (part,) = adaptation.parts
        linked = any("with a link to the full post" in c for c in adaptation.changes)
        tail = f"{ELLIPSIS} {permalink}" if linked else ELLIPSIS
        assert part.text.endswith(tail)
        body = nonspace_clusters(part.text.removesuffix(tail))
        assert body == original[: len(body)]  # a clean prefix: no cluster cut, no URL cut
    else:
        assert [p.text for p in adaptation.parts] == [text]


def protected_tokens(text: str) -> list[str]:
    return regex.findall(r"https?://\S+|@\w[\w.-]*|#\w+", text)


@pytest.mark.parametrize("key", [k for k in IDS if ADAPTERS[k].entry.limits.supports_threads])
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(words=st.lists(st.sampled_from(TRICKY[19:] + ["word", "another", "the"]), min_size=1,
                      max_size=300))
def test_a_thread_never_cuts_a_link_a_mention_or_a_hashtag(key: str, words: list[str]) -> None:
    adapter = ADAPTERS[key]
    text = " ".join(words)
    adaptation = adapt(Content(text=text), adapter)
    if adaptation.problems:
        return
    bodies = thread_bodies(adaptation)
    for token in protected_tokens(text):
        assert any(token in body for body in bodies), token


MEDIA = st.builds(
    MediaItem,
    kind=st.sampled_from(list(MediaKind)),
    mime_type=st.sampled_from(["image/png", "image/jpeg", "video/mp4", "application/pdf"]),
    data=st.one_of(st.just(PNG_1PX), st.binary(max_size=64)),
    alt=st.text(max_size=20),
    filename=st.sampled_from(["photo.png", "clip.mp4", "a", "名前.jpg"]),
)
CONTENT = st.builds(Content, text=texts(), link=st.none() | st.just(PERMALINK),
                    media=st.lists(MEDIA, max_size=12).map(tuple), title=st.text(max_size=30))


@pytest.mark.parametrize("key", IDS)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content=CONTENT)
def test_validate_and_adapt_never_crash_on_any_content_and_explain_every_problem(
    key: str, content: Content
) -> None:
    adapter = ADAPTERS[key]
    for problem in adapter.validate(content):
        assert problem.code.strip() and problem.message.strip()
    adaptation = adapt(content, adapter, permalink=PERMALINK)
    for problem in adaptation.problems:
        assert problem.code.strip() and problem.message.strip()
    readable = {id(m) for m in content.media if m.data == PNG_1PX}
    unreadable_images = [m for m in content.media
                         if m.kind is MediaKind.IMAGE and id(m) not in readable]
    if unreadable_images and "image" in adapter.entry.limits.media_kinds:
        assert any(p.code == "media_unreadable" for p in adaptation.problems)
    if not any(p.code in ("too_many_media", "too_long") for p in adaptation.problems):
        cap = adapter.entry.limits.max_media_count
        assert all(len(part.media) <= cap for part in adaptation.parts)
