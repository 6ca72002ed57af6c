"""Commands for the archive: import, export and the site build (issue 9)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sidestep.cli.common import (
    UsageError,
    WorkspaceOption,
    console,
    err_console,
    opened_runtime,
    pick_workspace,
    run,
)
from sidestep.importers import KINDS

ERRORS_SHOWN = 20


def import_command(
    kind: str = typer.Argument(..., help=f"What the file is: {', '.join(KINDS)}."),
    file: Path = typer.Argument(..., help="The export: a zip, or a .car/.json/.csv file."),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Import a platform's data export (or a `sidestep export`) into the archive."""
    from sidestep.archive.importing import ImportReport, run_import
    from sidestep.archive.media import MediaStore
    from sidestep.importers import UnknownImporter, importer
    from sidestep.importers.safezip import ExportRejected, open_export
    from sidestep.store.accounts import Accounts

    async def main() -> ImportReport:
        try:
            spec = importer(kind)
        except UnknownImporter as exc:
            raise UsageError(str(exc)) from None
        async with opened_runtime() as rt:
            async with rt.db.session() as session:
                ws = await pick_workspace(Accounts(session), workspace)
            try:
                source = open_export(file)
            except ExportRejected as exc:
                raise UsageError(f"{file.name} refused: {exc}") from None
            with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                          TextColumn("{task.fields[counts]}"), TimeElapsedColumn(),
                          console=err_console, transient=True) as progress:
                task = progress.add_task(f"Importing {file.name}", total=None, counts="")

                def show(report: ImportReport) -> None:
                    progress.update(task, counts=(
                        f"{report.seen:,} read · {report.imported:,} new · "
                        f"{report.duplicates:,} duplicate · {report.error_count:,} errors"))

                try:
                    return await run_import(
                        rt.db, workspace_id=ws.id, importer=spec, source=source,
                        media=MediaStore.under(rt.settings.data_dir), clock=rt.clock,
                        on_progress=show)
                except ExportRejected as exc:
                    raise UsageError(f"{file.name} refused: {exc}") from None
                finally:
                    source.close()

    report = run(main)
    _summary(report)


def _summary(report: object) -> None:
    from sidestep.archive.importing import ImportReport

    assert isinstance(report, ImportReport)
    table = Table(show_header=False, box=None)
    table.add_row("imported", f"{report.imported:,}")
    table.add_row("merged with a post from another platform", f"{report.merged:,}")
    table.add_row("duplicates skipped", f"{report.duplicates:,}")
    for reason, count in sorted(report.skipped.items()):
        table.add_row(f"skipped ({reason})", f"{count:,}")
    table.add_row("media stored", f"{report.media_stored:,}")
    table.add_row("media not in the export (kept as links)", f"{report.media_missing:,}")
    table.add_row("errors", f"{report.error_count:,}")
    console.print(table)
    for problem in report.errors[:ERRORS_SHOWN]:
        console.print(f"  [red]error[/red] {problem.where}: {problem.reason}", highlight=False)
    if report.error_count > ERRORS_SHOWN:
        console.print(f"  … and {report.error_count - ERRORS_SHOWN:,} more")


def export_command(
    out: Path = typer.Option(..., "--out", help="The zip file to write."),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Write the workspace's archive (posts, sources, media) as one portable zip."""
    from sidestep.archive.export import export_archive
    from sidestep.archive.media import MediaStore
    from sidestep.store.accounts import Accounts

    if out.suffix.lower() != ".zip":
        raise typer.BadParameter("the export is a zip: name it FILE.zip", param_hint="--out")

    async def main() -> None:
        async with opened_runtime() as rt:
            async with rt.db.session() as session:
                ws = await pick_workspace(Accounts(session), workspace)
            if not out.parent.is_dir():
                raise UsageError(f"no such folder: {out.parent}")
            manifest = await export_archive(
                rt.db, workspace_id=ws.id, workspace_slug=ws.slug,
                media_store=MediaStore.under(rt.settings.data_dir), out=out, at=rt.clock.now())
        console.print(
            f"Wrote {out}: {manifest['posts']['count']:,} posts, {len(manifest['media']):,} "
            f"media files; archive digest {manifest['archive_digest'][:16]}…")

    run(main)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `sidestep` command."""
    app.command("import")(import_command)
    app.command("export")(export_command)
