"""`sidestep playbook validate|list|install-starter` and `sidestep drill`.

A workspace's playbooks are TOML files under `<data_dir>/playbooks/<workspace slug>/`.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from aiosmtpd.smtp import SMTP as SMTPProtocol
from aiosmtpd.smtp import Envelope, Session

from sidestep.cli.common import UsageError, console, opened_runtime, pick_workspace, run
from sidestep.cli.common import WorkspaceOption as _WorkspaceOption
from sidestep.config import Settings
from sidestep.playbooks.drill import run_drill
from sidestep.playbooks.model import ACTION_KINDS, PlaybookError, load_playbook
from sidestep.playbooks.report import DrillReport, render_html
from sidestep.sim.scenario import ScenarioError, list_scenarios
from sidestep.store.accounts import Accounts

STARTER = Path(__file__).parents[1] / "playbooks" / "starter"
playbook_app = typer.Typer(help="Playbooks: prepared plans bound to outage triggers.",
                           no_args_is_help=True)


@contextmanager
def _user_errors() -> Iterator[None]:
    try:
        yield
    except (PlaybookError, ScenarioError) as exc:
        raise UsageError(str(exc)) from exc


def workspace_dir(settings: Settings, slug: str) -> Path:
    return settings.data_dir / "playbooks" / slug


@playbook_app.command("validate")
def validate(files: list[Path] = typer.Argument(..., help="Playbook TOML files.")) -> None:
    """Check playbook files; each mistake is reported with its file, line and field."""
    bad = 0
    for file in files:
        try:
            playbook = load_playbook(file)
        except PlaybookError as exc:
            console.print(f"[red]✗[/red] {exc}", markup=True, highlight=False)
            bad += 1
            continue
        steps = ", ".join(a.do for a in playbook.action)
        console.print(f"[green]✓[/green] {file}: {playbook.name} ({steps})", highlight=False)
    if bad:
        raise typer.Exit(2)


@playbook_app.command("list")
def list_command(workspace: str | None = _WorkspaceOption) -> None:
    """The workspace's installed playbooks, and the starter pack."""

    async def main() -> None:
        async with opened_runtime() as rt:
            async with rt.db.session() as session:
                ws = await pick_workspace(Accounts(session), workspace)
            folder = workspace_dir(rt.settings, ws.slug)
        installed = sorted(folder.glob("*.toml")) if folder.is_dir() else []
        console.print(f"Installed for {ws.slug} ({folder}):" if installed
                      else f"No playbook installed for {ws.slug}; "
                      "`sidestep playbook install-starter` adds the starter pack.")
        for file in [*installed, None, *sorted(STARTER.glob("*.toml"))]:
            if file is None:
                console.print("Starter pack:")
                continue
            try:
                playbook = load_playbook(file)
                console.print(f"  {playbook.name:16} {playbook.title}", highlight=False)
            except PlaybookError as exc:
                console.print(f"  [red]invalid[/red] {exc}", highlight=False)

    run(main)


@playbook_app.command("install-starter")
def install_starter(workspace: str | None = _WorkspaceOption,
                    language: str = typer.Option("en", help="en, es, it or ru.")) -> None:
    """Copy the starter pack into the workspace's playbooks (existing files are kept)."""
    if language not in ("en", "es", "it", "ru"):
        raise typer.BadParameter("language must be en, es, it or ru")

    async def main() -> None:
        async with opened_runtime() as rt:
            async with rt.db.session() as session:
                ws = await pick_workspace(Accounts(session), workspace)
            folder = workspace_dir(rt.settings, ws.slug)
        folder.mkdir(parents=True, exist_ok=True)
        for source in sorted(STARTER.glob("*.toml")):
            target = folder / source.name
            if target.exists():
                console.print(f"kept {target} (already there)", highlight=False)
                continue
            text = source.read_text(encoding="utf-8").replace(
                'language = "en"', f'language = "{language}"', 1)
            target.write_text(text, encoding="utf-8")
            console.print(f"installed {target}", highlight=False)

    run(main)


class _Sink:
    """A local SMTP server that keeps count: the drill's email goes nowhere else."""

    def __init__(self) -> None:
        self.accepted = 0

    async def handle_DATA(self, server: SMTPProtocol, session: Session,  # noqa: N802
                          envelope: Envelope) -> str:
        self.accepted += 1
        return "250 OK"


def drill(scenario: str = typer.Argument(..., help="A scenario name (sidestep sim scenarios)."),
          playbook: Path | None = typer.Option(None, help="Playbook file (default: meta-down)."),
          speed: float = typer.Option(math.inf, help="Scenario seconds per real second."),
          out: Path = typer.Option(Path("."), help="Where to write drill-report.json/.html."),
          alert_url: str | None = typer.Option(None, help="An Apprise URL for the team alert."),
          seed: int = typer.Option(1)) -> None:
    """Replay a scenario against a throwaway workspace with the monitor, dispatcher and a
    playbook, and write a report (time to detect, to first audience contact, reach)."""
    if scenario not in list_scenarios() and not Path(scenario).is_file():
        raise typer.BadParameter(f"unknown scenario; known: {', '.join(list_scenarios())}")

    async def main() -> tuple[DrillReport, int]:
        with _user_errors():
            chosen = load_playbook(playbook or STARTER / "meta-down.toml")
        sink = _Sink()
        server = await asyncio.get_running_loop().create_server(
            lambda: SMTPProtocol(sink, hostname="drill.local"), "127.0.0.1", 0)
        folder = Path(tempfile.mkdtemp(prefix="sidestep-drill-"))
        try:
            with _user_errors():
                report = await run_drill(
                    scenario=scenario, playbook=chosen, db_path=folder / "drill.db",
                    smtp_port=server.sockets[0].getsockname()[1], alert_url=alert_url,
                    seed=seed, speed=speed, progress=lambda line: console.print(line))
        finally:
            server.close()
            shutil.rmtree(folder, ignore_errors=True)
        return report, sink.accepted

    report, accepted = run(main)
    out.mkdir(parents=True, exist_ok=True)
    (out / "drill-report.json").write_text(report.to_json(), encoding="utf-8")
    (out / "drill-report.html").write_text(render_html(report), encoding="utf-8")
    share = "n/a" if report.share_reached is None else f"{report.share_reached:.0%}"
    console.print(f"detected after {report.time_to_detect_s} s; first audience contact "
                  f"after {report.time_to_first_contact_s} s; reach {share}; "
                  f"{accepted} emails; report in {out}/drill-report.html", highlight=False)


def register(app: typer.Typer) -> None:
    """Add `sidestep playbook ...` and `sidestep drill`."""
    app.add_typer(playbook_app, name="playbook")
    app.command("drill")(drill)


__all__ = ["ACTION_KINDS", "register"]
