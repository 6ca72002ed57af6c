"""Discord: messages sent through a channel webhook.

Official API (https://discord.com/developers/docs/resources/webhook):

- `POST /webhooks/{id}/{token}?wait=true` (Execute Webhook): JSON `{"content"}`, or multipart
  with `payload_json` and `files[n]` for attachments (`attachments[n].description` carries
  the alt text, https://discord.com/developers/docs/reference#uploading-files); `wait=true`
  makes Discord answer with the message it saved instead of 204;
- `DELETE /webhooks/{id}/{token}/messages/{message_id}` (Delete Webhook Message);
- `GET /webhooks/{id}/{token}` (Get Webhook with Token) to check the credentials.

Idempotency: Execute Webhook takes no `nonce`/`enforce_nonce` (only Create Message does,
https://discord.com/developers/docs/resources/message#create-message; the published spec's
IncomingWebhookRequestPartial has neither), and a webhook cannot list its messages, so
there is no exactly-once and no `find` (`can_find = False`). A lost answer is reported as
Unknown(maybe_sent=True) by the HTTP layer; the dispatcher must not blindly resend.

Replies: a webhook message cannot reference another message (Execute Webhook has no
`message_reference`), so a post with `reply_to` goes out as the next message in the same
channel (or the thread named by the webhook URL's `thread_id`), where it reads as the
continuation.

Rate limits (https://discord.com/developers/docs/topics/rate-limits): every answer carries
`X-RateLimit-Remaining` and `X-RateLimit-Reset-After`. When a webhook's bucket is empty the
adapter raises RateLimited *before* sending until the reset, per webhook id (a global 429
stops every webhook) and per adapter instance: Discord bans clients that make 10,000 invalid
requests (401, 403, 429) in 10 minutes, so the adapter never sends into a known-empty bucket
and never retries itself.

Errors (https://discord.com/developers/docs/topics/opcodes-and-status-codes#json):

| answer                                   | class                                      |
|------------------------------------------|--------------------------------------------|
| 429 (`retry_after` seconds, `global`)    | RateLimited; the bucket is marked empty    |
| 401 (0, 50027 Invalid Webhook Token)     | AuthExpired                                |
| 403 (50001, 50013 missing access)        | AuthExpired: the webhook lost its channel  |
| 404 (10015 Unknown Webhook, 10003...)    | AuthExpired: the webhook was deleted       |
| 400 50035 Invalid Form Body              | Rejected, the field errors flattened       |
| other 400 (50006 empty message...), 413 (40005) | Rejected                            |
| 502, 503, 504                            | PlatformOutage                             |
| other 5xx                                | Transient                                  |
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import BaseModel, Field, ValidationError

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
from sidestep.channels.http import generic_status_error, read_model, retry_after_s
from sidestep.clock import Clock
from sidestep.domain.content import Content, Problem
from sidestep.logs import redact_text, register_secret
from sidestep.vault import Credentials

WEBHOOK_HOSTS = ("discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com")
_WEBHOOK_PATH = re.compile(r"^/api(?:/v\d+)?/webhooks/(\d+)/([A-Za-z0-9_.-]+)/?$")
UNKNOWN_MESSAGE = 10008
_GLOBAL = "*"  # the bucket key of Discord's global limit, which stops every webhook
_M = TypeVar("_M", bound=BaseModel)


class _ErrorBody(BaseModel):
    code: int = 0
    message: str = ""
    errors: dict[str, Any] | None = None
    retry_after: float | None = None
    global_: bool = Field(False, alias="global")


class _Message(BaseModel):
    id: str
    channel_id: str = ""


class _Webhook(BaseModel):
    id: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class _Hook:
    id: str
    url: str  # the API URL of the webhook, token included (secret)
    thread_id: str | None


def flatten_form_errors(errors: dict[str, Any], path: str = "") -> list[str]:
    """`"field.0.sub: message"` lines from Discord's nested `errors` object."""
    lines: list[str] = []
    for key, value in errors.items():
        if key == "_errors" and isinstance(value, list):
            lines += [f"{path or 'body'}: {e.get('message', e.get('code', '?'))}"
                      for e in value if isinstance(e, dict)]
        elif isinstance(value, dict):
            lines += flatten_form_errors(value, f"{path}.{key}" if path else key)
    return lines


class DiscordAdapter(Adapter):
    """Posts to the Discord channel a webhook URL belongs to."""

    platform = "discord"
    credential_fields = ("webhook_url",)
    default_timeout_s = 30.0
    can_find = False

    def __init__(self, *, client: httpx.AsyncClient, clock: Clock | None = None,
                 entry: Platform | None = None, timeout_s: float | None = None,
                 poll_interval_s: float | None = None) -> None:
        super().__init__(client=client, clock=clock, entry=entry, timeout_s=timeout_s,
                         poll_interval_s=poll_interval_s)
        self._empty_until: dict[str, float] = {}  # webhook id -> when its bucket refills

    def platform_problems(self, content: Content) -> list[Problem]:
        text = _message_text(content)
        limit = self.entry.limits.text_max_chars
        if text != content.text and len(text) > limit >= len(content.text):
            return [Problem("too_long", f"With the link added, the message has "
                            f"{len(text):,} characters; Discord allows {limit:,}.")]
        return []

    async def publish(self, content: Content, credentials: Credentials, *,
                      idempotency_key: str) -> Published:
        """Execute the webhook once and return the message id.

        Raises RateLimited without sending while the webhook's bucket is known to be empty;
        AuthExpired for a missing, malformed, revoked or deleted webhook; Rejected for
        content Discord refuses; Transient, PlatformOutage, or Unknown(maybe_sent=True)
        when the answer was lost (Discord has no idempotency key for webhooks).
        """
        hook = self._hook(credentials)
        params = {"wait": "true"} | ({"thread_id": hook.thread_id} if hook.thread_id else {})
        payload: dict[str, Any] = {"content": _message_text(content)}
        if not content.media:
            response = await self._send(hook, "POST", hook.url, changes=True, params=params,
                                        json=payload)
        else:
            payload["attachments"] = [
                {"id": str(n), "filename": item.filename, "description": item.alt or None}
                for n, item in enumerate(content.media)]
            files = [(f"files[{n}]", (item.filename, item.data, item.mime_type))
                     for n, item in enumerate(content.media)]
            response = await self._send(hook, "POST", hook.url, changes=True, params=params,
                                        data={"payload_json": json.dumps(payload)}, files=files)
        message = self._parse(response, _Message)
        return Published(external_id=message.id)

    async def delete(self, external_id: str, credentials: Credentials) -> None:
        """Delete a message the webhook sent; one that is already gone counts as deleted.

        Raises the publish errors (AuthExpired, RateLimited, Transient, PlatformOutage).
        """
        hook = self._hook(credentials)
        params = {"thread_id": hook.thread_id} if hook.thread_id else None
        response = await self._send(hook, "DELETE", f"{hook.url}/messages/{external_id}",
                                    changes=True, params=params)
        if response.status_code == 204 or _code(response) == UNKNOWN_MESSAGE:
            return
        raise self._error(response)

    async def check_credentials(self, credentials: Credentials) -> AccountInfo:
        """The webhook's id and name; AuthExpired if it was deleted or its token is wrong."""
        hook = self._hook(credentials)
        webhook = self._parse(await self._send(hook, "GET", hook.url, changes=False), _Webhook)
        return AccountInfo(account_id=webhook.id, name=webhook.name or f"webhook {webhook.id}")

    # -- mechanics ----------------------------------------------------------------------

    def _hook(self, credentials: Credentials) -> _Hook:
        raw = credentials.get("webhook_url", "").strip()
        if not raw:
            raise AuthExpired("The Discord channel has no webhook_url; reconnect it.")
        register_secret(raw)
        parts = urlsplit(raw)
        match = _WEBHOOK_PATH.match(parts.path)
        if parts.scheme != "https" or parts.hostname not in WEBHOOK_HOSTS or match is None:
            raise AuthExpired("The Discord channel's webhook_url is not a Discord webhook "
                              "address (https://discord.com/api/webhooks/...); reconnect it.")
        hook_id, token = match.groups()
        register_secret(token)
        thread = parse_qs(parts.query).get("thread_id", [None])[0]
        base = self.entry.api_base_urls[0].rstrip("/")
        return _Hook(hook_id, f"{base}/webhooks/{hook_id}/{token}", thread)

    async def _send(self, hook: _Hook, method: str, url: str, *, changes: bool,
                    **kwargs: Any) -> httpx.Response:
        now = self.clock.now().timestamp()
        refill = max(self._empty_until.get(hook.id, 0.0), self._empty_until.get(_GLOBAL, 0.0))
        if refill > now:
            raise RateLimited("Discord's rate limit for this webhook is used up; not sending "
                              "until it resets", retry_after_s=refill - now)
        try:
            response = await self.http.request(method, url, changes=changes, **kwargs)
        except PublishError as exc:
            exc.args = (redact_text(str(exc)),)  # the webhook URL holds its token
            raise
        self._note_bucket(hook, response)
        return response

    def _note_bucket(self, hook: _Hook, response: httpx.Response) -> None:
        """Remember when an empty bucket refills (from the headers, or a 429's body)."""
        now = self.clock.now().timestamp()
        wait_s: float | None = None
        if response.status_code == 429:
            wait_s = self._retry_after(response)
        elif response.headers.get("x-ratelimit-remaining") == "0":
            try:
                wait_s = float(response.headers.get("x-ratelimit-reset-after", ""))
            except ValueError:
                wait_s = 1.0
        if wait_s is None:
            self._empty_until.pop(hook.id, None)
            return
        body = _error_body(response) if response.status_code == 429 else None
        key = _GLOBAL if body is not None and body.global_ else hook.id
        self._empty_until[key] = now + max(wait_s, 0.0)

    def _retry_after(self, response: httpx.Response) -> float:
        body = _error_body(response)
        if body is not None and body.retry_after is not None:
            return max(body.retry_after, 0.0)
        return retry_after_s(response, now=self.clock.now(), default_s=1.0)

    def _parse(self, response: httpx.Response, model: type[_M]) -> _M:
        if response.status_code != 200:
            raise self._error(response)
        return read_model(model, response, platform=self.entry.name)

    def _error(self, response: httpx.Response) -> PublishError:
        status = response.status_code
        body = _error_body(response) or _ErrorBody()
        code = str(body.code) if body.code else None
        detail = body.message or f"HTTP {status}"
        if status == 429:
            scope = "all requests from Sidestep (global)" if body.global_ else "this webhook"
            return RateLimited(f"Discord is rate limiting {scope}",
                               retry_after_s=self._retry_after(response) or 1.0,
                               platform_code="global" if body.global_ else code,
                               http_status=status)
        if status in (401, 403, 404):
            return AuthExpired(f"Discord refused the webhook ({detail}): it was deleted or "
                               "lost access to its channel; reconnect the channel.",
                               platform_code=code, http_status=status)
        if status in (400, 413):
            fields = flatten_form_errors(body.errors or {})
            reason = "; ".join(fields) if fields else detail
            return Rejected(f"Discord refused the message: {reason}", platform_code=code,
                            http_status=status)
        if status in (502, 503, 504):
            return PlatformOutage(f"Discord is not answering ({detail})", platform_code=code,
                                  http_status=status)
        if status >= 500:
            return Transient(f"Discord failed ({detail})", platform_code=code,
                             http_status=status)
        error = generic_status_error(response, platform=self.platform, now=self.clock.now())
        return error if isinstance(error, PublishError) else Transient(str(error))


def _error_body(response: httpx.Response) -> _ErrorBody | None:
    try:
        return _ErrorBody.model_validate_json(response.content)
    except ValidationError:
        return None


def _code(response: httpx.Response) -> int:
    body = _error_body(response)
    return body.code if body is not None else 0


def _message_text(content: Content) -> str:
    """The message: the text, with the link appended (Discord previews it) unless present."""
    if content.link and content.link not in content.text:
        return f"{content.text}\n\n{content.link}" if content.text.strip() else content.link
    return content.text
