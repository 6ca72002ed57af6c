"""CSV import and export: every row accounted for, duplicates merged, suppressed addresses
never brought back, malformed files and hostile cells handled."""

from __future__ import annotations

import csv
import io
import itertools
import string
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from typer.testing import CliRunner

from sidestep.clock import FrozenClock
from sidestep.email.csv_io import ImportFailed, ImportReport, export_csv, import_csv
from sidestep.store.accounts import Accounts
from sidestep.store.db import Database
from sidestep.store.subscribers import MailingLists, Subscribers, Suppressions
from sidestep.store.tables_email import ConsentRecord, MailingList

from .conftest import TwoWorkspaces


async def _list(db: Database, workspace_id: int, clock: FrozenClock) -> MailingList:
    async with db.session() as s:
        return await MailingLists(s, workspace_id).add("News", at=clock.now())


async def _import(db: Database, ws: int, lst: MailingList, clock: FrozenClock, data: bytes,
                  source: str = "csv:test.csv") -> ImportReport:
    return await import_csv(db, io.BytesIO(data), workspace_id=ws, mailing_list=lst,
                            source=source, clock=clock)


async def test_it_imports_merges_and_reports_every_bad_row(
    db: Database, workspaces: TwoWorkspaces, clock: FrozenClock
) -> None:
    lst = await _list(db, workspaces.acme, clock)
    data = (
        "Email,Name,Tags,City,source\r\n"
        "ann@Example.com,Ann,vip;early,Oslo,\r\n"
        "not-an-address,Bob,,,\r\n"
        "ANN@example.COM,,late,,\r\n"  # another mailbox: the local part keeps its case
        "ann@example.com,Ann B.,late,,fair-2026\r\n"
        "\r\n"
        "cy@bücher.de,Cy,,Köln,\r\n"
        "dee@example.com,Dee,,,,extra\r\n"
        ",NoAddress,,,\r\n"
        '"eve@example.com","Eve\r\nBcc: x@evil.example",,,\r\n'
    ).encode()
    report = await _import(db, workspaces.acme, lst, clock, data)
    assert report.rows == 8
    assert (report.created, report.updated, report.duplicates_merged) == (4, 0, 1)
    assert report.added_to_list == 4
    problems = {p.line: p.reason for p in report.problems}
    assert set(problems) == {3, 8, 9}
    assert "@" in problems[3] or "sign" in problems[3]
    assert "fields but the header has" in problems[8]
    assert "empty" in problems[9]
    async with db.session() as s:
        subs = Subscribers(s, workspaces.acme)
        ann = await subs.find_by_email("ann@example.com")
        assert ann is not None and ann.name == "Ann B." and ann.tags == ["early", "late", "vip"]
        assert ann.fields == {"city": "Oslo"} and ann.status == "subscribed"
        cy = await subs.find_by_email("cy@xn--bcher-kva.de")
        assert cy is not None and cy.fields == {"city": "Köln"}
        eve = await subs.find_by_email("eve@example.com")
        assert eve is not None and eve.name == "Eve Bcc: x@evil.example"
        members = [r.email async for r in subs.segment(lst.id)]
        assert len(members) == 4
        sources = sorted((await s.scalars(select(ConsentRecord.source))).all())
    assert sources == ["csv:test.csv"] * 4 + ["fair-2026"]


async def test_suppressed_and_departed_people_are_never_brought_back(
    db: Database, workspaces: TwoWorkspaces, clock: FrozenClock
) -> None:
    lst = await _list(db, workspaces.acme, clock)
    await _import(db, workspaces.acme, lst, clock, b"email\nstay@example.com\nleft@example.com\n")
    async with db.session() as s:
        await Suppressions(s, workspaces.acme).suppress("gone@example.com", "unsubscribed",
                                                        at=clock.now())
        await Suppressions(s, workspaces.acme).suppress("Stay@Example.com", "complaint",
                                                        at=clock.now())
        subs = Subscribers(s, workspaces.acme)
        left = await subs.find_by_email("left@example.com")
        mlist = await MailingLists(s, workspaces.acme).get(lst.id)
        assert left is not None and mlist is not None
        from sidestep.store.subscribers import MembershipStatus
        await subs.set_membership(left, mlist, MembershipStatus.UNSUBSCRIBED, at=clock.now())
    report = await _import(db, workspaces.acme, lst, clock,
                           b"email\ngone@example.com\nstay@example.com\nleft@example.com\n")
    assert report.imported == 0 and len(report.problems) == 3
    assert all("only" in p.reason for p in report.problems)
    async with db.session() as s:
        assert [r async for r in Subscribers(s, workspaces.acme).segment(lst.id)] == []
        assert await Subscribers(s, workspaces.acme).find_by_email("gone@example.com") is None


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty"),
    (b"name,city\nAnn,Oslo\n", "no email column"),
    (b"email,Email\na@example.com,b@example.com\n", "twice"),
])
async def test_a_file_that_cannot_be_read_fails_as_a_whole(
    db: Database, workspaces: TwoWorkspaces, clock: FrozenClock, data: bytes, message: str
) -> None:
    lst = await _list(db, workspaces.acme, clock)
    with pytest.raises(ImportFailed, match=message):
        await _import(db, workspaces.acme, lst, clock, data)


async def test_malformed_rows_are_reported_not_dropped(
    db: Database, workspaces: TwoWorkspaces, clock: FrozenClock
) -> None:
    lst = await _list(db, workspaces.acme, clock)
    data = (b"email,name\n"
            b"ok1@example.com,One\n"
            b"bad\xff\xfe@example.com,Latin1 \xe9\n"
            b'"unclosed@example.com,Two\n'
            b"ok2@example.com,Three\n")
    report = await _import(db, workspaces.acme, lst, clock, data)
    reasons = [p.reason for p in report.problems]
    assert report.rows == len(report.problems) + report.imported
    assert any("not UTF-8" in r for r in reasons)
    assert any("quote" in r or "CSV" in r for r in reasons)
    assert report.created >= 1


async def test_an_import_into_another_workspaces_list_is_refused(
    db: Database, workspaces: TwoWorkspaces, clock: FrozenClock
) -> None:
    lst = await _list(db, workspaces.globex, clock)
    with pytest.raises(ImportFailed, match="another workspace"):
        await _import(db, workspaces.acme, lst, clock, b"email\na@example.com\n")


async def test_export_round_trips_and_defuses_formulas(
    db: Database, workspaces: TwoWorkspaces, clock: FrozenClock
) -> None:
    lst = await _list(db, workspaces.acme, clock)
    await _import(db, workspaces.acme, lst, clock,
                  "email,name,tags,plan\nz@example.com,=HYPERLINK(\"x\"),a;b,gold\n"
                  "y@bücher.de,Ÿves,,\n".encode())
    out = io.StringIO()
    assert await export_csv(db, out, workspace_id=workspaces.acme) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert rows[0] == {"email": "z@example.com", "name": "'=HYPERLINK(\"x\")",
                       "status": "subscribed", "tags": "a;b", "plan": "gold"}
    other = await _list(db, workspaces.globex, clock)
    report = await _import(db, workspaces.globex, other, clock, out.getvalue().encode())
    assert report.created == 2 and not report.problems
    async with db.session() as s:
        z = await Subscribers(s, workspaces.globex).find_by_email("z@example.com")
    assert z is not None and z.name == '=HYPERLINK("x")' and z.fields == {"plan": "gold"}
    empty = io.StringIO()
    assert await export_csv(db, empty, workspace_id=workspaces.acme, list_id=other.id) == 0


cell = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=15)
local = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=10)


@given(rows=st.lists(st.tuples(st.one_of(local.map(lambda x: f"{x}@example.com"), cell),
                               cell, cell), max_size=25))
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
async def test_every_row_is_imported_or_reported(
    shared_db: Database, rows: list[tuple[str, str, str]]
) -> None:
    clock = FrozenClock(datetime(2026, 1, 1, tzinfo=UTC))
    async with shared_db.session() as s:
        ws = await Accounts(s).create_workspace(slug=f"h{next(_slugs)}", name="H", at=clock.now())
        lst = await MailingLists(s, ws.id).add("L", at=clock.now())
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["email", "name", "note"])
    writer.writerows(rows)
    report = await _import(shared_db, ws.id, lst, clock, buffer.getvalue().encode())
    non_blank = [r for r in rows if any(c.strip() for c in r)]
    # Each non-blank row is counted once, and is imported, merged or reported.
    assert report.rows == len(non_blank)
    assert report.created + report.updated + report.duplicates_merged + len(
        report.problems) == report.rows
    async with shared_db.session() as s:
        stored = [r.email async for r in Subscribers(s, ws.id).segment(lst.id)]
    assert len(stored) == report.created
    assert all("\n" not in e and "\r" not in e for e in stored)


_slugs = itertools.count()


@pytest.fixture
async def shared_db(tmp_path: Path) -> AsyncIterator[Database]:
    """One SQLite database for all of a hypothesis test's examples (a workspace each)."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'h.db'}")
    await database.migrate()
    yield database
    await database.close()


def test_cli_imports_with_a_report_and_exports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sidestep.cli import app

    monkeypatch.setenv("SIDESTEP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SIDESTEP_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, list(args))
        return result.exit_code, result.stdout, result.stderr

    assert invoke("init", "-w", "acme", "--email", "me@acme.example",
                  "--password", "long enough pw")[0] == 0
    code, out, err = invoke("email", "list", "add", "News", "--consent-text", "Yes please")
    assert code == 0, err
    assert "/s/acme/" in out
    source = tmp_path / "people.csv"
    source.write_text("email,name\nann@example.com,Ann\nbroken,Bob\nann@example.com,Ann\n")
    rejects = tmp_path / "rejects.csv"
    code, out, err = invoke("email", "import", str(source), "--list", "News",
                            "--rejects", str(rejects))
    assert code == 0, err
    assert "3 rows: 1 new, 0 updated, 1 duplicates merged" in out
    assert "broken" in out and rejects.read_text().count("\n") == 2
    assert invoke("email", "import", str(source), "--list", "Nope")[0] == 2
    code, out, _ = invoke("email", "suppress", "ann@example.com", "--detail", "asked by phone")
    assert code == 0 and "suppressed (manual)" in out
    code, out, _ = invoke("email", "subscribers", "--search", "ann")
    assert "unsubscribed" in out
    exported = tmp_path / "out.csv"
    assert invoke("email", "export", "-o", str(exported))[0] == 0
    assert "ann@example.com" in exported.read_text()
    code, out, _ = invoke("email", "list", "ls")
    assert "News" in out
    code, _, err = invoke("email", "suppress", "not an address")
    assert code == 2 and "not a valid address" in err
