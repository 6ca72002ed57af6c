"""`sidestep serve`: the web app (and, as they land, the monitor and the workers)."""

from __future__ import annotations

from enum import StrEnum

import typer
import uvicorn

from sidestep.cli.common import console, run
from sidestep.config import Settings
from sidestep.logs import configure_logging
from sidestep.runtime import Runtime


class ServeRole(StrEnum):
    ALL = "all"
    WEB = "web"


def serve(
    host: str | None = typer.Option(None, help="Address to listen on (default from settings)."),
    port: int | None = typer.Option(None, help="Port (default from settings)."),
    role: ServeRole = typer.Option(ServeRole.ALL, help="Which parts this process runs."),
) -> None:
    """Serve the dashboard and API on SQLite or PostgreSQL, applying migrations first."""
    settings = Settings()
    configure_logging(settings.log_level)

    async def main() -> None:
        runtime = Runtime.from_settings(settings)
        await runtime.start()
        try:
            await serve_runtime(runtime, host=host or settings.host, port=port or settings.port)
        finally:
            await runtime.close()

    run(main)


async def serve_runtime(runtime: Runtime, *, host: str, port: int) -> None:
    """Run the web app for `runtime` until the process is told to stop."""
    from sidestep.web.app import create_app

    config = uvicorn.Config(
        create_app(runtime), host=host, port=port, log_level=runtime.settings.log_level,
        proxy_headers=False, server_header=False,
    )
    server = uvicorn.Server(config)
    console.print(f"Sidestep is serving on [bold]http://{host}:{port}[/bold] (Ctrl-C stops it).")
    await server.serve()


