"""LinkedIn: posts as a member or an organization through the versioned Posts and Images APIs.

Endpoints, relative to the catalogue's base URL (https://api.linkedin.com/rest); every call
sends `LinkedIn-Version: YYYYMM` and `X-Restli-Protocol-Version: 2.0.0`:

- `POST /posts` {author, commentary, visibility, distribution, lifecycleState, content.media}
  -> 201, the post's URN in `x-restli-id`; `DELETE /posts/{urn}` —
  https://learn.microsoft.com/en-us/linkedin/marketing/community-management/shares/posts-api
- `POST /images?action=initializeUpload` {initializeUploadRequest: {owner}} -> uploadUrl and
  image URN, `PUT` the bytes to uploadUrl (a www.linkedin.com address the API returns), then
  `GET /images/{urn}` until AVAILABLE —
  https://learn.microsoft.com/en-us/linkedin/marketing/community-management/shares/images-api
- `GET https://api.linkedin.com/v2/userinfo` (OpenID Connect; unversioned) —
  https://learn.microsoft.com/en-us/linkedin/consumer/integrations/self-serve/sign-in-with-linkedin-v2

What goes out: text and at most one image (videos, documents and multi-image posts are not
done yet, and validate() says so); a post cannot reply to another, so `reply_to` is refused.
Commentary is "little" text: its reserved characters are escaped with a backslash
(https://learn.microsoft.com/en-us/linkedin/marketing/community-management/shares/little-text-format),
except `#`, so that hashtags stay hashtags. The escaped text is what counts against 3,000.

Versions: LinkedIn serves each monthly version for about a year
(https://learn.microsoft.com/en-us/linkedin/marketing/versioning). The adapter asks for the
version of the month before the clock's: always released, served for eleven more months, and
the Posts API fields used here have not changed across versions. A pinned version would stop
working a year after each release.

Errors are `{status, serviceErrorCode, code, message}` (and `errorDetails.inputErrors` for
input errors), https://learn.microsoft.com/en-us/linkedin/shared/api-guide/concepts/error-handling:

- AuthExpired: 401 (serviceErrorCode 65600 invalid token, 65602 expired token, any other);
  403 (serviceErrorCode 100 ACCESS_DENIED: the member may not post as that author).
- Rejected: 422 with inputErrors code DUPLICATE_POST ("Content is a duplicate of urn:li:...");
  other 422 (schema errors); 400 to `POST /posts`.
- RateLimited: 429. LinkedIn sends no rate-limit headers; its daily quotas reset at 00:00 UTC
  but it also answers 429 for short infrastructure protection
  (https://learn.microsoft.com/en-us/linkedin/shared/api-guide/concepts/rate-limits), so the
  wait is Retry-After when given, else 15 minutes or until midnight UTC, whichever is sooner.
- Unknown(maybe_sent=False): 426 NONEXISTENT_VERSION (Sidestep must be updated).
- Transient: a 4xx to an image step (those carry none of the post's words); 500; a body that
  cannot be read. PlatformOutage: 502, 503, 504.
- Unknown(maybe_sent=True): a 2xx to `POST /posts` without the post's URN.

Duplicates are Rejected: sending the same commentary again can never succeed, and LinkedIn
offers no idempotency key nor a lookup by marker (`can_find` is False).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import ClassVar
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, Field, ValidationError

from sidestep.channels.base import AccountInfo, Adapter, Published
from sidestep.channels.errors import (
    AuthExpired,
    RateLimited,
    Rejected,
    Transient,
    Unknown,
    capped,
)
from sidestep.channels.http import generic_status_error, read_model, retry_after_s
from sidestep.domain.content import Content, MediaItem, MediaKind, Problem
from sidestep.logs import register_secret
from sidestep.vault import Credentials

RESTLI_PROTOCOL = "2.0.0"
RESERVED = frozenset("\\|{}@[]()<>*_~")  # little's reserved characters, '#' left for hashtags
AUTHOR_PREFIXES = ("urn:li:person:", "urn:li:organization:")
RATE_LIMIT_WAIT_S = 900.0
SERVICE_CODES = {  # 401 subcodes, in words
    65600: "the access token is invalid",
    65602: "the access token has expired",
}



class Step(StrEnum):
    """Which kind of call an error answered: it decides what a bare 400 means."""

    POST = "post"
    MEDIA = "media"
    OTHER = "other"


class _InputError(BaseModel):
    code: str = ""
    description: str = ""


class _ErrorDetails(BaseModel):
    input_errors: list[_InputError] = Field(default=[], alias="inputErrors")


class _ErrorBody(BaseModel):
    status: int | None = None
    service_error_code: int | None = Field(default=None, alias="serviceErrorCode")
    code: str | None = None
    message: str = ""
    error_details: _ErrorDetails | None = Field(default=None, alias="errorDetails")

    @property
    def input_codes(self) -> list[str]:
        return [e.code for e in self.error_details.input_errors] if self.error_details else []


class _UploadValue(BaseModel):
    upload_url: str = Field(alias="uploadUrl")
    image: str


class _Upload(BaseModel):
    value: _UploadValue


class _Image(BaseModel):
    status: str


class _UserInfo(BaseModel):
    sub: str
    name: str = ""


def escape_little(text: str) -> str:
    """`text` with little's reserved characters escaped, so LinkedIn shows them as typed."""
    return "".join(f"\\{c}" if c in RESERVED else c for c in text)


def commentary(content: Content) -> str:
    """The commentary sent: the escaped text, with the link appended when the text lacks it."""
    text = content.text
    if content.link and content.link not in text:
        text = f"{text}\n\n{content.link}" if text.strip() else content.link
    return escape_little(text)


def api_version(now: datetime) -> str:
    """The LinkedIn-Version for `now`: the month before (see the module docstring)."""
    previous = now.replace(day=1) - timedelta(days=1)
    return f"{previous.year:04d}{previous.month:02d}"


def _seconds_to_midnight(now: datetime) -> float:
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - now).total_seconds()


class LinkedInAdapter(Adapter):
    """Posts as `author_urn` (a member or an organization) with a member's access token."""

    platform: ClassVar[str] = "linkedin"
    credential_fields: ClassVar[tuple[str, ...]] = ("access_token", "author_urn")
    default_timeout_s: ClassVar[float] = 30.0
    default_poll_interval_s: ClassVar[float] = 1.0
    max_polls: ClassVar[int] = 60
    can_find: ClassVar[bool] = False

    @property
    def base_url(self) -> str:
        return self.entry.api_base_urls[0].rstrip("/")

    @property
    def userinfo_url(self) -> str:
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}/v2/userinfo"

    def text_length(self, text: str) -> int:
        return len(escape_little(text))

    def platform_problems(self, content: Content) -> list[Problem]:
        problems: list[Problem] = []
        limit = self.entry.limits.text_max_chars
        full = len(commentary(content))
        if full > limit >= self.text_length(content.text):
            problems.append(Problem("too_long", f"LinkedIn allows {limit:,} characters; with "
                                    f"the link appended this post has {full:,}."))
        if content.reply_to:
            problems.append(Problem("reply_unsupported", "LinkedIn posts cannot reply to "
                                    "another post; send this part as a post of its own."))
        others = [m for m in content.media if m.kind is not MediaKind.IMAGE]
        if others:
            problems.append(Problem("media_kind", "Sidestep posts only images to LinkedIn so "
                                    f"far; {others[0].filename} is a {others[0].kind.value}."))
        elif len(content.media) > 1:
            problems.append(Problem("too_many_media", "Sidestep posts one image per LinkedIn "
                                    f"post so far; this post has {len(content.media)}."))
        return problems

    def _session(self, credentials: Credentials) -> tuple[str, dict[str, str]]:
        """The author URN and the headers of a /rest call; AuthExpired for missing fields."""
        missing = self.missing_credentials(credentials)
        if missing:
            raise AuthExpired(f"the LinkedIn channel lacks {', '.join(missing)}; reconnect it")
        author = credentials["author_urn"]
        if not author.startswith(AUTHOR_PREFIXES):
            raise AuthExpired("the LinkedIn channel's author is not a member or organization "
                              "URN (urn:li:person:... or urn:li:organization:...); reconnect it")
        token = credentials["access_token"]
        register_secret(token)
        return author, {"Authorization": f"Bearer {token}",
                        "LinkedIn-Version": api_version(self.clock.now()),
                        "X-Restli-Protocol-Version": RESTLI_PROTOCOL}

    async def publish(self, content: Content, credentials: Credentials, *,
                      idempotency_key: str) -> Published:
        """Upload the image (if any), then create the post, once.

        Returns the share or ugcPost URN and the post's URL. Raises AuthExpired, Rejected
        (duplicates included), RateLimited, Transient, PlatformOutage, Unknown(maybe_sent=False)
        for a version LinkedIn no longer serves, or Unknown(maybe_sent=True) when the post may
        exist unconfirmed.
        """
        author, headers = self._session(credentials)
        body: dict[str, object] = {
            "author": author, "commentary": commentary(content), "visibility": "PUBLIC",
            "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [],
                             "thirdPartyDistributionChannels": []},
            "lifecycleState": "PUBLISHED", "isReshareDisabledByAuthor": False,
        }
        if content.media:
            item = content.media[0]
            media: dict[str, str] = {"id": await self._upload_image(item, author, headers)}
            if item.alt:
                media["altText"] = item.alt
            body["content"] = {"media": media}
        response = await self.http.request("POST", f"{self.base_url}/posts", changes=True,
                                           headers=headers, json=body)
        if not 200 <= response.status_code < 300:
            raise self._error(response, Step.POST)
        urn = response.headers.get("x-restli-id")
        if not urn:
            raise Unknown(f"LinkedIn answered HTTP {response.status_code} without the post's "
                          "URN; the post may exist", maybe_sent=True,
                          http_status=response.status_code)
        return Published(external_id=urn, url=f"https://www.linkedin.com/feed/update/{urn}/")

    async def _upload_image(self, item: MediaItem, author: str,
                            headers: dict[str, str]) -> str:
        """initializeUpload, PUT the bytes, wait until AVAILABLE; the image URN."""
        response = await self._media_call(
            "POST", f"{self.base_url}/images", headers, params={"action": "initializeUpload"},
            json={"initializeUploadRequest": {"owner": author}})
        upload = read_model(_Upload, response, platform=self.entry.name).value
        where = urlsplit(upload.upload_url)
        host = where.hostname or ""
        if where.scheme != "https" or not (host == "linkedin.com"
                                           or host.endswith(".linkedin.com")):
            # The upload takes the member's token; it goes to LinkedIn's own hosts only.
            raise Transient(f"LinkedIn returned an upload address outside linkedin.com "
                            f"({host or 'none'}); the image was not sent")
        await self._media_call("PUT", upload.upload_url, {
            "Authorization": headers["Authorization"],
            "Content-Type": "application/octet-stream"}, content=item.data)
        image_url = f"{self.base_url}/images/{quote(upload.image, safe='')}"

        async def available() -> str | None:
            response = await self._media_call("GET", image_url, headers)
            status = read_model(_Image, response, platform=self.entry.name).status
            if status == "PROCESSING_FAILED":
                raise Rejected(f"LinkedIn could not process {item.filename}",
                               platform_code="PROCESSING_FAILED")
            return upload.image if status == "AVAILABLE" else None

        return await self.poll(available, what=item.filename)

    async def _media_call(self, method: str, url: str, headers: dict[str, str],
                          **kwargs: object) -> httpx.Response:
        # An image nobody has posted yet is invisible, so a lost answer is only Transient.
        response = await self.http.request(method, url, changes=False, headers=headers,
                                           **kwargs)
        if not 200 <= response.status_code < 300:
            raise self._error(response, Step.MEDIA)
        return response

    async def delete(self, external_id: str, credentials: Credentials) -> None:
        """Delete the post; one that is already gone counts as deleted.

        Raises AuthExpired (not this author's post, or a refused token), RateLimited,
        Transient or PlatformOutage.
        """
        _, headers = self._session(credentials)
        # Deleting twice is harmless (the second answers 404), so a lost answer is Transient.
        response = await self.http.request(
            "DELETE", f"{self.base_url}/posts/{quote(external_id, safe='')}", changes=False,
            headers={**headers, "X-RestLi-Method": "DELETE"})
        if response.status_code != 404 and not 200 <= response.status_code < 300:
            raise self._error(response, Step.OTHER)

    async def check_credentials(self, credentials: Credentials) -> AccountInfo:
        """The channel's author and the member's name; AuthExpired if the token opens no
        account, or opens another member than a person author."""
        author, headers = self._session(credentials)
        response = await self.http.request("GET", self.userinfo_url, changes=False,
                                           headers={"Authorization": headers["Authorization"]})
        if response.status_code != 200:
            raise self._error(response, Step.OTHER)
        member = read_model(_UserInfo, response, platform=self.entry.name)
        if author.startswith("urn:li:person:") and author != f"urn:li:person:{member.sub}":
            raise AuthExpired("the LinkedIn token belongs to another member than the channel's "
                              "author; reconnect the channel with the author's account")
        return AccountInfo(account_id=author, name=member.name or member.sub)

    def _error(self, response: httpx.Response, step: Step) -> Exception:
        """The taxonomy for an error answer, by the table in the module docstring."""
        status = response.status_code
        now = self.clock.now()
        try:
            body: _ErrorBody | None = _ErrorBody.model_validate_json(response.content)
        except ValidationError:
            body = None
        words = capped(body.message, 300) if body and body.message else f"HTTP {status}"
        code = body.code if body else None
        if status == 429:
            default_s = min(RATE_LIMIT_WAIT_S, _seconds_to_midnight(now))
            return RateLimited(f"LinkedIn is throttling: {words}", retry_after_s=max(
                retry_after_s(response, now=now, default_s=default_s), 1.0), http_status=status)
        if status == 401:
            meaning = SERVICE_CODES.get(body.service_error_code or 0, "") if body else ""
            return AuthExpired(f"LinkedIn refused the token ({meaning or words}); reconnect the "
                               "LinkedIn channel", platform_code=code, http_status=status)
        if status >= 500:
            return generic_status_error(response, platform="LinkedIn", now=now)
        if body is None:  # a proxy's page, not LinkedIn's word on the request
            return Transient(f"LinkedIn answered HTTP {status} with a body Sidestep cannot read",
                             http_status=status)
        if status == 403:
            return AuthExpired(f"LinkedIn refused the request ({words}); the member may lack "
                               "the right to post as this author: reconnect the LinkedIn channel",
                               platform_code=code, http_status=status)
        if status == 426:
            return Unknown(f"LinkedIn no longer serves the API version Sidestep asked for "
                           f"({words}); Sidestep needs an update", maybe_sent=False,
                           platform_code=code, http_status=status)
        if "DUPLICATE_POST" in body.input_codes:
            return Rejected(f"LinkedIn refuses a post this author has already published ({words})"
                            "; change the words to post it again", platform_code="DUPLICATE_POST",
                            http_status=status)
        if step is Step.MEDIA and 400 <= status < 500:
            return Transient(f"LinkedIn failed an image upload step: {words}",
                             platform_code=code, http_status=status)
        if status == 422 or (status == 400 and step is Step.POST):
            return Rejected(f"LinkedIn refused the post: {words}", platform_code=code,
                            http_status=status)
        return generic_status_error(response, platform="LinkedIn", now=now)
