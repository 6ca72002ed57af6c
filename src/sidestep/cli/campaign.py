"""Commands for email campaigns, bounces and the sending domain (issue 8).

`sidestep campaign create|send|pause|resume|cancel|status|resend-unknown|smtp-add`, and under
`sidestep email`: `check-domain`, `dkim-keygen`, `bounces` (apply a report file or an IMAP
mailbox's unseen reports).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import typer
from rich.table import Table

from sidestep.cli.common import (
    UsageError,
    WorkspaceOption,
    console,
    opened_runtime,
    pick_workspace,
    run,
)
from sidestep.cli.email import email_app
from sidestep.email import campaign as ops
from sidestep.email.bounces import apply_report, fetch_imap, parse_report
from sidestep.email.campaign import CampaignSender, Progress, SendSettings, tag_secret
from sidestep.email.dkim import DkimAlgorithm, DkimError, DkimKey, DkimSigner, dns_record
from sidestep.email.dkim import generate_key as generate_dkim_key
from sidestep.email.domain_check import Finding, check_domain
from sidestep.email.links import links_secret
from sidestep.email.message import MessageError
from sidestep.email.smtp_pool import PoolPolicy, SmtpPool, SmtpServer
from sidestep.store.accounts import Accounts
from sidestep.store.campaigns import CampaignError, Campaigns, NewCampaign, SendingSetup
from sidestep.store.subscribers import MailingLists

T = TypeVar("T")
campaign_app = typer.Typer(help="Email campaigns: create, send, pause, resume, cancel.",
                           no_args_is_help=True)
VERDICT_STYLE = {"ok": "green", "warn": "yellow", "missing": "red", "error": "red"}


def _run(main: Callable[[], Awaitable[T]]) -> T:
    async def wrapped() -> T:
        try:
            return await main()
        except (CampaignError, DkimError, MessageError, ValueError) as exc:
            raise UsageError(str(exc)) from exc

    return run(wrapped)


def _show(progress: Progress, campaign_id: int) -> None:
    counts = ", ".join(f"{n} {s}" for s, n in sorted(progress.counts.items())) or "no recipients"
    console.print(f"campaign {campaign_id}: [bold]{progress.state}[/bold] — {counts}")
    if progress.reason:
        console.print(f"  {progress.reason}", highlight=False)


@campaign_app.command("create")
def create(name: str = typer.Option(..., help="Campaign name."),
           list_name: str = typer.Option(..., "--list", help="Mailing list to send to."),
           subject: str = typer.Option(..., help="Subject template (Jinja2)."),
           html: Path | None = typer.Option(None, help="HTML template file."),
           text: Path | None = typer.Option(None, help="Plain-text template file."),
           from_email: str = typer.Option(..., "--from", help="From address."),
           from_name: str = typer.Option("", help="From display name."),
           tag: list[str] = typer.Option([], help="Only subscribers with this tag (repeat)."),
           error_budget: int = typer.Option(50, help="Failures that pause the campaign."),
           workspace: str | None = WorkspaceOption) -> None:
    """Create a draft campaign."""
    if html is None and text is None:
        raise typer.BadParameter("give --html, --text, or both")

    html_tpl = html.read_text() if html else ""
    text_tpl = text.read_text() if text else ""

    async def main() -> int:
        async with opened_runtime() as rt, rt.db.session() as session:
            ws = await pick_workspace(Accounts(session), workspace)
            found = await MailingLists(session, ws.id).by_name(list_name)
            if found is None:
                raise UsageError(f"no list named {list_name!r}")
            row = await Campaigns(session, ws.id).create(NewCampaign(
                name=name, subject_tpl=subject,
                html_tpl=html_tpl, text_tpl=text_tpl, from_name=from_name,
                from_email=from_email, list_id=found.id, tags=tag,
                error_budget=error_budget), at=rt.clock.now())
            return row.id

    console.print(f"created campaign {_run(main)} (draft); send it with "
                  "`sidestep campaign send ID`")


@campaign_app.command("send")
def send(campaign_id: int,
         connections: int = typer.Option(4, help="Concurrent SMTP sessions."),
         per_second: float | None = typer.Option(None, help="Messages per second at most."),
         per_hour: int | None = typer.Option(None, help="Messages per hour at most."),
         sign_processes: int = typer.Option(0, help="Processes for DKIM signing (0: inline)."),
         wait: bool = typer.Option(True, help="Wait for deferred recipients until done."),
         workspace: str | None = WorkspaceOption) -> None:
    """Start (or continue) sending a campaign through the workspace's SMTP servers."""

    async def main() -> Progress:
        async with opened_runtime() as rt:
            async with rt.db.session() as session:
                ws = await pick_workspace(Accounts(session), workspace)
                campaign = await Campaigns(session, ws.id).get(campaign_id)
                setup = SendingSetup(session, ws.id, rt.vault)
                servers = await setup.servers()
                keys = await setup.dkim_keys(campaign.from_email.rpartition("@")[2])
            if not servers:
                raise UsageError("no SMTP server; add one with `sidestep campaign smtp-add`")
            if not rt.settings.public_url.startswith("https://"):
                raise UsageError("SIDESTEP_BASE_URL must be https:// for one-click unsubscribe")
            mailer = SmtpPool(servers, policy=PoolPolicy(
                connections=connections, per_second=per_second, per_hour=per_hour))
            signer = _signer(keys, sign_processes)
            sender = CampaignSender(
                rt.db, workspace_id=ws.id, mailer=mailer, clock=rt.clock, signer=signer[0],
                settings=SendSettings(base_url=rt.settings.public_url,
                                      links_secret=links_secret(rt.settings)))
            try:
                return await sender.run(campaign_id, stop_when_idle=not wait,
                                        on_batch=lambda p: _show(p, campaign_id))
            finally:
                await mailer.close()
                signer[1]()

    _show(_run(main), campaign_id)


def _signer(keys: list[DkimKey], processes: int) -> tuple[
        Callable[[list[bytes]], Awaitable[list[bytes]]] | None, Callable[[], None]]:
    if not keys:
        console.print("[yellow]no DKIM key for this domain: mail goes out unsigned[/yellow]")
        return None, lambda: None
    if processes > 0:
        from sidestep.email.dkim import SigningPool

        pool = SigningPool(keys, processes=processes)
        return pool.sign_batch, pool.close
    inline = DkimSigner(keys)

    async def sign(messages: list[bytes]) -> list[bytes]:
        return [inline.sign(m) for m in messages]

    return sign, lambda: None


def _state_command(action: str) -> Callable[..., None]:
    def command(campaign_id: int, workspace: str | None = WorkspaceOption) -> None:
        async def main() -> str:
            async with opened_runtime() as rt:
                async with rt.db.session() as session:
                    ws = await pick_workspace(Accounts(session), workspace)
                now = rt.clock.now()
                if action == "pause":
                    await ops.pause(rt.db, ws.id, campaign_id, at=now)
                    return "paused"
                if action == "resume":
                    await ops.resume(rt.db, ws.id, campaign_id, at=now)
                    return "resumed; run `sidestep campaign send` to continue"
                if action == "cancel":
                    count = await ops.cancel(rt.db, ws.id, campaign_id, at=now)
                    return f"cancelled; {count} recipients will not be mailed"
                count = await ops.resend_unknown(rt.db, ws.id, campaign_id, at=now)
                return f"{count} unknown outcomes queued again (they may get it twice)"

        console.print(f"campaign {campaign_id}: {_run(main)}")

    command.__doc__ = {"pause": "Pause a campaign.", "resume": "Resume a paused campaign.",
                       "cancel": "Cancel a campaign and everyone still waiting.",
                       "resend-unknown": "Queue again the recipients whose outcome is "
                                         "unknown."}[action]
    return command


@campaign_app.command("status")
def status(campaign_id: int | None = typer.Argument(None),
           workspace: str | None = WorkspaceOption) -> None:
    """Progress of one campaign, or a table of all."""

    async def main() -> None:
        async with opened_runtime() as rt, rt.db.session() as session:
            ws = await pick_workspace(Accounts(session), workspace)
            campaigns = Campaigns(session, ws.id)
            if campaign_id is not None:
                row = await campaigns.get(campaign_id)
                _show(Progress(row.state, row.state_reason, await campaigns.counts(row.id)),
                      row.id)
                return
            table = Table("id", "name", "state", "recipients")
            for row in await campaigns.all():
                counts = await campaigns.counts(row.id)
                table.add_row(str(row.id), row.name, row.state, str(sum(counts.values())))
            console.print(table)

    _run(main)


@campaign_app.command("smtp-add")
def smtp_add(host: str, port: int = typer.Option(587),
             tls: str = typer.Option("starttls", help="starttls, implicit or none."),
             username: str | None = typer.Option(None),
             priority: int = typer.Option(0, help="Lower is tried first (failover order)."),
             workspace: str | None = WorkspaceOption) -> None:
    """Add an SMTP server; the password is read from stdin and stored sealed."""
    if tls not in ("starttls", "implicit", "none"):
        raise typer.BadParameter("tls is starttls, implicit or none")
    password = sys.stdin.readline().rstrip("\n") if username else None

    async def main() -> None:
        async with opened_runtime() as rt, rt.db.session() as session:
            ws = await pick_workspace(Accounts(session), workspace)
            await SendingSetup(session, ws.id, rt.vault).add_server(
                SmtpServer(host, port, tls=tls, username=username,  # type: ignore[arg-type]
                           password=password or None), priority=priority, at=rt.clock.now())

    _run(main)
    console.print(f"added {host}:{port}")


@email_app.command("dkim-keygen")
def dkim_keygen(domain: str, selector: str = typer.Option(..., help="DKIM selector."),
                algorithm: str = typer.Option("rsa", help="rsa (2048 bits) or ed25519."),
                workspace: str | None = WorkspaceOption) -> None:
    """Make a DKIM key, store it sealed, and print the DNS record to publish."""
    algo = DkimAlgorithm.RSA if algorithm == "rsa" else DkimAlgorithm.ED25519
    if algorithm not in ("rsa", "ed25519"):
        raise typer.BadParameter("algorithm is rsa or ed25519")
    key = DkimKey(domain.lower(), selector, algo, generate_dkim_key(algo))

    async def main() -> None:
        async with opened_runtime() as rt, rt.db.session() as session:
            ws = await pick_workspace(Accounts(session), workspace)
            await SendingSetup(session, ws.id, rt.vault).add_dkim_key(key, at=rt.clock.now())

    _run(main)
    console.print(f"publish this TXT record at {selector}._domainkey.{domain}:")
    console.print(dns_record(key), highlight=False, soft_wrap=True)


@email_app.command("check-domain")
def check_domain_command(domain: str, selector: list[str] = typer.Option(
        [], help="DKIM selector to check (repeat)."),
        nameserver: str | None = typer.Option(None, help="Ask this resolver.")) -> None:
    """Look up and explain DOMAIN's SPF, DKIM and DMARC records."""

    async def main() -> list[Finding]:
        return await check_domain(domain, selectors=selector, nameserver=nameserver)

    for f in _run(main):
        style = VERDICT_STYLE[f.verdict]
        console.print(f"[{style}]{f.verdict:>7}[/{style}] {f.record}: {f.explanation}",
                      highlight=False)


@email_app.command("bounces")
def bounces(report: Path | None = typer.Option(None, help="A DSN or ARF message file."),
            imap_host: str | None = typer.Option(None), imap_port: int = typer.Option(993),
            imap_user: str | None = typer.Option(None),
            workspace: str | None = WorkspaceOption) -> None:
    """Apply bounce and complaint reports from a file or an IMAP mailbox (password on stdin)."""
    password = sys.stdin.readline().rstrip("\n") if imap_host else ""
    from_file = [report.read_bytes()] if report is not None else []

    async def main() -> list[str]:
        raws = list(from_file)
        if imap_host and imap_user:
            raws += [raw for _, raw in await fetch_imap(
                host=imap_host, port=imap_port, username=imap_user, password=password)]
        async with opened_runtime() as rt, rt.db.session() as session:
            ws = await pick_workspace(Accounts(session), workspace)
            key = tag_secret(links_secret(rt.settings))
            return [await apply_report(session, workspace_id=ws.id, report=parse_report(raw),
                                       tag_key=key, at=rt.clock.now()) for raw in raws]

    for line in _run(main):
        console.print(line, highlight=False)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `sidestep` command."""
    for action in ("pause", "resume", "cancel", "resend-unknown"):
        campaign_app.command(action)(_state_command(action))
    app.add_typer(campaign_app, name="campaign")
