from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidestep.archive.model import Visibility
from tests.importers.conftest import EXPORTS, ZipMaker, posts_of, problems_of, read_all, sample_tree


def test_the_real_tiktok_export_has_no_posts_and_no_errors() -> None:
    items = read_all("tiktok", EXPORTS / "tiktok/ytdlp4tt/user_data_tiktok.json")
    assert items == []  # VideoList is null: the user posted nothing; likes are not posts


def test_tiktok_videos_are_read_from_either_section_name(make_zip: ZipMaker) -> None:
    data = json.loads((EXPORTS / "tiktok/ytdlp4tt/user_data_tiktok.json").read_text())
    data["Video"]["Videos"]["VideoList"] = [
        {"Date": "2024-03-01 10:00:00", "Link": "https://www.tiktokv.com/share/video/7341/",
         "Likes": "12", "WhoCanView": "Everyone", "Title": "first 🎉"}]
    data["Post"] = {"Posts": {"VideoList": [
        {"Date": "2024-04-01 11:00:00", "Link": "https://x.example/dl?item_id=7342",
         "WhoCanView": "Only me", "Title": "second"}]}}
    posts = posts_of(read_all("tiktok", make_zip({"user_data.json": json.dumps(data).encode()})))
    assert [(p.text, p.sources[0].source_id, p.visibility) for p in posts] == [
        ("first 🎉", "7341", Visibility.PUBLIC), ("second", "7342", Visibility.PRIVATE)]
    assert posts[0].created_at == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert posts[0].kind == "video" and posts[0].media[0].member is None


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(videos=st.lists(st.tuples(
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=150),
    st.datetimes(min_value=datetime(2017, 1, 1), max_value=datetime(2030, 1, 1))), max_size=10))
def test_generated_tiktok_exports_read_back(make_zip: ZipMaker,
                                           videos: list[tuple[str, datetime]]) -> None:
    data = {"Video": {"Videos": {"VideoList": [
        {"Date": when.strftime("%Y-%m-%d %H:%M:%S"), "Link": f"https://t.example/video/{i}",
         "Title": title} for i, (title, when) in enumerate(videos)]}}}
    posts = posts_of(read_all("tiktok", make_zip({"user_data.json": json.dumps(data).encode()})))
    assert [(p.text, p.created_at) for p in posts] == [
        (t.strip(), w.replace(microsecond=0, tzinfo=UTC)) for t, w in videos]


def test_it_reads_the_real_youtube_takeout(make_zip: ZipMaker) -> None:
    items = read_all("youtube", make_zip(sample_tree("youtube/youtube-dashboard")))
    [video] = posts_of(items)
    assert problems_of(items) == []
    assert video.text == "Love Yourself - Justin Bieber (Acoustic Cover)"
    assert video.created_at == datetime(2021, 1, 7, 19, 57, 12, tzinfo=UTC)
    assert video.visibility is Visibility.PRIVATE
    assert video.permalink == "https://www.youtube.com/watch?v=Qh6c_nMwjqw"
    assert video.sources[0].extra["duration_ms"] == "93000"


def test_youtube_nanosecond_timestamps_and_a_bad_row(make_zip: ZipMaker) -> None:
    csv = ("Video ID,Video Title (Original),Privacy,Video Publish Timestamp\n"
           "a1,Nano,Public,2022-03-25T13:48:31.606945622+00:00\n"
           "a2,Broken,Public,yesterday\n\n\n")
    items = read_all("youtube", make_zip({
        "Takeout/YouTube and YouTube Music/video metadata/videos.csv": csv.encode()}))
    assert [p.created_at.microsecond for p in posts_of(items)] == [606945]
    [problem] = problems_of(items)
    assert "line 3" in problem.where
