"""`sidestep channel connect <platform> [name]`: connect an account through its consent page.

The command runs the native-app flow of RFC 8252: it listens on
`http://127.0.0.1:<port>/callback` (a free port, or `--redirect-port`), prints the platform's
consent URL and opens a browser on it (unless `--no-browser`), waits up to five minutes for the
one redirect back, checks its state, exchanges the code (with the PKCE verifier, where the
platform takes one) and stores the channel with its tokens encrypted. Connecting a name that
already exists on the same platform reconnects that channel.

The redirect URI must be registered with the platform's app. Google (Desktop clients) and
TikTok (Desktop product) accept any loopback port; the others need the exact URI, so pin the
port with `--redirect-port` and register `http://127.0.0.1:<port>/callback`.

Mistakes are one line and exit code 2: an unknown platform, one that does not connect through
OAuth, a missing `SIDESTEP_OAUTH_<PLATFORM>_CLIENT_ID`/`_CLIENT_SECRET`, the five minutes
running out, a callback whose state does not match, or the platform refusing the code.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import webbrowser
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import parse_qsl, urlsplit

import httpx
import typer

from sidestep.channels.errors import PublishError
from sidestep.channels.http import make_client
from sidestep.channels.oauth import (
    OAuthApp,
    OAuthAppSettings,
    OAuthFlowError,
    denial,
    exchange_code,
    start_authorization,
)
from sidestep.channels.oauth_providers import OAuthProviders, default_providers
from sidestep.channels.token_refresh import save_connection
from sidestep.cli.common import (
    UsageError,
    WorkspaceOption,
    console,
    fail,
    opened_runtime,
    pick_workspace,
    run,
    user_errors,
)
from sidestep.runtime import Runtime
from sidestep.store.accounts import Accounts
from sidestep.store.channels import Channels

CALLBACK_PATH = "/callback"
WAIT_S = 300.0
_MAX_REQUEST_BYTES = 16 * 1024
_PAGE = ("<!doctype html><html lang=en><meta charset=utf-8><title>Sidestep</title>"
         "<h1>{title}</h1><p>{text}</p></html>")


class CallbackTimeout(OAuthFlowError):
    """No redirect came back to the loopback listener in time."""


@dataclass(frozen=True, slots=True)
class Connected:
    channel_id: int
    name: str
    workspace: str
    reconnected: bool


class LoopbackReceiver:
    """A one-shot HTTP listener on 127.0.0.1 for the consent page's redirect (RFC 8252 §7.3).

    `wait()` returns the query of the first `GET /callback`; later callbacks get 409 and any
    other path 404. Use as `async with LoopbackReceiver(port=0) as receiver:`.
    """

    def __init__(self, *, port: int = 0) -> None:
        self._port = port
        self._server: asyncio.Server | None = None
        self._received: asyncio.Future[dict[str, str]] | None = None

    async def __aenter__(self) -> LoopbackReceiver:
        self._received = asyncio.get_running_loop().create_future()
        try:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self._port)
        except OSError as exc:
            raise UsageError(f"cannot listen on 127.0.0.1:{self._port} ({exc.strerror}); "
                             "choose another --redirect-port") from exc
        self._port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self._port}{CALLBACK_PATH}"

    async def wait(self, timeout_s: float) -> dict[str, str]:
        """The callback's query; raises `CallbackTimeout` after `timeout_s`."""
        assert self._received is not None, "use LoopbackReceiver in `async with`"
        try:
            return await asyncio.wait_for(asyncio.shield(self._received), timeout_s)
        except TimeoutError:
            raise CallbackTimeout(f"no answer from the consent page within {timeout_s:.0f} s; "
                                  "nothing was stored, run the command again") from None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            writer.close()
            return
        method, _, rest = head[:_MAX_REQUEST_BYTES].decode("latin-1").partition(" ")
        target = rest.partition(" ")[0]
        parts = urlsplit(target)
        if method != "GET" or parts.path != CALLBACK_PATH:
            await _answer(writer, 404, "Not found", "This is Sidestep's sign-in listener.")
        elif self._received is None or self._received.done():
            await _answer(writer, 409, "Already answered", "Return to the terminal.")
        else:
            self._received.set_result(dict(parse_qsl(parts.query)))
            await _answer(writer, 200, "Sidestep received the answer",
                          "You can close this tab and return to the terminal.")


async def _answer(writer: asyncio.StreamWriter, status: int, title: str, text: str) -> None:
    body = _PAGE.format(title=title, text=text).encode()
    writer.write(f"HTTP/1.1 {status} {title}\r\nContent-Type: text/html; charset=utf-8\r\n"
                 f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    writer.close()


async def connect_via_loopback(
    *, runtime: Runtime, client: httpx.AsyncClient, platform: str, app: OAuthApp,
    show: Callable[[str], Awaitable[None] | None], name: str | None = None,
    workspace: str | None = None, redirect_port: int = 0, timeout_s: float = WAIT_S,
    providers: OAuthProviders | None = None,
) -> Connected:
    """Run the whole flow; `show(url)` puts the consent URL before the person.

    Raises `OAuthFlowError` (timeout, state mismatch, denial), the taxonomy's errors for the
    platform's refusals, and the store's errors (`UsageError` for a missing workspace,
    `ChannelError` for a name taken by another platform). Nothing is stored on failure.
    """
    provider = (providers or default_providers()).get(platform)
    async with runtime.db.session() as session:
        ws = await pick_workspace(Accounts(session), workspace)
        slug, workspace_id = ws.slug, ws.id
    async with LoopbackReceiver(port=redirect_port) as receiver:
        url, pending = start_authorization(platform, redirect_uri=receiver.redirect_uri,
                                           client_id=app.client_id, now=runtime.clock.now(),
                                           providers=providers)
        shown = show(url)
        if inspect.isawaitable(shown):
            await shown
        query = await receiver.wait(timeout_s)
    if (refused := denial(query)) is not None:
        raise refused
    tokens = await exchange_code(client, pending, code=query.get("code", ""),
                                 state=query.get("state", ""), app=app,
                                 now=runtime.clock.now(), providers=providers)
    async with runtime.db.session() as session:
        channels = Channels(session, workspace_id=workspace_id, vault=runtime.vault)
        channel, reconnected = await save_connection(
            channels, platform=platform, name=name or provider.name, tokens=tokens,
            at=runtime.clock.now(), state=pending.state)
        channel_id, channel_name = channel.id, channel.name
    return Connected(channel_id, channel_name, slug, reconnected)


def oauth_platform(platform: str) -> str:
    """`platform` if it connects through OAuth consent; else a `UsageError` saying how."""
    from sidestep.catalogue import default_catalogue

    entry = default_catalogue().get(platform)  # CatalogueError names the known platforms
    if platform in default_providers():
        return platform
    if entry.auth != "oauth2":
        raise UsageError(f"{platform} does not connect through a consent page (it uses "
                         f"{entry.auth}); add it with `sidestep channel add {platform} <name>`")
    raise UsageError(f"connecting {platform} through its consent page is not supported yet; "
                     f"add it with `sidestep channel add {platform} <name>` and its tokens")


@contextlib.contextmanager
def _flow_errors() -> Iterator[None]:
    try:
        yield
    except (OAuthFlowError, PublishError) as exc:
        fail(str(exc))


def channel_connect(
    platform: str = typer.Argument(..., help="Platform key, e.g. x, youtube, linkedin."),
    name: str | None = typer.Argument(None, help="Channel name (default: the platform's)."),
    workspace: str | None = WorkspaceOption,
    redirect_port: int = typer.Option(
        0, "--redirect-port", min=0, max=65535,
        help="Loopback port for the redirect (0: any free one)."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Only print the URL."),
) -> None:
    """Connect an account through the platform's consent page (OAuth 2 with PKCE)."""
    with user_errors(), _flow_errors():
        oauth_platform(platform)
        app = OAuthAppSettings().app(platform)

    async def show(url: str) -> None:
        console.print("Open this address to allow Sidestep to post for you "
                      "(waiting up to 5 minutes):", highlight=False)
        console.print(url, highlight=False, markup=False, soft_wrap=True)
        if not no_browser:
            await asyncio.to_thread(webbrowser.open, url)

    async def main() -> Connected:
        async with opened_runtime() as rt, make_client() as client:
            return await connect_via_loopback(
                runtime=rt, client=client, platform=platform, app=app, show=show, name=name,
                workspace=workspace, redirect_port=redirect_port)

    with _flow_errors():
        done = run(main)
    verb = "reconnected" if done.reconnected else "connected"
    console.print(f"Channel {done.channel_id} [bold]{done.name}[/bold] ({platform}) {verb} "
                  f"in workspace {done.workspace}.")
