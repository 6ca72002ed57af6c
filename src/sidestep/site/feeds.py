"""RSS 2.0, Atom (RFC 4287), the podcast feed and the sitemap, as XML bytes.

Written with ElementTree, which escapes text and attributes; what it does not do is drop
the characters XML 1.0 forbids (most C0 controls, lone surrogates, U+FFFE/U+FFFF), which
imported posts do carry, so every string goes through `xml_text` first.

The podcast feed is RSS 2.0 with Apple's iTunes tags and the Podcasting 2.0 namespace:
`podcast:guid` is the UUIDv5 of the feed URL without its scheme and trailing slashes (the
namespace's rule, so any app computes the same guid), `podcast:locked` is `yes` (the brand
did not agree to the feed being moved to another host), `podcast:medium` is `podcast`.
Apple requires a category; the workspace setting `podcast_category` names it, "Business"
by default.
"""

from __future__ import annotations

import html
import re
import uuid
import xml.etree.ElementTree as ET  # noqa: S405  (writing only; nothing is parsed here)
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime

from sidestep.site.content import Brand, PostView
from sidestep.site.links import Links

ITUNES = "http://www.itunes.com/dtds/podcast-1.0.dtd"
PODCAST = "https://podcastindex.org/namespace/1.0"
ATOM = "http://www.w3.org/2005/Atom"
SITEMAP = "http://www.sitemaps.org/schemas/sitemap/0.9"
PODCAST_GUID_NAMESPACE = uuid.UUID("ead4c236-bf58-58c6-a2c6-a6b28d128cb6")
SITEMAP_MAX_URLS = 50_000
FEED_ITEMS = 50
GENERATOR = "Sidestep"

ET.register_namespace("itunes", ITUNES)
ET.register_namespace("podcast", PODCAST)
ET.register_namespace("atom", ATOM)

_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(value: str) -> str:
    """`value` without the characters XML 1.0 cannot hold."""
    return _FORBIDDEN.sub("", value)


def _sub(parent: ET.Element, tag: str, content: str | None = None, /,
         **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: xml_text(v) for k, v in attrs.items()})
    if content is not None:
        element.text = xml_text(content)
    return element


def _bytes(root: ET.Element) -> bytes:
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data


def _rfc822(when: datetime) -> str:
    return format_datetime(when.astimezone(UTC), usegmt=True)


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _updated(posts: Sequence[PostView], now: datetime) -> datetime:
    return max((p.created_at for p in posts), default=now)


def rss(brand: Brand, posts: Sequence[PostView], links: Links, *, now: datetime) -> bytes:
    root = ET.Element("rss", {"version": "2.0"})
    channel = _channel(root, brand, links, self_path="feed.xml", now=_updated(posts, now))
    for post in posts[:FEED_ITEMS]:
        item = _item(channel, post, links)
        first = post.media[0] if post.media else None
        if first is not None:
            _sub(item, "enclosure", url=links.absolute(first.path),
                 length=str(first.size_bytes), type=first.content_type)
    return _bytes(root)


def _channel(root: ET.Element, brand: Brand, links: Links, *, self_path: str,
             now: datetime) -> ET.Element:
    channel = _sub(root, "channel")
    _sub(channel, "title", brand.name)
    _sub(channel, "link", links.absolute(""))
    _sub(channel, "description", brand.description or f"Posts of {brand.name}")
    _sub(channel, "lastBuildDate", _rfc822(now))
    _sub(channel, "generator", GENERATOR)
    _sub(channel, f"{{{ATOM}}}link", href=links.absolute(self_path), rel="self",
         type="application/rss+xml")
    return channel


def _item(channel: ET.Element, post: PostView, links: Links) -> ET.Element:
    item = _sub(channel, "item")
    _sub(item, "title", post.title)
    _sub(item, "link", links.absolute(post.path))
    _sub(item, "guid", links.absolute(post.path), isPermaLink="true")
    _sub(item, "pubDate", _rfc822(post.created_at))
    # Readers take an RSS description as HTML: escaped here, the post's text stays text.
    _sub(item, "description", html.escape(post.text))
    return item


def atom(brand: Brand, posts: Sequence[PostView], links: Links, *, now: datetime) -> bytes:
    # Unqualified names under an xmlns attribute: ElementTree's default_namespace option
    # refuses unqualified attribute names, and Atom's attributes are all unqualified.
    root = ET.Element("feed", {"xmlns": ATOM})
    _sub(root, "id", links.absolute(""))
    _sub(root, "title", brand.name)
    if brand.description:
        _sub(root, "subtitle", brand.description)
    _sub(root, "updated", _rfc3339(_updated(posts, now)))
    _sub(root, "link", href=links.absolute(""), rel="alternate", type="text/html")
    _sub(root, "link", href=links.absolute("atom.xml"), rel="self",
         type="application/atom+xml")
    author = _sub(root, "author")
    _sub(author, "name", brand.name)
    _sub(root, "generator", GENERATOR)
    for post in posts[:FEED_ITEMS]:
        entry = _sub(root, "entry")
        _sub(entry, "id", links.absolute(post.path))
        _sub(entry, "title", post.title)
        _sub(entry, "updated", _rfc3339(post.created_at))
        _sub(entry, "published", _rfc3339(post.created_at))
        _sub(entry, "link", href=links.absolute(post.path), rel="alternate",
             type="text/html")
        for media in post.media:
            _sub(entry, "link", href=links.absolute(media.path), rel="enclosure",
                 type=media.content_type, length=str(media.size_bytes))
        _sub(entry, "content", post.text, type="text")
    return _bytes(root)


def podcast_guid(feed_url: str) -> str:
    bare = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", "", feed_url).rstrip("/")
    return str(uuid.uuid5(PODCAST_GUID_NAMESPACE, bare))


def podcast(brand: Brand, episodes: Sequence[PostView], links: Links, *, now: datetime,
            category: str = "Business", language: str = "en") -> bytes:
    """The audio posts as a podcast; `episodes` without an audio file are left out."""
    root = ET.Element("rss", {"version": "2.0"})
    channel = _channel(root, brand, links, self_path="podcast.xml",
                       now=_updated(episodes, now))
    _sub(channel, "language", language)
    _sub(channel, f"{{{ITUNES}}}author", brand.name)
    owner = _sub(channel, f"{{{ITUNES}}}owner")
    _sub(owner, f"{{{ITUNES}}}name", brand.name)
    _sub(channel, f"{{{ITUNES}}}summary", brand.description or f"Episodes of {brand.name}")
    _sub(channel, f"{{{ITUNES}}}category", text=category)
    _sub(channel, f"{{{ITUNES}}}explicit", "false")
    _sub(channel, f"{{{ITUNES}}}type", "episodic")
    _sub(channel, f"{{{PODCAST}}}guid", podcast_guid(links.absolute("podcast.xml")))
    _sub(channel, f"{{{PODCAST}}}locked", "yes")
    _sub(channel, f"{{{PODCAST}}}medium", "podcast")
    for post in episodes[:FEED_ITEMS]:
        audio = post.audio
        if audio is None:
            continue
        item = _item(channel, post, links)
        _sub(item, "enclosure", url=links.absolute(audio.path), length=str(audio.size_bytes),
             type=audio.content_type)
        _sub(item, f"{{{ITUNES}}}title", post.title)
        _sub(item, f"{{{ITUNES}}}episodeType", "full")
        _sub(item, f"{{{ITUNES}}}explicit", "false")
    return _bytes(root)


def sitemap(entries: Iterable[tuple[str, datetime | None]], links: Links) -> bytes:
    """A sitemap of (site path, last change); at most `SITEMAP_MAX_URLS` entries."""
    root = ET.Element("urlset", {"xmlns": SITEMAP})
    for count, (path, changed) in enumerate(entries):
        if count >= SITEMAP_MAX_URLS:
            break
        url = _sub(root, "url")
        _sub(url, "loc", links.absolute(path))
        if changed is not None:
            _sub(url, "lastmod", _rfc3339(changed))
    return _bytes(root)
