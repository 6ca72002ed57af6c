"""The one HTTP layer adapters use: explicit timeouts, bounded bodies, translated failures.

Transport failures become the taxonomy here, once. Whether a failed call may have taken
effect matters: a read timeout after a publish request was sent may mean the post exists, so
calls that change something (`changes=True`) turn such failures into `Unknown(maybe_sent=True)`
instead of `Transient`, and the dispatcher looks the post up instead of sending it again.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from sidestep import __version__
from sidestep.channels.errors import PlatformOutage, RateLimited, Transient, Unknown, capped

USER_AGENT = f"Sidestep/{__version__} (+https://github.com/sidestep-project/sidestep)"
MAX_BODY_BYTES = 4 * 1024 * 1024

M = TypeVar("M", bound=BaseModel)


def make_client(transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The HTTP client adapters share; the simulator passes its own transport."""
    return httpx.AsyncClient(
        transport=transport, follow_redirects=False, headers={"User-Agent": USER_AGENT},
        timeout=httpx.Timeout(30.0, connect=5.0),
    )


class PlatformHttp:
    """Requests to one platform with its declared timeout and the failure translation."""

    def __init__(self, client: httpx.AsyncClient, *, platform: str, timeout_s: float) -> None:
        self.client = client
        self.platform = platform
        self.timeout = httpx.Timeout(timeout_s, connect=min(5.0, timeout_s))

    async def request(
        self, method: str, url: str, *, changes: bool, **kwargs: Any
    ) -> httpx.Response:
        """Send one request and read its body (at most MAX_BODY_BYTES).

        Raises PlatformOutage when no connection can be made, Unknown(maybe_sent=True) when a
        changing call was sent but its answer was lost, Transient for other transport faults
        and for bodies over the cap. HTTP error statuses are returned, not raised: the
        adapter's own error table reads them.
        """
        kwargs.setdefault("timeout", self.timeout)
        try:
            async with self.client.stream(method, url, **kwargs) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > MAX_BODY_BYTES:
                        raise Transient(f"{self.platform} answered more than "
                                        f"{MAX_BODY_BYTES} bytes", http_status=response.status_code)
                response._content = bytes(body)  # noqa: SLF001 - httpx's own cache of the body
                return response
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise PlatformOutage(f"cannot connect to {self.platform}: {_describe(exc)}") from exc
        except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.RemoteProtocolError,
                httpx.ReadError, httpx.WriteError) as exc:
            message = f"{self.platform} did not answer completely: {_describe(exc)}"
            if changes:
                raise Unknown(message, maybe_sent=True) from exc
            raise Transient(message) from exc
        except httpx.PoolTimeout as exc:
            raise Transient(f"too many requests to {self.platform} in flight") from exc
        except httpx.HTTPError as exc:
            raise Transient(f"{self.platform}: {_describe(exc)}") from exc


def json_body(response: httpx.Response, *, platform: str) -> Any:
    """The response's JSON; a body that is not JSON (a CDN's HTML page) raises Transient."""
    try:
        return json.loads(response.content)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        snippet = capped(response.content[:200].decode("utf-8", "replace"), 120)
        raise Transient(
            f"{platform} answered HTTP {response.status_code} with something that is not JSON: "
            f"{snippet!r}", http_status=response.status_code,
        ) from exc


def read_model(model: type[M], response: httpx.Response, *, platform: str,
               changes: bool = False) -> M:
    """The response body read as `model` (call it once the status says success).

    A body that is not JSON, or lacks the fields `model` needs, raises Transient; when
    `changes` it raises Unknown(maybe_sent=True) instead, because the platform accepted the
    call and the post may exist although its answer cannot be read. The message quotes a body
    that is not JSON (a proxy's HTML page) but only names the missing fields of a JSON one:
    a JSON answer may carry tokens.
    """
    status = response.status_code
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if any(error["type"] == "json_invalid" for error in errors):
            snippet = capped(response.content[:200].decode("utf-8", "replace"), 120)
            message = f"{platform} answered HTTP {status} with something that is not JSON: " \
                      f"{snippet!r}"
        else:
            fields = ", ".join(".".join(str(part) for part in error["loc"]) or "body"
                               for error in errors)
            message = f"{platform} answered HTTP {status} without the " \
                      f"{model.__name__.strip('_')} fields Sidestep needs ({capped(fields, 120)})"
        if changes:
            raise Unknown(message + "; the post may exist", maybe_sent=True,
                          http_status=status) from exc
        raise Transient(message, http_status=status) from exc


def retry_after_s(response: httpx.Response, *, now: datetime, default_s: float = 60.0) -> float:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date)."""
    value = response.headers.get("retry-after")
    if not value:
        return default_s
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - now).total_seconds())
    except (TypeError, ValueError):
        return default_s


def seconds_until_unix(value: str | None, *, now: datetime, default_s: float = 60.0) -> float:
    """Seconds until a reset given as Unix seconds (X's x-rate-limit-reset)."""
    try:
        return max(0.0, float(value) - now.timestamp()) if value else default_s
    except ValueError:
        return default_s


def seconds_until_iso(value: str | None, *, now: datetime, default_s: float = 60.0) -> float:
    """Seconds until a reset given as an ISO 8601 time (Mastodon's X-RateLimit-Reset)."""
    if not value:
        return default_s
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return default_s
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def generic_status_error(response: httpx.Response, *, platform: str, now: datetime) -> Exception:
    """The taxonomy for a status no adapter table matched: 429, 5xx, then anything else."""
    status = response.status_code
    if status == 429:
        return RateLimited(f"{platform} is rate limiting", retry_after_s=retry_after_s(
            response, now=now), http_status=status)
    if status in (502, 503, 504):
        return PlatformOutage(f"{platform} answered HTTP {status}", http_status=status)
    if status >= 500:
        return Transient(f"{platform} answered HTTP {status}", http_status=status)
    body = capped(response.content[:300].decode("utf-8", "replace"), 200)
    return Unknown(f"{platform} answered HTTP {status}: {body}", maybe_sent=False,
                   http_status=status)


def _describe(exc: Exception) -> str:
    return str(exc) or type(exc).__name__
