"""`sidestep demo`: a demo workspace on SQLite, its login printed, served on port 8000."""

from __future__ import annotations

import secrets
from datetime import timedelta

import typer

from sidestep.cli.common import console, run
from sidestep.cli.serve import serve_runtime
from sidestep.config import Settings
from sidestep.domain.states import Role
from sidestep.logs import configure_logging
from sidestep.runtime import Runtime
from sidestep.store.accounts import Accounts
from sidestep.store.channels import Channels
from sidestep.store.posts import NewPost, Posts

DEMO_SLUG = "demo"
DEMO_EMAIL = "demo@sidestep.local"
# The demo brand's channels: (platform, name, handle, audience). Data, not logic.
DEMO_CHANNELS = [
    ("instagram", "Instagram", "@lumen.bakery", 48_000),
    ("facebook", "Facebook Page", "LumenBakery", 21_000),
    ("x", "X", "@lumenbakery", 9_500),
    ("telegram", "Telegram channel", "@lumenbakery", 3_200),
    ("bluesky", "Bluesky", "lumenbakery.bsky.social", 2_100),
    ("mastodon", "Mastodon", "@lumen@mastodon.social", 1_400),
    ("email", "Newsletter", "news@lumen.example", 12_000),
]


def demo(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port."),
) -> None:
    """Start Sidestep with a demo workspace (created on first start) and print its login."""
    settings = Settings()
    configure_logging(settings.log_level)

    async def main() -> None:
        runtime = Runtime.from_settings(settings)
        await runtime.start()
        try:
            password = await prepare_demo(runtime)
            console.rule("Sidestep demo")
            console.print(f"Open [bold]http://{host}:{port}/[/bold] and log in as")
            console.print(f"  email:    [bold]{DEMO_EMAIL}[/bold]")
            console.print(f"  password: [bold]{password}[/bold]  (new at every start)")
            await serve_runtime(runtime, host=host, port=port)
        finally:
            await runtime.close()

    run(main)


async def prepare_demo(runtime: Runtime) -> str:
    """Create the demo workspace on first use; reset the demo password; return it."""
    password = secrets.token_urlsafe(9)
    now = runtime.clock.now()
    async with runtime.db.session() as session:
        accounts = Accounts(session)
        user = await accounts.user_by_email(DEMO_EMAIL)
        if user is None:
            user = await accounts.create_user(
                email=DEMO_EMAIL, password=password, display_name="Demo owner", at=now
            )
        else:
            await accounts.set_password(user, password)
        workspace = await accounts.workspace_by_slug(DEMO_SLUG)
        if workspace is not None:
            return password
        workspace = await accounts.create_workspace(slug=DEMO_SLUG, name="Lumen Bakery", at=now)
        await accounts.add_member(workspace_id=workspace.id, user_id=user.id, role=Role.OWNER,
                                  at=now)
        channels = Channels(session, workspace_id=workspace.id, vault=runtime.vault)
        ids = {}
        for platform, name, handle, audience in DEMO_CHANNELS:
            channel = await channels.add(
                platform=platform, name=name, handle=handle, audience_size=audience,
                credentials={"access_token": f"sim-{platform}-{secrets.token_hex(8)}"}, at=now,
            )
            ids[platform] = channel.id
        posts = Posts(session, workspace_id=workspace.id)
        await posts.create(
            NewPost(body="Fresh sourdough at 8 tomorrow — first 20 loaves half price!",
                    due_at=now + timedelta(hours=2),
                    channel_ids=[ids["instagram"], ids["facebook"], ids["x"]],
                    fallback_channel_ids=[ids["telegram"], ids["bluesky"], ids["email"]]),
            created_by=user.id, at=now,
        )
        await posts.create(
            NewPost(body="Our winter menu is here: cardamom buns are back.",
                    due_at=now + timedelta(days=1),
                    channel_ids=[ids["instagram"], ids["mastodon"], ids["bluesky"]]),
            created_by=user.id, at=now,
        )
    return password
