from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidestep.importers.base import fix_mojibake
from tests.importers.conftest import ZipMaker, posts_of, problems_of, read_all, sample_tree


def test_it_reads_the_real_export_and_repairs_its_mojibake(make_zip: ZipMaker) -> None:
    items = read_all("facebook", make_zip(sample_tree("facebook/waultar")))
    posts = posts_of(items)
    assert len(posts) == 14 and problems_of(items) == []
    texts = "\n".join(p.text for p in posts)
    assert "næsten" in texts and "på søndag" in texts
    assert "Ã" not in texts
    photo = posts[0]
    assert photo.text == "Sne sne!" and photo.kind == "image"
    assert photo.created_at == datetime.fromtimestamp(1354805114, UTC)
    assert photo.media[0].source_uri.startswith("posts/media/")
    assert any(p.kind == "video" for p in posts)
    assert any(p.link == "http://www.holbaekshinsonhapkido.dk/" for p in posts)
    assert "tilføjet" in photo.sources[0].extra["title"]


def test_source_ids_are_stable_across_reads(make_zip: ZipMaker) -> None:
    path = make_zip(sample_tree("facebook/waultar"))
    first = [p.sources[0].source_id for p in posts_of(read_all("facebook", path))]
    assert first == [p.sources[0].source_id for p in posts_of(read_all("facebook", path))]
    assert len(set(first)) == len(first)


def test_media_in_the_export_is_found_under_the_archive_root(make_zip: ZipMaker) -> None:
    post = {"timestamp": 1700000000, "data": [{"post": "pic"}], "attachments": [{"data": [
        {"media": {"uri": "your_facebook_activity/posts/media/a/b.jpg"}}]}]}
    path = make_zip({"your_facebook_activity/posts/your_posts_1.json": json.dumps([post]).encode(),
                     "your_facebook_activity/posts/media/a/b.jpg": b"\xff\xd8jpeg"})
    [read] = posts_of(read_all("facebook", path))
    assert read.media[0].member == "your_facebook_activity/posts/media/a/b.jpg"


def mojibake(text: str) -> str:
    return text.encode("utf-8").decode("latin-1")


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)),
                              min_size=1, max_size=200), max_size=10),
       stamps=st.lists(st.integers(1_100_000_000, 1_900_000_000), min_size=10, max_size=10))
def test_generated_exports_read_back_repaired(
    make_zip: ZipMaker, texts: list[str], stamps: list[int]
) -> None:
    posts = [{"timestamp": stamp, "data": [{"post": mojibake(text)}]}
             for text, stamp in zip(texts, stamps, strict=False)]
    data = json.dumps(posts).encode()  # ASCII with \\u00XX escapes, as Facebook writes
    items = read_all("facebook", make_zip({"posts/your_posts_1.json": data}))
    assert [p.text for p in posts_of(items)] == [t.strip() for t in texts]
    assert [p.created_at for p in posts_of(items)] == [
        datetime.fromtimestamp(s, UTC) for s in stamps[: len(texts)]]


def test_fix_mojibake_leaves_real_text_alone() -> None:
    assert fix_mojibake("tilf\u00c3\u00b8jet") == "tilføjet"
    assert fix_mojibake("tilføjet") == "tilføjet"
    assert fix_mojibake("emoji 🎉") == "emoji 🎉"
