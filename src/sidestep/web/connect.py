"""Connecting accounts from the dashboard: an owner's "Connect" button, the consent page, back.

POST /w/{slug}/channels/connect/{platform}    owner only; a form with the session's CSRF token
    Answers a page that sends the browser on to the platform's consent page, and seals the
    pending authorization (state, PKCE verifier, workspace, channel name, user, the session's
    token digest, expiry) with the vault (Fernet: encrypted and authenticated) into the
    `sidestep_oauth` cookie: HttpOnly, SameSite=Lax, Path=/oauth/callback, ten minutes,
    Secure when the public URL is https. Only the state and the S256 challenge leave Sidestep.
GET /oauth/callback/{platform}
    The platform's redirect. Accepted only in the browser session that started it, for the
    same user, still an owner, with the same state (constant-time), within ten minutes, and
    once: the cookie is deleted, and a state already used is refused (its digest is on the
    `channel.connected` event). The code is exchanged, the channel stored with its tokens
    encrypted (or, for an existing name, reconnected), and the browser sent to the channels
    page with a notice. Every refusal stores nothing.

Why the start is a POST with the CSRF token and not a GET: if the person granted the app
before, the platform may skip its consent screen and redirect straight back, so a cross-site
link to a GET start (SameSite=Lax still sends the session cookie on a top-level GET) could
connect or reconnect a channel without the owner meaning to. And why the POST answers a page
rather than a 303: the CSP's `form-action 'self'` also covers redirects that follow a form
submission, and Chromium would block a redirect to another origin. The callback must be a GET
(the platform redirects to it); the session-bound sealed cookie is its CSRF defence
(RFC 6749 §10.12).

The platforms' token endpoints are called with `make_client(app.state.oauth_transport)`;
`install(app, transport=...)` sets it (tests pass the simulator's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, FastAPI, Form, HTTPException, Request, status
from fastapi.responses import RedirectResponse, Response

from sidestep.channels.errors import AuthExpired, PublishError, Rejected
from sidestep.channels.http import make_client
from sidestep.channels.oauth import (
    PENDING_TTL_S,
    AuthorizationDenied,
    OAuthAppSettings,
    OAuthFlowError,
    PendingAuthorization,
    StateMismatch,
    denial,
    exchange_code,
    start_authorization,
)
from sidestep.channels.oauth_providers import Provider, default_providers, env_var_names
from sidestep.channels.token_refresh import save_connection, state_already_used
from sidestep.domain.states import Role
from sidestep.runtime import Runtime
from sidestep.security import same
from sidestep.store.accounts import Accounts
from sidestep.store.channels import ChannelError, Channels
from sidestep.vault import VaultError
from sidestep.web.deps import AsOwner, CurrentUser, Principal, UnitOfWork, get_runtime
from sidestep.web.errors import render_error
from sidestep.web.views import render

router = APIRouter(include_in_schema=False)

PENDING_COOKIE = "sidestep_oauth"
CALLBACK_PREFIX = "/oauth/callback"


def install(app: FastAPI, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
    """Mount the routes, offer `oauth_connect_choices()` to the templates, and set the
    transport for calls to the platforms (None: the real network)."""
    app.include_router(router)
    app.state.oauth_transport = transport
    app.state.templates.env.globals["oauth_connect_choices"] = connect_choices


def connect_choices() -> list[dict[str, Any]]:
    """One entry per OAuth platform for the channels page: key, name, whether Sidestep has an
    app for it, and the variable to set when it has not."""
    apps = OAuthAppSettings()
    return [{"key": p.key, "name": p.name, "configured": apps.configured(p.key),
             "env": env_var_names(p.key)[0]} for p in default_providers().all()]


def callback_uri(runtime: Runtime, platform: str) -> str:
    """The redirect URI to register with each platform's app."""
    return f"{runtime.settings.public_url}{CALLBACK_PREFIX}/{platform}"


@dataclass(frozen=True, slots=True)
class _Flow:
    pending: PendingAuthorization
    workspace_id: int
    slug: str
    name: str
    user_id: int
    session_digest: str


@router.post("/w/{slug}/channels/connect/{platform}")
async def start_connect(
    request: Request, platform: str, access: AsOwner,
    name: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """A page that forwards the browser to `platform`'s consent page; sets the sealed cookie."""
    runtime = get_runtime(request)
    provider = _provider(platform)
    web_session = access.principal.session
    if web_session is None:
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            "accounts are connected from the dashboard, signed in with a browser")
    try:
        app = OAuthAppSettings().app(platform)
    except OAuthFlowError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    channel_name = name.strip() or provider.name
    channels = Channels(access.session, workspace_id=access.workspace.id, vault=runtime.vault)
    taken = await channels.by_name(channel_name)
    if taken is not None and taken.platform != platform:
        raise HTTPException(status.HTTP_400_BAD_REQUEST,
                            f"the channel {channel_name!r} is a {taken.platform} channel; "
                            "choose another name")
    url, pending = start_authorization(platform, redirect_uri=callback_uri(runtime, platform),
                                       client_id=app.client_id, now=runtime.clock.now())
    sealed = runtime.vault.encrypt({
        **pending.to_fields(), "workspace_id": str(access.workspace.id),
        "slug": access.workspace.slug, "name": channel_name,
        "user_id": str(access.principal.user.id), "session": web_session.token_hash,
    })
    response = render(request, "connect_redirect.html", {"url": url, "provider": provider},
                      headers={"Cache-Control": "no-store"})
    response.set_cookie(PENDING_COOKIE, sealed.decode("ascii"), max_age=PENDING_TTL_S,
                        path=CALLBACK_PREFIX, secure=runtime.settings.cookies_secure,
                        httponly=True, samesite="lax")
    return response


@router.get(CALLBACK_PREFIX + "/{platform}")
async def finish_connect(
    request: Request, platform: str, principal: CurrentUser, session: UnitOfWork,
) -> Response:
    """The platform's redirect: check, exchange, store; 303 to the channels page."""
    runtime = get_runtime(request)
    now = runtime.clock.now()
    query = dict(request.query_params)
    try:
        flow = _open(runtime, request.cookies.get(PENDING_COOKIE), platform, principal)
        flow.pending.check(state=query.get("state", ""), now=now)
        if (refused := denial(query)) is not None:
            raise refused
        role = await Accounts(session).role_of(user_id=principal.user.id,
                                               workspace_id=flow.workspace_id)
        if role is None or not role.allows(Role.OWNER):
            return _forget(render_error(request, 403, "Only an owner of the workspace can "
                                        "connect accounts."), runtime)
        if await state_already_used(session, workspace_id=flow.workspace_id,
                                    state=flow.pending.state, now=now):
            raise StateMismatch("this answer from the consent page was used already; "
                                "nothing was stored")
        async with make_client(getattr(request.app.state, "oauth_transport", None)) as client:
            tokens = await exchange_code(client, flow.pending, code=query.get("code", ""),
                                         state=query.get("state", ""),
                                         app=OAuthAppSettings().app(platform), now=now)
        await save_connection(
            Channels(session, workspace_id=flow.workspace_id, vault=runtime.vault),
            platform=platform, name=flow.name, tokens=tokens, at=now, state=flow.pending.state)
    except AuthorizationDenied:
        return _forget(RedirectResponse(f"/w/{flow.slug}/channels?declined={platform}", 303),
                       runtime)
    except (OAuthFlowError, ChannelError, AuthExpired, Rejected) as exc:
        return _forget(render_error(request, 400, _sentence(exc)), runtime)
    except PublishError as exc:
        return _forget(render_error(request, 503, f"{_sentence(exc)} Start again in a moment."),
                       runtime)
    return _forget(RedirectResponse(f"/w/{flow.slug}/channels?connected={platform}", 303),
                   runtime)


def _provider(platform: str) -> Provider:
    try:
        return default_providers().get(platform)
    except OAuthFlowError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such platform to connect") from None


def _open(runtime: Runtime, sealed: str | None, platform: str, principal: Principal) -> _Flow:
    """The flow this browser started, or `StateMismatch` (no cookie, not ours, another
    platform, another user or session)."""
    stale = StateMismatch("this sign-in did not start here, or it took longer than "
                          f"{PENDING_TTL_S // 60} minutes; start again from the Channels page")
    if not sealed:
        raise stale
    try:
        fields = runtime.vault.decrypt(sealed.encode("ascii")).reveal()
        flow = _Flow(PendingAuthorization.from_fields(fields), int(fields["workspace_id"]),
                     fields["slug"], fields["name"], int(fields["user_id"]), fields["session"])
    except (VaultError, UnicodeEncodeError, OAuthFlowError, KeyError, ValueError):
        raise stale from None
    web_session = principal.session
    if flow.pending.platform != platform or flow.user_id != principal.user.id or \
            web_session is None or not same(flow.session_digest, web_session.token_hash):
        raise stale
    return flow


def _forget(response: Response, runtime: Runtime) -> Response:
    """The pending authorization is single-use: drop the cookie whatever the outcome."""
    response.delete_cookie(PENDING_COOKIE, path=CALLBACK_PREFIX,
                           secure=runtime.settings.cookies_secure, httponly=True, samesite="lax")
    return response


def _sentence(exc: Exception) -> str:
    text = str(exc)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")
