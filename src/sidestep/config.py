"""Configuration: `SIDESTEP_*` environment variables, then an optional `sidestep.toml`.

The TOML file is `./sidestep.toml`, or the path in `SIDESTEP_CONFIG`. Environment variables
win over the file; keys are the field names below without the prefix.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def _config_file() -> Path:
    return Path(os.environ.get("SIDESTEP_CONFIG", "sidestep.toml"))


class Settings(BaseSettings):
    """Everything an operator can set. Read once per process with `Settings()`."""

    model_config = SettingsConfigDict(env_prefix="SIDESTEP_", extra="forbid")

    data_dir: Path = Field(default=Path(".sidestep"), description="Where Sidestep keeps its files.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite in WAL mode in data_dir."
    )
    secret_key: SecretStr | None = Field(
        default=None, description="Fernet key for secrets at rest; default: data_dir/secret.key."
    )
    host: str = "127.0.0.1"
    port: int = 8000
    base_url: str = Field(default="", description="Public URL; default http://host:port.")
    log_level: str = "info"
    session_max_age_s: int = 14 * 24 * 3600
    # The SMTP server for single transactional mails (double opt-in confirmations).
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_username: str = ""
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout_s: float = 15.0
    mail_from: str = Field(default="", description="From address; default no-reply@<host>.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=_config_file()),
        )

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file inside the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'sidestep.db').resolve()}"

    @property
    def public_url(self) -> str:
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def cookies_secure(self) -> bool:
        """Session cookies get the Secure flag whenever the public URL is https."""
        return self.public_url.startswith("https://")
