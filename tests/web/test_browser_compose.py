"""In Chromium: compose a post for two simulator channels, find it on the calendar, run the
worker once against the running simulator, and see both deliveries sent on the timeline.

Screenshots (composer, calendar week and month, timeline) go to the test's tmp_path and,
when SIDESTEP_SCREENSHOT_DIR is set, there too.
"""

from __future__ import annotations

import asyncio
import io
import random
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from PIL import Image
from playwright.async_api import ConsoleMessage, async_playwright

from sidestep.channels.base import Adapter, all_adapters
from sidestep.channels.uploads import MediaHost
from sidestep.clock import FrozenClock
from sidestep.dispatch.worker import run_once
from sidestep.runtime import Runtime
from sidestep.sim.testing import running_simulator
from sidestep.store.accounts import Accounts
from sidestep.store.channels import Channels
from sidestep.web.app import create_app
from tests.channels import test_mastodon, test_telegram
from tests.web.conftest import PASSWORD, World
from tests.web.test_browser import (
    CHROMIUM_ARGS,
    SERVER_START_TIMEOUT_S,
    require_chromium,
    take_screenshot,
)

pytestmark = pytest.mark.browser


@dataclass
class Site:
    url: str
    adapters: dict[str, Adapter]


@pytest.fixture
async def site(runtime: Runtime, world: World, clock: FrozenClock) -> AsyncIterator[Site]:
    """The app on a loopback port; acme gets a Telegram and a Mastodon channel whose
    credentials the running simulator accepts."""
    async with running_simulator(seed=1) as sim, sim.client() as client:
        classes = all_adapters()
        adapters = {p: classes[p](client=client, clock=sim.world.clock, timeout_s=5,
                                  poll_interval_s=0.01) for p in ("telegram", "mastodon")}
        credentials = {"telegram": await test_telegram.prepare(sim),
                       "mastodon": await test_mastodon.prepare(sim)}
        async with runtime.db.session() as s:
            acme = await Accounts(s).workspace_by_slug("acme")
            assert acme is not None
            acme.settings = {"timezone": "Europe/Berlin"}
            channels = Channels(s, workspace_id=acme.id, vault=runtime.vault)
            await channels.add(platform="telegram", name="Telegram news",
                               credentials=credentials["telegram"], at=clock.now())
            await channels.add(platform="mastodon", name="Mastodon",
                               credentials=credentials["mastodon"], at=clock.now())
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
            yield Site(f"http://127.0.0.1:{sock.getsockname()[1]}", adapters)
        finally:
            server.should_exit = True
            await task
            sock.close()
        assert len(sim.world.record.all("telegram")) == 1
        assert len(sim.world.record.all("mastodon")) == 1


def photo(path: Path) -> Path:
    image = Image.new("RGB", (1600, 900), (37, 99, 160))
    for x in range(0, 1600, 100):
        image.paste((240, 180, 60), (x, 400, x + 50, 500))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    path.write_bytes(buffer.getvalue())
    return path


async def test_a_post_is_composed_seen_on_the_calendar_and_delivered(
    site: Site, runtime: Runtime, clock: FrozenClock, tmp_path: Path
) -> None:
    chromium = require_chromium()
    problems: list[str] = []

    def note_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(message.text)

    base = site.url
    text = ("The roastery is open late tonight: come by for a cup on the house. "
            "Bring a friend, we have cake too. #coffee")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(chromium),
                                                   args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", note_console)
            await page.goto(base + "/login")
            await page.fill('input[name="email"]', "editor@example.org")
            await page.fill('input[name="password"]', PASSWORD)
            await page.click('button[type="submit"]')
            await page.wait_for_url(base + "/w/acme/status")

            await page.goto(base + "/w/acme/posts")
            await page.click('a[href="/w/acme/posts/new"]')
            await page.wait_for_url(base + "/w/acme/posts/new")
            await page.fill('textarea[name="body"]', text)
            await page.fill('input[name="link"]', "https://acme.example/tonight")
            await page.check('label:has-text("Telegram news") >> input[name="channel_ids"]')
            await page.check('label:has-text("Mastodon") >> input[name="channel_ids"]')
            await page.check('label:has-text("Instagram main") >> input[name="channel_ids"]')
            # The live preview answers without a round trip: Instagram wants an image.
            instagram = page.locator('article.channel-preview[data-channel="Instagram main"]')
            await instagram.wait_for()
            assert "need at least one image" in (await instagram.text_content() or "")
            await page.set_input_files('input[name="image"]', str(photo(tmp_path / "cup.jpg")))
            await page.click('button[value="preview"]')
            await page.wait_for_selector('input[name="image_ref"]', state="attached")
            cards = page.locator("article.channel-preview")
            assert await cards.count() == 3
            assert await page.locator("article.preview-problem").count() == 0
            assert await page.locator("img.preview-image").count() == 3
            await page.click("details.failover summary")
            await page.evaluate("window.scrollTo(0, 0)")  # the preview pane is sticky
            await take_screenshot(page, tmp_path, "compose.png")

            # Instagram has no simulator credentials here: leave it out and go now.
            await page.uncheck('label:has-text("Instagram main") >> input[name="channel_ids"]')
            await page.check('input[name="when"][value="now"]')
            await page.click('button[value="schedule"]')
            await page.wait_for_url(f"{base}/w/acme/posts/*?created=1")
            post_url = page.url.split("?")[0]
            post_id = post_url.rsplit("/", 1)[1]
            assert await page.text_content("p.notice") == f"Post #{post_id} scheduled."
            assert await page.locator("section.timeline .state").all_text_contents() == [
                "scheduled", "scheduled"]

            await page.click('nav.sections a[href="/w/acme/calendar"]')
            entry = page.locator(f'a.cal-post[data-post="{post_id}"]')
            assert await entry.locator(".cal-time").text_content() == "13:00"  # 12:00 UTC
            badges = await entry.locator(".badge").all_text_contents()
            assert sorted(b.strip() for b in badges) == ["Mastodon: scheduled",
                                                         "Telegram news: scheduled"]
            await take_screenshot(page, tmp_path, "calendar-week.png")
            await page.click('.view-switch a:has-text("Month")')
            await page.wait_for_url("**/calendar?view=month*")
            assert await page.locator(f'a.cal-post[data-post="{post_id}"]').count() == 1
            await take_screenshot(page, tmp_path, "calendar-month.png")

            claimed = await run_once(runtime.db, vault=runtime.vault, adapters=site.adapters,
                                     worker="browser-test", clock=clock, rng=random.Random(1),
                                     media_host=MediaHost.from_settings(runtime.settings))
            assert claimed == 2
            await page.goto(post_url)
            assert await page.locator("section.timeline .state").all_text_contents() == [
                "sent", "sent"]
            for channel in ("Telegram news", "Mastodon"):
                timeline = page.locator(f'section.timeline[data-channel="{channel}"]')
                labels = await timeline.locator(".entry .label").all_text_contents()
                assert [label.strip() for label in labels] == ["due", "attempt 1: sent",
                                                               "sent"]
                assert await timeline.locator(".final-url").count() == 1
            await take_screenshot(page, tmp_path, "timeline.png")
        finally:
            await browser.close()
    assert problems == []
