"""The error taxonomy every adapter maps into, keyed to what the caller must do next.

    PublishError
    ├── RateLimited(retry_after_s)   wait that long, then try again; not an outage
    ├── Transient                    try again soon with backoff (a 500, a garbled answer)
    ├── PlatformOutage               the platform is not answering: hold, do not hammer
    ├── AuthExpired                  a person must reconnect the channel; not an outage
    ├── Rejected(reason)             the content is invalid for the platform; never retried
    └── Unknown(maybe_sent)          unclassified; with maybe_sent the post may exist already,
                                     so it must be looked up, never blindly sent again

Adapters only classify; the dispatcher decides. Foreign exceptions are translated once, in
`channels/http.py` and in each adapter's error table, with `raise ... from exc`. Stored
detail is capped: platform error bodies can be megabytes.
"""

from __future__ import annotations

DETAIL_CAP = 500


def capped(text: str, limit: int = DETAIL_CAP) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class PublishError(Exception):
    """Base of the taxonomy. `error_class` is the stable name stored on delivery attempts."""

    error_class = "unknown"

    def __init__(self, message: str, *, platform_code: str | None = None,
                 http_status: int | None = None) -> None:
        super().__init__(capped(message))
        self.platform_code = platform_code
        self.http_status = http_status


class RateLimited(PublishError):
    error_class = "rate_limited"

    def __init__(self, message: str, *, retry_after_s: float, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after_s = max(0.0, retry_after_s)


class Transient(PublishError):
    error_class = "transient"


class PlatformOutage(PublishError):
    error_class = "outage"


class AuthExpired(PublishError):
    error_class = "auth"


class Rejected(PublishError):
    error_class = "rejected"

    @property
    def reason(self) -> str:
        return str(self)


class Unknown(PublishError):
    error_class = "unknown"

    def __init__(self, message: str, *, maybe_sent: bool, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.maybe_sent = maybe_sent
