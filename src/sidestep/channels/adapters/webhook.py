"""Webhook: Sidestep's owned channel that POSTs each post, signed, to a URL the brand runs.

There is no third-party API: this module *is* the contract, written after the common practice
of signed webhooks (GitHub, https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries;
Stripe, https://docs.stripe.com/webhooks#verify-events) and HTTP semantics (RFC 9110,
https://www.rfc-editor.org/rfc/rfc9110; Retry-After, section 10.2.3).

    POST <webhook_url>
    Content-Type: application/json
    X-Sidestep-Delivery: <idempotency key>      the receiver drops a delivery id it has seen
    X-Sidestep-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed with signing_secret>

    {"id": <idempotency key>, "text": ..., "link": ... | null, "reply_to": ... | null,
     "media": [{"kind", "mime_type", "url", "sha256"}], "published_at": <ISO 8601 UTC>}

Media travel as references: each item needs a public `url` (the receiver fetches it and can
check `sha256`). Credentials are the catalogue's secret fields, `webhook_url` and
`signing_secret`. Exactly once is the receiver's dedupe on X-Sidestep-Delivery; there is no
`find` (`can_find = False`), and resending a delivery is safe.

Private targets: the URL's host is resolved and every address must be public (global, and
not private, loopback, link-local, reserved, multicast or unspecified), so a channel cannot
be aimed at the server's own network (SSRF). Tests and the simulator, which live on loopback, pass
`allow_private_targets=True`. The connection resolves the name again, so a DNS answer that
changes between check and send (rebinding) is not caught; pinning the checked address would
need a transport of its own.

| answer            | class                                                          |
|-------------------|----------------------------------------------------------------|
| 2xx               | Published (external_id: the receiver's `delivery`, else the key) |
| 401, 403          | AuthExpired: the secret was rotated or the receiver refuses us |
| 404, 410          | AuthExpired: the hook is gone; someone must fix the URL       |
| 429               | RateLimited (Retry-After)                                      |
| other 4xx         | Rejected                                                       |
| 502, 503, 504     | PlatformOutage                                                 |
| other 5xx         | Transient                                                      |
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ValidationError

from sidestep.catalogue import Platform
from sidestep.channels.base import AccountInfo, Adapter, Published
from sidestep.channels.errors import (
    AuthExpired,
    PlatformOutage,
    PublishError,
    RateLimited,
    Rejected,
    Transient,
)
from sidestep.channels.http import generic_status_error, retry_after_s
from sidestep.clock import Clock
from sidestep.domain.content import Content, Problem
from sidestep.logs import redact_text, register_secret
from sidestep.vault import Credentials

SIGNATURE_HEADER = "X-Sidestep-Signature"
DELIVERY_HEADER = "X-Sidestep-Delivery"


def sign(secret: str, body: bytes) -> str:
    """The X-Sidestep-Signature value for `body`: `sha256=` and the hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def is_public_address(address: str) -> bool:
    """Whether an IP address is one the public internet routes (IPv4-mapped IPv6 unwrapped)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # is_global also excludes shared space such as 100.64.0.0/10 (carrier-grade NAT).
    return ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local
                                 or ip.is_reserved or ip.is_multicast or ip.is_unspecified)


class _Answer(BaseModel):
    delivery: str | None = None


class WebhookAdapter(Adapter):
    """Delivers posts as signed JSON to the channel's own webhook URL."""

    platform = "webhook"
    credential_fields = ("webhook_url", "signing_secret")
    default_timeout_s = 15.0
    can_find = False

    def __init__(self, *, client: httpx.AsyncClient, clock: Clock | None = None,
                 entry: Platform | None = None, timeout_s: float | None = None,
                 poll_interval_s: float | None = None,
                 allow_private_targets: bool = False) -> None:
        super().__init__(client=client, clock=clock, entry=entry, timeout_s=timeout_s,
                         poll_interval_s=poll_interval_s)
        self.allow_private_targets = allow_private_targets

    def platform_problems(self, content: Content) -> list[Problem]:
        return [Problem("media_url", f"The webhook sends links to media, and {item.filename} "
                        "has no public address yet; upload it to the media library first.")
                for item in content.media if not item.url]

    async def publish(self, content: Content, credentials: Credentials, *,
                      idempotency_key: str) -> Published:
        """POST the signed delivery once; returns the receiver's delivery id.

        Raises AuthExpired (credentials missing, URL unusable or aimed at a private network,
        signature refused, hook gone), Rejected (the receiver refuses the body or a media
        item has no URL), RateLimited, Transient, PlatformOutage, or Unknown(maybe_sent=True)
        when the answer was lost (resending is safe: the receiver dedupes).
        """
        url, secret = self._open(credentials)
        missing_urls = self.platform_problems(content)
        if missing_urls:
            raise Rejected(missing_urls[0].message)
        await self._check_target(url)
        body = json.dumps({
            "id": idempotency_key, "text": content.text, "link": content.link,
            "reply_to": content.reply_to,
            "media": [{"kind": item.kind.value, "mime_type": item.mime_type, "url": item.url,
                       "sha256": item.sha256} for item in content.media],
            "published_at": self.clock.now().isoformat().replace("+00:00", "Z"),
        }, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", DELIVERY_HEADER: idempotency_key,
                   SIGNATURE_HEADER: sign(secret, body)}
        try:
            response = await self.http.request("POST", url, changes=True, content=body,
                                               headers=headers)
        except PublishError as exc:
            exc.args = (redact_text(str(exc)),)  # a webhook URL may carry a token
            raise
        if not 200 <= response.status_code < 300:
            raise self._error(response)
        return Published(external_id=self._delivery_id(response) or idempotency_key)

    async def delete(self, external_id: str, credentials: Credentials) -> None:
        """Not possible: a delivery cannot be recalled. Raises Rejected saying so."""
        raise Rejected("A webhook delivery cannot be taken back; the receiving system must "
                       "remove the post itself.")

    async def check_credentials(self, credentials: Credentials) -> AccountInfo:
        """The webhook's host, after checking the URL and its addresses; sends nothing.

        Raises AuthExpired for missing credentials or a URL that is unusable or private,
        PlatformOutage when its name does not resolve.
        """
        url, _ = self._open(credentials)
        await self._check_target(url)
        host = urlsplit(url).hostname or ""
        return AccountInfo(account_id=host, name=f"webhook at {host}")

    # -- mechanics ----------------------------------------------------------------------

    def _open(self, credentials: Credentials) -> tuple[str, str]:
        missing = self.missing_credentials(credentials)
        if missing:
            raise AuthExpired(f"The webhook channel lacks {' and '.join(missing)}; set it up "
                              "again.")
        url, secret = credentials["webhook_url"].strip(), credentials["signing_secret"]
        register_secret(url)
        register_secret(secret)
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.username:
            raise AuthExpired("The webhook channel's URL is not an http(s) address without a "
                              "password in it; set it up again.")
        return url, secret

    async def _check_target(self, url: str) -> None:
        """Refuse a URL whose host resolves to any non-public address (unless allowed)."""
        if self.allow_private_targets:
            return
        parts = urlsplit(url)
        host = parts.hostname or ""
        try:
            addresses = [host] if _is_ip(host) else [
                str(info[4][0]) for info in await asyncio.get_running_loop().getaddrinfo(
                    host, parts.port or (443 if parts.scheme == "https" else 80),
                    type=socket.SOCK_STREAM)]
        except OSError as exc:
            raise PlatformOutage(f"The webhook's host {host} does not resolve: {exc}") from exc
        private = sorted({a for a in addresses if not is_public_address(a)})
        if private or not addresses:
            raise AuthExpired(f"The webhook's host {host} points at a private or local "
                              f"network ({', '.join(private) or 'no address'}); Sidestep only "
                              "delivers to public addresses. Set the channel up again.")

    def _delivery_id(self, response: httpx.Response) -> str | None:
        """The receiver's id for the delivery, if it answered JSON with one.

        Raises Transient when the answer claims JSON but is not: something between us and the
        receiver garbled it, and resending is safe.
        """
        if "json" not in response.headers.get("content-type", "") or not response.content:
            return None
        try:
            answer = _Answer.model_validate_json(response.content)
        except ValidationError as exc:
            raise Transient(f"The webhook answered HTTP {response.status_code} with broken "
                            "JSON; the delivery will be resent (the receiver drops repeats)",
                            http_status=response.status_code) from exc
        return answer.delivery

    def _error(self, response: httpx.Response) -> PublishError:
        status = response.status_code
        detail = _detail(response)
        if status == 429:
            return RateLimited(f"The webhook receiver asks us to slow down ({detail})",
                               retry_after_s=retry_after_s(response, now=self.clock.now()),
                               http_status=status)
        if status in (401, 403, 404, 410):
            return AuthExpired(f"The webhook receiver refused the delivery ({detail}): its "
                               "secret or address changed; set the channel up again.",
                               http_status=status)
        if 400 <= status < 500:
            return Rejected(f"The webhook receiver refused the post ({detail})",
                            http_status=status)
        if status in (502, 503, 504):
            return PlatformOutage(f"The webhook receiver is not answering ({detail})",
                                  http_status=status)
        if status >= 500:
            return Transient(f"The webhook receiver failed ({detail})", http_status=status)
        error = generic_status_error(response, platform=self.platform, now=self.clock.now())
        return error if isinstance(error, PublishError) else Transient(str(error))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _detail(response: httpx.Response) -> str:
    """`error: message` from a JSON error body, else the status, capped and secret-free."""
    try:
        body: Any = json.loads(response.content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict) and (body.get("error") or body.get("message")):
        parts = [str(body[k]) for k in ("error", "message") if body.get(k)]
        return redact_text(": ".join(parts))[:300]
    return f"HTTP {response.status_code}"
