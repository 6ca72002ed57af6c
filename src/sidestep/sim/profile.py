"""What a simulated platform declares: its hosts, its routes, its features, its error bodies.

One module per platform under `sim/platforms/` defines one `Profile` subclass; the server finds
them all by import. The mechanics every platform shares live in the server, not here: faults
(timeouts, 5xx, 429, expired tokens, garbage) are applied before a route runs, using the
profile's own `error()` so each platform fails in its own words; requests are checked against
the platform's published spec (`spec`) before they reach a handler.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from sidestep.sim.world import SimWorld


class ErrorKind(StrEnum):
    SERVER_ERROR = "server_error"  # the platform's 5xx
    UNAVAILABLE = "unavailable"  # 503 / "service temporarily unavailable"
    RATE_LIMITED = "rate_limited"
    AUTH_EXPIRED = "auth_expired"  # a token that was valid and has expired or been revoked
    AUTH_MISSING = "auth_missing"  # no or unknown credentials
    INVALID_REQUEST = "invalid_request"  # validation failed (the platform's 400/422)
    NOT_FOUND = "not_found"
    DUPLICATE = "duplicate"  # the platform refuses a repeated post (Graph API 506)
    MEDIA_FAILED = "media_failed"  # the partial fault: media upload or processing fails


@dataclass(frozen=True, slots=True)
class SpecRef:
    """Where the platform's published spec lies, relative to the specs directory."""

    file: str  # e.g. "discord/openapi.json"
    # The server URL our requests are matched against (the spec's own may be templated).
    server: str
    # Read the spec's oneOf as anyOf: a body valid under several branches is valid (for specs
    # whose branches overlap where the platform accepts both, e.g. Mastodon's statuses).
    lenient_one_of: bool = False


class Profile:
    """Base of every simulated platform. Subclasses set the class attributes and `routes`."""

    key: ClassVar[str]  # the catalogue's platform key
    hosts: ClassVar[tuple[str, ...]]  # hostnames this profile answers (API, upload, media)
    spec: ClassVar[SpecRef | None] = None

    def __init__(self, world: SimWorld) -> None:
        self.world = world

    def routes(self) -> list[BaseRoute]:
        """The platform's endpoints, as Starlette routes whose paths are the real ones."""
        raise NotImplementedError  # abstract

    def feature_of(self, request: Request) -> str:
        """Which feature a request uses: "text", "media", "auth", "read"... (for partial faults)."""
        return "text"

    def error(
        self, kind: ErrorKind, message: str, *, retry_after_s: float | None = None
    ) -> Response:
        """The platform's own error response (status, headers, body) for `kind`."""
        raise NotImplementedError  # abstract

    def spec_for(self, request: Request) -> SpecRef | None:
        """The published spec `request` is checked against; on a shared host it is the spec
        of the product the request belongs to (WhatsApp's on graph.facebook.com)."""
        return self.spec

    def platform_of(self, request: Request) -> str:
        """Whose faults hit this request. A host shared by several products (Meta's
        graph.facebook.com) answers for each of them; by default it is the profile's own."""
        return self.key

    def error_for(
        self, request: Request, kind: ErrorKind, message: str, *, retry_after_s: float | None = None
    ) -> Response:
        """`error()` in the words the endpoint of `request` uses (X's v1.1 upload speaks v1.1,
        Meta's products each their own). The server's fault gate calls this one."""
        return self.error(kind, message, retry_after_s=retry_after_s)

    def bearer_account(self, request: Request) -> str | None:
        """The account behind an `Authorization: Bearer` token, or None if unknown."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        return self.world.account_for(self.key, token.strip())


def all_profiles() -> dict[str, type[Profile]]:
    """Every profile under `sidestep.sim.platforms`, keyed by platform."""
    import sidestep.sim.platforms as package

    found: dict[str, type[Profile]] = {}
    for module_info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{module_info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, Profile) and value is not Profile \
                    and getattr(value, "key", None) and value.__module__ == module.__name__:
                found[value.key] = value
    return found
