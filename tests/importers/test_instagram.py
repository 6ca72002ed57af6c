from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidestep.archive.model import Visibility
from tests.importers.conftest import ZipMaker, posts_of, problems_of, read_all, sample_tree


def test_it_reads_the_older_export_with_a_thousand_posts(make_zip: ZipMaker) -> None:
    items = read_all("instagram", make_zip(sample_tree("instagram/ig-import")))
    posts = posts_of(items)
    assert len(posts) == 1057 and problems_of(items) == []
    assert posts[0].text == "Bundt caaaake"
    assert sum(len(p.media) for p in posts) == 1332
    carousel = next(p for p in posts if p.sources[0].source_id
                    == "24332341_942736932542455_3591419724128321536_n_17885373943185276.jpg")
    assert carousel.text == "Death Valley" and len(carousel.media) == 2
    assert carousel.created_at == datetime.fromtimestamp(1512080517, UTC)
    assert not any("ð\u009f" in p.text for p in posts)  # emoji mojibake repaired


def test_it_reads_the_newer_layout_and_sniffs_media_without_extension(
    make_zip: ZipMaker,
) -> None:
    members = sample_tree("instagram/personal_instagram_analysis")
    members["media/posts/202405/443264932_2087405521632157_3585242178116673705_n_"
            "18032017582961826.jpg"] = b"\xff\xd8\xff jpeg"
    posts = posts_of(read_all("instagram", make_zip(members)))
    assert len(posts) == 4
    assert posts[0].media[0].member is not None  # the one file we put in the zip
    assert posts[0].sources[0].extra["cross_posted_from"] == "FB"
    assert any(m.kind == "video" and "." not in m.source_uri.rsplit("/", 1)[-1]
               for p in posts for m in p.media)


def test_reels_and_stories_are_read(make_zip: ZipMaker) -> None:
    reel = {"media": [{"uri": "media/reels/1.mp4", "creation_timestamp": 1700000000,
                       "title": "a reel"}]}
    story = {"uri": "media/stories/2.jpg", "creation_timestamp": 1700000500, "title": ""}
    path = make_zip({
        "your_instagram_activity/content/reels.json": json.dumps({"ig_reels_media": [reel]}).encode(),
        "your_instagram_activity/content/stories.json": json.dumps({"ig_stories": [story]}).encode(),
    })
    posts = posts_of(read_all("instagram", path))
    assert [(p.kind, p.sources[0].extra["type"]) for p in posts] == [("video", "reel"),
                                                                     ("image", "story")]
    assert posts[1].visibility is Visibility.UNLISTED


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(st.tuples(
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=100),
    st.integers(1_300_000_000, 1_900_000_000), st.integers(1, 10)), max_size=12))
def test_generated_posts_keep_caption_time_and_media_count(
    make_zip: ZipMaker, entries: list[tuple[str, int, int]]
) -> None:
    data = [{"media": [{"uri": f"media/posts/{i}_{n}.jpg", "creation_timestamp": stamp,
                        "title": caption.encode().decode("latin-1") if count == 1 else ""}
                       for n in range(count)],
             **({"title": caption.encode().decode("latin-1"), "creation_timestamp": stamp}
                if count > 1 else {})}
            for i, (caption, stamp, count) in enumerate(entries)]
    path = make_zip({"your_instagram_activity/content/posts_1.json": json.dumps(data).encode()})
    posts = posts_of(read_all("instagram", path))
    assert [(p.text, int(p.created_at.timestamp()), len(p.media)) for p in posts] == [
        (caption.strip(), stamp, count) for caption, stamp, count in entries]
