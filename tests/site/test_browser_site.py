"""In Chromium: the link page in normal and in incident state, the archive, a permalink, and
the owner's dashboard page saving a banner. No console errors (the CSP lets the stylesheet,
images and audio load). Screenshots go to the test's tmp_path and, when
SIDESTEP_SCREENSHOT_DIR is set, there too.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import ConsoleMessage, async_playwright

from sidestep.clock import FrozenClock
from sidestep.runtime import Runtime
from sidestep.web.app import create_app
from tests.site.conftest import Seeded, instagram_goes_down
from tests.web.conftest import PASSWORD
from tests.web.test_browser import (
    CHROMIUM_ARGS,
    SERVER_START_TIMEOUT_S,
    require_chromium,
    take_screenshot,
)

pytestmark = pytest.mark.browser


@pytest.fixture
async def base_url(runtime: Runtime, seeded: Seeded) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(runtime), lifespan="off",
                                           log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    async with asyncio.timeout(SERVER_START_TIMEOUT_S):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


async def test_the_link_page_in_normal_and_in_incident_state(
        base_url: str, runtime: Runtime, clock: FrozenClock, tmp_path: Path) -> None:
    problems: list[str] = []

    def note_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(message.text)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(require_chromium()),
                                                   args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 900, "height": 900})
            page.on("console", note_console)
            await page.goto(base_url + "/site/acme/")
            assert await page.text_content("h1") == "Acme Coffee Roasters"
            assert await page.locator(".site-channel").count() == 3
            assert await page.locator(".state-up").count() == 3
            assert await page.locator(".site-banner").count() == 0
            color = await page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert color == "rgb(245, 246, 248)"  # site.css loaded under the CSP
            image = page.locator("img.post-media").first
            assert await image.evaluate("img => img.complete && img.naturalWidth") == 64
            await take_screenshot(page, tmp_path, "site-link-page.png")

            await instagram_goes_down(runtime, clock)
            await page.reload()
            banner = page.locator(".site-banner")
            assert "Instagram is down since" in (await banner.text_content() or "")
            away = page.locator(".site-channel.status-down .site-channel-away")
            assert " ".join((await away.text_content() or "").split()) == (
                "Temporarily unavailable — find us on Newsletter, Mastodon.")
            await take_screenshot(page, tmp_path, "site-link-page-incident.png")

            await page.click('.site-header a:has-text("Archive")')
            await page.wait_for_url(base_url + "/site/acme/archive/")
            assert await page.locator("article.post").count() == 20
            await page.click('a[rel="next"]')
            await page.wait_for_url(base_url + "/site/acme/archive/page/2/")
            await page.fill('input[name="q"]', "roast")
            await page.click('.site-search button')
            await page.wait_for_url(base_url + "/site/acme/search/?q=roast")
            assert await page.locator("article.post").count() == 2
            await take_screenshot(page, tmp_path, "site-search.png")
            await page.locator("article.post .post-time a").last.click()
            await page.wait_for_url(base_url + "/site/acme/posts/*/")
            await take_screenshot(page, tmp_path, "site-permalink.png")

            await page.goto(base_url + "/login")
            await page.fill('input[name="email"]', "owner@example.org")
            await page.fill('input[name="password"]', PASSWORD)
            await page.click('button[type="submit"]')
            await page.wait_for_url(base_url + "/w/acme/status")
            await page.goto(base_url + "/w/acme/site")
            await page.fill('textarea[name="banner"]', "Our Instagram is down: we post on Mastodon.")
            await page.click('button:has-text("Save")')
            await page.wait_for_url(base_url + "/w/acme/site?saved=1")
            await take_screenshot(page, tmp_path, "site-dashboard.png")
            await page.goto(base_url + "/site/acme/")
            assert "Our Instagram is down" in (await page.text_content(".site-banner") or "")
        finally:
            await browser.close()
    assert problems == []
