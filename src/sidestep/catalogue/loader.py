"""Load and validate the platform catalogue (``platforms.toml``).

One TOML table per platform, named by its key (``[instagram]``), with sub-tables
``limits``, ``quotas``, ``status_feed`` and an array of ``probes``; frozen pydantic models
that forbid unknown fields check every table, so a typo fails loudly at start-up.

Errors: one exception, :class:`CatalogueError` (a ``ValueError``), whose message starts
with the file, then the platform and field where they apply: ``platforms.toml: platform
'instagram': field 'limits.text_max_chars': Input should be a valid integer``. Syntax
errors, unreadable files and unknown keys raise it too, chained with ``raise ... from``.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

DEFAULT_CATALOGUE_PATH = Path(__file__).with_name("platforms.toml")

Kind = Literal["rented", "owned"]
Feature = Literal["web", "api", "media", "login", "status"]
MediaKind = Literal["image", "video", "audio", "document"]
FeedKind = Literal["statuspage", "rss", "atom"]
Auth = Literal[
    "oauth2", "oauth1", "bot_token", "app_password", "access_token", "webhook_url", "smtp", "none"
]

_NAME_PATTERN = r"^[a-z0-9_]+$"
_HOSTNAME = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_STRICT = ConfigDict(extra="forbid", frozen=True, strict=True, validate_default=True)


class CatalogueError(ValueError):
    """The catalogue file is unreadable, malformed or asked for something it lacks.

    ``file``, ``platform`` and ``field`` say where (the latter two may be ``None``);
    ``reason`` is the bare explanation. When several fields are wrong, the message holds
    one fully located line per problem and the attributes describe the first.
    """

    def __init__(
        self,
        reason: str,
        *,
        file: Path,
        platform: str | None = None,
        field: str | None = None,
        more: Sequence[str] = (),
    ) -> None:
        self.file, self.platform, self.field, self.reason = file, platform, field, reason
        super().__init__("\n".join([_locate(file, platform, field) + reason, *more]))


def _locate(file: Path, platform: str | None, field: str | None) -> str:
    where = f"{file.name}: " + (f"platform '{platform}': " if platform is not None else "")
    return where + (f"field '{field}': " if field is not None else "")


def _absolute_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{url!r} is not an absolute http(s) URL")
    return url


def _hostname(name: str) -> str:
    if not _HOSTNAME.match(name):
        raise ValueError(f"{name!r} is not a lowercase DNS hostname")
    return name


Name = Annotated[str, Field(pattern=_NAME_PATTERN)]
Url = Annotated[str, AfterValidator(_absolute_url)]
Hostname = Annotated[str, AfterValidator(_hostname)]
StatusCode = Annotated[int, Field(ge=100, le=599)]


class Probe(BaseModel):
    """One HTTP check of one feature; ``expect_status`` lists the codes that mean "answering".

    Anonymous API and CDN probes expect the error a live service gives (e.g. ``[400, 401]``).
    """

    model_config = _STRICT

    name: Name
    url: Url
    feature: Feature
    expect_status: list[StatusCode] = Field(default_factory=lambda: [200], min_length=1)


class StatusFeed(BaseModel):
    """Where the platform publishes its own status: a Statuspage v2 JSON, RSS or Atom."""

    model_config = _STRICT

    kind: FeedKind
    url: Url


class Limits(BaseModel):
    """Content limits; ``None`` means the platform documents no fixed number."""

    model_config = _STRICT

    text_max_chars: int = Field(gt=0)
    media_kinds: list[MediaKind]
    max_media_count: int = Field(ge=0)
    image_max_bytes: int | None = Field(default=None, gt=0)
    video_max_bytes: int | None = Field(default=None, gt=0)
    video_max_seconds: int | None = Field(default=None, gt=0)
    links_clickable: bool
    supports_threads: bool


class Quotas(BaseModel):
    """Publishing quotas as documented; ``notes`` says what each number counts."""

    model_config = _STRICT

    posts_per_day: int | None = Field(default=None, gt=0)
    posts_per_hour: int | None = Field(default=None, gt=0)
    requests_per_minute: int | None = Field(default=None, gt=0)
    notes: str = ""


class Platform(BaseModel):
    """One platform: who owns it, how to reach and probe it, what a post may contain.

    Fields are declared in dependency order: validators of later fields read the
    already validated ``kind``, ``auth`` and ``has_public_posting_api``.
    """

    model_config = _STRICT

    key: Name
    name: str = Field(min_length=1)
    kind: Kind
    owner: str = Field(min_length=1)
    category: str = Field(min_length=1)
    auth: Auth
    secret_fields: list[Name] = Field(default_factory=list)
    has_public_posting_api: bool = True
    docs_url: Url
    api_base_urls: list[Url] = Field(default_factory=list)
    hostnames: list[Hostname] = Field(default_factory=list)
    authoritative_nameservers: list[Hostname] = Field(default_factory=list)
    probes: list[Probe] = Field(default_factory=list)
    status_feed: StatusFeed | None = None
    limits: Limits
    quotas: Quotas = Field(default_factory=Quotas)
    notes: str = ""

    @field_validator("owner")
    @classmethod
    def _owner_matches_kind(cls, owner: str, info: ValidationInfo) -> str:
        kind = info.data.get("kind")
        if kind == "owned" and owner != "self":
            raise ValueError("owned platforms are owned by 'self'")
        if kind == "rented" and owner == "self":
            raise ValueError("rented platforms name the company that owns them, not 'self'")
        return owner

    @field_validator("docs_url", "api_base_urls", "probes", "status_feed")
    @classmethod
    def _https_unless_open(cls, value: Any, info: ValidationInfo) -> Any:
        # Plain http is tolerated only for unauthenticated owned endpoints (a site, a feed).
        if info.data.get("auth") != "none":
            for item in value if isinstance(value, list) else [value]:
                url = item.url if isinstance(item, Probe | StatusFeed) else item
                if url is not None and urlsplit(url).scheme != "https":
                    raise ValueError(f"{url!r} must use https")
        return value

    @field_validator("api_base_urls", "hostnames")
    @classmethod
    def _rented_endpoints(cls, values: list[str], info: ValidationInfo) -> list[str]:
        if info.data.get("kind") == "rented" and not values:
            if info.field_name == "hostnames":
                raise ValueError("rented platforms need at least one hostname to probe")
            if info.data.get("has_public_posting_api"):
                raise ValueError("rented platforms with a posting API need an API base URL")
        return values

    @field_validator("probes")
    @classmethod
    def _probes(cls, probes: list[Probe], info: ValidationInfo) -> list[Probe]:
        names = [probe.name for probe in probes]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate probe names: {', '.join(duplicates)}")
        features = {probe.feature for probe in probes}
        if info.data.get("kind") == "rented" and not {"web", "api"} <= features:
            raise ValueError("rented platforms need a 'web' and an 'api' probe")
        return probes


class Catalogue:
    """The loaded platforms, by key; iteration and listings are sorted by key."""

    def __init__(self, platforms: Iterable[Platform], *, source: Path) -> None:
        self.source = source
        self._by_key = {p.key: p for p in sorted(platforms, key=lambda p: p.key)}

    def get(self, key: str) -> Platform:
        """Return the platform called ``key``; raise :class:`CatalogueError` if there is none."""
        try:
            return self._by_key[key]
        except KeyError:
            known = ", ".join(self._by_key)
            raise CatalogueError(
                f"unknown platform {key!r}; known: {known}", file=self.source
            ) from None

    def all(self) -> list[Platform]:
        """Return every platform, sorted by key."""
        return list(self._by_key.values())

    def rented(self) -> list[Platform]:
        """Return the platforms that belong to someone else, sorted by key."""
        return [p for p in self._by_key.values() if p.kind == "rented"]

    def owned(self) -> list[Platform]:
        """Return the channels the brand owns (email, site, feed, webhook), sorted by key."""
        return [p for p in self._by_key.values() if p.kind == "owned"]

    def owners(self) -> dict[str, list[str]]:
        """Return owner -> sorted platform keys, owners sorted: the concentration-risk view."""
        grouped: dict[str, list[str]] = {}
        for platform in self._by_key.values():
            grouped.setdefault(platform.owner, []).append(platform.key)
        return dict(sorted(grouped.items()))

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def __iter__(self) -> Iterator[Platform]:
        return iter(self.all())

    def __len__(self) -> int:
        return len(self._by_key)


def load_catalogue(path: Path | None = None) -> Catalogue:
    """Read and validate a catalogue file (default: the packaged ``platforms.toml``).

    Returns a :class:`Catalogue`. Raises :class:`CatalogueError` if the file cannot be
    read, is not valid TOML (the message carries the line), holds no platforms, or any
    platform breaks the schema (the message names platform and field).
    """
    source = DEFAULT_CATALOGUE_PATH if path is None else Path(path)
    try:
        with source.open("rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise CatalogueError(f"cannot read the file: {exc.strerror or exc}", file=source) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CatalogueError(f"invalid TOML: {exc}", file=source) from exc
    if not document:
        raise CatalogueError("no platforms defined", file=source)
    return Catalogue(
        (_parse_platform(key, table, source) for key, table in document.items()), source=source
    )


@functools.lru_cache(maxsize=1)
def default_catalogue() -> Catalogue:
    """Return the packaged catalogue, loaded once per process; raises :class:`CatalogueError`."""
    return load_catalogue()


def _parse_platform(key: str, table: Any, source: Path) -> Platform:
    if not isinstance(table, dict):
        raise CatalogueError("expected a table of platform fields", file=source, platform=key)
    if "key" in table:
        raise CatalogueError(
            "the key is the table name and must not be set", file=source, platform=key, field="key"
        )
    try:
        return Platform.model_validate({"key": key, **table})
    except ValidationError as exc:
        raise _validation_error(exc, source, key) from exc


def _validation_error(exc: ValidationError, source: Path, key: str) -> CatalogueError:
    located = [(_dotted(error["loc"]), error["msg"]) for error in exc.errors()]
    (field, reason), rest = located[0], located[1:]
    more = [_locate(source, key, where) + msg for where, msg in rest]
    return CatalogueError(reason, file=source, platform=key, field=field, more=more)


def _dotted(loc: tuple[int | str, ...]) -> str | None:
    dotted = ""
    for part in loc:
        dotted += f"[{part}]" if isinstance(part, int) else f".{part}" if dotted else part
    return dotted or None
