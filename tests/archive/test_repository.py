"""The archive repository on SQLite and PostgreSQL: merges, listing, search, isolation."""

from __future__ import annotations

from sidestep.archive.model import MediaRef
from sidestep.store.archive import Archive, MediaRow, Outcome
from sidestep.store.db import Database
from tests.archive.conftest import T0, post, workspace

SHA = "ab" * 32


async def test_the_same_post_on_two_platforms_is_one_archived_post(db: Database) -> None:
    ws = await workspace(db, "acme")
    async with db.session() as s:
        archive = Archive(s, workspace_id=ws)
        assert await archive.add_one(post("x", "1", "Launch day! https://t.co/abc"), at=T0) \
            is Outcome.IMPORTED
        # LinkedIn rewrote the link and the bold letters, and posted three minutes later
        assert await archive.add_one(
            post("linkedin", "urn:li:share:9", "𝗟𝗮𝘂𝗻𝗰𝗵 day!! https://lnkd.in/x", minutes=3),
            at=T0) is Outcome.MERGED
        assert await archive.add_one(post("x", "1", "Launch day!"), at=T0) is Outcome.DUPLICATE
    async with db.session() as s:
        archive = Archive(s, workspace_id=ws)
        [merged] = await archive.listing()
        sources = (await archive.sources_of([merged.id]))[merged.id]
        assert sorted(src.platform for src in sources) == ["linkedin", "x"]
        assert await archive.platforms() == {"linkedin": 1, "x": 1}


async def test_posts_are_not_merged_when_far_apart_or_on_one_platform(db: Database) -> None:
    ws = await workspace(db, "acme")
    async with db.session() as s:
        outcomes = await Archive(s, workspace_id=ws).add_many([
            post("x", "1", "Good morning"), post("x", "2", "Good morning", minutes=1),
            post("mastodon", "m1", "Good morning", minutes=60 * 24), post("bluesky", "b", ""),
            post("mastodon", "m2", "", minutes=1),
        ], at=T0)
    assert outcomes == [Outcome.IMPORTED] * 5


async def test_a_merge_within_one_batch_and_into_a_later_one(db: Database) -> None:
    ws = await workspace(db, "acme")
    async with db.session() as s:
        archive = Archive(s, workspace_id=ws)
        assert await archive.add_many([post("x", "1", "Hello"), post("mastodon", "m", "hello.")],
                                      at=T0) == [Outcome.IMPORTED, Outcome.MERGED]
        assert await archive.add_many([post("bluesky", "b", "HELLO", minutes=-10)], at=T0) \
            == [Outcome.MERGED]
        assert await archive.count() == 1
        assert await archive.count(platform="bluesky") == 1


async def test_listing_is_paginated_newest_first_per_platform(db: Database) -> None:
    ws = await workspace(db, "acme")
    async with db.session() as s:
        archive = Archive(s, workspace_id=ws)
        await archive.add_many([post("x", str(i), f"tweet {i}", minutes=i * 60)
                                for i in range(7)], at=T0)
        await archive.add_many([post("mastodon", "m", "toot", minutes=30)], at=T0)
        page1 = await archive.listing(platform="x", limit=3)
        page3 = await archive.listing(platform="x", limit=3, offset=6)
        assert [p.text for p in page1] == ["tweet 6", "tweet 5", "tweet 4"]
        assert [p.text for p in page3] == ["tweet 0"]
        assert await archive.count(platform="x") == 7 and await archive.count() == 8


async def test_search_finds_words_in_any_language_and_ignores_query_syntax(
    db: Database,
) -> None:
    ws = await workspace(db, "acme")
    async with db.session() as s:
        archive = Archive(s, workspace_id=ws)
        await archive.add_many([
            post("x", "1", "Invitation til åbent hus hos Shinson Hapkido"),
            post("x", "2", "Prompt engineering is out. Evals are in.", minutes=60),
            post("x", "3", "Evals, evals, evals 🎉", minutes=120),
        ], at=T0)
    async with db.session() as s:
        archive = Archive(s, workspace_id=ws)
        assert [p.text for p in await archive.search("hapkido ÅBENT")] == [
            "Invitation til åbent hus hos Shinson Hapkido"]
        assert [p.created_at for p in await archive.search("evals")] == [
            T0.replace(hour=14), T0.replace(hour=13)]
        assert await archive.search('evals" OR "x') == []
        assert await archive.search("NEAR(") == []
        assert await archive.search("   ") == []


async def test_workspaces_never_see_each_others_posts_media_or_sources(db: Database) -> None:
    acme, other = await workspace(db, "acme"), await workspace(db, "other")
    image = MediaRef(kind="image", mime_type="image/png", sha256=SHA)
    async with db.session() as s:
        await Archive(s, workspace_id=acme).add_many(
            [post("x", "1", "secret plans", media=(image,))],
            media=[MediaRow(SHA, "image/png", 10)], at=T0)
    async with db.session() as s:
        theirs = Archive(s, workspace_id=other)
        assert await theirs.listing() == [] and await theirs.search("secret") == []
        assert await theirs.media(SHA) is None
        assert await theirs.by_source("x", "1") is None
        # the same tweet imported by another workspace is new there, not a duplicate
        assert await theirs.add_one(post("x", "1", "secret plans"), at=T0) is Outcome.IMPORTED
        mine = Archive(s, workspace_id=acme)
        assert (await mine.media(SHA)) is not None
        [only] = await mine.listing()
        assert await theirs.get(only.id) is None
