"""Drive the real pages with Debian's Chromium through Playwright.

The app runs under uvicorn on 127.0.0.1 (a socket bound to a free port) as a task in the
test's own event loop, so it shares the runtime's database engine safely. Screenshots go to
the test's tmp_path and, when SIDESTEP_SCREENSHOT_DIR is set, there too.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import uvicorn
from playwright.async_api import ConsoleMessage, Page, async_playwright

from sidestep.clock import FrozenClock
from sidestep.domain.states import PlatformStatus
from sidestep.runtime import Runtime
from sidestep.store.health import Health
from sidestep.web.app import create_app
from tests.web.conftest import PASSWORD, World

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SERVER_START_TIMEOUT_S = 10.0


@pytest.fixture
async def base_url(runtime: Runtime, world: World, clock: FrozenClock) -> AsyncIterator[str]:
    async with runtime.db.session() as s:
        health = Health(s)
        await health.set_state(platform="instagram", status=PlatformStatus.DOWN,
                               features=[], reason="DNS: SERVFAIL from every resolver",
                               at=clock.now() - timedelta(minutes=42))
        await health.set_state(platform="facebook", status=PlatformStatus.DEGRADED,
                               features=["media"], reason="image uploads fail",
                               at=clock.now() - timedelta(minutes=40))
        for platform in ("x", "youtube", "linkedin", "telegram"):
            await health.set_state(platform=platform, status=PlatformStatus.UP, features=[],
                                   reason="", at=clock.now() - timedelta(hours=3))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(runtime), lifespan="off",
                                           log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    async with asyncio.timeout(SERVER_START_TIMEOUT_S):
        while not server.started:
            if task.done():
                task.result()  # raise the server's start-up error
            await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def require_chromium() -> Path:
    """Debian's Chromium; its absence fails the test (never skips it)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test`, which installs Chromium "
                    "(apt-get install chromium) before the browser tests")
    return CHROMIUM


def save_screenshot(path: Path) -> None:
    assert path.stat().st_size > 10_000  # a rendered page, not an empty canvas
    target = os.environ.get("SIDESTEP_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


async def take_screenshot(page: Page, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    await page.screenshot(path=str(path), full_page=True)
    save_screenshot(path)


async def test_a_person_signs_in_sees_the_status_board_and_schedules_a_post(
    base_url: str, tmp_path: Path
) -> None:
    chromium = require_chromium()
    problems: list[str] = []

    def note_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(message.text)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 860})
            page.on("console", note_console)
            await page.goto(base_url + "/")
            assert page.url.startswith(base_url + "/login?next=")
            await page.fill('input[name="email"]', "owner@example.org")
            await page.fill('input[name="password"]', PASSWORD)
            await page.click('button[type="submit"]')
            await page.wait_for_url(base_url + "/w/acme/status")

            assert await page.text_content("h1") == "Platform status"
            status = page.locator('tr[data-platform="instagram"] .status')
            assert await status.text_content() == "down"
            facebook = page.locator('tr[data-platform="facebook"]')
            assert "media" in (await facebook.text_content() or "")
            assert await page.locator('tr[data-platform="tiktok"] .status').text_content() \
                == "unknown"
            background = await page.evaluate(
                "getComputedStyle(document.body).backgroundColor"
            )
            assert background == "rgb(246, 247, 249)"  # the stylesheet loaded under the CSP
            await take_screenshot(page, tmp_path, "status-board.png")

            await page.click('nav.sections a[href="/w/acme/posts"]')
            await page.fill('textarea[name="body"]', "We are still here: find us by email.")
            await page.check('input[name="channel_ids"] >> nth=1')
            await page.click('section.composer button[type="submit"]')
            await page.wait_for_url(f"{base_url}/w/acme/posts?created=*")
            notice = await page.text_content("p.notice")
            assert notice == "Post #2 scheduled for 2026-11-23 13:00 UTC."
            new_post = page.locator("article.post", has_text="We are still here")
            assert await new_post.locator(".deliveries li").count() == 1
            assert "scheduled" in (await new_post.locator(".deliveries").text_content() or "")
            await take_screenshot(page, tmp_path, "posts.png")
        finally:
            await browser.close()
    assert problems == []
