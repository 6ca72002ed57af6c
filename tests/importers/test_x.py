from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidestep.archive.model import Visibility
from tests.importers.conftest import (
    EXPORTS,
    ZipMaker,
    posts_of,
    problems_of,
    read_all,
    sample_tree,
    skipped_of,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def tweets_js(tweets: list[dict[str, object]], part: int = 0) -> bytes:
    body = json.dumps([{"tweet": t} for t in tweets], ensure_ascii=False, indent=2)
    return f"window.YTD.tweets.part{part} = {body}".encode()


def tweet(tweet_id: int, text: str, when: datetime) -> dict[str, object]:
    return {"id_str": str(tweet_id), "id": str(tweet_id), "full_text": text,
            "created_at": when.strftime("%a %b %d %H:%M:%S +0000 %Y"),
            "favorite_count": "3", "retweet_count": "1", "lang": "en",
            "entities": {"hashtags": [], "urls": [], "user_mentions": []}}


def test_it_reads_the_real_archive(make_zip: ZipMaker) -> None:
    items = read_all("x", make_zip(sample_tree("x/twoo")))
    posts = posts_of(items)
    assert len(posts) == 27 and problems_of(items) == []
    assert [s.reason for s in skipped_of(items)] == ["repost"]  # the one `RT @`
    first = posts[0]
    assert first.text == "@RPDeshaies Pretty much anything by Bal-Sagoth"
    assert first.created_at == datetime(2023, 2, 24, 6, 58, 32, tzinfo=UTC)
    assert first.sources[0].source_id == "1629012888185610242"
    assert first.reply_to == "https://x.com/RPDeshaies/status/1628894722889601024"
    assert not any("&amp;" in p.text for p in posts)
    assert any("&" in p.text for p in posts)
    assert not any("https://t.co/" in p.text for p in posts if p.media)


def test_it_expands_links_and_attaches_media_from_tweets_media(make_zip: ZipMaker) -> None:
    members = sample_tree("x/twoo")
    members["data/tweets_media/1541752634348019715-FWVnxzyWIAIEZU3.png"] = PNG
    posts = posts_of(read_all("x", make_zip(members)))
    photo = next(p for p in posts if p.sources[0].source_id == "1541752634348019715")
    assert photo.kind == "image"
    assert photo.media[0].member == "data/tweets_media/1541752634348019715-FWVnxzyWIAIEZU3.png"
    assert photo.media[0].mime_type == "image/png"
    linked = [p for p in posts if p.link]
    assert linked and all(p.link and "t.co" not in p.link for p in linked)


def test_manifest_and_other_data_files_are_not_tweets(make_zip: ZipMaker) -> None:
    members = sample_tree("x/twoo") | {
        f"data/{p.name}": p for p in (EXPORTS / "x/twitter-to-sqlite/data").iterdir()}
    assert len(posts_of(read_all("x", make_zip(members)))) == 27


def test_a_broken_tweet_is_one_error_and_the_rest_import(make_zip: ZipMaker) -> None:
    when = datetime(2024, 1, 1, tzinfo=UTC)
    bad = {"id_str": "2", "full_text": "no date"}
    path = make_zip({"data/tweets.js": tweets_js([tweet(1, "fine", when), bad,
                                                  tweet(3, "also fine", when)])})
    items = read_all("x", path)
    assert [p.text for p in posts_of(items)] == ["fine", "also fine"]
    [problem] = problems_of(items)
    assert problem.where == "data/tweets.js #1" and "created_at" in problem.reason


texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=280)
dates = st.datetimes(min_value=datetime(2006, 3, 21), max_value=datetime(2030, 1, 1),
                     timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(st.tuples(texts, dates), max_size=30), parts=st.integers(1, 3))
def test_generated_archives_in_parts_read_back_every_tweet(
    make_zip: ZipMaker, entries: list[tuple[str, datetime]], parts: int
) -> None:
    tweets = [tweet(1000 + i, text, when) for i, (text, when) in enumerate(entries)]
    members: dict[str, bytes | Path] = {}
    for part in range(parts):
        name = "data/tweets.js" if part == 0 else f"data/tweets-part{part}.js"
        members[name] = tweets_js(tweets[part::parts], part)
    items = read_all("x", make_zip(members))
    expected = {str(1000 + i): (when, text) for i, (text, when) in enumerate(entries)
                if not text.startswith("RT @")}
    got = {p.sources[0].source_id: (p.created_at, p) for p in posts_of(items)}
    assert problems_of(items) == []
    assert set(got) == set(expected)
    for source_id, (when, post) in got.items():
        assert when == expected[source_id][0]
        assert post.visibility is Visibility.PUBLIC
        assert post.text == html.unescape(expected[source_id][1]).strip()
