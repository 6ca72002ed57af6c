"""The site settings page: roles, CSRF, validation, preview; the public store on both engines."""

from __future__ import annotations

import httpx

from sidestep.clock import FrozenClock
from sidestep.runtime import Runtime
from sidestep.store.accounts import Accounts
from sidestep.store.db import Database
from sidestep.store.site import PublicArchive, Sites
from tests.site.conftest import Seeded, imported
from tests.web.conftest import csrf_from, sign_in


def form(csrf: str, **fields: str) -> dict[str, str]:
    return {"csrf_token": csrf, "published": "1", "title": "Acme", "description": "",
            "banner": "", **fields}


async def test_an_editor_sets_the_banner_and_the_public_page_shows_it(
        seeded: Seeded, site_client: httpx.AsyncClient, runtime: Runtime) -> None:
    await sign_in(site_client, runtime, seeded.world.editor)
    page = await site_client.get("/w/acme/site")
    assert page.status_code == 200 and 'name="banner"' in page.text
    saved = await site_client.post("/w/acme/site", data=form(
        csrf_from(page.text), banner="We moved <b>everything</b> to email",
        **{f"show_{seeded.world.newsletter_id}": "1",
           f"url_{seeded.world.newsletter_id}": "https://acme.example/news"}))
    assert saved.status_code == 303
    public = (await site_client.get("/site/acme/")).text
    assert "We moved &lt;b&gt;everything&lt;/b&gt; to email" in public
    assert public.count('class="site-channel ') == 1


async def test_a_viewer_cannot_save_and_a_missing_csrf_token_is_refused(
        seeded: Seeded, site_client: httpx.AsyncClient, runtime: Runtime) -> None:
    csrf = await sign_in(site_client, runtime, seeded.world.viewer)
    page = await site_client.get("/w/acme/site")
    assert page.status_code == 200 and "<fieldset disabled" in page.text
    assert (await site_client.post("/w/acme/site", data=form(csrf))).status_code == 403
    site_client.cookies.clear()
    csrf = await sign_in(site_client, runtime, seeded.world.owner)
    no_token = await site_client.post("/w/acme/site", data=form("wrong"))
    assert no_token.status_code == 403
    site_client.cookies.clear()
    await sign_in(site_client, runtime, seeded.world.outsider)
    assert (await site_client.get("/w/acme/site")).status_code == 404


async def test_links_must_be_web_or_mail_addresses_and_channels_the_workspaces(
        seeded: Seeded, site_client: httpx.AsyncClient, runtime: Runtime) -> None:
    csrf = await sign_in(site_client, runtime, seeded.world.owner)
    bad = await site_client.post("/w/acme/site", data=form(csrf, **{
        f"show_{seeded.world.instagram_id}": "1",
        f"url_{seeded.world.instagram_id}": "javascript:alert(1)"}))
    assert bad.status_code == 400 and "must start with https://" in bad.text
    # Globex's channel named in acme's form is simply not one of the rows read.
    other = await site_client.post("/w/acme/site", data=form(csrf, **{
        f"show_{seeded.world.other_channel_id}": "1"}))
    assert other.status_code == 303
    async with runtime.db.session() as s:
        settings = await Sites(s, workspace_id=seeded.acme_id).get()
        assert settings is not None and settings.channels == []
    too_long = await site_client.post("/w/acme/site", data=form(csrf, banner="x" * 501))
    assert too_long.status_code == 400 and "longer than 500" in too_long.text


async def test_the_preview_shows_an_unpublished_site_to_members_only(
        seeded: Seeded, site_client: httpx.AsyncClient, runtime: Runtime) -> None:
    csrf = await sign_in(site_client, runtime, seeded.world.owner)
    assert (await site_client.post("/w/acme/site", data=form(
        csrf, published=""))).status_code == 303
    assert (await site_client.get("/site/acme/")).status_code == 404
    preview = await site_client.get("/w/acme/site/preview")
    assert preview.status_code == 200 and "Preview: visitors see this page" in preview.text
    site_client.cookies.clear()
    assert (await site_client.get("/w/acme/site/preview")).status_code in (303, 401)


async def test_the_public_archive_filters_and_searches_on_both_engines(
        db: Database, clock: FrozenClock) -> None:
    from sidestep.archive.model import Visibility
    from sidestep.store.archive import Archive

    async with db.session() as s:
        accounts = Accounts(s)
        one = await accounts.create_workspace(slug="one", name="One", at=clock.now())
        two = await accounts.create_workspace(slug="two", name="Two", at=clock.now())
        await Archive(s, workspace_id=one.id).add_many([
            imported("x", 1, "Cold brew season"), imported("mastodon", 2, "cold storage"),
            imported("x", 3, "cold secret", visibility=Visibility.PRIVATE)], at=clock.now())
        await Archive(s, workspace_id=two.id).add_many([imported("x", 4, "cold too")],
                                                       at=clock.now())
    async with db.session() as s:
        public = PublicArchive(s, workspace_id=one.id)
        assert [p.text for p in await public.listing(query="cold", limit=10)] == [
            "cold storage", "Cold brew season"]
        assert await public.count(query="cold") == 2
        assert await public.count(platform="x") == 1
        assert [p.text for p in await public.listing(query='brew" OR "secret', limit=10)] == []
        assert await public.platforms() == {"mastodon": 1, "x": 1}
