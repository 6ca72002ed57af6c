from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidestep.importers._car import CarError, decode
from sidestep.importers.safezip import ExportRejected
from tests.importers.conftest import EXPORTS, ZipMaker, posts_of, problems_of, read_all, skipped_of

CAR = EXPORTS / "bluesky/indigo/bnewbold.robocracy.org.20250310005405.car"


def test_it_reads_the_real_repository() -> None:
    items = read_all("bluesky", CAR)
    posts = posts_of(items)
    assert len(posts) == 23 and problems_of(items) == []
    assert [s.reason for s in skipped_of(items)] == ["repost"]
    first = posts[0]
    assert first.text == "does it work?"
    assert first.created_at == datetime(2024, 2, 22, 4, 35, 10, 72000, tzinfo=UTC)
    did = "did:plc:nhxcyu4ewwhl5pqil4dotqjo"
    assert first.sources[0].source_id.startswith(f"at://{did}/app.bsky.feed.post/")
    assert first.permalink and first.permalink.startswith(f"https://bsky.app/profile/{did}/post/")
    images = [m for p in posts for m in p.media]
    assert images and all(m.source_uri.startswith("bafkrei") and m.member is None for m in images)
    assert any(m.alt for m in images)
    assert any(p.reply_to for p in posts) and any(p.link for p in posts)


def test_it_reads_the_older_repository_from_its_head_commit(make_zip: ZipMaker) -> None:
    path = make_zip({"repo.car": EXPORTS / "bluesky/indigo/fakermaker.repo.car"})
    items = read_all("bluesky", path)
    assert len(posts_of(items)) == 26 and len(skipped_of(items)) == 15


def test_a_file_that_is_not_a_car_is_refused(make_zip: ZipMaker) -> None:
    with pytest.raises(ExportRejected, match="not a readable CAR"):
        read_all("bluesky", make_zip({"repo.car": b"\x05hello world"}))
    truncated = make_zip({"repo.car": CAR.read_bytes()[:3000]})
    with pytest.raises(ExportRejected):
        read_all("bluesky", truncated)


@given(st.binary(max_size=64))
def test_the_cbor_decoder_fails_only_with_its_own_error(data: bytes) -> None:
    try:
        decode(data)
    except CarError:
        pass
