"""`sidestep serve` and `sidestep worker`: the web app, the dispatch workers, or both.

`--role web` serves the dashboard and API; `--role worker` runs a dispatch worker
(`sidestep.dispatch.process`); `--role all` (the default, the embedded setup) runs both in
one process, where a post saved by the web app wakes the worker at once. Any number of
worker processes can share one PostgreSQL database; on SQLite, run one.

`--simulator URL` sends every platform call to the built-in simulator whose control API is at
URL (`sidestep sim serve`, `sidestep demo`), for demos and tests; nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING

import httpx
import typer
import uvicorn

from sidestep.channels.http import make_client
from sidestep.channels.uploads import MediaHost
from sidestep.cli.common import UsageError, console, err_console, run
from sidestep.config import Settings
from sidestep.dispatch.process import WorkerOptions, WorkerProcess, WorkerStats, build_adapters
from sidestep.logs import configure_logging
from sidestep.runtime import Runtime

if TYPE_CHECKING:
    from sidestep.monitor.runner import Network

# Work that runs beside the web app and the worker until its event is set (the monitor).
Background = Callable[[asyncio.Event], Awaitable[None]]


class ServeRole(StrEnum):
    ALL = "all"
    WEB = "web"
    WORKER = "worker"


SimulatorOption = typer.Option(
    None, "--simulator", envvar="SIDESTEP_SIMULATOR",
    help="Send platform calls to the simulator whose control API is at this URL.")
BatchOption = typer.Option(20, min=1, max=500, help="Deliveries claimed per pass.")


def serve(
    host: str | None = typer.Option(None, help="Address to listen on (default from settings)."),
    port: int | None = typer.Option(None, help="Port (default from settings)."),
    role: ServeRole = typer.Option(ServeRole.ALL, help="Which parts this process runs."),
    simulator: str | None = SimulatorOption,
    batch: int = BatchOption,
    no_monitor: bool = typer.Option(
        False, "--no-monitor", help="With --role all: leave the platforms unwatched here "
        "(a separate `sidestep monitor run` watches them)."),
) -> None:
    """Serve the dashboard and API, run a dispatch worker and the monitor (--role all), or one
    of them; applies migrations first."""
    settings = Settings()
    configure_logging(settings.log_level)
    options = WorkerOptions(batch=batch)

    async def main() -> None:
        runtime = Runtime.from_settings(settings)
        await runtime.start()
        try:
            if role is ServeRole.WEB:
                await serve_runtime(runtime, host=host or settings.host,
                                    port=port or settings.port)
            elif role is ServeRole.WORKER:
                await run_worker(runtime, simulator=simulator, options=options)
            else:
                await serve_all(runtime, host=host or settings.host, port=port or settings.port,
                                simulator=simulator, options=options,
                                background=[] if no_monitor else [
                                    await monitor_work(runtime, simulator)])
        finally:
            await runtime.close()

    run(main)


def worker(simulator: str | None = SimulatorOption, batch: int = BatchOption) -> None:
    """Run one dispatch worker until SIGTERM or Ctrl-C (as `serve --role worker`)."""
    serve(host=None, port=None, role=ServeRole.WORKER, simulator=simulator, batch=batch,
          no_monitor=True)


async def serve_runtime(runtime: Runtime, *, host: str, port: int) -> None:
    """Run the web app for `runtime` until the process is told to stop."""
    server = uvicorn.Server(_web_config(runtime, host=host, port=port))
    console.print(f"Sidestep is serving on [bold]http://{host}:{port}[/bold] (Ctrl-C stops it).")
    await server.serve()


async def run_worker(runtime: Runtime, *, simulator: str | None = None,
                     options: WorkerOptions | None = None) -> None:
    """Run one dispatch worker for `runtime` until SIGTERM or Ctrl-C (a second one: at once)."""
    async with platform_client(simulator) as http:
        process = WorkerProcess(runtime.db, vault=runtime.vault, http=http, clock=runtime.clock,
                                adapters=build_adapters(http, clock=runtime.clock),
                                options=options,
                                media_host=MediaHost.from_settings(runtime.settings))
        process.install_signal_handlers()
        console.print(f"Worker {process.name} is running (Ctrl-C stops it after the sends "
                      "under way).")
        await _until_stopped(asyncio.create_task(process.run(), name="sidestep-worker"))


async def serve_all(runtime: Runtime, *, host: str, port: int, simulator: str | None = None,
                    options: WorkerOptions | None = None, http: httpx.AsyncClient | None = None,
                    background: Sequence[Background] = (), access_log: bool = True) -> None:
    """The web app, a worker and the `background` work (the monitor) in one process; one
    signal stops them all, the worker after the sends under way. `http` overrides the
    platform client (the demo's in-process simulator)."""
    async with _client(http, simulator) as client:
        process = WorkerProcess(runtime.db, vault=runtime.vault, http=client,
                                clock=runtime.clock,
                                adapters=build_adapters(client, clock=runtime.clock),
                                options=options,
                                media_host=MediaHost.from_settings(runtime.settings))
        server = _SignalsLeftToCaller(_web_config(runtime, host=host, port=port,
                                                  access_log=access_log))
        stop_background = asyncio.Event()

        def on_signal() -> None:
            server.force_exit = server.should_exit  # a second signal: stop at once
            server.should_exit = True
            process.request_stop()
            stop_background.set()

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        working = asyncio.create_task(process.run(), name="sidestep-worker")
        others = [asyncio.create_task(_logged(work(stop_background)), name="sidestep-background")
                  for work in background]
        watching = " and the monitor" if background else ""
        console.print(f"Sidestep is serving on [bold]http://{host}:{port}[/bold] with worker "
                      f"{process.name}{watching} (Ctrl-C stops them).")
        try:
            await server.serve()
        finally:
            stop_background.set()
            if not process.stopping:
                process.request_stop()
            await _until_stopped(working)
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)


async def monitor_work(runtime: Runtime, simulator: str | None) -> Background:
    """The monitor as background work: the internet's platforms, or the simulator's."""
    from sidestep.cli.monitor import simulator_network_at

    network, served = await simulator_network_at(simulator)
    return monitor_on(runtime, network, served)


def monitor_on(runtime: Runtime, network: Network | None,
               served_hosts: Sequence[str] | None) -> Background:
    """The monitor probing through `network` (None: the internet); closes its client."""
    from sidestep.monitor.runner import run_monitor

    async def work(stop: asyncio.Event) -> None:
        try:
            await run_monitor(runtime, stop=stop, network=network, served_hosts=served_hosts)
        finally:
            if network is not None:
                await network.client.aclose()

    return work


async def _logged(work: Awaitable[None]) -> None:
    """Background work that fails says so and leaves the web app and the worker running."""
    try:
        await work
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported; the rest of the process carries on
        err_console.print(f"[red]Background work stopped:[/red] {type(exc).__name__}: {exc}")


@asynccontextmanager
async def _client(http: httpx.AsyncClient | None,
                  simulator: str | None) -> AsyncIterator[httpx.AsyncClient]:
    if http is not None:
        yield http
        return
    async with platform_client(simulator) as client:
        yield client


async def _until_stopped(working: asyncio.Task[WorkerStats]) -> None:
    """Wait for the worker's task; a forced stop (second signal) is said, not raised."""
    try:
        await working
    except asyncio.CancelledError:
        if not working.cancelled():
            raise  # this task itself was cancelled, not the worker's
        err_console.print("Stopped at once: deliveries under way are left to reconciliation.")


@asynccontextmanager
async def platform_client(simulator: str | None) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP client adapters publish through: the internet, or the simulator at
    `simulator` (its control API URL). Raises UsageError when that simulator does not answer."""
    if simulator is None:
        async with make_client() as client:
            yield client
        return
    from sidestep.sim.transport import DnsResolver, SimTransport

    base = simulator.rstrip("/")
    try:
        async with httpx.AsyncClient(timeout=5) as control:
            answer = (await control.get(f"{base}/hosts")).raise_for_status().json()
    except (httpx.HTTPError, ValueError) as exc:
        raise UsageError(f"the simulator at {base} does not answer ({exc}); start it with "
                         "`sidestep sim serve`") from None
    if not answer.get("dns"):
        raise UsageError(f"the simulator at {base} runs without its DNS server")
    dns_ip, dns_port = answer["dns"]
    transport = SimTransport(resolver=DnsResolver(dns_ip, int(dns_port)),
                             http_port=int(answer["http_port"]))
    async with make_client(transport) as client:
        yield client


class _SignalsLeftToCaller(uvicorn.Server):
    """uvicorn, minus its own signal handling: `serve_all` stops web and worker together."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _web_config(runtime: Runtime, *, host: str, port: int,
                access_log: bool = True) -> uvicorn.Config:
    from sidestep.web.app import create_app

    return uvicorn.Config(
        create_app(runtime), host=host, port=port, log_level=runtime.settings.log_level,
        proxy_headers=False, server_header=False, access_log=access_log,
    )
