"""The public pages served by the app: link page, archive, search, permalinks, media."""

from __future__ import annotations

import re

import httpx

from sidestep.clock import FrozenClock
from sidestep.runtime import Runtime
from tests.site.conftest import GLOBEX_TEXT, SECRET_TEXT, Seeded, instagram_goes_down


async def test_the_link_page_lists_the_chosen_channels_as_available(
        seeded: Seeded, site_client: httpx.AsyncClient) -> None:
    page = await site_client.get("/site/acme/")
    assert page.status_code == 200
    html = page.text
    assert "Acme Coffee Roasters" in html
    for name in ("Newsletter", "Instagram", "Mastodon"):
        assert f">{name}</a>" in html
    assert "Temporarily unavailable" not in html
    assert 'class="site-banner"' not in html
    assert '<link rel="canonical" href="http://testserver/site/acme/">' in html
    assert '<meta property="og:title" content="Acme Coffee Roasters">' in html


async def test_a_down_platform_points_to_channels_that_are_up_owned_first(
        seeded: Seeded, site_client: httpx.AsyncClient, runtime: Runtime,
        clock: FrozenClock) -> None:
    await instagram_goes_down(runtime, clock)
    html = (await site_client.get("/site/acme/")).text
    away = re.search(r'<p class="site-channel-away">(.*?)</p>', html, re.S)
    assert away is not None
    text = re.sub(r"<[^>]+>", "", away.group(1))
    assert " ".join(text.split()) == "Temporarily unavailable — find us on Newsletter, Mastodon."
    assert "Instagram is down since 2026-11-23 11:18 UTC" in html


async def test_an_unpublished_or_unknown_site_is_not_found(
        seeded: Seeded, site_client: httpx.AsyncClient, runtime: Runtime) -> None:
    from sidestep.store.site import Sites

    async with runtime.db.session() as s:
        settings = await Sites(s, workspace_id=seeded.globex_id).get()
        assert settings is not None
        settings.published = False
    for path in ("/site/globex/", "/site/globex/archive/", "/site/globex/feed.xml",
                 f"/site/globex/posts/{seeded.globex_post_id}/", "/site/nobody/"):
        assert (await site_client.get(path)).status_code == 404, path


async def test_one_workspace_never_shows_another_workspaces_posts_or_media(
        seeded: Seeded, site_client: httpx.AsyncClient) -> None:
    assert (await site_client.get(f"/site/acme/posts/{seeded.globex_post_id}/")).status_code \
        == 404
    assert (await site_client.get(f"/site/acme/media/{seeded.globex_sha}.png")).status_code \
        == 404
    assert (await site_client.get(f"/site/globex/media/{seeded.image_sha}.png")).status_code \
        == 404
    for path in ("/site/acme/", "/site/acme/archive/", "/site/acme/archive/page/2/",
                 "/site/acme/archive/page/3/", "/site/acme/feed.xml", "/site/acme/atom.xml",
                 "/site/acme/sitemap.xml", "/site/acme/search/?q=GLOBEX"):
        body = (await site_client.get(path)).text
        assert GLOBEX_TEXT not in body and seeded.globex_sha not in body, path
    globex = (await site_client.get("/site/globex/archive/")).text
    assert GLOBEX_TEXT in globex and "Post number" not in globex


async def test_posts_that_are_not_public_and_their_media_stay_hidden(
        seeded: Seeded, site_client: httpx.AsyncClient) -> None:
    assert (await site_client.get(f"/site/acme/posts/{seeded.secret_post_id}/")).status_code \
        == 404
    assert (await site_client.get(f"/site/acme/media/{seeded.secret_sha}.png")).status_code \
        == 404
    search = await site_client.get("/site/acme/search/", params={"q": "FOLLOWERS-ONLY"})
    assert SECRET_TEXT not in search.text and "0 posts" in search.text


async def test_post_text_is_escaped_and_bad_links_are_dropped(
        seeded: Seeded, site_client: httpx.AsyncClient) -> None:
    html = (await site_client.get(f"/site/acme/posts/{seeded.hostile_post_id}/")).text
    assert "<script>alert" not in html and "<b>bold" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert "javascript:" not in html
    assert "\x00" not in html and "\x07" not in html and "\x1b" not in html


async def test_hostile_search_input_is_answered_safely(
        seeded: Seeded, site_client: httpx.AsyncClient) -> None:
    for query in ('" OR 1=1 --', "roast*", "NEAR(a b)", "a AND NOT b", "'); DROP TABLE x;--",
                  "<img src=x onerror=alert(1)>", "\\", "\"\"\"", "col:roast", "^roast"):
        answer = await site_client.get("/site/acme/search/", params={"q": query})
        assert answer.status_code == 200, query
        assert "<img src=x" not in answer.text
    too_long = await site_client.get("/site/acme/search/", params={"q": "a" * 201})
    assert too_long.status_code == 400
    assert (await site_client.get("/site/acme/search/", params={"q": "roast",
                                                                "page": "99"})).status_code == 404
    empty = await site_client.get("/site/acme/search/", params={"q": "  "})
    assert empty.status_code == 303 and empty.headers["location"] == "/site/acme/archive/"


async def test_media_is_served_by_hash_with_its_checked_type(
        seeded: Seeded, site_client: httpx.AsyncClient, runtime: Runtime) -> None:
    image = await site_client.get(f"/site/acme/media/{seeded.image_sha}.png")
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.headers["x-content-type-options"] == "nosniff"
    assert image.content.startswith(b"\x89PNG")
    audio = await site_client.get(f"/site/acme/media/{seeded.audio_sha}.mp3")
    assert audio.headers["content-type"] == "audio/mpeg"
    for name in (f"{seeded.image_sha}.jpg", f"{seeded.image_sha}", seeded.image_sha.upper()
                 + ".png", "..%2F..%2Fsecret.key", "%2e%2e%2fsecret.key",
                 f"..%2F{seeded.image_sha}.png"):
        answer = await site_client.get(f"/site/acme/media/{name}")
        assert answer.status_code == 404, name
    # The client normalises the dots away; whatever path that leaves, no file comes back.
    dotted = await site_client.get("/site/acme/media/../../secret.key", follow_redirects=True)
    assert dotted.status_code == 404


async def test_a_file_whose_bytes_disagree_with_its_type_is_only_downloaded(
        seeded: Seeded, site_client: httpx.AsyncClient, runtime: Runtime,
        clock: FrozenClock) -> None:
    from sidestep.archive.media import MediaStore
    from sidestep.archive.model import MediaRef
    from sidestep.store.archive import Archive, MediaRow
    from tests.site.conftest import imported

    fake = MediaStore.under(runtime.settings.data_dir).put_bytes(
        b"<html><script>alert(1)</script></html>")
    async with runtime.db.session() as s:
        await Archive(s, workspace_id=seeded.acme_id).add_many([imported(
            "x", 300, "A picture, supposedly", media=(
                MediaRef(kind="image", mime_type="image/jpeg", sha256=fake.sha256),))],
            media=[MediaRow(fake.sha256, "image/jpeg", fake.size_bytes)], at=clock.now())
    assert (await site_client.get(f"/site/acme/media/{fake.sha256}.jpg")).status_code == 404
    answer = await site_client.get(f"/site/acme/media/{fake.sha256}.bin")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers["content-disposition"].startswith("attachment")
    archive = (await site_client.get("/site/acme/archive/")).text
    assert f"media/{fake.sha256}.bin" in archive and "<img" not in archive.split(
        "A picture, supposedly")[1].split("</article>")[0]


async def test_archive_pages_per_platform_and_past_the_end(
        seeded: Seeded, site_client: httpx.AsyncClient) -> None:
    x = await site_client.get("/site/acme/archive/x/")
    assert x.status_code == 200 and "Posts on X" in x.text
    assert (await site_client.get("/site/acme/archive/tiktok/")).status_code == 404
    assert (await site_client.get("/site/acme/archive/page/4/")).status_code == 404
    assert (await site_client.get("/site/acme/archive/page/0/")).status_code == 404
    assert (await site_client.get("/site/acme/archive/page/abc/")).status_code == 400
    third = await site_client.get("/site/acme/archive/page/3/")
    assert third.text.count('<article class="post') == 5 and 'rel="next"' not in third.text
