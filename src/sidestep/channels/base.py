"""The adapter contract: what every platform adapter declares and does.

What is special about a platform is declared (its catalogue entry, timeouts, whether it can
find a post by our idempotency marker); the mechanics (HTTP, failure translation, generic
content checks against the catalogue's limits) live here and in `http.py`.
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import httpx

from sidestep.catalogue import Platform, default_catalogue
from sidestep.channels.errors import Transient
from sidestep.channels.http import PlatformHttp
from sidestep.clock import Clock, SystemClock
from sidestep.domain.content import Content, Problem
from sidestep.vault import Credentials

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Published:
    external_id: str
    url: str | None = None
    note: str | None = None  # what a person should know about a post that did go out


@dataclass(frozen=True, slots=True)
class AccountInfo:
    account_id: str
    name: str


class Adapter:
    """Base of every adapter. Subclasses set `platform` and implement the async methods."""

    platform: ClassVar[str]
    # Every field the channel's credentials hold (secret or not: a page id, a chat id).
    # Which of them are secret is the catalogue's `secret_fields`.
    credential_fields: ClassVar[tuple[str, ...]]
    default_timeout_s: ClassVar[float] = 30.0
    # Pause between status polls of multi-step uploads (containers, video processing).
    default_poll_interval_s: ClassVar[float] = 2.0
    max_polls: ClassVar[int] = 60
    # True when `find` can look a post up by our idempotency marker (crash reconciliation).
    can_find: ClassVar[bool] = False

    def __init__(self, *, client: httpx.AsyncClient, clock: Clock | None = None,
                 entry: Platform | None = None, timeout_s: float | None = None,
                 poll_interval_s: float | None = None) -> None:
        self.entry = entry or default_catalogue().get(self.platform)
        self.clock = clock or SystemClock()
        self.timeout_s = timeout_s if timeout_s is not None else self.default_timeout_s
        self.poll_interval_s = (poll_interval_s if poll_interval_s is not None
                                else self.default_poll_interval_s)
        self.http = PlatformHttp(client, platform=self.platform, timeout_s=self.timeout_s)

    def missing_credentials(self, credentials: Credentials) -> list[str]:
        """The declared credential fields that are absent or empty."""
        return [f for f in self.credential_fields if not credentials.get(f)]

    def text_length(self, text: str) -> int:
        """Length as the platform counts it (graphemes, weighted URLs...); code points here."""
        return len(text)

    def validate(self, content: Content) -> list[Problem]:
        """Problems that stop `content` from going to this platform as it is; [] if none."""
        limits = self.entry.limits
        problems: list[Problem] = []
        if not content.text.strip() and not content.media:
            problems.append(Problem("empty", "The post has neither text nor media."))
        length = self.text_length(content.text)
        if length > limits.text_max_chars:
            problems.append(Problem(
                "too_long", f"{self.entry.name} allows {limits.text_max_chars:,} characters; "
                f"this text has {length:,}."))
        if len(content.media) > limits.max_media_count:
            problems.append(Problem(
                "too_many_media", f"{self.entry.name} takes at most {limits.max_media_count} "
                f"media per post; this post has {len(content.media)}."))
        for item in content.media:
            if item.kind.value not in limits.media_kinds:
                problems.append(Problem(
                    "media_kind", f"{self.entry.name} does not take {item.kind.value} files "
                    f"({item.filename})."))
                continue
            cap = {"image": limits.image_max_bytes, "video": limits.video_max_bytes}.get(
                item.kind.value)
            if cap is not None and item.size_bytes > cap:
                problems.append(Problem(
                    "media_too_large", f"{item.filename} is {item.size_bytes:,} bytes; "
                    f"{self.entry.name} takes {item.kind.value}s up to {cap:,} bytes."))
        problems.extend(self.platform_problems(content))
        return problems

    async def poll(self, check: Callable[[], Awaitable[T | None]], *, what: str,
                   wait_first: bool = False) -> T:
        """What `check` returns once the platform has finished processing `what`.

        Calls `check` up to `max_polls` times, `poll_interval_s` apart (and that long before
        the first call too with `wait_first`, for a caller that has just seen the work
        unfinished). `check` returns None to keep waiting and raises to stop (a failed upload).
        Raises Transient when `what` is still processing after `max_polls` checks.
        """
        for attempt in range(self.max_polls):
            if attempt or wait_first:
                await asyncio.sleep(self.poll_interval_s)
            done = await check()
            if done is not None:
                return done
        raise Transient(f"{self.entry.name} was still processing {what} after "
                        f"{self.max_polls} checks")

    def platform_problems(self, content: Content) -> list[Problem]:
        """Checks only this platform needs (a required title, a link-only rule...)."""
        return []

    async def publish(self, content: Content, credentials: Credentials, *,
                      idempotency_key: str) -> Published:
        """Publish once. Raises a `PublishError` subclass; never retries a changing call."""
        raise NotImplementedError  # abstract

    async def find(self, idempotency_key: str, credentials: Credentials) -> Published | None:
        """The post carrying our marker, if the platform has it (only when `can_find`)."""
        raise NotImplementedError  # abstract

    async def delete(self, external_id: str, credentials: Credentials) -> None:
        raise NotImplementedError  # abstract

    async def check_credentials(self, credentials: Credentials) -> AccountInfo:
        """Whose account the credentials open; raises AuthExpired if they do not work."""
        raise NotImplementedError  # abstract


def all_adapters() -> dict[str, type[Adapter]]:
    """Every adapter module under `sidestep.channels.adapters`, keyed by platform."""
    import sidestep.channels.adapters as package

    found: dict[str, type[Adapter]] = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, Adapter) and value is not Adapter
                    and value.__module__ == module.__name__ and getattr(value, "platform", None)):
                found[value.platform] = value
    return found
