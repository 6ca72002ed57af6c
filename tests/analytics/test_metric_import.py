"""Metric imports: each format's good rows, bad rows with reasons, malformed files; the store's
idempotent upserts, resampling and workspace isolation (SQLite and PostgreSQL)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from sidestep.analytics.formats import MalformedFile
from sidestep.analytics.formats.generic import read_long, read_wide
from sidestep.analytics.formats.platforms import read_linkedin, read_meta, read_x, read_youtube
from sidestep.analytics.metric_import import import_deliveries, import_file
from sidestep.store.accounts import Accounts
from sidestep.store.channels import Channels
from sidestep.store.db import Database
from sidestep.store.metrics import Metrics, MetricStoreError, NewPoint
from sidestep.store.posts import NewPost, Posts
from sidestep.store.tables import Delivery
from tests.analytics.seeding import VAULT

NOW = datetime(2026, 11, 1, tzinfo=UTC)
D1 = datetime(2026, 10, 1, tzinfo=UTC)


def _points(parsed):  # type: ignore[no-untyped-def]
    return {(p.channel, p.metric, p.at.strftime("%Y-%m-%d %H:%M")): p.value
            for p in parsed.points}


def test_long_reads_points_and_reports_each_bad_row() -> None:
    data = (b"channel,metric,time,value\n"
            b"Instagram,reach,2026-10-01,\"1,200\"\n"
            b"Instagram,reach,2026-10-02T10:00:00+02:00,1300\n"
            b"Instagram,likes,2026-10-02,5\n"
            b"Instagram,reach,yesterday,5\n"
            b"Instagram,reach,2026-10-03,-4\n"
            b"Instagram,reach,2026-10-04,\n"
            b"Instagram,reach\n")
    parsed = read_long(data, None)
    assert _points(parsed) == {("Instagram", "reach", "2026-10-01 00:00"): 1200.0,
                               ("Instagram", "reach", "2026-10-02 08:00"): 1300.0}
    assert [(r.line, r.reason) for r in parsed.rejected] == [
        (4, "unknown metric 'likes'"), (5, "cannot read the time 'yesterday'"),
        (6, "'-4' is negative"), (8, "2 cells, the header has 4")]
    assert parsed.blank_cells == 1 and parsed.rows == 7


def test_long_without_a_value_column_is_malformed() -> None:
    with pytest.raises(MalformedFile, match="the header lacks value"):
        read_long(b"channel,metric,time\nx,reach,2026-10-01\n", None)
    with pytest.raises(MalformedFile, match="no header with a time column"):
        read_long(b"a,b,c\n1,2,3\n", None)
    with pytest.raises(MalformedFile, match="not a text file"):
        read_long(b"PK\x03\x04\x00\x00binary", None)


def test_wide_reads_channel_metric_columns() -> None:
    data = (b"time,Instagram:reach,Telegram:reach,Instagram:revenue\n"
            b"2026-10-01,100,20,5.5\n"
            b"2026-10-02,110,,x\n"
            b"nonsense,1,2,3\n")
    parsed = read_wide(data, None)
    assert _points(parsed) == {("Instagram", "reach", "2026-10-01 00:00"): 100.0,
                               ("Telegram", "reach", "2026-10-01 00:00"): 20.0,
                               ("Instagram", "revenue", "2026-10-01 00:00"): 5.5,
                               ("Instagram", "reach", "2026-10-02 00:00"): 110.0}
    assert [r.line for r in parsed.rejected] == [3, 4]
    assert "Instagram:revenue: 'x' is not a number" in parsed.rejected[0].reason
    assert parsed.blank_cells == 1
    with pytest.raises(MalformedFile, match="unknown metric 'likes'"):
        read_wide(b"time,Instagram:likes\n2026-10-01,1\n", None)


def test_meta_content_export_sums_posts_per_day() -> None:
    data = (b"Post ID,Page ID,Page name,Title,Description,Publish time,Permalink,Post type,"
            b"Reach,Impressions,Reactions,Comments,Shares,Total clicks,Link clicks\n"
            b"1,9,Acme,,\"Hello,\nworld\",10/01/2026 09:15,https://x,Photos,1000,1500,30,4,2,"
            b"50,10\n"
            b"2,9,Acme,,Bye,10/01/2026 18:00,https://x,Photos,500,700,10,1,0,20,5\n"
            b"3,9,Acme,,Broken,10/02/2026 08:00,https://x,Photos,n/a,700,10,1,0,20,5\n")
    parsed = read_meta(data, "Facebook page")
    assert _points(parsed) == {
        ("Facebook page", "reach", "2026-10-01 00:00"): 1500.0,
        ("Facebook page", "impressions", "2026-10-01 00:00"): 2200.0,
        ("Facebook page", "engagement", "2026-10-01 00:00"): 47.0,
        ("Facebook page", "clicks", "2026-10-01 00:00"): 70.0}
    assert [(r.line, r.reason) for r in parsed.rejected] == [(5, "reach: 'n/a' is not a number")]
    assert "Post ID" in parsed.ignored_columns and "Link clicks" in parsed.ignored_columns


def test_meta_single_metric_export_takes_the_metric_from_its_title() -> None:
    data = b'sep=,\n"Instagram reach"\n"Date","Primary"\n"2026-10-01T00:00:00","812"\n'
    assert _points(read_meta(data, "IG")) == {("IG", "reach", "2026-10-01 00:00"): 812.0}
    with pytest.raises(MalformedFile, match="'instagram follows', which is not a metric"):
        read_meta(b'sep=,\n"Instagram follows"\n"Date","Primary"\n"2026-10-01","3"\n', "IG")
    with pytest.raises(MalformedFile, match="name its channel"):
        read_meta(data, None)


def test_x_post_activity_and_account_overview() -> None:
    activity = (b'"Tweet id","Tweet permalink","Tweet text","time","impressions","engagements",'
                b'"engagement rate","retweets","replies","likes","url clicks"\n'
                b'"1","https://x.com/a/1","hi","2026-10-01 14:05 +0000","900","40","0.04",'
                b'"1","2","30","7"\n')
    assert _points(read_x(activity, "X")) == {
        ("X", "impressions", "2026-10-01 00:00"): 900.0,
        ("X", "engagement", "2026-10-01 00:00"): 40.0, ("X", "clicks", "2026-10-01 00:00"): 7.0}
    overview = (b"Date,Impressions,Likes,Engagements,Bookmarks,Shares,New follows,Unfollows\n"
                b'"Thu, Oct 01, 2026",1200,40,80,1,2,5,1\n')
    parsed = read_x(overview, "X")
    assert _points(parsed) == {("X", "impressions", "2026-10-01 00:00"): 1200.0,
                               ("X", "engagement", "2026-10-01 00:00"): 80.0}
    assert "New follows" in parsed.ignored_columns
    with pytest.raises(MalformedFile, match="no header with a time column"):
        read_x(b"foo,bar\n1,2\n", "X")


def test_linkedin_content_metrics_sheet_saved_as_csv() -> None:
    data = (b"Aggregate engagement metrics for your updates. Learn more,,,,,\n"
            b"Date,Impressions (organic),Impressions (total),Unique impressions (organic),"
            b"Clicks (total),Reactions (total),Comments (total),Reposts (total)\n"
            b"10/01/2026,300,350,200,12,20,3,1\n"
            b"10/02/2026,abc,350,200,12,20,3,1\n")
    parsed = read_linkedin(data, "LinkedIn")
    assert len(parsed.points) == 8
    assert {k: v for k, v in _points(parsed).items() if k[2].startswith("2026-10-01")} == {
        ("LinkedIn", "impressions", "2026-10-01 00:00"): 350.0,
        ("LinkedIn", "reach", "2026-10-01 00:00"): 200.0,
        ("LinkedIn", "clicks", "2026-10-01 00:00"): 12.0,
        ("LinkedIn", "engagement", "2026-10-01 00:00"): 24.0}
    assert parsed.ignored_columns == ["Impressions (organic)"]
    assert parsed.rejected == []  # the organic column is not read, so 'abc' harms nothing


def test_youtube_table_data_skips_the_totals_row_and_says_so() -> None:
    data = (b"Date,Views,Watch time (hours),Subscribers,Impressions,Likes,Comments,Shares,"
            b"Estimated revenue (USD)\n"
            b"Total,3000,10,5,9000,30,3,3,12.5\n"
            b"2026-10-01,1000,3,2,3000,10,1,1,4.5\n"
            b"\"Oct 2, 2026\",2000,7,3,6000,20,2,2,8\n")
    parsed = read_youtube(data, "YouTube")
    assert _points(parsed)[("YouTube", "reach", "2026-10-02 00:00")] == 2000.0
    assert _points(parsed)[("YouTube", "engagement", "2026-10-01 00:00")] == 12.0
    assert _points(parsed)[("YouTube", "revenue", "2026-10-01 00:00")] == 4.5
    assert [(r.line, r.reason) for r in parsed.rejected] == [
        (2, "a totals row, not a point in time")]
    assert parsed.ignored_columns == ["Watch time (hours)", "Subscribers"]


async def _workspace(s, slug: str = "acme") -> tuple[int, int]:  # type: ignore[no-untyped-def]
    ws = await Accounts(s).create_workspace(slug=slug, name=slug, at=NOW)
    ch = await Channels(s, workspace_id=ws.id, vault=VAULT).add(platform="instagram",
                                                                name="Instagram", at=NOW)
    return ws.id, ch.id


async def test_importing_twice_replaces_points_and_reports_unknown_channels(db: Database) -> None:
    data = (b"channel,metric,time,value\nInstagram,reach,2026-10-01,100\n"
            b"Instagram,reach,2026-10-01T05:00:00,50\nGhost,reach,2026-10-01,1\n")
    async with db.session() as s:
        ws, ch = await _workspace(s)
        first = await import_file(s, workspace_id=ws, format="long", data=data, channel=None,
                                  at=NOW)
        again = await import_file(s, workspace_id=ws, format="long",
                                  data=data.replace(b",100", b",120"), channel=None, at=NOW)
        daily = await Metrics(s, workspace_id=ws).series(
            ch, "reach", start=D1, end=D1 + timedelta(days=2), step="day")
        hourly = await Metrics(s, workspace_id=ws).series(
            ch, "reach", start=D1, end=D1 + timedelta(hours=6), step="hour")
    assert first.written == again.written == 2
    assert [r.reason for r in again.rejected] == [
        "no channel 'Ghost' in this workspace: 1 values not imported"]
    assert daily.values[0] == 170.0 and math.isnan(daily.values[1])
    assert hourly.values[0] == 120.0 and hourly.values[5] == 50.0 and math.isnan(hourly.values[1])


async def test_a_workspace_cannot_write_or_read_another_workspaces_channel(db: Database) -> None:
    async with db.session() as s:
        ws_a, ch_a = await _workspace(s, "acme")
        ws_b, _ = await _workspace(s, "globex")
        with pytest.raises(MetricStoreError, match="not in this workspace"):
            await Metrics(s, workspace_id=ws_b).add([NewPoint(ch_a, "reach", D1, 1.0)],
                                                    source="test", at=NOW)
        await Metrics(s, workspace_id=ws_a).add([NewPoint(ch_a, "reach", D1, 1.0)],
                                                source="test", at=NOW)
        seen = await Metrics(s, workspace_id=ws_b).series(
            ch_a, "reach", start=D1, end=D1 + timedelta(days=1), step="day")
        assert math.isnan(seen.values[0])
        with pytest.raises(MalformedFile, match="no channel 'Nope'"):
            await import_file(s, workspace_id=ws_a, format="meta", data=b"", channel="Nope",
                              at=NOW)


async def test_sent_deliveries_become_posts_per_day(db: Database) -> None:
    async with db.session() as s:
        ws, ch = await _workspace(s)
        post = await Posts(s, workspace_id=ws).create(
            NewPost(body="hello", due_at=NOW + timedelta(hours=1), channel_ids=[ch]), created_by=None, at=NOW)
        delivery = (await Posts(s, workspace_id=ws).deliveries_for([post.id]))[post.id][0]
        row = await s.get(Delivery, delivery.id)
        assert row is not None
        row.state, row.updated_at = "sent", D1 + timedelta(days=1, hours=3)
        await s.flush()
        summary = await import_deliveries(s, workspace_id=ws, start=D1,
                                          end=D1 + timedelta(days=3), at=NOW)
        series = await Metrics(s, workspace_id=ws).series(
            ch, "posts", start=D1, end=D1 + timedelta(days=3), step="day")
    assert summary.written == 3
    assert series.values == [0.0, 1.0, 0.0]
