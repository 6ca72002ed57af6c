"""Import → export → import into a fresh workspace gives the same archive, media included."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from sidestep.archive.export import archive_digest, export_archive
from sidestep.archive.importing import run_import
from sidestep.archive.media import MediaStore
from sidestep.clock import FrozenClock
from sidestep.importers import importer
from sidestep.importers.safezip import ExportRejected, open_export
from sidestep.store.archive import Archive
from sidestep.store.db import Database
from tests.archive.conftest import T0, workspace
from tests.importers.conftest import EXPORTS, sample_tree

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def zip_of(path: Path, members: dict[str, bytes | Path]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content.read_bytes() if isinstance(content, Path) else content)
    return path


async def load(db: Database, ws: int, kind: str, path: Path, media: MediaStore) -> None:
    source = open_export(path)
    try:
        report = await run_import(db, workspace_id=ws, importer=importer(kind), source=source,
                                  media=media, clock=FrozenClock(T0))
    finally:
        source.close()
    assert report.error_count == 0, report.errors


async def test_export_then_import_gives_an_identical_archive(db: Database, tmp_path: Path) -> None:
    media = MediaStore.under(tmp_path / "data")
    acme = await workspace(db, "acme")
    x = sample_tree("x/twoo")
    x["data/tweets_media/1541752634348019715-FWVnxzyWIAIEZU3.png"] = PNG
    await load(db, acme, "x", zip_of(tmp_path / "x.zip", x), media)
    masto = sample_tree("mastodon/masto-archive")
    await load(db, acme, "mastodon", zip_of(tmp_path / "m.zip", masto), media)
    await load(db, acme, "bluesky", EXPORTS / "bluesky/indigo/fakermaker.repo.car", media)
    await load(db, acme, "linkedin", EXPORTS / "linkedin/sanand0-linkedin/Shares.csv", media)

    out = tmp_path / "acme.zip"
    manifest = await export_archive(db, workspace_id=acme, workspace_slug="acme",
                                    media_store=media, out=out, at=T0)
    assert manifest["posts"]["count"] == 27 + 52 + 26 + 184
    assert [m["sha256"] for m in manifest["media"]] == [
        hashlib.sha256(PNG).hexdigest()]

    fresh = await workspace(db, "fresh")
    other_media = MediaStore.under(tmp_path / "elsewhere")
    await load(db, fresh, "sidestep", out, other_media)
    digest = await archive_digest(db, workspace_id=acme)
    assert digest == manifest["archive_digest"]
    assert await archive_digest(db, workspace_id=fresh) == digest
    with other_media.open(manifest["media"][0]["sha256"]) as f:
        assert f.read() == PNG
    # and importing it again changes nothing
    await load(db, fresh, "sidestep", out, other_media)
    assert await archive_digest(db, workspace_id=fresh) == digest


async def test_merged_posts_keep_all_their_sources_through_export(
    db: Database, tmp_path: Path
) -> None:
    from tests.archive.conftest import post

    acme = await workspace(db, "acme")
    async with db.session() as s:
        await Archive(s, workspace_id=acme).add_many(
            [post("x", "1", "same words"), post("mastodon", "m", "Same words!", minutes=2)], at=T0)
    media = MediaStore.under(tmp_path / "data")
    out = tmp_path / "a.zip"
    await export_archive(db, workspace_id=acme, workspace_slug="acme", media_store=media,
                         out=out, at=T0)
    fresh = await workspace(db, "fresh")
    await load(db, fresh, "sidestep", out, media)
    async with db.session() as s:
        archive = Archive(s, workspace_id=fresh)
        [only] = await archive.listing()
        assert {src.platform for src in (await archive.sources_of([only.id]))[only.id]} == {
            "x", "mastodon"}
    assert await archive_digest(db, workspace_id=fresh) == await archive_digest(
        db, workspace_id=acme)


async def test_an_edited_export_is_refused_or_its_bad_posts_reported(
    db: Database, tmp_path: Path
) -> None:
    from tests.archive.conftest import post

    acme = await workspace(db, "acme")
    async with db.session() as s:
        await Archive(s, workspace_id=acme).add_many([post("x", "1", "original")], at=T0)
    media = MediaStore.under(tmp_path / "data")
    out = tmp_path / "a.zip"
    await export_archive(db, workspace_id=acme, workspace_slug="acme", media_store=media,
                         out=out, at=T0)
    with zipfile.ZipFile(out) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        lines = zf.read("posts.jsonl")
    edited = lines.replace(b"original", b"tampered")
    with pytest.raises(ExportRejected, match="does not match the sha256"):
        list(importer("sidestep").read(open_export(zip_of(
            tmp_path / "b.zip", {"manifest.json": json.dumps(manifest).encode(),
                                 "posts.jsonl": edited}))))
    manifest["posts"]["sha256"] = hashlib.sha256(edited).hexdigest()
    items = list(importer("sidestep").read(open_export(zip_of(
        tmp_path / "c.zip", {"manifest.json": json.dumps(manifest).encode(),
                             "posts.jsonl": edited}))))
    assert [type(i).__name__ for i in items] == ["RecordProblem"]
