from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidestep.archive.model import Visibility
from sidestep.importers.mastodon import PUBLIC, html_to_text
from tests.importers.conftest import (
    ZipMaker,
    posts_of,
    problems_of,
    read_all,
    sample_tree,
    skipped_of,
)

ATTACHMENT = "indiewebsocial/media_attachments/files/109/333/835/161/429/021/original/3381f6f615f26246.jpeg"


def test_it_reads_the_real_outbox(make_zip: ZipMaker) -> None:
    members = sample_tree("mastodon/masto-archive")
    members[ATTACHMENT] = b"\xff\xd8\xff a cat"
    items = read_all("mastodon", make_zip(members))
    posts = posts_of(items)
    assert len(posts) == 52 and problems_of(items) == []
    assert [s.reason for s in skipped_of(items)] == ["repost"] * 8
    first = posts[0]
    assert first.text.startswith("As Twitter crashes and burns")
    assert "https://daniel.industries/2022/11/07/less-twitter-more-indieweb/" in first.text
    assert "<" not in first.text
    assert first.created_at == datetime(2022, 11, 8, 3, 7, 14, tzinfo=UTC)
    assert first.permalink == "https://indieweb.social/@dealingwith/109305976208011760"
    cat = next(p for p in posts if p.media and p.media[0].member == ATTACHMENT)
    assert cat.media[0].alt == "Picture of a white cat laying on a white couch"
    warned = next(p for p in posts if p.text.startswith("Personal website updates..."))
    assert warned.reply_to is not None
    assert sum(1 for p in posts if p.reply_to) == 19


def test_visibility_comes_from_to_and_cc(make_zip: ZipMaker) -> None:
    def create(n: int, to: list[str], cc: list[str]) -> dict[str, object]:
        return {"type": "Create", "published": "2024-01-01T00:00:00Z", "to": to, "cc": cc,
                "object": {"id": f"https://x.example/s/{n}", "type": "Note",
                           "content": f"<p>post {n}</p>"}}
    followers = "https://x.example/users/me/followers"
    outbox = {"orderedItems": [create(1, [PUBLIC], []), create(2, [followers], [PUBLIC]),
                               create(3, [followers], []), create(4, ["https://y.example/u"], [])]}
    posts = posts_of(read_all("mastodon", make_zip({"outbox.json": json.dumps(outbox).encode()})))
    assert [p.visibility for p in posts] == [Visibility.PUBLIC, Visibility.UNLISTED,
                                             Visibility.FOLLOWERS, Visibility.PRIVATE]


def test_html_becomes_paragraphs_and_lines() -> None:
    assert html_to_text("<p>one &amp; two</p><p>three<br>four</p>") == "one & two\n\nthree\nfour"


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                              min_size=1, max_size=200).filter(str.strip), max_size=10))
def test_generated_outboxes_read_back(make_zip: ZipMaker, texts: list[str]) -> None:
    import html

    items = [{"type": "Create", "published": "2024-05-06T07:08:09Z", "to": [PUBLIC], "cc": [],
              "object": {"id": f"https://x.example/s/{i}", "type": "Note",
                         "content": f"<p>{html.escape(text)}</p>"}}
             for i, text in enumerate(texts)]
    path = make_zip({"outbox.json": json.dumps({"orderedItems": items}).encode()})
    assert [p.text for p in posts_of(read_all("mastodon", path))] == [t.strip() for t in texts]
