"""A simulated OAuth 2 authorization server per world: consent page, codes, tokens, renewal.

The mechanics are written once here; each profile mounts them on its own hosts
(`oauth_routes(world, "x", token=("/2/oauth2/token",))`), and `oauth_hosts.py` serves the
consent and token hosts no platform profile owns. What differs per platform is a `ServerSpec`:
the simulator's own reading of each provider's documentation, kept apart from
`channels/oauth_providers.toml` so that the simulator cannot agree with our own mistakes.

Consent: `GET <authorize>` checks the client, the redirect URI, the PKCE challenge (S256 only)
and answers a small HTML page; tests (playing the browser) add `sim_consent=approve` (or
`deny`) to be redirected at once, and `sim_account=<name>` to choose whose account it is.

Tokens: codes live ten minutes, are bound to client, redirect URI and challenge, and are
one-time (replaying one revokes what it granted, RFC 6749 §4.1.2). The client authenticates as
its spec says (HTTP Basic or body); PKCE verifiers are checked (RFC 7636 §4.6). Refresh
tokens may rotate; reusing a rotated one revokes its whole family. Meta's token swaps
(`fb_exchange_token`, `th_/ig_exchange_token`, `th_/ig_refresh_token`) work as documented.
Every access token issued is granted on the world (`world.grant_token`), so the platform's
simulated API accepts it at once.

Test helpers: `authorization_server(world, platform)` gives the server; `register_client`,
`revoke_account`, and `token_calls` (the grant types received, in order).
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from sidestep.sim.world import SimWorld

DEMO_CLIENT_ID = "sidestep-demo"
DEMO_CLIENT_SECRET = "sidestep-demo-secret"  # noqa: S105 - a simulator's public demo app
CODE_LIFETIME_S = 600
META_REFRESH_MIN_AGE_S = 86_400  # Threads and Instagram refresh only tokens a day old
Dialect = Literal["rfc6749", "x", "tiktok", "meta", "threads", "instagram"]


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """How one provider's authorization server behaves (from its documentation)."""

    platform: str
    dialect: Dialect
    client_auth: Literal["basic", "body"]
    pkce: Literal["required", "optional"]
    access_lifetime_s: int
    client_id_param: str = "client_id"
    refresh_lifetime_s: int | None = None  # None: refresh tokens do not expire by age
    issues_refresh: bool = True
    rotates: bool = False
    refresh_scope: str | None = None  # X grants refresh tokens only with offline.access
    needs_offline_access: bool = False  # Google: only with access_type=offline
    short_lifetime_s: int | None = None  # Meta: the code's token, before the long-lived swap
    exchange_grant: str | None = None
    refresh_grant: str | None = None


SPECS = {spec.platform: spec for spec in (
    ServerSpec("facebook", "meta", "body", "optional", 5_184_000, issues_refresh=False,
               short_lifetime_s=7_200, exchange_grant="fb_exchange_token"),
    ServerSpec("instagram", "instagram", "body", "optional", 5_184_000, issues_refresh=False,
               short_lifetime_s=3_600, exchange_grant="ig_exchange_token",
               refresh_grant="ig_refresh_token"),
    ServerSpec("threads", "threads", "body", "optional", 5_184_000, issues_refresh=False,
               short_lifetime_s=3_600, exchange_grant="th_exchange_token",
               refresh_grant="th_refresh_token"),
    ServerSpec("x", "x", "basic", "required", 7_200, rotates=True, refresh_scope="offline.access"),
    ServerSpec("linkedin", "rfc6749", "body", "optional", 5_184_000,
               refresh_lifetime_s=31_536_000),
    ServerSpec("pinterest", "rfc6749", "basic", "optional", 2_592_000,
               refresh_lifetime_s=5_184_000, rotates=True),
    ServerSpec("tiktok", "tiktok", "body", "optional", 7_200, client_id_param="client_key",
               refresh_lifetime_s=15_552_000, rotates=True),
    ServerSpec("youtube", "rfc6749", "body", "optional", 3_599, needs_offline_access=True),
)}


class OAuthProblem(Exception):
    """A refusal; `kind` is the RFC 6749 §5.2 code, rendered in the provider's words."""

    def __init__(self, kind: str, message: str, *, status: int = 400, meta_code: int = 100,
                 meta_subcode: int | None = None) -> None:
        super().__init__(message)
        self.kind, self.message, self.status = kind, message, status
        self.meta_code, self.meta_subcode = meta_code, meta_subcode


@dataclass(slots=True)
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str | None
    scopes: tuple[str, ...]
    account: str
    offline: bool
    expires_at: datetime
    used: bool = False
    family: str = field(default_factory=lambda: secrets.token_hex(8))


@dataclass(slots=True)
class _Token:
    client_id: str
    account: str
    scopes: tuple[str, ...]
    family: str
    issued_at: datetime
    expires_at: datetime | None
    revoked: bool = False


class AuthorizationServer:
    """One provider's authorization server in one simulated world."""

    def __init__(self, world: SimWorld, spec: ServerSpec) -> None:
        self.world, self.spec = world, spec
        self.clients: dict[str, tuple[str, tuple[str, ...] | None]] = {
            DEMO_CLIENT_ID: (DEMO_CLIENT_SECRET, None)}
        self.codes: dict[str, _Code] = {}
        self.access: dict[str, _Token] = {}
        self.refresh: dict[str, _Token] = {}
        self.token_calls: list[str] = []

    def register_client(self, client_id: str, client_secret: str, *,
                        redirect_uris: Sequence[str] | None = None) -> None:
        """Register an app; `redirect_uris` None accepts any absolute redirect URI."""
        self.clients[client_id] = (client_secret, tuple(redirect_uris) if redirect_uris else None)

    def revoke_account(self, account: str) -> int:
        """Revoke every token of `account` (the person removed the app); how many."""
        count = 0
        for token, grant in [*self.access.items(), *self.refresh.items()]:
            if grant.account == account and not grant.revoked:
                grant.revoked, count = True, count + 1
                self.world.tokens.get(self.spec.platform, {}).pop(token, None)
        return count

    # -- consent ----------------------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        query = request.query_params
        client_id, redirect_uri = query.get(self.spec.client_id_param, ""), query.get(
            "redirect_uri", "")
        registered = self.clients.get(client_id)
        if registered is None:
            return _page(400, "Invalid client", "This app is not registered.")
        allowed = registered[1]
        parts = urlsplit(redirect_uri)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment or (
                allowed is not None and redirect_uri not in allowed):
            return _page(400, "Invalid redirect_uri", "The redirect URI is not registered.")
        state = query.get("state")
        problem = self._consent_problem(query)
        if problem is not None:
            return _redirect(redirect_uri, {"error": "invalid_request",
                                            "error_description": problem, "state": state})
        consent = query.get("sim_consent")
        if consent == "deny":
            return _redirect(redirect_uri, {"error": "access_denied", "error_description":
                                            "The user denied the request.", "state": state})
        if consent != "approve":
            return self._consent_page(request)
        code = "sim-code-" + secrets.token_urlsafe(24)
        self.codes[code] = _Code(
            client_id=client_id, redirect_uri=redirect_uri, challenge=query.get("code_challenge"),
            scopes=_split(query.get("scope", "")),
            account=query.get("sim_account") or f"{self.spec.platform}-user",
            offline=query.get("access_type") == "offline",
            expires_at=self.world.clock.now() + timedelta(seconds=CODE_LIFETIME_S))
        return _redirect(redirect_uri, {"code": code, "state": state})

    def _consent_problem(self, query: Any) -> str | None:
        if query.get("response_type") != "code":
            return "response_type must be code"
        challenge, method = query.get("code_challenge"), query.get("code_challenge_method")
        if challenge is None and self.spec.pkce == "required":
            return "code_challenge is required"
        if challenge is not None and (method != "S256" or not re.fullmatch(
                r"[A-Za-z0-9_-]{43}", challenge)):
            return "code_challenge must be an S256 challenge"
        return None

    def _consent_page(self, request: Request) -> Response:
        base = str(request.url.replace(scheme="https"))
        links = "".join(f'<p><a href="{html.escape(base + "&sim_consent=" + choice)}">'
                        f"{label}</a></p>" for choice, label in (("approve", "Allow"),
                                                                 ("deny", "Cancel")))
        return _page(200, f"Allow access to your {self.spec.platform} account?", links,
                     raw=True)

    # -- tokens -----------------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        params: dict[str, str] = dict(request.query_params)
        if request.method == "POST":
            params.update({k: v for k, v in (await request.form()).items()
                           if isinstance(v, str)})
        grant_type = params.get("grant_type") or (  # Facebook's code exchange names none
            "authorization_code" if self.spec.dialect == "meta" and "code" in params else "")
        self.token_calls.append(grant_type)
        now = self.world.clock.now()
        try:
            if grant_type == "authorization_code":
                body = self._code_grant(request, params, now)
            elif grant_type == "refresh_token" and self.spec.issues_refresh:
                body = self._refresh_grant(request, params, now)
            elif grant_type and grant_type in (self.spec.exchange_grant, self.spec.refresh_grant):
                body = self._swap(params, now, refresh=grant_type == self.spec.refresh_grant)
            else:
                raise OAuthProblem("unsupported_grant_type", f"grant_type {grant_type!r}")
        except OAuthProblem as problem:
            return self._error(problem, legacy=request.url.hostname == "api.instagram.com")
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    def _client(self, request: Request, params: dict[str, str]) -> str:
        if self.spec.client_auth == "basic":
            scheme, _, value = request.headers.get("authorization", "").partition(" ")
            try:
                pair = base64.b64decode(value, validate=True).decode() \
                    if scheme.lower() == "basic" else ""
            except ValueError:
                pair = ""
            client_id, _, secret = pair.partition(":")
        else:
            client_id = params.get(self.spec.client_id_param, "")
            secret = params.get("client_secret", "")
        registered = self.clients.get(client_id)
        if registered is None or not secrets.compare_digest(registered[0], secret):
            raise OAuthProblem("invalid_client", "Client authentication failed.", status=401,
                               meta_code=101)
        return client_id

    def _code_grant(self, request: Request, params: dict[str, str], now: datetime
                    ) -> dict[str, Any]:
        client_id = self._client(request, params)
        code = self.codes.get(params.get("code", ""))
        if code is None or code.client_id != client_id:
            raise OAuthProblem("invalid_grant", "Invalid authorization code.")
        if code.used:  # RFC 6749 §4.1.2: revoke what the code granted
            for grant in [*self.access.values(), *self.refresh.values()]:
                grant.revoked = grant.revoked or grant.family == code.family
            raise OAuthProblem("invalid_grant", "This authorization code has been used.",
                               meta_subcode=36009)
        code.used = True
        if now >= code.expires_at:
            raise OAuthProblem("invalid_grant", "This authorization code has expired.",
                               meta_subcode=36007)
        if params.get("redirect_uri") != code.redirect_uri:
            raise OAuthProblem("invalid_grant", "redirect_uri does not match the authorization.")
        if code.challenge is not None:
            verifier = params.get("code_verifier", "")
            digest = hashlib.sha256(verifier.encode()).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != code.challenge:
                raise OAuthProblem("invalid_grant", "Code verifier or code challenge is invalid.")
        short = self.spec.short_lifetime_s
        access, lifetime = self._issue_access(code, now, short or self.spec.access_lifetime_s)
        with_refresh = self.spec.issues_refresh and (
            self.spec.refresh_scope is None or self.spec.refresh_scope in code.scopes) and (
            code.offline or not self.spec.needs_offline_access)
        refresh = self._issue_refresh(code, now) if with_refresh else None
        return self._answer(access, lifetime, code.scopes, refresh, code.account)

    def _refresh_grant(self, request: Request, params: dict[str, str], now: datetime
                       ) -> dict[str, Any]:
        client_id = self._client(request, params)
        old = params.get("refresh_token", "")
        grant = self.refresh.get(old)
        if grant is None or grant.client_id != client_id:
            raise OAuthProblem("invalid_grant", "Value passed for the token was invalid.")
        if grant.revoked:  # a rotated token replayed: kill the family (RFC 9700 §4.14.2)
            for other in [*self.access.values(), *self.refresh.values()]:
                other.revoked = other.revoked or other.family == grant.family
            raise OAuthProblem("invalid_grant", "Value passed for the token was invalid.")
        if grant.expires_at is not None and now >= grant.expires_at:
            raise OAuthProblem("invalid_grant", "The refresh token has expired.")
        access, lifetime = self._issue_access(grant, now, self.spec.access_lifetime_s)
        new_refresh = None
        if self.spec.rotates:
            grant.revoked = True
            new_refresh = self._issue_refresh(grant, now)
        elif not self.spec.needs_offline_access:
            new_refresh = old  # LinkedIn answers it again; Google answers none
        return self._answer(access, lifetime, grant.scopes, new_refresh, grant.account)

    def _swap(self, params: dict[str, str], now: datetime, *, refresh: bool) -> dict[str, Any]:
        token = params.get("fb_exchange_token") or params.get("access_token", "")
        grant = self.access.get(token)
        if grant is None or grant.revoked or (grant.expires_at and now >= grant.expires_at):
            raise OAuthProblem("invalid_grant", "Error validating access token: the session "
                               "is invalid.", meta_code=190)
        if refresh:
            if (now - grant.issued_at).total_seconds() < META_REFRESH_MIN_AGE_S:
                raise OAuthProblem("invalid_request", "The token is less than 24 hours old.")
        else:
            secret = params.get("client_secret", "")
            client = params.get("client_id", grant.client_id)
            registered = self.clients.get(client)
            if client != grant.client_id or registered is None or \
                    not secrets.compare_digest(registered[0], secret):
                raise OAuthProblem("invalid_client", "Error validating client secret.",
                                   meta_code=101)
        access, lifetime = self._issue_access(grant, now, self.spec.access_lifetime_s)
        return {"access_token": access, "token_type": "bearer", "expires_in": lifetime}

    def _issue_access(self, source: _Code | _Token, now: datetime, lifetime_s: int
                      ) -> tuple[str, int]:
        token = f"sim-{self.spec.platform}-at-" + secrets.token_urlsafe(24)
        self.access[token] = _Token(source.client_id, source.account, source.scopes,
                                    source.family, now, now + timedelta(seconds=lifetime_s))
        self.world.grant_token(self.spec.platform, token, source.account)
        return token, lifetime_s

    def _issue_refresh(self, source: _Code | _Token, now: datetime) -> str:
        token = f"sim-{self.spec.platform}-rt-" + secrets.token_urlsafe(24)
        lifetime = self.spec.refresh_lifetime_s
        self.refresh[token] = _Token(source.client_id, source.account, source.scopes,
                                     source.family, now,
                                     now + timedelta(seconds=lifetime) if lifetime else None)
        return token

    def _answer(self, access: str, lifetime: int, scopes: tuple[str, ...], refresh: str | None,
                account: str) -> dict[str, Any]:
        dialect = self.spec.dialect
        if dialect == "threads":
            return {"access_token": access, "user_id": account}  # no expires_in: 1 h
        if dialect == "instagram":
            return {"data": [{"access_token": access, "user_id": account,
                              "permissions": ",".join(scopes)}]}
        if dialect == "meta":
            return {"access_token": access, "token_type": "bearer", "expires_in": lifetime}
        body: dict[str, Any] = {"access_token": access, "token_type": "bearer",
                                "expires_in": lifetime,
                                "scope": ("," if dialect == "tiktok" else " ").join(scopes)}
        if refresh is not None:
            body["refresh_token"] = refresh
            if self.spec.refresh_lifetime_s:
                body["refresh_expires_in" if dialect == "tiktok"
                     else "refresh_token_expires_in"] = self.spec.refresh_lifetime_s
        if dialect == "tiktok":
            body["open_id"] = account
        return body

    def _error(self, problem: OAuthProblem, *, legacy: bool) -> Response:
        dialect = self.spec.dialect
        if legacy:  # api.instagram.com's code exchange
            return JSONResponse({"error_type": "OAuthException", "code": 400,
                                 "error_message": problem.message}, status_code=400)
        if dialect in ("meta", "threads", "instagram"):
            error: dict[str, Any] = {"message": problem.message, "type": "OAuthException",
                                     "code": problem.meta_code,
                                     "fbtrace_id": "A" + secrets.token_urlsafe(16)}
            if problem.meta_subcode is not None:
                error["error_subcode"] = problem.meta_subcode
            return JSONResponse({"error": error}, status_code=400)
        kind = problem.kind
        if dialect == "x" and kind == "invalid_grant":
            kind = "invalid_request"  # X's word for a bad code or refresh token
        body = {"error": kind, "error_description": problem.message}
        if dialect == "tiktok":
            body["log_id"] = secrets.token_hex(12)
        return JSONResponse(body, status_code=problem.status)


_SERVERS: weakref.WeakKeyDictionary[SimWorld, dict[str, AuthorizationServer]] = \
    weakref.WeakKeyDictionary()


def authorization_server(world: SimWorld, platform: str) -> AuthorizationServer:
    """The world's authorization server for `platform` (KeyError for one without a spec)."""
    servers = _SERVERS.setdefault(world, {})
    if platform not in servers:
        servers[platform] = AuthorizationServer(world, SPECS[platform])
    return servers[platform]


def oauth_routes(world: SimWorld, platform: str, *, authorize: Sequence[str] = (),
                 token: Sequence[str] = ()) -> list[BaseRoute]:
    """Routes serving `platform`'s consent page at each `authorize` path and its token
    endpoint (code exchange, refresh, Meta's swaps; GET and POST) at each `token` path."""
    server = authorization_server(world, platform)
    return [*(Route(path, server.authorize, methods=["GET"]) for path in authorize),
            *(Route(path, server.token, methods=["GET", "POST"]) for path in token)]


def _split(scope: str) -> tuple[str, ...]:
    return tuple(s for s in re.split(r"[,\s]+", scope) if s)


def _redirect(uri: str, params: dict[str, str | None]) -> Response:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return RedirectResponse(f"{uri}{'&' if '?' in uri else '?'}{query}", status_code=302)


def _page(status: int, title: str, body: str, *, raw: bool = False) -> Response:
    content = body if raw else f"<p>{html.escape(body)}</p>"
    return HTMLResponse(f"<!DOCTYPE html><html><head><title>{html.escape(title)}</title></head>"
                        f"<body><h1>{html.escape(title)}</h1>{content}</body></html>",
                        status_code=status)
