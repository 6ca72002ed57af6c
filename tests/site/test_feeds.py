"""RSS, Atom and the podcast feed as feedparser reads them; XML escaping; the sitemap."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import feedparser
import httpx

from sidestep.site.content import Brand, PostView
from sidestep.site.feeds import PODCAST, atom, podcast_guid, rss, xml_text
from sidestep.site.links import Links
from tests.site.conftest import HOSTILE, PUBLIC_POSTS, Seeded

ITUNES = "http://www.itunes.com/dtds/podcast-1.0.dtd"


async def feed(client: httpx.AsyncClient, name: str) -> tuple[bytes, feedparser.FeedParserDict]:
    answer = await client.get(f"/site/acme/{name}")
    assert answer.status_code == 200
    parsed = feedparser.parse(answer.content)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return answer.content, parsed


async def test_rss_and_atom_parse_without_errors(
        seeded: Seeded, site_client: httpx.AsyncClient) -> None:
    for name, version in (("feed.xml", "rss20"), ("atom.xml", "atom10")):
        raw, parsed = await feed(site_client, name)
        assert parsed.version == version
        assert parsed.feed.title == "Acme Coffee Roasters"
        assert len(parsed.entries) == PUBLIC_POSTS
        hostile = next(e for e in parsed.entries
                       if e.link.endswith(f"/posts/{seeded.hostile_post_id}/"))
        # The markup arrives as text, and the control characters are gone.
        assert "\x00" not in raw.decode() and "\x1b" not in raw.decode()
        text = hostile.get("summary") or hostile.content[0].value
        assert "<script>alert('x')</script>" in text or "&lt;script&gt;" in text
        image = next(e for e in parsed.entries if "pictured" in e.title)
        assert image.enclosures[0].type == "image/png"
        assert image.enclosures[0].href == (
            f"http://testserver/site/acme/media/{seeded.image_sha}.png")


async def test_the_podcast_feed_carries_itunes_and_podcasting_2_tags(
        seeded: Seeded, site_client: httpx.AsyncClient) -> None:
    raw, parsed = await feed(site_client, "podcast.xml")
    assert len(parsed.entries) == 1
    episode = parsed.entries[0]
    assert episode.title == "Episode 1: how we roast"
    assert episode.enclosures[0].type == "audio/mpeg"
    assert int(episode.enclosures[0].length) == 14 + 4000
    assert parsed.feed.author == "Acme Coffee Roasters"
    channel = ET.fromstring(raw).find("channel")
    assert channel is not None
    guid = channel.findtext(f"{{{PODCAST}}}guid")
    feed_url = "http://testserver/site/acme/podcast.xml"
    assert guid == str(uuid.uuid5(uuid.UUID("ead4c236-bf58-58c6-a2c6-a6b28d128cb6"),
                                  "testserver/site/acme/podcast.xml")) == podcast_guid(feed_url)
    assert channel.findtext(f"{{{PODCAST}}}locked") == "yes"
    assert channel.findtext(f"{{{PODCAST}}}medium") == "podcast"
    assert channel.findtext(f"{{{ITUNES}}}explicit") == "false"
    category = channel.find(f"{{{ITUNES}}}category")
    assert category is not None and category.get("text") == "Business"


def test_podcast_guid_follows_the_namespace_rule() -> None:
    # The example of the Podcasting 2.0 specification.
    assert podcast_guid("https://mp3s.nashownotes.com/pc20rss.xml") == \
        "917393e3-1b1e-5cef-ace4-edaa54e1f810"


def test_feeds_strip_what_xml_cannot_hold_and_escape_the_rest() -> None:
    assert xml_text("a\x00b\x08c\x0bd\x1fe\ufffef\ttab\nline") == "abcdef\ttab\nline"
    nasty = HOSTILE + " ]]> \ud800 </description><x>"
    post = PostView(id=1, path="posts/1/", text=nasty, title=nasty, created_at=datetime(
        2025, 1, 1, tzinfo=UTC), kind="text", link=None, media=(), sources=())
    brand = Brand(slug="a", name="A & B <C>", description="\x07bell")
    links = Links.exported(base_url="https://a.example/", slug="a")
    for body in (rss(brand, [post], links, now=post.created_at),
                 atom(brand, [post], links, now=post.created_at)):
        parsed = feedparser.parse(body)
        assert parsed.bozo == 0, parsed.get("bozo_exception")
        assert parsed.feed.title == "A & B <C>"
        assert "]]>" in parsed.entries[0].title and "</description><x>" in parsed.entries[0].title


async def test_the_sitemap_lists_pages_and_every_public_post(
        seeded: Seeded, site_client: httpx.AsyncClient) -> None:
    answer = await site_client.get("/site/acme/sitemap.xml")
    root = ET.fromstring(answer.content)
    locs = [e.text for e in root.iter("{http://www.sitemaps.org/schemas/sitemap/0.9}loc")]
    assert "http://testserver/site/acme/" in locs
    assert f"http://testserver/site/acme/posts/{seeded.hostile_post_id}/" in locs
    assert f"http://testserver/site/acme/posts/{seeded.secret_post_id}/" not in locs
    assert len(locs) == 2 + 3 + PUBLIC_POSTS
