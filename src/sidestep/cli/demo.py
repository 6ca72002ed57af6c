"""`sidestep demo`: a demo workspace on SQLite, its login printed, served on port 8000."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import typer

from sidestep.catalogue import default_catalogue
from sidestep.cli.common import console, run
from sidestep.cli.serve import Background, monitor_on, serve_all
from sidestep.clock import SystemClock
from sidestep.config import Settings
from sidestep.domain.states import Role
from sidestep.logs import configure_logging
from sidestep.runtime import Runtime
from sidestep.sim.server import Simulator
from sidestep.sim.world import SimWorld
from sidestep.store.accounts import Accounts
from sidestep.store.channels import Channels
from sidestep.store.posts import NewPost, Posts

DEMO_SLUG = "demo"
DEMO_EMAIL = "demo@sidestep.local"


@dataclass(frozen=True)
class DemoChannel:
    """A demo channel and the simulator account behind it. Data, not logic."""

    platform: str
    name: str
    handle: str
    audience: int
    credentials: dict[str, str] = field(default_factory=dict)
    # Which credential the simulator must accept, and for which account.
    sim_key_field: str = "access_token"  # noqa: S105 - a field name, not a secret


DEMO_CHANNELS = [
    DemoChannel("instagram", "Instagram", "@lumen.bakery", 48_000,
                {"access_token": "demo-instagram-token", "ig_user_id": "17841400000000001"}),
    DemoChannel("facebook", "Facebook Page", "LumenBakery", 21_000,
                {"access_token": "demo-facebook-page-token", "page_id": "100000000000001"}),
    DemoChannel("x", "X", "@lumenbakery", 9_500, {"access_token": "demo-x-token"}),
    DemoChannel("telegram", "Telegram channel", "@lumenbakery", 3_200,
                {"bot_token": "700001:demo-telegram-bot-token", "chat_id": "@lumenbakery"},
                sim_key_field="bot_token"),  # noqa: S106 - a field name
    DemoChannel("bluesky", "Bluesky", "lumenbakery.bsky.social", 2_100,
                {"identifier": "lumenbakery.bsky.social", "app_password": "demo-app-pass-word",
                 "service": "https://bsky.social"},
                sim_key_field="app_password"),  # noqa: S106 - a field name
    DemoChannel("mastodon", "Mastodon", "@lumen@mastodon.social", 1_400,
                {"access_token": "demo-mastodon-token",
                 "instance_url": "https://mastodon.social"}),
    DemoChannel("email", "Newsletter", "news@lumen.example", 12_000),
]


def demo(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port."),
    sim_control_port: int = typer.Option(8790, help="The simulator's control API port."),
) -> None:
    """Start Sidestep with a demo workspace (created on first start) whose channels talk to
    the built-in platform simulator, and print its login."""
    settings = Settings()
    configure_logging(settings.log_level)

    async def main() -> None:
        runtime = Runtime.from_settings(settings)
        await runtime.start()
        try:
            password = await prepare_demo(runtime)
            async with start_demo_simulator(control_port=sim_control_port) as sim:
                console.rule("Sidestep demo")
                console.print(f"Open [bold]http://{host}:{port}/[/bold] and log in as")
                console.print(f"  email:    [bold]{DEMO_EMAIL}[/bold]")
                console.print(f"  password: [bold]{password}[/bold]  (new at every start)")
                played = [key for key in sim.platforms if key in default_catalogue()]
                console.print(f"The platform simulator plays {len(played)} platforms; "
                              f"break one with "
                              f"[bold]sidestep sim fault instagram dns_servfail[/bold] "
                              f"(control API {sim.control_url}).")
                await serve_all(runtime, host=host, port=port, http=sim.client(),
                                background=[_demo_monitor(runtime, sim)],
                                # uvicorn's access log is process-wide: it would print every
                                # request the monitor makes to the in-process simulator.
                                access_log=False)
        finally:
            await runtime.close()

    run(main)


def _demo_monitor(runtime: Runtime, sim: Simulator) -> Background:
    """The monitor watching the simulator, so a fault set with `sidestep sim fault` shows on
    the status board and holds the posts due on that platform."""
    from sidestep.monitor.simulated import simulator_network

    return monitor_on(runtime, simulator_network(sim), list(sim.host_map()))


@asynccontextmanager
async def start_demo_simulator(*, control_port: int) -> AsyncIterator[Simulator]:
    """The simulator, with every demo channel's account known to it."""
    world = SimWorld(clock=SystemClock(), seed=2021)
    for channel in DEMO_CHANNELS:
        if channel.credentials:
            account = channel.credentials.get("identifier", channel.handle)
            world.grant_token(channel.platform, channel.credentials[channel.sim_key_field], account)
    try:
        sim = Simulator(world=world, control_port=control_port)
        await sim.start()
    except OSError:
        console.print(f"Port {control_port} is taken; the simulator's control API gets "
                      "another port (shown below).")
        sim = Simulator(world=world)
        await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


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
        for demo_channel in DEMO_CHANNELS:
            channel = await channels.add(
                platform=demo_channel.platform, name=demo_channel.name,
                handle=demo_channel.handle, audience_size=demo_channel.audience,
                credentials=demo_channel.credentials or None, at=now,
            )
            ids[demo_channel.platform] = channel.id
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
