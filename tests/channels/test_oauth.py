"""OAuth connections: the provider table, PKCE and state, and every provider's full flow
against the simulator's authorization servers (which verify PKCE, client auth and one-time
codes themselves)."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import pytest_asyncio

from sidestep.catalogue import default_catalogue
from sidestep.channels.errors import AuthExpired, PlatformOutage, Rejected, Transient
from sidestep.channels.oauth import (
    AuthorizationDenied,
    AuthorizationExpired,
    MissingAppCredentials,
    OAuthApp,
    OAuthAppSettings,
    PendingAuthorization,
    StateMismatch,
    TokenSet,
    code_challenge,
    denial,
    exchange_code,
    new_code_verifier,
    refresh,
    start_authorization,
)
from sidestep.channels.oauth_providers import default_providers, load_providers
from sidestep.clock import FrozenClock
from sidestep.sim.platforms._oauth import authorization_server
from sidestep.sim.server import Simulator
from sidestep.sim.testing import running_simulator

IN_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")

START = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
REDIRECT = "https://sidestep.example/oauth/callback/test"
PLATFORMS = [p.key for p in default_providers().all()]
_client_ids = itertools.count(1)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim() -> AsyncIterator[Simulator]:
    async with running_simulator(seed=11, clock=FrozenClock(START)) as simulator:
        yield simulator


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    async with sim.client(timeout=10) as http:
        yield http


def register(sim: Simulator, platform: str) -> OAuthApp:
    """A fresh app registered with the simulated provider, so tests do not share grants."""
    app = OAuthApp(client_id=f"app-{next(_client_ids)}", client_secret="s3cret-app-value")
    authorization_server(sim.world, platform).register_client(app.client_id, app.client_secret)
    return app


async def consent(client: httpx.AsyncClient, url: str, *, answer: str = "approve",
                  account: str = "brand") -> dict[str, str]:
    """Play the person at the consent page; return the query of the redirect back."""
    response = await client.get(f"{url}&sim_consent={answer}&sim_account={account}")
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def connect(sim: Simulator, client: httpx.AsyncClient, platform: str, app: OAuthApp,
                  ) -> tuple[TokenSet, PendingAuthorization]:
    url, pending = start_authorization(platform, redirect_uri=REDIRECT,
                                       client_id=app.client_id, now=sim.world.clock.now())
    answer = await consent(client, url)
    tokens = await exchange_code(client, pending, code=answer["code"], state=answer["state"],
                                 app=app, now=sim.world.clock.now())
    return tokens, pending


# --- the table and the app settings ----------------------------------------------------------


def test_every_platform_that_needs_consent_has_a_provider_and_is_oauth2_in_the_catalogue(
) -> None:
    assert set(PLATFORMS) == {"facebook", "instagram", "threads", "x", "linkedin", "pinterest",
                              "tiktok", "youtube"}
    for key in PLATFORMS:
        assert default_catalogue().get(key).auth == "oauth2"


def test_every_provider_has_client_id_and_secret_settings() -> None:
    fields = OAuthAppSettings.model_fields
    for key in PLATFORMS:
        assert f"{key}_client_id" in fields and f"{key}_client_secret" in fields


def test_a_missing_client_secret_names_the_exact_environment_variable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIDESTEP_OAUTH_X_CLIENT_ID", "abc")
    monkeypatch.delenv("SIDESTEP_OAUTH_X_CLIENT_SECRET", raising=False)
    with pytest.raises(MissingAppCredentials) as error:
        OAuthAppSettings().app("x")
    assert str(error.value) == "Sidestep has no x app configured: set SIDESTEP_OAUTH_X_CLIENT_SECRET"


def test_app_credentials_come_from_the_environment_and_hide_the_secret(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIDESTEP_OAUTH_TIKTOK_CLIENT_ID", "key-1")
    monkeypatch.setenv("SIDESTEP_OAUTH_TIKTOK_CLIENT_SECRET", "very-secret")
    app = OAuthAppSettings().app("tiktok")
    assert app.client_id == "key-1" and app.client_secret == "very-secret"
    assert "very-secret" not in repr(app)


def test_a_misspelt_field_in_the_provider_table_fails_loudly(tmp_path: Path) -> None:
    path = tmp_path / "providers.toml"
    path.write_text('[x]\nname = "X"\ndocs = ["https://docs.x.com/"]\n'
                    'authorize_url = "https://x.com/a"\ntoken_url = "https://api.x.com/t"\n'
                    'scopes = ["a"]\npkce = "required"\nclient_auth = "basic"\n'
                    'refresh = "refresh_token"\nrefresh_rotate = true\n')
    with pytest.raises(ValueError, match="(?s)provider 'x'.*refresh_rotate"):
        load_providers(path)


# --- state and PKCE ----------------------------------------------------------------------------


def test_the_challenge_is_rfc_7636s_s256_of_the_verifier() -> None:
    assert code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == \
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_the_consent_url_carries_state_and_challenge_but_never_the_verifier() -> None:
    url, pending = start_authorization("x", redirect_uri=REDIRECT, client_id="cid", now=START)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert url.startswith("https://x.com/i/oauth2/authorize?")
    assert query["state"] == pending.state and len(pending.state) >= 43
    assert query["code_challenge"] == code_challenge(pending.code_verifier)
    assert query["code_challenge_method"] == "S256"
    assert 43 <= len(pending.code_verifier) <= 128
    assert pending.code_verifier not in url
    assert "offline.access" in query["scope"].split()
    assert (pending.expires_at - START).total_seconds() == 600


def test_every_authorization_gets_its_own_state_and_verifier() -> None:
    firsts = [start_authorization("youtube", redirect_uri=REDIRECT, client_id="c", now=START)[1]
              for _ in range(20)]
    assert len({p.state for p in firsts}) == 20
    assert len({p.code_verifier for p in firsts}) == 20


def test_providers_without_pkce_get_no_challenge_and_tiktok_gets_its_client_key() -> None:
    linkedin, _ = start_authorization("linkedin", redirect_uri=REDIRECT, client_id="c", now=START)
    assert "code_challenge" not in linkedin
    tiktok, _ = start_authorization("tiktok", redirect_uri=REDIRECT, client_id="k", now=START)
    assert "client_key=k" in tiktok and "client_id" not in tiktok
    google, _ = start_authorization("youtube", redirect_uri=REDIRECT, client_id="c", now=START)
    assert "access_type=offline" in google and "prompt=consent" in google


def test_reprs_never_show_tokens_state_or_verifier() -> None:
    _, pending = start_authorization("x", redirect_uri=REDIRECT, client_id="c", now=START)
    tokens = TokenSet(access_token="AT-secret", refresh_token="RT-secret", scopes=("a",))
    assert pending.state not in repr(pending) and pending.code_verifier not in repr(pending)
    assert "secret" not in repr(tokens)


def test_stored_credentials_round_trip_and_clear_a_vanished_refresh_token() -> None:
    tokens = TokenSet(access_token="a", refresh_token=None, expires_at=START, scopes=("x", "y"),
                      account_id="42")
    stored = {"page_id": "7", "refresh_token": "old", **tokens.to_credentials()}
    assert TokenSet.from_credentials(stored) == tokens
    assert stored["refresh_token"] == "" and stored["page_id"] == "7"


# --- full flows against the simulator -----------------------------------------------------------


@IN_MODULE_LOOP
@pytest.mark.parametrize("platform", PLATFORMS)
async def test_a_full_flow_gives_tokens_the_platforms_api_accepts_and_renews_them(
        sim: Simulator, client: httpx.AsyncClient, platform: str) -> None:
    app = register(sim, platform)
    tokens, _ = await connect(sim, client, platform, app)
    assert sim.world.account_for(platform, tokens.access_token) == "brand"
    assert tokens.expires_at is not None and tokens.expires_at > sim.world.clock.now()
    provider = default_providers().get(platform)
    if provider.refresh == "none":
        with pytest.raises(AuthExpired, match="reconnect"):
            await refresh(client, platform, tokens, app=app, now=sim.world.clock.now())
        return
    if provider.refresh == "access_token":  # Meta renews only tokens at least a day old
        assert isinstance(sim.world.clock, FrozenClock)
        sim.world.clock.advance(seconds=86_400)
    renewed = await refresh(client, platform, tokens, app=app, now=sim.world.clock.now())
    assert renewed.access_token != tokens.access_token
    assert sim.world.account_for(platform, renewed.access_token) == "brand"
    assert renewed.expires_at is not None and renewed.expires_at > sim.world.clock.now()
    if provider.refresh == "refresh_token":
        assert renewed.refresh_token
        assert (renewed.refresh_token != tokens.refresh_token) == provider.refresh_rotates


@IN_MODULE_LOOP
async def test_the_server_refuses_a_code_redeemed_with_the_wrong_verifier(
        sim: Simulator, client: httpx.AsyncClient) -> None:
    app = register(sim, "x")
    url, pending = start_authorization("x", redirect_uri=REDIRECT, client_id=app.client_id,
                                       now=sim.world.clock.now())
    answer = await consent(client, url)
    forged = dataclasses.replace(pending, code_verifier=new_code_verifier())
    with pytest.raises(AuthExpired, match="Code verifier"):
        await exchange_code(client, forged, code=answer["code"], state=answer["state"], app=app,
                            now=sim.world.clock.now())


@IN_MODULE_LOOP
async def test_a_mismatched_state_is_refused_before_any_token_request(
        sim: Simulator, client: httpx.AsyncClient) -> None:
    app = register(sim, "pinterest")
    server = authorization_server(sim.world, "pinterest")
    url, pending = start_authorization("pinterest", redirect_uri=REDIRECT,
                                       client_id=app.client_id, now=sim.world.clock.now())
    answer = await consent(client, url)
    calls = len(server.token_calls)
    with pytest.raises(StateMismatch, match="nothing was stored"):
        await exchange_code(client, pending, code=answer["code"], state="forged-state", app=app,
                            now=sim.world.clock.now())
    assert len(server.token_calls) == calls


@IN_MODULE_LOOP
async def test_an_authorization_older_than_ten_minutes_is_refused(
        sim: Simulator, client: httpx.AsyncClient) -> None:
    app = register(sim, "linkedin")
    url, pending = start_authorization("linkedin", redirect_uri=REDIRECT,
                                       client_id=app.client_id, now=sim.world.clock.now())
    answer = await consent(client, url)
    with pytest.raises(AuthorizationExpired):
        await exchange_code(client, pending, code=answer["code"], state=answer["state"], app=app,
                            now=pending.expires_at)


@IN_MODULE_LOOP
async def test_a_replayed_code_is_refused_and_revokes_what_it_granted(
        sim: Simulator, client: httpx.AsyncClient) -> None:
    app = register(sim, "youtube")
    url, pending = start_authorization("youtube", redirect_uri=REDIRECT,
                                       client_id=app.client_id, now=sim.world.clock.now())
    answer = await consent(client, url)
    now = sim.world.clock.now()
    tokens = await exchange_code(client, pending, code=answer["code"], state=answer["state"],
                                 app=app, now=now)
    with pytest.raises(AuthExpired, match="reconnect"):
        await exchange_code(client, pending, code=answer["code"], state=answer["state"], app=app,
                            now=now)
    with pytest.raises(AuthExpired):
        await refresh(client, "youtube", tokens, app=app, now=now)


@IN_MODULE_LOOP
async def test_a_declined_consent_comes_back_as_a_denial(
        sim: Simulator, client: httpx.AsyncClient) -> None:
    app = register(sim, "tiktok")
    url, _ = start_authorization("tiktok", redirect_uri=REDIRECT, client_id=app.client_id,
                                 now=sim.world.clock.now())
    refused = denial(await consent(client, url, answer="deny"))
    assert isinstance(refused, AuthorizationDenied)
    assert "access_denied" in str(refused)


@IN_MODULE_LOOP
async def test_a_replayed_rotated_refresh_token_kills_the_whole_grant(
        sim: Simulator, client: httpx.AsyncClient) -> None:
    app = register(sim, "x")
    tokens, _ = await connect(sim, client, "x", app)
    now = sim.world.clock.now()
    renewed = await refresh(client, "x", tokens, app=app, now=now)
    with pytest.raises(AuthExpired, match="reconnect"):  # X says invalid_request here
        await refresh(client, "x", tokens, app=app, now=now)
    with pytest.raises(AuthExpired):
        await refresh(client, "x", renewed, app=app, now=now)


@IN_MODULE_LOOP
async def test_google_keeps_the_refresh_token_it_does_not_send_again(
        sim: Simulator, client: httpx.AsyncClient) -> None:
    app = register(sim, "youtube")
    tokens, _ = await connect(sim, client, "youtube", app)
    renewed = await refresh(client, "youtube", tokens, app=app, now=sim.world.clock.now())
    assert renewed.refresh_token == tokens.refresh_token


@IN_MODULE_LOOP
async def test_refused_app_credentials_are_rejected_naming_the_variables_not_the_secret(
        sim: Simulator, client: httpx.AsyncClient) -> None:
    app = register(sim, "pinterest")
    url, pending = start_authorization("pinterest", redirect_uri=REDIRECT,
                                       client_id=app.client_id, now=sim.world.clock.now())
    answer = await consent(client, url)
    wrong = OAuthApp(client_id=app.client_id, client_secret="not-the-secret")
    with pytest.raises(Rejected) as error:
        await exchange_code(client, pending, code=answer["code"], state=answer["state"],
                            app=wrong, now=sim.world.clock.now())
    assert "SIDESTEP_OAUTH_PINTEREST_CLIENT_SECRET" in str(error.value)
    assert "not-the-secret" not in str(error.value)


@IN_MODULE_LOOP
async def test_a_revoked_grant_cannot_be_refreshed(
        sim: Simulator, client: httpx.AsyncClient) -> None:
    app = register(sim, "linkedin")
    tokens, _ = await connect(sim, client, "linkedin", app)
    authorization_server(sim.world, "linkedin").revoke_account("brand")
    with pytest.raises(AuthExpired, match="invalid_grant"):
        await refresh(client, "linkedin", tokens, app=app, now=sim.world.clock.now())
    assert sim.world.account_for("linkedin", tokens.access_token) is None


@IN_MODULE_LOOP
@pytest.mark.parametrize(("fault", "params", "expected"), [
    ("http_5xx", {}, (Transient, PlatformOutage)),
    ("http_5xx", {"kind": "unavailable"}, (PlatformOutage,)),
    ("garbage", {"variant": "json"}, (Transient,)),
])
async def test_a_token_endpoint_that_fails_is_retryable_not_a_reason_to_reconnect(
        sim: Simulator, client: httpx.AsyncClient, fault: str, params: dict[str, Any],
        expected: tuple[type[Exception], ...]) -> None:
    app = register(sim, "tiktok")
    tokens, _ = await connect(sim, client, "tiktok", app)
    await sim.set_fault("tiktok", fault, **params)
    try:
        with pytest.raises(expected):
            await refresh(client, "tiktok", tokens, app=app, now=sim.world.clock.now())
    finally:
        await sim.clear_faults()
    assert (await refresh(client, "tiktok", tokens, app=app, now=sim.world.clock.now())
            ).access_token
