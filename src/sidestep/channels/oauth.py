"""Connecting accounts: OAuth 2 authorization-code flows with state and PKCE (RFC 6749, 7636).

What differs between platforms is data in `oauth_providers.toml` (endpoints, scopes, PKCE, how
the client authenticates, how tokens are renewed), validated here with pydantic; the mechanics
are written once:

    url, pending = start_authorization("x", redirect_uri=uri, client_id=app.client_id, now=now)
    # the person consents; the provider redirects to uri?code=...&state=...
    tokens = await exchange_code(client, pending, code=code, state=state, app=app, now=now)
    tokens = await refresh(client, "x", tokens, app=app, now=now)

`state` is 256 random bits, compared in constant time; the PKCE verifier never leaves Sidestep
(only its S256 challenge goes to the provider). A `PendingAuthorization` lives ten minutes;
where it waits between the two halves is the caller's business (the dashboard seals it in a
cookie, the CLI keeps it in memory while its loopback server waits).

The apps Sidestep is registered as come from the environment, one pair per platform:

    SIDESTEP_OAUTH_<PLATFORM>_CLIENT_ID and SIDESTEP_OAUTH_<PLATFORM>_CLIENT_SECRET
    PLATFORM: FACEBOOK, INSTAGRAM, THREADS, X, LINKEDIN, PINTEREST, TIKTOK, YOUTUBE
    (TikTok's client id is its "client key"; Instagram and Threads have their own app ids)

Errors of the flow itself (messages are for a person):

    OAuthFlowError (ValueError)
    ├── UnknownProvider          not a platform connected by OAuth consent
    ├── MissingAppCredentials    names the environment variables to set
    ├── StateMismatch            the callback's state is not the one issued
    ├── AuthorizationExpired     the pending authorization is older than ten minutes
    └── AuthorizationDenied      the person (or the provider) declined at the consent page

A provider's answers map into the channel taxonomy (`channels/errors.py`): a dead grant
(`invalid_grant`, Meta's code 190) is `AuthExpired`, whose next action is "reconnect"; refused
app credentials and malformed requests are `Rejected`; 429 is `RateLimited`; 502-504
`PlatformOutage`; other 5xx and garbled answers `Transient`; a token request whose answer was
lost is `Unknown(maybe_sent=True)` (a rotated refresh token may be spent). Tokens and secrets
never appear in reprs, messages or logs.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sidestep.channels.errors import AuthExpired, RateLimited, Rejected, Transient
from sidestep.channels.http import PlatformHttp, generic_status_error, retry_after_s
from sidestep.channels.oauth_providers import (
    MissingAppCredentials,
    OAuthApp,
    OAuthAppSettings,
    OAuthFlowError,
    OAuthProviders,
    Provider,
    TokenSwap,
    UnknownProvider,
    default_providers,
    env_var_names,
)
from sidestep.security import same

__all__ = [
    "AuthorizationDenied", "AuthorizationExpired", "MissingAppCredentials", "OAuthApp",
    "OAuthAppSettings", "OAuthFlowError", "PENDING_TTL_S", "PendingAuthorization",
    "StateMismatch", "TokenSet", "UnknownProvider", "code_challenge", "denial",
    "exchange_code", "new_code_verifier", "refresh", "start_authorization",
]

PENDING_TTL_S = 600
TOKEN_TIMEOUT_S = 20.0

# Graph API codes (https://developers.facebook.com/docs/graph-api/guides/error-handling):
# 190/102 a dead token; 100 with subcode 36007/36009 an expired or used code (unverified);
# 101 a wrong app secret; 4/17/32/613 throttling; 1/2 transient.
_META_DEAD = frozenset({190, 102})
_META_SPENT_CODE = frozenset({36007, 36009})
_META_THROTTLED = frozenset({4, 17, 32, 613})
_META_TRANSIENT = frozenset({1, 2})
_BAD_CLIENT = frozenset({"invalid_client", "unauthorized_client"})
_TRY_LATER = frozenset({"temporarily_unavailable", "server_error"})


class StateMismatch(OAuthFlowError):
    """The callback carries a state this flow did not issue (a forged or stale callback)."""


class AuthorizationExpired(OAuthFlowError):
    """The pending authorization is older than `PENDING_TTL_S`."""


class AuthorizationDenied(OAuthFlowError):
    """The consent page answered with an error (the person declined, or the app is refused)."""


# --- the two halves of the flow ----------------------------------------------------------------


def new_code_verifier() -> str:
    """A PKCE verifier: 86 unreserved characters (RFC 7636 allows 43 to 128)."""
    return secrets.token_urlsafe(64)


def code_challenge(verifier: str) -> str:
    """The S256 challenge: BASE64URL(SHA256(verifier)) without padding (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class PendingAuthorization:
    """What the second half needs and only Sidestep may know (the verifier, the state)."""

    platform: str
    redirect_uri: str
    scopes: tuple[str, ...]
    expires_at: datetime
    state: str = field(repr=False)
    code_verifier: str = field(repr=False)

    def check(self, *, state: str, now: datetime) -> None:
        """Raise `StateMismatch` or `AuthorizationExpired` unless the callback may be used."""
        if not state or not same(state, self.state):
            raise StateMismatch("the answer from the consent page does not belong to this "
                                "connection attempt; nothing was stored, start again")
        if now >= self.expires_at:
            raise AuthorizationExpired("the connection attempt took longer than "
                                       f"{PENDING_TTL_S // 60} minutes; start again")

    def to_fields(self) -> dict[str, str]:
        """Plain strings, for sealing with the vault."""
        return {"platform": self.platform, "redirect_uri": self.redirect_uri,
                "scopes": " ".join(self.scopes), "expires_at": self.expires_at.isoformat(),
                "state": self.state, "code_verifier": self.code_verifier}

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> PendingAuthorization:
        """The inverse of `to_fields`; raises `OAuthFlowError` for a damaged record."""
        try:
            return cls(platform=fields["platform"], redirect_uri=fields["redirect_uri"],
                       scopes=tuple(fields["scopes"].split()),
                       expires_at=datetime.fromisoformat(fields["expires_at"]),
                       state=fields["state"], code_verifier=fields["code_verifier"])
        except (KeyError, ValueError) as exc:
            raise OAuthFlowError("the pending connection record is damaged; start again") from exc


@dataclass(frozen=True, slots=True)
class TokenSet:
    """A grant's tokens. `expires_at` None: the access token has no known expiry."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    expires_at: datetime | None = None
    scopes: tuple[str, ...] = ()
    account_id: str | None = None

    def expires_within(self, seconds: float, *, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at - now <= timedelta(seconds=seconds)

    def to_credentials(self) -> dict[str, str]:
        """Every token field, empty where absent, so merging over old credentials clears it."""
        return {"access_token": self.access_token, "refresh_token": self.refresh_token or "",
                "expires_at": self.expires_at.isoformat() if self.expires_at else "",
                "scope": " ".join(self.scopes), "account_id": self.account_id or ""}

    @classmethod
    def from_credentials(cls, credentials: Mapping[str, str]) -> TokenSet:
        """Read stored credentials; raises `OAuthFlowError` when there is no access token."""
        if not credentials.get("access_token"):
            raise OAuthFlowError("the channel holds no OAuth access token")
        expires = credentials.get("expires_at") or ""
        try:
            expires_at = datetime.fromisoformat(expires) if expires else None
        except ValueError as exc:
            raise OAuthFlowError("the stored token expiry is not a time") from exc
        return cls(access_token=credentials["access_token"],
                   refresh_token=credentials.get("refresh_token") or None, expires_at=expires_at,
                   scopes=tuple((credentials.get("scope") or "").split()),
                   account_id=credentials.get("account_id") or None)


def start_authorization(
    platform: str, *, redirect_uri: str, client_id: str, now: datetime,
    providers: OAuthProviders | None = None,
) -> tuple[str, PendingAuthorization]:
    """The consent URL to send the person to, and what the callback will need.

    Raises `UnknownProvider` for a platform not in the table.
    """
    provider = (providers or default_providers()).get(platform)
    pending = PendingAuthorization(
        platform=provider.key, redirect_uri=redirect_uri, scopes=tuple(provider.scopes),
        expires_at=now + timedelta(seconds=PENDING_TTL_S), state=secrets.token_urlsafe(32),
        code_verifier=new_code_verifier(),
    )
    params = {"response_type": "code", provider.client_id_param: client_id,
              "redirect_uri": redirect_uri, "scope": provider.scope_separator.join(provider.scopes),
              "state": pending.state}
    if provider.uses_pkce:
        params |= {"code_challenge": code_challenge(pending.code_verifier),
                   "code_challenge_method": "S256"}
    params |= provider.extra_authorize_params
    return f"{provider.authorize_url}?{urlencode(params, quote_via=quote)}", pending


def denial(query: Mapping[str, str]) -> AuthorizationDenied | None:
    """The consent page's refusal carried by a callback's query (`error=access_denied`), if any."""
    error = query.get("error")
    if not error:
        return None
    detail = (query.get("error_description") or query.get("error_reason") or "")[:200]
    return AuthorizationDenied(f"the consent page answered {error[:60]}"
                               + (f" ({detail})" if detail else "") + "; nothing was stored")


async def exchange_code(
    client: httpx.AsyncClient, pending: PendingAuthorization, *, code: str, state: str,
    app: OAuthApp, now: datetime, providers: OAuthProviders | None = None,
) -> TokenSet:
    """Check the callback's state and age, then trade the code (and verifier) for tokens.

    Raises `StateMismatch` or `AuthorizationExpired` before any request is made, and the
    taxonomy's errors for the provider's refusals (a spent or wrong code is `AuthExpired`).
    """
    pending.check(state=state, now=now)
    provider = (providers or default_providers()).get(pending.platform)
    params = {"grant_type": "authorization_code", "code": code,
              "redirect_uri": pending.redirect_uri}
    if provider.uses_pkce:
        params["code_verifier"] = pending.code_verifier
    body = await _token_call(client, provider, provider.token_method, provider.token_url, params,
                             app=app, authenticate=True, now=now)
    tokens = _token_set(body, provider, now=now, requested=pending.scopes)
    if provider.long_lived is not None:
        tokens = await _swap(client, provider, provider.long_lived, tokens, app=app, now=now)
    return tokens


async def refresh(
    client: httpx.AsyncClient, platform: str, tokens: TokenSet, *, app: OAuthApp, now: datetime,
    providers: OAuthProviders | None = None,
) -> TokenSet:
    """New tokens for an existing grant; the refresh token is kept when none new comes back.

    Raises `AuthExpired` when the provider cannot renew without the owner (no refresh token,
    or none exists for the platform) or refuses the grant; the other taxonomy errors otherwise.
    """
    provider = (providers or default_providers()).get(platform)
    if provider.refresh == "none":
        raise AuthExpired(f"{provider.name} tokens cannot be renewed without the owner; "
                          "reconnect the channel")
    if provider.access_token_refresh is not None:
        return await _swap(client, provider, provider.access_token_refresh, tokens, app=app,
                           now=now)
    if not tokens.refresh_token:
        raise AuthExpired(f"{provider.name} granted no refresh token; reconnect the channel")
    params = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
    body = await _token_call(client, provider, "POST", provider.token_url, params, app=app,
                             authenticate=True, now=now)
    new = _token_set(body, provider, now=now, requested=tokens.scopes)
    return replace(new, refresh_token=new.refresh_token or tokens.refresh_token,
                   account_id=new.account_id or tokens.account_id)


# --- requests and answers ------------------------------------------------------------------------


async def _swap(client: httpx.AsyncClient, provider: Provider, swap: TokenSwap,
                tokens: TokenSet, *, app: OAuthApp, now: datetime) -> TokenSet:
    params = {"grant_type": swap.grant_type, swap.token_param: tokens.access_token}
    if swap.send_client_id:
        params["client_id"] = app.client_id
    if swap.send_client_secret:
        params["client_secret"] = app.client_secret
    body = await _token_call(client, provider, "GET", swap.url, params, app=app,
                             authenticate=False, now=now)
    new = _token_set(body, provider, now=now, requested=tokens.scopes)
    return replace(new, refresh_token=new.refresh_token or tokens.refresh_token,
                   account_id=new.account_id or tokens.account_id)


async def _token_call(client: httpx.AsyncClient, provider: Provider, method: str, url: str,
                      params: dict[str, str], *, app: OAuthApp, authenticate: bool,
                      now: datetime) -> dict[str, Any]:
    headers = {"Accept": "application/json"}
    if authenticate and provider.client_auth == "basic":
        pair = f"{app.client_id}:{app.client_secret}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    elif authenticate:
        params = {**params, provider.client_id_param: app.client_id,
                  "client_secret": app.client_secret}
    http = PlatformHttp(client, platform=provider.key, timeout_s=TOKEN_TIMEOUT_S)
    # changes=True: a lost answer may mean a code or a rotated refresh token was spent.
    placement = {"params": params} if method == "GET" else {"data": params}
    response = await http.request(method, url, changes=True, headers=headers, **placement)
    body = _json_object(response)
    if response.is_success and body is not None and "error" not in body \
            and "error_type" not in body:
        return body
    raise _refusal(response, body, provider, now=now)


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        value = response.json()
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class _RfcError(BaseModel):
    error: str
    error_description: str | None = None


class _GraphErrorDetail(BaseModel):
    message: str = ""
    code: int | None = None
    error_subcode: int | None = None


class _GraphError(BaseModel):
    error: _GraphErrorDetail


class _LegacyError(BaseModel):  # api.instagram.com: {"error_type", "code", "error_message"}
    error_type: str
    error_message: str = ""


def _refusal(response: httpx.Response, body: dict[str, Any] | None, provider: Provider, *,
             now: datetime) -> Exception:
    status, name = response.status_code, provider.name
    if status == 429 or status >= 500:
        return generic_status_error(response, platform=provider.key, now=now)
    if body is None:  # never quote the body: some servers echo the request (and its secret)
        return (Transient if response.is_success else Rejected)(
            f"{name} answered the token request with HTTP {status} and no JSON",
            http_status=status)
    id_var, secret_var = env_var_names(provider.key)
    if isinstance(body.get("error"), dict):
        graph = _GraphError.model_validate(body).error
        code, words = graph.code, f"code {graph.code}: {graph.message}"
        if code in _META_THROTTLED:
            return RateLimited(f"{name} is rate limiting ({words})",
                               retry_after_s=retry_after_s(response, now=now), http_status=status)
        if code in _META_TRANSIENT:
            return Transient(f"{name}: {words}", http_status=status)
        if code in _META_DEAD or (code == 100 and graph.error_subcode in _META_SPENT_CODE):
            return AuthExpired(f"{name} refused the grant ({words}); reconnect the channel",
                               platform_code=str(code), http_status=status)
        if code == 101:
            return Rejected(f"{name} refused Sidestep's app ({words}); check {secret_var}",
                            platform_code=str(code), http_status=status)
        return Rejected(f"{name} refused the token request ({words})",
                        platform_code=str(code), http_status=status)
    try:
        rfc = _RfcError.model_validate(body)
    except ValidationError:
        try:
            legacy = _LegacyError.model_validate(body)
        except ValidationError:
            return Transient(f"{name} answered the token request with HTTP {status} and an "
                             "unknown body", http_status=status)
        return AuthExpired(f"{name} refused the code ({legacy.error_message}); start again",
                           platform_code=legacy.error_type, http_status=status)
    words = rfc.error + (f": {rfc.error_description}" if rfc.error_description else "")
    if rfc.error in provider.reconnect_errors:
        return AuthExpired(f"{name} refused the grant ({words}); reconnect the channel",
                           platform_code=rfc.error, http_status=status)
    if rfc.error in _BAD_CLIENT:
        return Rejected(f"{name} refused Sidestep's app credentials ({words}); check {id_var} "
                        f"and {secret_var}", platform_code=rfc.error, http_status=status)
    if rfc.error in _TRY_LATER:
        return Transient(f"{name}: {words}", platform_code=rfc.error, http_status=status)
    return Rejected(f"{name} refused the token request ({words})", platform_code=rfc.error,
                    http_status=status)


class _TokenAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    access_token: str = Field(min_length=1)
    expires_in: int | None = None
    refresh_token: str | None = None
    scope: str | list[str] | None = None
    open_id: str | None = None  # TikTok's account id
    user_id: int | str | None = None  # Meta's


def _token_set(body: dict[str, Any], provider: Provider, *, now: datetime,
               requested: tuple[str, ...]) -> TokenSet:
    data = body.get("data")  # Instagram Login may wrap the answer in a one-item list
    if "access_token" not in body and isinstance(data, list) and data and \
            isinstance(data[0], dict):
        body = data[0]
    try:
        answer = _TokenAnswer.model_validate(body)
    except ValidationError:
        # Not chained: a validation error quotes its input, which holds tokens.
        raise Transient(f"{provider.name} answered the token request without a usable "
                        "access token") from None
    lifetime = answer.expires_in if answer.expires_in is not None \
        else provider.access_token_lifetime_s
    if isinstance(answer.scope, str):
        scopes = tuple(s for s in re.split(r"[,\s]+", answer.scope) if s)
    else:
        scopes = tuple(answer.scope) if answer.scope else requested
    account = answer.open_id or (str(answer.user_id) if answer.user_id is not None else None)
    return TokenSet(access_token=answer.access_token, refresh_token=answer.refresh_token or None,
                    expires_at=now + timedelta(seconds=lifetime) if lifetime else None,
                    scopes=scopes, account_id=account)
