"""`sidestep site build`: the static export passes a link check and shows only public posts."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import feedparser
import pytest
from typer.testing import CliRunner

from sidestep.archive.media import MediaStore
from sidestep.catalogue import default_catalogue
from sidestep.cli import app
from sidestep.clock import FrozenClock
from sidestep.runtime import Runtime
from sidestep.site.build import BuildError, build_site
from sidestep.store.accounts import Accounts
from sidestep.store.site import Sites
from tests.site.conftest import GLOBEX_TEXT, PUBLIC_POSTS, SECRET_TEXT, Seeded

BASE = "https://acme.example/site/"


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.refs += [value for name, value in attrs if name in ("href", "src") and value]


def broken_links(root: Path) -> list[str]:
    """Every internal href/src of every built page that names no built file."""
    broken = []
    for page in root.rglob("*.html"):
        parser = _Refs()
        parser.feed(page.read_text())
        for ref in parser.refs:
            parts = urlsplit(ref)
            if parts.scheme or ref.startswith("#"):
                continue
            if ref.startswith("/"):
                broken.append(f"{page.relative_to(root)}: {ref} is not relative")
                continue
            target = (page.parent / parts.path).resolve()
            if not target.is_file() or root.resolve() not in target.parents:
                broken.append(f"{page.relative_to(root)}: {ref}")
    return broken


async def build(runtime: Runtime, clock: FrozenClock, slug: str, out: Path):  # type: ignore[no-untyped-def]
    async with runtime.db.session() as s:
        workspace = await Accounts(s).workspace_by_slug(slug)
    assert workspace is not None
    return await build_site(runtime.db, workspace=workspace, catalogue=default_catalogue(),
                            media_store=MediaStore.under(runtime.settings.data_dir), out=out,
                            base_url=BASE, now=clock.now())


async def test_the_static_site_passes_a_link_check(
        seeded: Seeded, runtime: Runtime, clock: FrozenClock, tmp_path: Path) -> None:
    out = tmp_path / "public"
    report = await build(runtime, clock, "acme", out)
    assert broken_links(out) == []
    # home + 3 archive pages + per-platform pages (x, mastodon, instagram: 1 each) + posts
    assert report.pages == 1 + 3 + 3 + PUBLIC_POSTS
    assert {p.name for p in (out / "media").iterdir()} == {
        f"{seeded.image_sha}.png", f"{seeded.audio_sha}.mp3"}
    assert (out / "archive/page/3/index.html").is_file()
    assert (out / "assets/site.css").is_file()
    every_page = "".join(p.read_text() for p in out.rglob("*.html"))
    assert SECRET_TEXT not in every_page and GLOBEX_TEXT not in every_page
    assert f'<link rel="canonical" href="{BASE}posts/' in (
        out / f"posts/{seeded.hostile_post_id}/index.html").read_text()
    assert "search" not in (out / "archive/index.html").read_text().lower().split("<main")[1]


async def test_the_exported_feeds_have_absolute_urls(
        seeded: Seeded, runtime: Runtime, clock: FrozenClock, tmp_path: Path) -> None:
    out = tmp_path / "public"
    await build(runtime, clock, "acme", out)
    for name in ("feed.xml", "atom.xml", "podcast.xml"):
        parsed = feedparser.parse((out / name).read_bytes())
        assert parsed.bozo == 0, (name, parsed.get("bozo_exception"))
        for entry in parsed.entries:
            assert entry.link.startswith(BASE + "posts/")
            assert (out / entry.link.removeprefix(BASE) / "index.html").is_file()
    sitemap = (out / "sitemap.xml").read_text()
    assert f"<loc>{BASE}</loc>" in sitemap and f"<loc>{BASE}archive/</loc>" in sitemap
    assert sitemap.count("<loc>") == 2 + 3 + PUBLIC_POSTS


async def test_an_unpublished_site_is_not_built(
        seeded: Seeded, runtime: Runtime, clock: FrozenClock, tmp_path: Path) -> None:
    async with runtime.db.session() as s:
        sites = Sites(s, workspace_id=seeded.acme_id)
        settings = await sites.get()
        assert settings is not None
        settings.published = False
    with pytest.raises(BuildError, match="not published"):
        await build(runtime, clock, "acme", tmp_path / "public")
    assert not (tmp_path / "public").exists()


def test_the_command_builds_the_site_with_a_base_url(
        seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIDESTEP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SIDESTEP_DATABASE_URL", raising=False)
    monkeypatch.delenv("SIDESTEP_BASE_URL", raising=False)
    runner = CliRunner()
    result = runner.invoke(app, ["site", "build", "--out", str(tmp_path / "out"),
                                 "--workspace", "globex"])
    assert result.exit_code == 2
    assert "give --base-url" in result.stderr
    result = runner.invoke(app, ["site", "build", "--out", str(tmp_path / "out"),
                                 "--workspace", "globex", "--base-url", "ftp://x"])
    assert result.exit_code == 2 and "must be absolute" in result.stderr
    result = runner.invoke(app, ["site", "build", "--out", str(tmp_path / "out"),
                                 "--workspace", "globex", "--base-url", "https://globex.example"])
    assert result.exit_code == 0, result.stderr
    assert "Wrote" in result.stdout and "1 media files" in result.stdout
    assert broken_links(tmp_path / "out") == []
    assert GLOBEX_TEXT in (tmp_path / "out/index.html").read_text()
