"""`sidestep init` and `sidestep token`: workspaces, their first owner, API tokens."""

from __future__ import annotations

import typer

from sidestep.cli.common import UsageError, console, opened_runtime, run
from sidestep.domain.states import Role
from sidestep.store.accounts import Accounts

token_app = typer.Typer(help="API tokens for the JSON API under /api/v1.", no_args_is_help=True)


def init(
    workspace: str = typer.Option(..., "--workspace", "-w", prompt=True, help="Slug, e.g. acme."),
    name: str = typer.Option("", help="Display name; defaults to the slug."),
    email: str = typer.Option(..., prompt="Owner email", help="The first owner's address."),
    password: str = typer.Option(
        ..., prompt=True, hide_input=True, confirmation_prompt=True,
        envvar="SIDESTEP_OWNER_PASSWORD", help="The owner's password (8+ characters).",
    ),
) -> None:
    """Create the database (if needed), a workspace, and its first owner."""

    async def main() -> None:
        async with opened_runtime() as rt:
            now = rt.clock.now()
            async with rt.db.session() as session:
                accounts = Accounts(session)
                ws = await accounts.create_workspace(slug=workspace, name=name or workspace, at=now)
                user = await accounts.user_by_email(email)
                if user is None:
                    user = await accounts.create_user(
                        email=email, password=password, display_name="", at=now
                    )
                await accounts.add_member(
                    workspace_id=ws.id, user_id=user.id, role=Role.OWNER, at=now
                )
        console.print(f"Workspace [bold]{workspace}[/bold] created; owner {email}.")
        console.print("Start Sidestep with [bold]sidestep serve[/bold].")

    run(main)


@token_app.command("create")
def token_create(
    email: str = typer.Argument(..., help="Whose token."),
    name: str = typer.Option("cli", help="A label to recognise the token by."),
) -> None:
    """Create an API token. It is shown once; only its hash is kept."""

    async def main() -> None:
        async with opened_runtime() as rt, rt.db.session() as session:
            accounts = Accounts(session)
            user = await accounts.user_by_email(email)
            if user is None:
                raise UsageError(f"no user {email}")
            token = await accounts.issue_api_token(user_id=user.id, name=name, at=rt.clock.now())
        console.print(token, highlight=False, soft_wrap=True)

    run(main)


@token_app.command("revoke")
def token_revoke(
    email: str = typer.Argument(..., help="Whose token."),
    prefix: str = typer.Argument(..., help="The token's first 8 characters."),
) -> None:
    """Revoke an API token by its prefix."""

    async def main() -> None:
        async with opened_runtime() as rt, rt.db.session() as session:
            accounts = Accounts(session)
            user = await accounts.user_by_email(email)
            if user is None:
                raise UsageError(f"no user {email}")
            if not await accounts.revoke_api_token(user_id=user.id, prefix=prefix,
                                                   at=rt.clock.now()):
                raise UsageError(f"{email} has no active token starting with {prefix!r}")
        console.print("Revoked.")

    run(main)
