"""The monitor's thresholds and controls, read from a TOML data file.

The packaged `monitor.toml` next to this module holds the defaults and says why each number
is what it is; `SIDESTEP_MONITOR_CONFIG` (or `load_monitor_config(path)`) names another file.
Unknown keys and impossible values raise `MonitorConfigError` (a ValueError) naming the file
and the field, e.g. `monitor.toml: fusion.confirm_s: Input should be greater than 0`.
"""

from __future__ import annotations

import os
import tomllib
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = ["Controls", "FusionConfig", "MonitorConfig", "MonitorConfigError", "ProbingConfig",
           "PublishPathConfig", "ResolverEntry", "StorageConfig", "load_monitor_config"]

_STRICT = ConfigDict(extra="forbid", frozen=True)


class MonitorConfigError(ValueError):
    """A monitor configuration file that cannot be read or is invalid."""


class ProbingConfig(BaseModel):
    model_config = _STRICT
    interval_s: float = Field(default=120.0, gt=0)
    retry_interval_s: float = Field(default=15.0, gt=0)
    dns_timeout_s: float = Field(default=2.0, gt=0)
    http_timeout_s: float = Field(default=5.0, gt=0)
    concurrency: int = Field(default=32, ge=1)
    vantage: str = Field(default="local", min_length=1, max_length=100)

    @model_validator(mode="after")
    def _retry_not_slower(self) -> ProbingConfig:
        if self.retry_interval_s > self.interval_s:
            raise ValueError("retry_interval_s must not exceed interval_s")
        return self


class FusionConfig(BaseModel):
    model_config = _STRICT
    confirm_s: float = Field(default=120.0, gt=0)
    recover_s: float = Field(default=120.0, gt=0)
    min_down_signals: int = Field(default=2, ge=1)
    min_down_vantages: int = Field(default=2, ge=1)
    round_fail_ratio: float = Field(default=0.75, gt=0, le=1)
    suspect_s: float = Field(default=300.0, ge=0)
    feature_window_s: float = Field(default=600.0, gt=0)
    feature_fail_share: float = Field(default=0.25, gt=0, le=1)
    slow_ms: float = Field(default=3000.0, gt=0)
    local_confirm_s: float = Field(default=20.0, ge=0)
    controls_fail_ratio: float = Field(default=0.75, gt=0, le=1)
    stale_s: float = Field(default=900.0, gt=0)


class PublishPathConfig(BaseModel):
    model_config = _STRICT
    window_s: float = Field(default=600.0, gt=0)
    min_channels: int = Field(default=3, ge=2)  # one channel's trouble is never the platform's
    min_share: float = Field(default=0.5, gt=0, le=1)
    error_classes: tuple[str, ...] = ("auth", "outage", "transient")


class StorageConfig(BaseModel):
    model_config = _STRICT
    raw_days: float = Field(default=7.0, gt=0)
    rollup_days: float = Field(default=90.0, gt=0)


class ResolverEntry(BaseModel):
    model_config = _STRICT
    name: str = Field(min_length=1, max_length=60)
    ip: str = Field(min_length=2)
    port: int = Field(default=53, ge=1, le=65535)


class Controls(BaseModel):
    model_config = _STRICT
    hostnames: tuple[str, ...] = Field(default=("example.com",), min_length=1)
    resolvers: tuple[ResolverEntry, ...] = Field(default=(), min_length=1)


class MonitorConfig(BaseModel):
    model_config = _STRICT
    probing: ProbingConfig = Field(default_factory=ProbingConfig)
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    publish_path: PublishPathConfig = Field(default_factory=PublishPathConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    controls: Controls

    def with_changes(self, **sections: dict[str, object]) -> MonitorConfig:
        """A copy with some fields of some sections replaced (validated again)."""
        data = self.model_dump()
        for section, values in sections.items():
            data[section] = {**data[section], **values}
        return MonitorConfig.model_validate(data)


def _packaged() -> Path:
    return Path(str(resources.files("sidestep.monitor").joinpath("monitor.toml")))


def load_monitor_config(path: str | Path | None = None) -> MonitorConfig:
    """The configuration in `path`, `$SIDESTEP_MONITOR_CONFIG`, or the packaged defaults."""
    chosen = Path(path or os.environ.get("SIDESTEP_MONITOR_CONFIG") or _packaged())
    try:
        with chosen.open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise MonitorConfigError(f"{chosen.name}: cannot read: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise MonitorConfigError(f"{chosen.name}: invalid TOML: {exc}") from exc
    try:
        return MonitorConfig.model_validate(document)
    except ValidationError as exc:
        lines = [f"{chosen.name}: {'.'.join(map(str, e['loc'])) or 'file'}: {e['msg']}"
                 for e in exc.errors()]
        raise MonitorConfigError("\n".join(lines)) from exc
