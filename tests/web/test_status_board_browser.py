"""The status board in Chromium: a state change appears without a reload; the history page."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from playwright.async_api import ConsoleMessage, async_playwright

from sidestep.clock import FrozenClock
from sidestep.domain.states import PlatformStatus
from sidestep.runtime import Runtime
from sidestep.store.health import Health, NewObservation
from tests.web.conftest import PASSWORD, World
from tests.web.test_browser import (  # noqa: F401 - base_url: the app under uvicorn
    CHROMIUM_ARGS,
    base_url,
    require_chromium,
    take_screenshot,
)

pytestmark = pytest.mark.browser


async def test_a_state_change_appears_on_the_open_board(
    base_url: str, runtime: Runtime, world: World, clock: FrozenClock,  # noqa: F811
    tmp_path: Path,
) -> None:
    chromium = require_chromium()
    now = clock.now()
    async with runtime.db.session() as s:  # some history for the history page
        health = Health(s)
        await health.add_observations([NewObservation(
            platform="instagram", signal="dns", vantage="local",
            observed_at=now - timedelta(days=3), outcome="ok")])
        await health.set_state(platform="x", status=PlatformStatus.DEGRADED, features=["media"],
                               reason="CDN 503", at=now - timedelta(hours=30))
        await health.set_state(platform="x", status=PlatformStatus.UP, features=[], reason="",
                               at=now - timedelta(hours=29))
    problems: list[str] = []

    def note_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(message.text)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(chromium),
                                                   args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 860})
            page.on("console", note_console)
            await page.goto(base_url + "/login")
            await page.fill('input[name="email"]', "viewer@example.org")
            await page.fill('input[name="password"]', PASSWORD)
            await page.click('button[type="submit"]')
            await page.wait_for_url(base_url + "/w/acme/status")
            await page.locator("#status-live").wait_for(state="visible")
            assert await page.locator('tr[data-platform="x"] .status').text_content() == "up"
            async with runtime.db.session() as s:
                await Health(s).set_state(
                    platform="x", status=PlatformStatus.DOWN, features=[],
                    reason="DNS: SERVFAIL from 3 resolvers; authoritative servers silent",
                    at=clock.now())
            x_state = page.locator('tr[data-platform="x"] .status')
            await page.wait_for_function(
                "document.querySelector('tr[data-platform=\"x\"] .status').textContent"
                " === 'down'")
            assert await x_state.get_attribute("class") == "badge status status-down"
            row = await page.locator('tr[data-platform="x"]').text_content() or ""
            assert "authoritative servers silent" in row and "2026-11-23 12:00 UTC" in row
            summary = await page.locator("#status-summary").text_content() or ""
            assert "down 2" in " ".join(summary.split())  # instagram and now x
            await take_screenshot(page, tmp_path, "status-board-live.png")

            await page.click('tr[data-platform="instagram"] th a')
            await page.wait_for_url(base_url + "/w/acme/status/instagram")
            assert (await page.text_content("h1") or "").startswith("Instagram")
            assert await page.locator(".incidents tbody tr").count() == 1
            await take_screenshot(page, tmp_path, "status-history.png")
        finally:
            await browser.close()
    assert problems == []
