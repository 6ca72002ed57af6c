"""Mastodon: statuses on the channel's own instance, with media uploaded first.

Official API (https://docs.joinmastodon.org/methods/statuses/):

- `POST /api/v1/statuses` with `Idempotency-Key`: Mastodon keeps the key for an hour and
  answers a repeated request with the status it already made, so a retry after a lost answer
  cannot post twice (https://docs.joinmastodon.org/methods/statuses/#create);
  `in_reply_to_id` threads a reply under an earlier status;
- `POST /api/v2/media` (200 with `url` when ready, 202 with `url: null` while processing), then
  `GET /api/v1/media/{id}` until `url` is set (206 while processing)
  (https://docs.joinmastodon.org/methods/media/#v2, https://docs.joinmastodon.org/methods/media/#get);
- `DELETE /api/v1/statuses/{id}` (https://docs.joinmastodon.org/methods/statuses/#delete);
- `GET /api/v1/accounts/verify_credentials`
  (https://docs.joinmastodon.org/methods/accounts/#verify_credentials).

Text is counted as Mastodon counts it (https://docs.joinmastodon.org/user/posting/#text):
grapheme clusters, every URL as 23 characters, a remote mention as its local part only.

Errors (https://docs.joinmastodon.org/entities/Error/, https://docs.joinmastodon.org/api/rate-limits/):

| answer                     | class                                                     |
|----------------------------|-----------------------------------------------------------|
| 401                        | AuthExpired (token revoked or expired)                    |
| 403                        | AuthExpired (the token lacks write access, account frozen) |
| 404                        | Rejected (the status replied to, or a media item, is gone) |
| 413, 422                   | Rejected, with `error` and any `details` flattened        |
| 429                        | RateLimited until X-RateLimit-Reset (an ISO 8601 time)     |
| 502, 503, 504              | PlatformOutage                                            |
| other 5xx                  | Transient                                                 |

`find` is not offered (`can_find = False`): the API has no lookup by Idempotency-Key, and
the key itself already makes a repeated publish safe within the hour.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ValidationError

from sidestep.channels.adapters._facets import URL_RE, grapheme_count
from sidestep.channels.base import AccountInfo, Adapter, Published
from sidestep.channels.errors import (
    AuthExpired,
    PlatformOutage,
    PublishError,
    RateLimited,
    Rejected,
)
from sidestep.channels.http import generic_status_error, read_model, seconds_until_iso
from sidestep.domain.content import Content, MediaItem, Problem
from sidestep.logs import redact_text, register_secret
from sidestep.vault import Credentials

DEFAULT_INSTANCE = "https://mastodon.social"
URL_WEIGHT = 23
_REMOTE_MENTION = re.compile(r"@([A-Za-z0-9_]+)@[A-Za-z0-9.-]+\.[A-Za-z]+")
_M = TypeVar("_M", bound=BaseModel)


class _FieldError(BaseModel):
    error: str = ""
    description: str = ""


class _ErrorBody(BaseModel):
    """Mastodon's Error entity; 422s may add per-field `details` (Mastodon 4.3+)."""

    error: str = ""
    error_description: str | None = None
    details: dict[str, list[_FieldError]] | None = None

    def reason(self) -> str:
        parts = [self.error or "the request was refused"]
        if self.error_description:
            parts.append(self.error_description)
        for field, problems in (self.details or {}).items():
            for problem in problems:
                parts.append(f"{field}: {problem.description or problem.error}")
        return "; ".join(parts)


class _Status(BaseModel):
    id: str
    url: str | None = None


class _Media(BaseModel):
    id: str
    url: str | None = None


class _Account(BaseModel):
    id: str
    acct: str


class MastodonAdapter(Adapter):
    """Posts statuses to the Mastodon instance named by the channel's `instance_url`."""

    platform = "mastodon"
    credential_fields = ("access_token", "instance_url")
    default_timeout_s = 30.0
    default_poll_interval_s = 1.0
    max_polls = 60
    can_find = False

    def missing_credentials(self, credentials: Credentials) -> list[str]:
        """Only the token is required: without `instance_url`, mastodon.social is meant."""
        return [] if credentials.get("access_token") else ["access_token"]

    def text_length(self, text: str) -> int:
        """Grapheme clusters, with each URL as 23 and `@user@domain` counted as `@user`."""
        text = URL_RE.sub("x" * URL_WEIGHT, text)
        return grapheme_count(_REMOTE_MENTION.sub(lambda m: "@" + m.group(1), text))

    def platform_problems(self, content: Content) -> list[Problem]:
        problems: list[Problem] = []
        limit = self.entry.limits.text_max_chars
        if content.link and content.link not in content.text:
            length = self.text_length(_status_text(content))
            if length > limit >= self.text_length(content.text):
                problems.append(Problem(
                    "too_long", f"With the link added, the post has {length:,} characters; "
                    f"Mastodon allows {limit:,}. Shorten the text or put the link in it."))
        media_kinds = {item.kind.value for item in content.media}
        if len(content.media) > 1 and media_kinds & {"video", "audio"}:
            problems.append(Problem(
                "media_mix", "Mastodon takes one video or audio file on its own, or up to four "
                "images; this post mixes them."))
        return problems

    # -- publishing ---------------------------------------------------------------------

    async def publish(self, content: Content, credentials: Credentials, *,
                      idempotency_key: str) -> Published:
        """Upload the media, wait until each is processed, then create the status once.

        Returns the status id and its public URL. Raises AuthExpired for missing or refused
        credentials, Rejected for content the instance refuses, RateLimited, Transient
        (also when media is still processing after `max_polls` polls), PlatformOutage, or
        Unknown(maybe_sent=True) when the status request's answer was lost.
        """
        base, token = self._open(credentials)
        media_ids = [await self._upload(base, token, item) for item in content.media]
        body: dict[str, Any] = {"status": _status_text(content), "visibility": "public"}
        if media_ids:
            body["media_ids"] = media_ids
        if content.reply_to:
            body["in_reply_to_id"] = content.reply_to
        response = await self._request(
            "POST", f"{base}/api/v1/statuses", token, changes=True, json=body,
            headers={"Idempotency-Key": idempotency_key})
        status = self._parse(response, _Status)
        return Published(external_id=status.id, url=status.url)

    async def _upload(self, base: str, token: str, item: MediaItem) -> str:
        """The id of an uploaded media item, once Mastodon has finished processing it."""
        data: dict[str, str] = {"description": item.alt} if item.alt else {}
        # An unattached upload is invisible and expires, so a lost answer is only Transient.
        response = await self._request(
            "POST", f"{base}/api/v2/media", token, changes=False, data=data,
            files={"file": (item.filename, item.data, item.mime_type)})
        media = self._parse(response, _Media)
        if media.url is not None:
            return media.id

        async def processed() -> str | None:
            response = await self._request("GET", f"{base}/api/v1/media/{media.id}", token,
                                           changes=False)
            processing = self._parse(response, _Media, ok=(200, 206)).url is None
            return None if processing else media.id

        # The upload's own answer said "still processing": wait before the first check.
        return await self.poll(processed, what=item.filename, wait_first=True)

    async def delete(self, external_id: str, credentials: Credentials) -> None:
        """Delete the status; one that is already gone counts as deleted.

        Raises AuthExpired, RateLimited, Transient or PlatformOutage as `publish` does.
        """
        base, token = self._open(credentials)
        response = await self._request("DELETE", f"{base}/api/v1/statuses/{external_id}",
                                       token, changes=True)
        if response.status_code != 404:
            self._parse(response, _Status)

    async def check_credentials(self, credentials: Credentials) -> AccountInfo:
        """The account the token belongs to, as `@user@instance`; AuthExpired if refused."""
        base, token = self._open(credentials)
        response = await self._request(
            "GET", f"{base}/api/v1/accounts/verify_credentials", token, changes=False)
        account = self._parse(response, _Account)
        return AccountInfo(account_id=account.id,
                           name=f"@{account.acct}@{urlsplit(base).hostname}")

    # -- mechanics ----------------------------------------------------------------------

    def _open(self, credentials: Credentials) -> tuple[str, str]:
        """The instance's base URL and the access token; AuthExpired if either is unusable."""
        token = credentials.get("access_token", "")
        if not token:
            raise AuthExpired("The Mastodon channel has no access_token; reconnect it.")
        register_secret(token)
        base = (credentials.get("instance_url") or DEFAULT_INSTANCE).strip().rstrip("/")
        parts = urlsplit(base)
        if parts.scheme != "https" or not parts.hostname or parts.path or parts.query:
            raise AuthExpired("The Mastodon channel's instance_url is not a server address "
                              "like https://mastodon.social; reconnect it.")
        return base, token

    async def _request(self, method: str, url: str, token: str, *, changes: bool,
                       headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        try:
            return await self.http.request(
                method, url, changes=changes,
                headers={"Authorization": f"Bearer {token}", **(headers or {})}, **kwargs)
        except PublishError as exc:
            exc.args = (redact_text(str(exc)),)  # a transport error may quote the request
            raise

    def _parse(self, response: httpx.Response, model: type[_M], *,
               ok: tuple[int, ...] = (200, 202)) -> _M:
        """The answer as `model`, or the taxonomy error its status and body stand for."""
        if response.status_code not in ok:
            raise self._error(response)
        return read_model(model, response, platform=self.entry.name)

    def _error(self, response: httpx.Response) -> Exception:
        status = response.status_code
        try:
            body = _ErrorBody.model_validate_json(response.content)
        except ValidationError:
            body = _ErrorBody()
        reason = body.reason() if body.error else f"HTTP {status}"
        if status in (401, 403):
            return AuthExpired(f"Mastodon refused the access token ({reason}); reconnect the "
                               "channel.", http_status=status)
        if status in (404, 410, 413, 422):
            return Rejected(f"Mastodon refused the post: {reason}", http_status=status)
        if status == 429:
            wait_s = seconds_until_iso(response.headers.get("x-ratelimit-reset"),
                                       now=self.clock.now())
            return RateLimited(f"Mastodon is rate limiting this account ({reason})",
                               retry_after_s=wait_s or 1.0, http_status=status)
        if status == 503:
            return PlatformOutage(f"Mastodon is unavailable ({reason})", http_status=status)
        return generic_status_error(response, platform=self.platform, now=self.clock.now())


def _status_text(content: Content) -> str:
    """The status text: the post's text, with its link appended unless the text has it."""
    if content.link and content.link not in content.text:
        return f"{content.text}\n\n{content.link}" if content.text.strip() else content.link
    return content.text
