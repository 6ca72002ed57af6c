"""`sidestep email`: lists, CSV import and export, subscribers, suppression (issue 8).

The sending side adds its own commands to `email_app` (`from sidestep.cli.email import
email_app`).
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.cli.common import (
    UsageError,
    WorkspaceOption,
    console,
    opened_runtime,
    pick_workspace,
    run,
)
from sidestep.email.addresses import InvalidAddress
from sidestep.email.csv_io import ImportFailed, ImportReport, export_csv, import_csv
from sidestep.store.accounts import Accounts
from sidestep.store.subscribers import (
    AudienceError,
    MailingLists,
    Subscribers,
    SubscriberStatus,
    SuppressionReason,
    Suppressions,
)
from sidestep.store.tables_email import MailingList

T = TypeVar("T")
email_app = typer.Typer(help="The owned email channel: lists, subscribers, consent.",
                        no_args_is_help=True)
list_app = typer.Typer(help="Mailing lists.", no_args_is_help=True)
email_app.add_typer(list_app, name="list")
PROBLEMS_SHOWN = 20


def _run(main: Callable[[], Awaitable[T]]) -> T:
    async def wrapped() -> T:
        try:
            return await main()
        except (AudienceError, ImportFailed, InvalidAddress) as exc:
            raise UsageError(str(exc)) from exc

    return run(wrapped)


async def _list_named(session: AsyncSession, workspace_id: int, name: str) -> MailingList:
    found = await MailingLists(session, workspace_id).by_name(name)
    if found is None:
        raise UsageError(f"no list named {name!r}; `sidestep email list add {name}` creates it")
    return found


@list_app.command("add")
def list_add(
    name: str = typer.Argument(..., help="The list's name."),
    single_opt_in: bool = typer.Option(False, help="Subscribe form without a confirmation mail."),
    consent_text: str = typer.Option("", help="The consent text shown on the subscribe form."),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Create a mailing list (double opt-in unless --single-opt-in)."""

    async def main() -> None:
        async with opened_runtime() as rt, rt.db.session() as session:
            ws = await pick_workspace(Accounts(session), workspace)
            row = await MailingLists(session, ws.id).add(
                name, double_opt_in=not single_opt_in, consent_text=consent_text,
                at=rt.clock.now())
            form = f"{rt.settings.public_url}/s/{ws.slug}/subscribe/{row.id}"
        console.print(f"List [bold]{row.name}[/bold] created. Subscribe form: {form}",
                      highlight=False, soft_wrap=True)

    _run(main)


@list_app.command("ls")
def list_ls(workspace: str | None = WorkspaceOption) -> None:
    """The workspace's lists with member counts."""

    async def main() -> None:
        async with opened_runtime() as rt, rt.db.session() as session:
            ws = await pick_workspace(Accounts(session), workspace)
            repo = MailingLists(session, ws.id)
            lists, counts = await repo.all(), await repo.counts()
        table = Table("id", "list", "opt-in", "subscribed", "unconfirmed", "left")
        for lst in lists:
            c = counts.get(lst.id, {})
            table.add_row(str(lst.id), lst.name, "double" if lst.double_opt_in else "single",
                          *(str(c.get(k, 0)) for k in ("subscribed", "unconfirmed",
                                                       "unsubscribed")))
        console.print(table if lists else "No lists yet.")

    _run(main)


@email_app.command("import")
def import_command(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                help="CSV with an email column (name, tags, source optional)."),
    list_name: str = typer.Option(..., "--list", help="The list to add the people to."),
    source: str = typer.Option("", help="Consent source for rows without a source column; "
                                        "default csv:<file name>."),
    rejects: Path | None = typer.Option(None, help="Write the rows not imported, with the "
                                                   "reason, to this CSV."),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Import subscribers; every row not imported is reported with its reason."""
    total = file.stat().st_size

    async def main() -> ImportReport:
        async with opened_runtime() as rt:
            async with rt.db.session() as session:
                ws = await pick_workspace(Accounts(session), workspace)
                mailing_list = await _list_named(session, ws.id, list_name)
            columns = (TextColumn("importing"), BarColumn(), DownloadColumn(),
                       TimeRemainingColumn())
            with Progress(*columns, console=console, transient=True) as bar, \
                    file.open("rb") as stream:
                task = bar.add_task("import", total=total)
                return await import_csv(
                    rt.db, stream, workspace_id=ws.id, mailing_list=mailing_list,
                    source=source or f"csv:{file.name}", clock=rt.clock, total_bytes=total,
                    progress=lambda done, _: bar.update(task, completed=done))

    report = _run(main)
    console.print(f"{report.rows} rows: {report.created} new, {report.updated} updated, "
                  f"{report.duplicates_merged} duplicates merged, {report.added_to_list} "
                  f"added to the list, {len(report.problems)} not imported.", highlight=False)
    if report.problems:
        table = Table("line", "address", "reason")
        for problem in report.problems[:PROBLEMS_SHOWN]:
            table.add_row(str(problem.line), problem.email, problem.reason)
        console.print(table)
        if len(report.problems) > PROBLEMS_SHOWN and rejects is None:
            console.print(f"… and {len(report.problems) - PROBLEMS_SHOWN} more; "
                          "use --rejects FILE to get them all.")
    if rejects is not None:
        with rejects.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(["line", "email", "reason"])
            writer.writerows((p.line, p.email, p.reason) for p in report.problems)
        console.print(f"Rows not imported written to {rejects}.")


@email_app.command("export")
def export_command(
    output: Path | None = typer.Option(None, "--output", "-o", help="Default: standard output."),
    list_name: str | None = typer.Option(None, "--list", help="Only this list's members."),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Export subscribers as CSV (the columns `import` reads)."""

    async def main() -> int:
        async with opened_runtime() as rt:
            async with rt.db.session() as session:
                ws = await pick_workspace(Accounts(session), workspace)
                list_id = (await _list_named(session, ws.id, list_name)).id if list_name else None
            if output is None:
                return await export_csv(rt.db, sys.stdout, workspace_id=ws.id, list_id=list_id)
            with output.open("w", newline="", encoding="utf-8") as out:
                return await export_csv(rt.db, out, workspace_id=ws.id, list_id=list_id)

    count = _run(main)
    if output is not None:
        console.print(f"{count} subscribers written to {output}.")


@email_app.command("subscribers")
def subscribers_command(
    search: str = typer.Option("", "--search", "-s", help="Part of an address or name."),
    list_name: str | None = typer.Option(None, "--list"),
    status: SubscriberStatus | None = typer.Option(None),  # noqa: B008
    limit: int = typer.Option(50, min=1, max=10_000),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Find subscribers."""

    async def main() -> None:
        async with opened_runtime() as rt, rt.db.session() as session:
            ws = await pick_workspace(Accounts(session), workspace)
            list_id = (await _list_named(session, ws.id, list_name)).id if list_name else None
            rows, total = await Subscribers(session, ws.id).search(
                search, list_id=list_id, status=status.value if status else None, limit=limit)
        table = Table("id", "address", "name", "status", "tags")
        for row in rows:
            table.add_row(str(row.id), row.email, row.name, row.status, ", ".join(row.tags))
        console.print(table)
        console.print(f"{len(rows)} of {total} shown.")

    _run(main)


@email_app.command("suppress")
def suppress_command(
    address: str = typer.Argument(..., help="The address never to mail again."),
    reason: SuppressionReason = typer.Option(SuppressionReason.MANUAL),  # noqa: B008
    detail: str = typer.Option("", help="Why, for the record."),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Suppress an address: no send will reach it, and no import can bring it back."""

    async def main() -> str:
        async with opened_runtime() as rt, rt.db.session() as session:
            ws = await pick_workspace(Accounts(session), workspace)
            row = await Suppressions(session, ws.id).suppress(address, reason, detail,
                                                              at=rt.clock.now())
            return row.email

    console.print(f"{_run(main)} is suppressed ({reason.value}).", highlight=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `sidestep` command."""
    app.add_typer(email_app, name="email")
