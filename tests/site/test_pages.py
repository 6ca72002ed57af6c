"""The public pages served by the app: link page, archive, search, permalinks, media."""

from __future__ import annotations

import re

import httpx

from sidestep.clock import FrozenClock
from sidestep.runtime import Runtime
from tests.site.conftest import GLOBEX_TEXT, HOSTILE, SECRET_TEXT, Seeded, instagram_goes_down


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
