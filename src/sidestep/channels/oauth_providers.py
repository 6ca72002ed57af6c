"""The OAuth provider table (`oauth_providers.toml`) and the apps Sidestep is registered as.

The table is data: one pydantic-validated `Provider` per platform key, loaded once per process
(`default_providers()`); an unknown or misspelt field fails loudly at start-up. The apps' client
ids and secrets come from the environment through `OAuthAppSettings`:

    SIDESTEP_OAUTH_<PLATFORM>_CLIENT_ID and SIDESTEP_OAUTH_<PLATFORM>_CLIENT_SECRET

The flows that use both live in `sidestep.channels.oauth`, which documents the error tree.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

PROVIDERS_PATH = Path(__file__).with_name("oauth_providers.toml")
ENV_PREFIX = "SIDESTEP_OAUTH_"


class OAuthFlowError(ValueError):
    """The connection flow cannot go on; the message says why, for a person."""


class UnknownProvider(OAuthFlowError):
    """The platform is not one Sidestep connects through OAuth consent."""


class MissingAppCredentials(OAuthFlowError):
    """No client id or secret is configured for the platform; names the variables to set."""

    def __init__(self, platform: str, missing: Sequence[str]) -> None:
        super().__init__(f"Sidestep has no {platform} app configured: set {' and '.join(missing)}")
        self.missing = tuple(missing)


def _https(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"{url!r} is not an absolute https URL")
    return url


HttpsUrl = Annotated[str, AfterValidator(_https)]
_TABLE = ConfigDict(extra="forbid", frozen=True)
_RESERVED_PARAMS = frozenset({"response_type", "client_id", "client_key", "redirect_uri", "scope",
                              "state", "code_challenge", "code_challenge_method"})


class TokenSwap(BaseModel):
    """A Meta-style GET that swaps one access token for another (long-lived, or renewed)."""

    model_config = _TABLE

    url: HttpsUrl
    grant_type: str
    token_param: str = "access_token"  # noqa: S105 - a parameter name
    send_client_id: bool = False
    send_client_secret: bool = True


class Provider(BaseModel):
    """One platform's authorization server, as `oauth_providers.toml` declares it."""

    model_config = _TABLE

    key: str
    name: str
    docs: list[HttpsUrl] = Field(min_length=1)
    authorize_url: HttpsUrl
    token_url: HttpsUrl
    token_method: Literal["GET", "POST"] = "POST"  # noqa: S105 - an HTTP method
    scopes: list[str] = Field(min_length=1)
    scope_separator: Literal[" ", ","] = " "
    pkce: Literal["required", "supported", "none"]
    client_auth: Literal["basic", "body"]
    client_id_param: Literal["client_id", "client_key"] = "client_id"
    extra_authorize_params: dict[str, str] = Field(default_factory=dict)
    long_lived: TokenSwap | None = None
    refresh: Literal["refresh_token", "access_token", "none"]
    access_token_refresh: TokenSwap | None = None
    refresh_rotates: bool = False
    reconnect_errors: list[str] = Field(default_factory=lambda: ["invalid_grant"])
    access_token_lifetime_s: int | None = Field(default=None, gt=0)
    notes: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> Provider:
        if (self.refresh == "access_token") != (self.access_token_refresh is not None):
            raise ValueError("refresh = 'access_token' needs access_token_refresh, and only it")
        if clash := sorted(_RESERVED_PARAMS & set(self.extra_authorize_params)):
            raise ValueError(f"extra_authorize_params may not set {', '.join(clash)}")
        return self

    @property
    def uses_pkce(self) -> bool:
        return self.pkce != "none"


class OAuthProviders:
    """The loaded providers, by platform key."""

    def __init__(self, providers: Iterable[Provider]) -> None:
        self._by_key = {p.key: p for p in providers}

    def get(self, key: str) -> Provider:
        """The provider of `key`; raises `UnknownProvider` naming the known ones."""
        try:
            return self._by_key[key]
        except KeyError:
            known = ", ".join(sorted(self._by_key))
            raise UnknownProvider(
                f"{key!r} is not connected through OAuth consent; these are: {known}"
            ) from None

    def all(self) -> list[Provider]:
        """Every provider, sorted by key."""
        return [self._by_key[key] for key in sorted(self._by_key)]

    def __contains__(self, key: object) -> bool:
        return key in self._by_key


def load_providers(path: Path | None = None) -> OAuthProviders:
    """Read and validate a provider table; raises ValueError naming the file and provider."""
    source = path or PROVIDERS_PATH
    try:
        document = tomllib.loads(source.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{source.name}: {exc}") from exc
    providers = []
    for key, table in document.items():
        try:
            providers.append(Provider.model_validate({"key": key, **table}))
        except (ValidationError, TypeError) as exc:
            raise ValueError(f"{source.name}: provider {key!r}: {exc}") from exc
    return OAuthProviders(providers)


@functools.lru_cache(maxsize=1)
def default_providers() -> OAuthProviders:
    """The packaged table, loaded once per process."""
    return load_providers()


# --- the app's credentials -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OAuthApp:
    """Sidestep's registration with one provider."""

    client_id: str
    client_secret: str = field(repr=False)


def env_var_names(platform: str) -> tuple[str, str]:
    """The environment variables holding `platform`'s client id and secret."""
    stem = f"{ENV_PREFIX}{platform.upper()}"
    return f"{stem}_CLIENT_ID", f"{stem}_CLIENT_SECRET"


class OAuthAppSettings(BaseSettings):
    """Client ids and secrets from `SIDESTEP_OAUTH_<PLATFORM>_CLIENT_ID` / `_CLIENT_SECRET`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    facebook_client_id: str | None = None
    facebook_client_secret: SecretStr | None = None
    instagram_client_id: str | None = None
    instagram_client_secret: SecretStr | None = None
    threads_client_id: str | None = None
    threads_client_secret: SecretStr | None = None
    x_client_id: str | None = None
    x_client_secret: SecretStr | None = None
    linkedin_client_id: str | None = None
    linkedin_client_secret: SecretStr | None = None
    pinterest_client_id: str | None = None
    pinterest_client_secret: SecretStr | None = None
    tiktok_client_id: str | None = None
    tiktok_client_secret: SecretStr | None = None
    youtube_client_id: str | None = None
    youtube_client_secret: SecretStr | None = None

    def app(self, platform: str) -> OAuthApp:
        """The app for `platform`; raises `MissingAppCredentials` naming what to set."""
        client_id = getattr(self, f"{platform}_client_id", None)
        secret = getattr(self, f"{platform}_client_secret", None)
        names = env_var_names(platform)
        missing = [name for name, value in zip(names, (client_id, secret), strict=True)
                   if not value]
        if missing or client_id is None or secret is None:
            raise MissingAppCredentials(platform, missing)
        return OAuthApp(client_id=client_id, client_secret=secret.get_secret_value())

    def configured(self, platform: str) -> bool:
        return bool(getattr(self, f"{platform}_client_id", None)
                    and getattr(self, f"{platform}_client_secret", None))
