"""What every command shares: the runtime, workspace choice, and one-line user errors."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, timedelta
from typing import TypeVar

import typer
from rich.console import Console
from sqlalchemy.exc import OperationalError

from sidestep.config import Settings
from sidestep.runtime import Runtime
from sidestep.security import WeakPassword
from sidestep.store.accounts import AccountError, Accounts
from sidestep.store.channels import ChannelError
from sidestep.store.posts import PostError
from sidestep.store.tables import Workspace
from sidestep.vault import VaultError

T = TypeVar("T")
console = Console()
err_console = Console(stderr=True)


class UsageError(Exception):
    """A mistake in how a command was called; shown as one line, exit code 2."""


def _catalogue_error() -> type[Exception]:
    from sidestep.catalogue import CatalogueError

    return CatalogueError


USER_ERRORS: tuple[type[Exception], ...] = (
    UsageError, AccountError, ChannelError, PostError, VaultError, WeakPassword,
)


def run(main: Callable[[], Awaitable[T]]) -> T:
    """Run an async command; user errors become one line on stderr and exit code 2."""
    with user_errors():
        return asyncio.run(main())  # type: ignore[arg-type]


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a user's mistake raised inside the block into one line and exit code 2."""
    try:
        yield
    except (*USER_ERRORS, _catalogue_error()) as exc:
        fail(str(exc))
    except OperationalError as exc:
        fail(f"the database cannot be opened ({exc.orig}); check SIDESTEP_DATABASE_URL")
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@asynccontextmanager
async def opened_runtime() -> AsyncIterator[Runtime]:
    """The configured runtime with migrations applied; closed when the block ends."""
    runtime = Runtime.from_settings(Settings())
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.close()


async def pick_workspace(accounts: Accounts, slug: str | None) -> Workspace:
    """The workspace named by --workspace, or the only one there is."""
    if slug:
        workspace = await accounts.workspace_by_slug(slug)
        if workspace is None:
            raise UsageError(f"no workspace {slug!r}; `sidestep init` creates one")
        return workspace
    workspaces = await accounts.all_workspaces()
    if not workspaces:
        raise UsageError("there is no workspace yet; run `sidestep init` first")
    if len(workspaces) > 1:
        names = ", ".join(w.slug for w in workspaces)
        raise UsageError(f"several workspaces exist ({names}); choose one with --workspace")
    return workspaces[0]


def parse_when(text: str, *, now: datetime) -> datetime:
    """'now', '+90m', '+2h', '+1d', or an ISO 8601 time (UTC if no offset is given)."""
    text = text.strip()
    if text == "now":
        return now
    if text.startswith("+") and text[-1:] in "smhd" and text[1:-1].isdigit():
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[text[-1]]
        return now + timedelta(**{unit: int(text[1:-1])})
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(
            f"cannot read the time {text!r}; use now, +30m, +2h, +1d or 2026-12-01T09:00"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=now.tzinfo)


def stdin_is_tty() -> bool:
    return sys.stdin.isatty()


WorkspaceOption = typer.Option(
    None, "--workspace", "-w", envvar="SIDESTEP_WORKSPACE", help="Workspace slug."
)
