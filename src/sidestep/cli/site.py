"""`sidestep site build`: export the public site as static files (issue 9)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sidestep.cli.common import (
    UsageError,
    WorkspaceOption,
    console,
    err_console,
    opened_runtime,
    pick_workspace,
    run,
)

site_app = typer.Typer(help="The owned site: link page, archive and feeds.",
                       no_args_is_help=True)


@site_app.command("build")
def build_command(
    out: Path = typer.Option(..., "--out", help="The folder to write the site into."),
    workspace: str | None = WorkspaceOption,
    base_url: str = typer.Option(
        "", "--base-url",
        help="Where the files will be published (feeds need absolute URLs); "
             "default: SIDESTEP_BASE_URL."),
) -> None:
    """Write the workspace's public site as static files that work from any static host."""
    from sidestep.archive.media import MediaStore
    from sidestep.catalogue import default_catalogue
    from sidestep.site.build import BuildError, BuildReport, build_site, check_base_url
    from sidestep.store.accounts import Accounts

    if out.exists() and not out.is_dir():
        raise typer.BadParameter(f"{out} is a file, not a folder", param_hint="--out")

    async def main() -> BuildReport:
        async with opened_runtime() as rt:
            url = base_url or rt.settings.base_url
            if not url:
                raise UsageError("feeds need absolute URLs: give --base-url (where the files "
                                 "will be published) or set SIDESTEP_BASE_URL")
            try:
                check_base_url(url)
            except BuildError as exc:
                raise UsageError(str(exc)) from None
            async with rt.db.session() as session:
                ws = await pick_workspace(Accounts(session), workspace)
            with Progress(TextColumn("[bold]Building the site"), BarColumn(),
                          MofNCompleteColumn(), TextColumn("{task.fields[file]}"),
                          TimeElapsedColumn(), console=err_console, transient=True) as progress:
                task = progress.add_task("build", total=None, file="")

                def show(done: int, total: int, label: str) -> None:
                    progress.update(task, completed=done, total=total, file=label[-50:])

                try:
                    return await build_site(
                        rt.db, workspace=ws, catalogue=default_catalogue(),
                        media_store=MediaStore.under(rt.settings.data_dir), out=out,
                        base_url=url, now=rt.clock.now(), on_progress=show)
                except BuildError as exc:
                    raise UsageError(str(exc)) from None

    report = run(main)
    console.print(f"Wrote {report.out}: {report.pages:,} pages, {report.media:,} media files, "
                  f"{report.feeds} feeds and the sitemap.")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `sidestep` command."""
    app.add_typer(site_app, name="site")
