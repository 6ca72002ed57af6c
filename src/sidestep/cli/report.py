"""`sidestep report incident|risk` and `sidestep metrics import` (issue 11)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from sidestep.cli.common import (
    UsageError,
    WorkspaceOption,
    console,
    opened_runtime,
    pick_workspace,
    run,
)
from sidestep.store.accounts import Accounts

report_app = typer.Typer(help="Outage impact and concentration-risk reports.",
                         no_args_is_help=True)
metrics_app = typer.Typer(help="Metric series of the workspace's channels.",
                          no_args_is_help=True)
FORMATS = ("html", "pdf", "csv")


@contextmanager
def _analytics_errors() -> Iterator[None]:
    """The analytics errors are the user's to fix (a bad file, too little history): one line."""
    from sidestep.analytics.formats import MalformedFile
    from sidestep.analytics.impact import ImpactError
    from sidestep.analytics.report import ReportError
    from sidestep.store.metrics import MetricStoreError

    try:
        yield
    except (MalformedFile, ImpactError, ReportError, MetricStoreError) as exc:
        raise UsageError(str(exc)) from exc


def _owners() -> dict[str, str]:
    from sidestep.catalogue import default_catalogue

    return {p.key: p.owner for p in default_catalogue().all()}


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}; use html, pdf or csv")


def _write(out: Path, fmt: str, csv_text: str, html: object) -> None:
    from sidestep.analytics.report import html_to_pdf

    if fmt == "csv":
        out.write_text(csv_text, encoding="utf-8")
    elif fmt == "html":
        out.write_text(str(html), encoding="utf-8")
    else:
        out.write_bytes(html_to_pdf(str(html)))
    console.print(f"Wrote {escape(str(out))} ({out.stat().st_size:,} bytes).")


@report_app.command("incident")
def report_incident(
    incident_id: int = typer.Argument(..., help="Incident id (see the status board)."),
    fmt: str = typer.Option("html", "--format", "-f", help="html, pdf or csv."),
    out: Path = typer.Option(..., "--out", "-o", help="File to write."),
    workspace: str | None = WorkspaceOption,
) -> None:
    """What an incident cost the workspace, where the audience went, and the net."""
    from sidestep.analytics.incident import incident_impact
    from sidestep.analytics.report import (
        export_html,
        incident_charts,
        incident_csv,
        incident_view,
    )
    from sidestep.store.tables import Incident

    _check_format(fmt)

    async def main() -> None:
        with _analytics_errors():
            await work()

    async def work() -> None:
        async with opened_runtime() as rt, rt.db.session() as session:
            ws = await pick_workspace(Accounts(session), workspace)
            incident = await session.get(Incident, incident_id)
            if incident is None:
                raise UsageError(f"no incident {incident_id}")
            now = rt.clock.now()
            result = await incident_impact(session, workspace_id=ws.id, incident=incident,
                                           owner_of=_owners(), now=now)
        html = "" if fmt == "csv" else export_html(
            "incident", title=f"Incident {incident_id}: {result.platform}",
            workspace=ws.name, view=incident_view(result), charts=incident_charts(result),
            generated=f"{now:%Y-%m-%d %H:%M} UTC")
        _write(out, fmt, incident_csv(result) if fmt == "csv" else "", html)
        for metric, total in result.lost.items():
            console.print(f"{metric}: {total.effect:+,.0f} on {result.platform} "
                          f"(95%: {total.lower:+,.0f} to {total.upper:+,.0f}); net "
                          f"{result.net[metric].effect:+,.0f}")

    run(main)


@report_app.command("risk")
def report_risk(
    fmt: str = typer.Option("html", "--format", "-f", help="html, pdf or csv."),
    out: Path = typer.Option(..., "--out", "-o", help="File to write."),
    hours: int = typer.Option(6, help="Outage length for 'if <owner> is down'."),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Shares by platform and owner, HHI, outage costs, expected annual loss, advice."""
    from sidestep.analytics.report import export_html, risk_charts, risk_csv, risk_view
    from sidestep.analytics.risk import risk_report

    _check_format(fmt)
    if hours < 1 or hours > 168:
        raise typer.BadParameter("--hours must be between 1 and 168")

    async def main() -> None:
        with _analytics_errors():
            await work()

    async def work() -> None:
        async with opened_runtime() as rt, rt.db.session() as session:
            ws = await pick_workspace(Accounts(session), workspace)
            now = rt.clock.now()
            report = await risk_report(session, workspace_id=ws.id, owner_of=_owners(),
                                       now=now, outage_hours=hours)
        html = "" if fmt == "csv" else export_html(
            "risk", title="Concentration risk", workspace=ws.name, view=risk_view(report),
            charts=risk_charts(report), generated=f"{now:%Y-%m-%d %H:%M} UTC")
        _write(out, fmt, risk_csv(report) if fmt == "csv" else "", html)
        audience = report.concentrations["audience"]
        console.print(f"Audience HHI by owner {audience.hhi_owner:,.0f} ({audience.band}).")
        for text in [r.text for r in report.recommendations][:3]:
            console.print(f"- {escape(text)}")

    run(main)


@metrics_app.command("import")
def metrics_import(
    fmt: str = typer.Argument(..., metavar="FORMAT",
                              help="long, wide, meta, x, linkedin, youtube or deliveries."),
    file: Path | None = typer.Argument(None, help="The CSV file (not for deliveries)."),
    channel: str | None = typer.Option(None, "--channel", "-c",
                                       help="Channel name or id the export belongs to."),
    days: int = typer.Option(90, help="deliveries: how many days back to count."),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Import metric series; bad rows are listed with their reasons, nothing is dropped."""
    from sidestep.analytics.metric_import import FORMATS as KNOWN
    from sidestep.analytics.metric_import import import_deliveries, import_file

    if fmt not in KNOWN:
        raise typer.BadParameter(f"unknown format {fmt!r}; use one of {', '.join(KNOWN)}")
    if fmt != "deliveries" and file is None:
        raise typer.BadParameter("give the CSV file to import")
    data = b""
    if file is not None:
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise typer.BadParameter(f"cannot read {file}: {exc.strerror}") from None

    async def main() -> None:
        with _analytics_errors():
            await work()

    async def work() -> None:
        async with opened_runtime() as rt, rt.db.session() as session:
            ws = await pick_workspace(Accounts(session), workspace)
            now = rt.clock.now()
            if fmt == "deliveries":
                summary = await import_deliveries(session, workspace_id=ws.id,
                                                  start=now - timedelta(days=days), end=now,
                                                  at=now)
            else:
                summary = await import_file(session, workspace_id=ws.id, format=fmt,
                                            data=data, channel=channel, at=now)
        table = Table("metric", "points")
        for metric, n in sorted(summary.by_metric.items()):
            table.add_row(metric, f"{n:,}")
        console.print(table)
        span = (f" from {summary.first:%Y-%m-%d} to {summary.last:%Y-%m-%d}"
                if summary.first and summary.last else "")
        console.print(f"{summary.rows:,} rows read, {summary.written:,} points written{span}; "
                      f"{len(summary.rejected)} rejected, {summary.blank_cells} blank cells.")
        if summary.ignored_columns:
            console.print("Columns not imported: "
                          + escape(", ".join(summary.ignored_columns)))
        for r in summary.rejected:
            where = f"line {r.line}: " if r.line else ""
            console.print(f"  [yellow]rejected[/yellow] {where}{escape(r.reason)}")

    run(main)


def register(app: typer.Typer) -> None:
    """Add `sidestep report ...` and `sidestep metrics ...` to the `sidestep` command."""
    app.add_typer(report_app, name="report")
    app.add_typer(metrics_app, name="metrics")
