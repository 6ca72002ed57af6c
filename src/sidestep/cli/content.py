"""`sidestep channel` and `sidestep post`."""

from __future__ import annotations

import json
import sys

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from sidestep.cli.common import (
    UsageError,
    WorkspaceOption,
    console,
    opened_runtime,
    parse_when,
    pick_workspace,
    run,
    stdin_is_tty,
    user_errors,
)
from sidestep.domain.states import FallbackPolicy
from sidestep.store.accounts import Accounts
from sidestep.store.channels import Channels
from sidestep.store.post_history import timeline
from sidestep.store.posts import NewPost, Posts

channel_app = typer.Typer(help="A workspace's accounts on platforms.", no_args_is_help=True)
post_app = typer.Typer(help="Posts and their deliveries.", no_args_is_help=True)


def _read_credentials(platform_key: str, from_stdin: bool) -> dict[str, str]:
    """Credentials from JSON on stdin, or prompted (hidden) for the platform's secret fields."""
    from sidestep.catalogue import default_catalogue

    platform = default_catalogue().get(platform_key)
    if from_stdin:
        try:
            data = json.loads(sys.stdin.read() or "{}")
        except json.JSONDecodeError as exc:
            raise UsageError(f"credentials on stdin are not JSON: {exc.msg}") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise UsageError('credentials on stdin must be a JSON object of strings')
        return {str(k): v for k, v in data.items()}
    if not stdin_is_tty() or not platform.secret_fields:
        return {}
    return {
        field: typer.prompt(f"{platform.name} {field}", hide_input=True)
        for field in platform.secret_fields
    }


@channel_app.command("add")
def channel_add(
    platform: str = typer.Argument(..., help="Platform key; see `sidestep platforms`."),
    name: str = typer.Argument(..., help="A name for this channel in the workspace."),
    handle: str = typer.Option("", help="The account's handle or id on the platform."),
    audience: int = typer.Option(0, help="Followers or subscribers, for reach estimates."),
    credentials_stdin: bool = typer.Option(
        False, "--credentials-stdin", help="Read credentials as a JSON object from stdin."
    ),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Add a channel; secret credentials are asked for (hidden) and stored encrypted."""
    from sidestep.catalogue import default_catalogue

    with user_errors():  # an unknown platform is one clear line, before any prompt
        default_catalogue().get(platform)
        credentials = _read_credentials(platform, credentials_stdin)

    async def main() -> None:
        async with opened_runtime() as rt, rt.db.session() as session:
            ws = await pick_workspace(Accounts(session), workspace)
            channel = await Channels(session, workspace_id=ws.id, vault=rt.vault).add(
                platform=platform, name=name, handle=handle, credentials=credentials,
                audience_size=audience, at=rt.clock.now(),
            )
        console.print(f"Channel {channel.id} [bold]{name}[/bold] ({platform}) added.")

    run(main)


@channel_app.command("list")
def channel_list(workspace: str | None = WorkspaceOption) -> None:
    """List the workspace's channels (never their credentials)."""

    async def main() -> None:
        async with opened_runtime() as rt, rt.db.session() as session:
            ws = await pick_workspace(Accounts(session), workspace)
            channels = await Channels(session, workspace_id=ws.id, vault=rt.vault).all()
        table = Table("id", "name", "platform", "handle", "status", "audience", "credentials")
        for c in channels:
            table.add_row(str(c.id), c.name, c.platform, c.handle, c.status,
                          f"{c.audience_size:,}", "stored" if c.credentials_encrypted else "—")
        console.print(table if channels else "No channels yet: `sidestep channel add`.")

    run(main)


@channel_app.command("remove")
def channel_remove(
    channel: str = typer.Argument(..., help="Channel id or name."),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Remove a channel and its deliveries."""

    async def main() -> None:
        async with opened_runtime() as rt, rt.db.session() as session:
            ws = await pick_workspace(Accounts(session), workspace)
            channels = Channels(session, workspace_id=ws.id, vault=rt.vault)
            found = await channels.find(channel)
            if found is None:
                raise UsageError(f"no channel {channel!r} in workspace {ws.slug}")
            await channels.remove(found, at=rt.clock.now())
        console.print(f"Channel {channel} removed.")

    run(main)


@post_app.command("create")
def post_create(
    body: str = typer.Option(..., "--body", "-b", help="The post's text."),
    channel: list[str] = typer.Option(..., "--channel", "-c", help="Channel id or name; repeat."),
    at: str = typer.Option("now", "--at", help="now, +30m, +2h, +1d, or ISO 8601 (UTC)."),
    link: str | None = typer.Option(None, help="A link to attach."),
    policy: FallbackPolicy = typer.Option(FallbackPolicy.HOLD, help="When a platform is down."),
    fallback: list[str] = typer.Option([], "--fallback", help="Fallback channel; repeat."),
    workspace: str | None = WorkspaceOption,
) -> None:
    """Create a post for one or more channels."""

    async def main() -> None:
        async with opened_runtime() as rt, rt.db.session() as session:
            ws = await pick_workspace(Accounts(session), workspace)
            channels = Channels(session, workspace_id=ws.id, vault=rt.vault)

            async def resolve(ref: str) -> int:
                found = await channels.find(ref)
                if found is None:
                    raise UsageError(f"no channel {ref!r} in workspace {ws.slug}")
                return found.id

            now = rt.clock.now()
            post = await Posts(session, workspace_id=ws.id).create(
                NewPost(
                    body=body, due_at=parse_when(at, now=now),
                    channel_ids=[await resolve(c) for c in channel], link=link,
                    fallback_policy=policy,
                    fallback_channel_ids=[await resolve(c) for c in fallback],
                ),
                created_by=None, at=now,
            )
        console.print(f"Post {post.id} scheduled for {post.due_at:%Y-%m-%d %H:%M} UTC "
                      f"on {len(channel)} channel(s): {', '.join(channel)}.", markup=False,
                      highlight=False)

    run(main)


@post_app.command("list")
def post_list(
    limit: int = typer.Option(50, min=1, max=1000), workspace: str | None = WorkspaceOption
) -> None:
    """List posts, newest due time first, with their delivery states."""

    async def main() -> None:
        async with opened_runtime() as rt, rt.db.session() as session:
            ws = await pick_workspace(Accounts(session), workspace)
            posts = Posts(session, workspace_id=ws.id)
            table = Table("id", "due (UTC)", "text", "deliveries")
            rows = await posts.recent(limit=limit)
            for post in rows:
                states = [d.state for d in await posts.deliveries(post.id)]
                summary = ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states)))
                text = post.body if len(post.body) <= 60 else post.body[:59] + "…"
                table.add_row(str(post.id), f"{post.due_at:%Y-%m-%d %H:%M}", text, summary)
        console.print(table if rows else "No posts yet: `sidestep post create`.")

    run(main)


@post_app.command("show")
def post_show(post_id: int = typer.Argument(...), workspace: str | None = WorkspaceOption) -> None:
    """Show one post, each of its deliveries, and each delivery's timeline: every attempt
    (outcome, error class and detail), hold, release, reroute and failure."""

    async def main() -> None:
        async with opened_runtime() as rt, rt.db.session() as session:
            ws = await pick_workspace(Accounts(session), workspace)
            post = await Posts(session, workspace_id=ws.id).get(post_id)
            if post is None:
                raise UsageError(f"no post {post_id} in workspace {ws.slug}")
            history = await timeline(session, post, workspace_id=ws.id)
        console.print(f"[bold]Post {post.id}[/bold], due {post.due_at:%Y-%m-%d %H:%M} UTC, "
                      f"if down: {post.fallback_policy}")
        console.print(post.body, highlight=False, markup=False)
        if post.link:
            console.print(f"link: {post.link}", highlight=False, markup=False)
        table = Table("delivery", "channel", "state", "attempts", "external id", "last error")
        for h in history.deliveries:
            d = h.delivery
            table.add_row(str(d.id), escape(h.channel_name), d.state, str(d.attempt_count),
                          escape(d.external_id or "—"), escape(d.last_error or ""))
        console.print(table)
        for h in history.deliveries:
            console.print(Text(f"\n{h.channel_name} ({h.platform}): {h.delivery.state}",
                               style="bold"))
            if h.delivery.external_url:
                console.print(f"  published at {h.delivery.external_url}", highlight=False,
                              markup=False)
            for entry in h.entries:
                line = f"  {entry.at:%Y-%m-%d %H:%M:%S} UTC  {entry.label}"
                console.print(line + (f" — {entry.detail}" if entry.detail else ""),
                              highlight=False, markup=False)
            if not h.entries:
                console.print("  nothing yet: waiting for its due time", markup=False)

    run(main)
