"""The `sidestep` command (Typer + Rich). A user's mistake is one line and exit code 2."""

from __future__ import annotations

import typer

from sidestep.cli import archive, campaign, dispatch, email, monitor, playbooks, report, site
from sidestep.cli.accounts import init, token_app
from sidestep.cli.channel_test import channel_test as channel_test_command
from sidestep.cli.connect import channel_connect
from sidestep.cli.content import channel_app, post_app
from sidestep.cli.demo import demo
from sidestep.cli.info import platforms, status, version
from sidestep.cli.serve import serve, worker

app = typer.Typer(
    name="sidestep",
    help="Keep your audience reachable when a social platform goes down.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(init)
app.command()(serve)
app.command()(worker)
app.command()(demo)
app.command()(platforms)
app.command()(status)
app.command()(version)
channel_app.command("test")(channel_test_command)
channel_app.command("connect")(channel_connect)
app.add_typer(channel_app, name="channel")
app.add_typer(post_app, name="post")
app.add_typer(token_app, name="token")
for area in (dispatch, monitor, email, campaign, archive, report, site, playbooks):
    area.register(app)


def _mount_simulator() -> None:
    from sidestep.sim.cli import sim_app

    app.add_typer(sim_app, name="sim", help="The built-in platform simulator.")


try:
    _mount_simulator()
except ImportError:  # the simulator's CLI is optional while it is being built
    pass


def main() -> None:
    app()
