"""The calendar: posts placed by their due time in the workspace's zone, week and month."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx
import pytest

from sidestep.clock import FrozenClock
from sidestep.runtime import Runtime
from sidestep.store.accounts import Accounts
from sidestep.store.posts import NewPost, Posts
from tests.web.conftest import World, sign_in


async def add_post(runtime: Runtime, slug: str, body: str, due: datetime,
                   channel_ids: list[int]) -> int:
    async with runtime.db.session() as s:
        workspace = await Accounts(s).workspace_by_slug(slug)
        assert workspace is not None
        post = await Posts(s, workspace_id=workspace.id).create(
            NewPost(body=body, due_at=due, channel_ids=channel_ids), created_by=None, at=due)
        return post.id


@pytest.fixture
async def berlin(runtime: Runtime, world: World) -> None:
    async with runtime.db.session() as s:
        acme = await Accounts(s).workspace_by_slug("acme")
        assert acme is not None
        acme.settings = {"timezone": "Europe/Berlin"}


def cell(page: str, day: str) -> str:
    match = re.search(rf'<td class="day[^"]*" data-date="{day}">(.*?)</td>', page, re.S)
    assert match, f"no cell for {day}"
    return match.group(1)


async def test_the_week_shows_posts_on_their_local_day_and_time_with_delivery_states(
    client: httpx.AsyncClient, world: World, runtime: Runtime, berlin: None
) -> None:
    late = await add_post(runtime, "acme", "Midnight roast", datetime(2026, 11, 23, 23, 30,
                                                                      tzinfo=UTC),
                          [world.newsletter_id])
    await sign_in(client, runtime, world.viewer)
    response = await client.get("/w/acme/calendar")
    assert response.status_code == 200
    page = response.text
    assert "<h1>23 – 29 November 2026</h1>" in page and "Times in Europe/Berlin" in page
    monday = cell(page, "2026-11-23")
    assert "15:00" in monday and "Opening hours change on Monday" in monday  # 14:00 UTC
    assert "today" in monday
    tuesday = cell(page, "2026-11-24")  # 23:30 UTC on Monday is 00:30 on Tuesday in Berlin
    assert "00:30" in tuesday and f'href="/w/acme/posts/{late}"' in tuesday
    badges = re.findall(r'<span class="badge delivery-(\w+)"[^>]*>([^<]+)</span>', monday)
    assert badges == [("scheduled", "Instagram main: scheduled"),
                      ("scheduled", "Newsletter: scheduled")]


async def test_the_week_and_month_views_navigate(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock
) -> None:
    await sign_in(client, runtime, world.viewer)
    page = (await client.get("/w/acme/calendar?view=week&date=2026-11-25")).text
    assert 'href="?view=week&amp;date=2026-11-18" rel="prev"' in page
    assert 'href="?view=week&amp;date=2026-12-02" rel="next"' in page
    assert len(re.findall(r'<td class="day', page)) == 7
    page = (await client.get("/w/acme/calendar?view=month&date=2026-11-25")).text
    assert "<h1>November 2026</h1>" in page
    assert 'href="?view=month&amp;date=2026-10-01" rel="prev"' in page
    assert 'href="?view=month&amp;date=2026-12-01" rel="next"' in page
    # 26 Oct (a Monday) to 6 Dec: six whole weeks, the neighbours' days marked outside.
    assert len(re.findall(r'<td class="day', page)) == 42
    assert 'class="day outside" data-date="2026-10-26"' in page
    assert "Opening hours change on Monday" in cell(page, "2026-11-23")
    page = (await client.get("/w/acme/calendar?view=month&date=2026-12-31")).text
    assert 'href="?view=month&amp;date=2027-01-01" rel="next"' in page
    assert "Opening hours" not in page


async def test_it_shows_only_the_workspaces_own_posts(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock
) -> None:
    await add_post(runtime, "globex", "Globex secret launch", clock.now(),
                   [world.other_channel_id])
    await sign_in(client, runtime, world.owner)
    assert "Globex secret launch" not in (await client.get("/w/acme/calendar")).text
    assert "Globex secret launch" in (await client.get("/w/globex/calendar")).text
    await sign_in(client, runtime, world.outsider)
    assert (await client.get("/w/acme/calendar")).status_code == 404


async def test_bad_views_and_dates_are_a_clear_400(
    client: httpx.AsyncClient, world: World, runtime: Runtime
) -> None:
    await sign_in(client, runtime, world.viewer)
    assert (await client.get("/w/acme/calendar?view=year")).status_code == 400
    response = await client.get("/w/acme/calendar?date=next-tuesday")
    assert response.status_code == 400 and "YYYY-MM-DD" in response.text
    assert (await client.get("/w/acme/calendar?date=0001-01-01")).status_code == 400


async def test_post_text_is_escaped_on_the_calendar(
    client: httpx.AsyncClient, world: World, runtime: Runtime, clock: FrozenClock
) -> None:
    await add_post(runtime, "acme", "<script>alert(1)</script>", clock.now(),
                   [world.newsletter_id])
    await sign_in(client, runtime, world.viewer)
    page = (await client.get("/w/acme/calendar?view=month")).text
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
