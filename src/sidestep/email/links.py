"""Signed links for subscribers: unsubscribe, preferences and double opt-in confirmation.

A token is `<payload>.<mac>`, both URL-safe base64 without padding. The payload names the
purpose, workspace, subscriber, list (or none) and, for links that expire, the issue time;
the MAC is HMAC-SHA256 over it with a key derived from the runtime's secret key, so a token
for one purpose never works for another and nobody can make one without the key.

Unsubscribe tokens carry no time: RFC 8058 mailers and people click months later, and an
unsubscribe link that stopped working would be worse than useless. Confirmation tokens do
carry one, and `verify_token(..., max_age_s=...)` refuses them when too old.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sidestep.config import Settings
from sidestep.vault import Vault

UNSUBSCRIBE = "unsubscribe"
CONFIRM = "confirm"
CONFIRM_MAX_AGE_S = 7 * 24 * 3600
_PURPOSE = re.compile(r"[a-z][a-z_-]{0,31}")
_DERIVATION_LABEL = b"sidestep/email-links/v1"


class LinkError(ValueError):
    """The token is malformed, forged, for another purpose, or expired."""


@dataclass(frozen=True, slots=True)
class LinkClaims:
    purpose: str
    workspace_id: int
    subscriber_id: int
    list_id: int | None
    issued_at: datetime | None


def links_secret(settings: Settings) -> bytes:
    """The link-signing secret for this installation (the same in every process)."""
    secret = settings.secret_key.get_secret_value() if settings.secret_key else None
    return Vault.derived_key(secret_key=secret, data_dir=settings.data_dir,
                             label=_DERIVATION_LABEL)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload: str) -> bytes:
    return hmac.new(secret, payload.encode("ascii"), hashlib.sha256).digest()


def sign_token(
    secret: bytes, purpose: str, workspace_id: int, subscriber_id: int, list_id: int | None,
    *, issued_at: datetime | None = None,
) -> str:
    """Return a URL-safe token; pass `issued_at` for links that must expire."""
    if not _PURPOSE.fullmatch(purpose):
        raise ValueError(f"bad link purpose {purpose!r}")
    stamp = "" if issued_at is None else str(int(issued_at.timestamp()))
    fields = [purpose, str(workspace_id), str(subscriber_id),
              "" if list_id is None else str(list_id), stamp]
    payload = _b64(":".join(fields).encode("ascii"))
    return f"{payload}.{_b64(_mac(secret, payload))}"


def verify_token(
    secret: bytes, token: str, *, purpose: str, max_age_s: int | None = None,
    now: datetime | None = None,
) -> LinkClaims:
    """Return the token's claims; raise `LinkError` unless it is ours, for `purpose`, and (with
    `max_age_s`) carries an issue time no older than that at `now`."""
    payload, dot, mac = token.partition(".")
    if not dot or len(token) > 300:
        raise LinkError("this link is incomplete; copy the whole link from the email")
    try:
        given = _unb64(mac)
        fields = _unb64(payload).decode("ascii").split(":")
    except (ValueError, UnicodeDecodeError) as exc:
        raise LinkError("this link is damaged; copy the whole link from the email") from exc
    if not hmac.compare_digest(given, _mac(secret, payload)):
        raise LinkError("this link is not valid; it may have been cut or changed")
    if len(fields) != 5 or fields[0] != purpose:
        raise LinkError("this link is not meant for this page")
    try:
        workspace_id, subscriber_id = int(fields[1]), int(fields[2])
        list_id = int(fields[3]) if fields[3] else None
        issued_at = datetime.fromtimestamp(int(fields[4]), UTC) if fields[4] else None
    except ValueError as exc:  # only reachable with our own key, i.e. a bug
        raise LinkError("this link is damaged") from exc
    if max_age_s is not None:
        if issued_at is None or now is None:
            raise LinkError("this link has no date and cannot be checked for age")
        if (now - issued_at).total_seconds() > max_age_s:
            raise LinkError("this link has expired; subscribe again to get a new one")
    return LinkClaims(purpose, workspace_id, subscriber_id, list_id, issued_at)


def unsubscribe_url(base_url: str, token: str) -> str:
    """The one-click unsubscribe URL (RFC 8058 POST target, and a page on GET)."""
    return f"{base_url.rstrip('/')}/u/{token}"


def preferences_url(base_url: str, token: str) -> str:
    """The preferences page; it takes the same token as the unsubscribe link."""
    return f"{base_url.rstrip('/')}/p/{token}"


def confirm_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/c/{token}"
