"""X (formerly Twitter): posts through API v2, media through the v2 chunked upload.

Endpoints, relative to the catalogue's base URL (https://api.x.com), OAuth 2.0 user token:

- `POST /2/tweets` {text, media.media_ids, reply.in_reply_to_tweet_id} -> 201 {data: {id}} —
  https://docs.x.com/x-api/posts/creation-of-a-post
- `DELETE /2/tweets/{id}` —
  https://developer.x.com/en/docs/x-api/tweets/manage-tweets/api-reference/delete-tweets-id
- `GET /2/users/me` — https://docs.x.com/x-api/users/lookup/quickstart/authenticated-lookup
- `POST /2/media/upload/initialize` {media_type, total_bytes, media_category},
  `POST /2/media/upload/{id}/append` {media (base64), segment_index},
  `POST /2/media/upload/{id}/finalize`, `GET /2/media/upload?command=STATUS&media_id=` (needs
  the `media.write` scope) — https://docs.x.com/x-api/media/quickstart/media-upload-chunked

Errors (https://docs.x.com/x-api/fundamentals/response-codes-and-errors) are RFC 7807 problems
(`application/problem+json`; `type` under https://api.x.com/2/problems/, formerly
api.twitter.com) or, from older paths, `{"errors": [{"code", "message"}]}`. The table:

- RateLimited: 429, problem `usage-capped`, code 88; the wait is `x-rate-limit-reset` (Unix
  seconds, https://docs.x.com/x-api/fundamentals/rate-limits).
- AuthExpired: 401; problems `client-forbidden`, `unsupported-authentication`; codes 32, 64,
  89, 215, 326; a 403 to a media step (a token without `media.write`) or to `users/me`.
- Rejected: problems `invalid-request`, `resource-not-found`, `resource-unavailable`,
  `not-authorized-for-resource`, `disallowed-resource`; codes 186, 187; any other 400, 403 or
  404 to a post or a delete (duplicate content included, see below).
- Transient: problems `internal-error`, `operational-disconnect`; code 131; a 400 to a media
  step that is not `invalid-request`; 500 and other 5xx; an error body that cannot be read.
- PlatformOutage: code 130 (over capacity); 502, 503, 504.
- Unknown(maybe_sent=True): a 2xx to `POST /2/tweets` whose body cannot be read.

Duplicates: X answers 403 "You are not allowed to create a Tweet with duplicate content." when
the account already posted the same text. That is Rejected, not Unknown: sending again can never
succeed, X offers no idempotency key and no way to find the earlier post by a marker (`can_find`
is False), and the words the audience would see are already on the account; the reason tells
the marketer to change the text. A media upload step carries none of the post's words, so a
400 there that is not `invalid-request` is X's trouble, not the content's: Transient.

Text is counted as twitter-text counts it (https://github.com/twitter/twitter-text, config v3):
NFC, URLs 23, each emoji sequence 2, other code points 1 inside the Latin ranges, else 2.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from enum import StrEnum
from typing import ClassVar

import httpx
from pydantic import BaseModel, ValidationError

from sidestep.channels.base import AccountInfo, Adapter, Published
from sidestep.channels.errors import (
    AuthExpired,
    PlatformOutage,
    PublishError,
    RateLimited,
    Rejected,
    Transient,
    capped,
)
from sidestep.channels.http import (
    generic_status_error,
    read_model,
    retry_after_s,
    seconds_until_unix,
)
from sidestep.domain.content import Content, MediaItem, MediaKind, Problem
from sidestep.logs import register_secret
from sidestep.vault import Credentials

CHUNK_BYTES = 4 * 1024 * 1024  # X takes APPEND chunks up to 5 MB
MAX_IMAGES = 4
MEDIA_TYPES = {  # the media_type enum of initializeMediaUpload
    "image/jpeg", "image/pjpeg", "image/png", "image/webp", "image/bmp", "image/tiff",
    "image/gif", "video/mp4", "video/quicktime", "video/webm", "video/mp2t",
}
DUPLICATE_DETAIL = "You are not allowed to create a Tweet with duplicate content."
PROBLEM_BASES = ("https://api.x.com/2/problems/", "https://api.twitter.com/2/problems/")
PROBLEM_CLASSES: dict[str, type[PublishError]] = {
    "invalid-request": Rejected,
    "resource-not-found": Rejected,
    "resource-unavailable": Rejected,
    "not-authorized-for-resource": Rejected,
    "disallowed-resource": Rejected,
    "client-forbidden": AuthExpired,
    "unsupported-authentication": AuthExpired,
    "usage-capped": RateLimited,
    "internal-error": Transient,
    "operational-disconnect": Transient,
}
CODE_CLASSES: dict[int, type[PublishError]] = {  # https://docs.x.com/x-api/fundamentals/response-codes-and-errors
    88: RateLimited,  # rate limit exceeded
    32: AuthExpired,  # could not authenticate you
    64: AuthExpired,  # account suspended
    89: AuthExpired,  # invalid or expired token
    215: AuthExpired,  # bad authentication data
    326: AuthExpired,  # account locked
    186: Rejected,  # text too long
    187: Rejected,  # duplicate status
    130: PlatformOutage,  # over capacity
    131: Transient,  # internal error
}

# twitter-text v3: code points in these ranges weigh 1, all others 2.
_LIGHT_RANGES = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
_TLDS = ("com|org|net|io|co|app|dev|me|info|biz|ai|tv|us|uk|de|fr|es|it|nl|eu|ca|au|jp|in|"
         "br|ru|ch|se|no|ly|gl|to|gg|xyz|shop|store|blog|news")
_URL = re.compile(rf"(?:https?://|www\.)\S+|\b[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:{_TLDS})"
                  r"\b(?:/\S*)?", re.IGNORECASE)
_PICTO = ("[\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u21aa\u231a-\u23ff\u24c2\u25aa-\u27bf"
          "\u2934\u2935\u2b05-\u2b55\u3030\u303d\u3297\u3299\U0001f000-\U0001faff]")
_MODS = "(?:\ufe0f|[\U0001f3fb-\U0001f3ff])*"
_EMOJI = re.compile(
    "[\U0001f1e6-\U0001f1ff]{2}"  # a flag: two regional indicators
    "|[0-9#*]\ufe0f?\u20e3"  # a keycap
    f"|{_PICTO}{_MODS}[\U000e0020-\U000e007f]*(?:\u200d{_PICTO}{_MODS})*"
)



class Step(StrEnum):
    """Which kind of call an error answered: it decides what a bare 400 or 403 means."""

    POST = "post"  # POST /2/tweets: what X says is about the post
    MEDIA = "media"  # upload steps: they carry none of the post's words
    READ = "read"  # GET /2/users/me: a refusal means the token opens no usable account
    DELETE = "delete"


class _ErrorItem(BaseModel):
    code: int | None = None
    message: str = ""


class _ErrorBody(BaseModel):
    """An RFC 7807 problem, the spec's `Error` {code, message}, or v1.1's {errors: [...]}."""

    type: str = "about:blank"
    title: str = ""
    detail: str = ""
    code: int | None = None
    message: str = ""
    errors: list[_ErrorItem] = []

    @property
    def problem(self) -> str:
        for base in PROBLEM_BASES:
            if self.type.startswith(base):
                return self.type.removeprefix(base)
        return self.type

    @property
    def codes(self) -> list[int]:
        found = [e.code for e in self.errors if e.code is not None]
        return ([self.code] if self.code is not None else []) + found

    @property
    def words(self) -> str:
        parts = [self.detail or self.title or self.message] + [e.message for e in self.errors]
        return "; ".join(p for p in parts if p) or "no detail"


class _Id(BaseModel):
    id: str


class _Created(BaseModel):
    data: _Id


class _ProcessingInfo(BaseModel):
    state: str
    error: _ErrorItem | None = None


class _MediaData(BaseModel):
    id: str
    processing_info: _ProcessingInfo | None = None


class _Media(BaseModel):
    data: _MediaData


class _User(BaseModel):
    id: str
    name: str = ""
    username: str = ""


class _Me(BaseModel):
    data: _User


def weighted_length(text: str) -> int:
    """Length as twitter-text v3 counts it (URLs 23, emoji 2, CJK 2, Latin 1)."""
    text = unicodedata.normalize("NFC", text)
    total = 23 * len(_URL.findall(text))
    rest = _URL.sub("", text)
    total += 2 * len(_EMOJI.findall(rest))
    for char in _EMOJI.sub("", rest):
        point = ord(char)
        total += 1 if any(low <= point <= high for low, high in _LIGHT_RANGES) else 2
    return total


def post_text(content: Content) -> str:
    """The text sent: the post's text with its link appended when the text lacks it."""
    if content.link and content.link not in content.text:
        return f"{content.text}\n\n{content.link}" if content.text.strip() else content.link
    return content.text


def _category(item: MediaItem) -> str:
    if item.mime_type == "image/gif":
        return "tweet_gif"
    return "tweet_video" if item.kind is MediaKind.VIDEO else "tweet_image"


class XAdapter(Adapter):
    """Posts to one X account with an OAuth 2.0 user access token."""

    platform: ClassVar[str] = "x"
    credential_fields: ClassVar[tuple[str, ...]] = ("access_token",)
    default_timeout_s: ClassVar[float] = 30.0
    default_poll_interval_s: ClassVar[float] = 2.0
    max_polls: ClassVar[int] = 90  # videos: X processes for up to a few minutes
    can_find: ClassVar[bool] = False

    @property
    def base_url(self) -> str:
        return self.entry.api_base_urls[0].rstrip("/")

    def text_length(self, text: str) -> int:
        return weighted_length(text)

    def platform_problems(self, content: Content) -> list[Problem]:
        problems: list[Problem] = []
        limit = self.entry.limits.text_max_chars
        full = self.text_length(post_text(content))
        if full > limit >= self.text_length(content.text):
            problems.append(Problem("too_long", f"X allows {limit} characters; with the link "
                                    f"appended this post has {full}."))
        for item in content.media:
            if item.mime_type not in MEDIA_TYPES:
                problems.append(Problem("media_kind", f"X does not take {item.mime_type} files "
                                        f"({item.filename}); use JPEG, PNG, GIF, WebP or MP4."))
        moving = [m for m in content.media if _category(m) != "tweet_image"]
        if moving and len(content.media) > 1:
            problems.append(Problem("media_mix", "X takes up to four images, or one video or "
                                    "GIF on its own, per post."))
        return problems

    def _token(self, credentials: Credentials) -> dict[str, str]:
        missing = self.missing_credentials(credentials)
        if missing:
            raise AuthExpired(f"the X channel lacks {', '.join(missing)}; reconnect it")
        token = credentials["access_token"]
        register_secret(token)
        return {"Authorization": f"Bearer {token}"}

    async def publish(self, content: Content, credentials: Credentials, *,
                      idempotency_key: str) -> Published:
        """Upload the media, then create the post (one attempt; X has no idempotency key).

        Returns the post's id and URL. Raises AuthExpired for missing or refused credentials,
        Rejected for content X refuses (duplicates included), RateLimited, Transient,
        PlatformOutage, or Unknown(maybe_sent=True) when the post may exist unconfirmed.
        """
        headers = self._token(credentials)
        body: dict[str, object] = {"text": post_text(content)}
        if content.media:
            media_ids = [await self._upload(item, headers) for item in content.media]
            body["media"] = {"media_ids": media_ids}
        if content.reply_to:
            body["reply"] = {"in_reply_to_tweet_id": content.reply_to}
        response = await self.http.request("POST", f"{self.base_url}/2/tweets", changes=True,
                                           headers=headers, json=body)
        if response.status_code not in (200, 201):
            raise self._error(response, Step.POST)
        created = read_model(_Created, response, platform=self.entry.name, changes=True)
        tweet_id = created.data.id
        return Published(external_id=tweet_id, url=f"https://x.com/i/status/{tweet_id}")

    async def _upload(self, item: MediaItem, headers: dict[str, str]) -> str:
        """initialize, append each chunk, finalize, and wait for processing; the media id."""
        response = await self._media_call("POST", "/2/media/upload/initialize", headers, json={
            "media_type": item.mime_type, "total_bytes": item.size_bytes,
            "media_category": _category(item)})
        media_id = read_model(_Media, response, platform=self.entry.name).data.id
        for index, start in enumerate(range(0, item.size_bytes, CHUNK_BYTES)):
            chunk = base64.b64encode(item.data[start:start + CHUNK_BYTES]).decode("ascii")
            await self._media_call("POST", f"/2/media/upload/{media_id}/append", headers,
                                   json={"media": chunk, "segment_index": index})
        response = await self._media_call("POST", f"/2/media/upload/{media_id}/finalize",
                                          headers)

        def processed(response: httpx.Response) -> str | None:
            info = read_model(_Media, response, platform=self.entry.name).data.processing_info
            if info is not None and info.state == "failed":
                reason = info.error.message if info.error else "no reason given"
                raise Rejected(f"X could not process {item.filename}: {reason}",
                               platform_code="media_failed")
            return media_id if info is None or info.state == "succeeded" else None

        async def status() -> str | None:
            return processed(await self._media_call("GET", "/2/media/upload", headers, params={
                "command": "STATUS", "media_id": media_id}))

        # FINALIZE's answer is the first check; a pending one waits before asking again.
        done = processed(response)
        if done is not None:
            return done
        return await self.poll(status, what=item.filename, wait_first=True)

    async def _media_call(self, method: str, path: str, headers: dict[str, str],
                          **kwargs: object) -> httpx.Response:
        # Uploads create nothing the audience sees, so a lost answer is only Transient.
        response = await self.http.request(method, self.base_url + path, changes=False,
                                           headers=headers, **kwargs)
        if not 200 <= response.status_code < 300:
            raise self._error(response, Step.MEDIA)
        return response

    async def delete(self, external_id: str, credentials: Credentials) -> None:
        """Delete the post; one that is already gone counts as deleted.

        Raises AuthExpired, Rejected (not this account's post), RateLimited, Transient or
        PlatformOutage.
        """
        headers = self._token(credentials)
        # Deleting twice is harmless (the second answers 404), so a lost answer is Transient.
        response = await self.http.request("DELETE", f"{self.base_url}/2/tweets/{external_id}",
                                           changes=False, headers=headers)
        if response.status_code == 404 or 200 <= response.status_code < 300:
            return
        raise self._error(response, Step.DELETE)

    async def check_credentials(self, credentials: Credentials) -> AccountInfo:
        """The account the token opens (id and @username); AuthExpired if it opens none."""
        headers = self._token(credentials)
        response = await self.http.request("GET", f"{self.base_url}/2/users/me", changes=False,
                                           headers=headers)
        if response.status_code != 200:
            raise self._error(response, Step.READ)
        user = read_model(_Me, response, platform=self.entry.name).data
        return AccountInfo(account_id=user.id, name=f"@{user.username}" if user.username
                           else user.name)

    def _error(self, response: httpx.Response, step: Step) -> Exception:
        """The taxonomy for an error answer, by the table in the module docstring."""
        status = response.status_code
        now = self.clock.now()
        try:
            body: _ErrorBody | None = _ErrorBody.model_validate_json(response.content)
        except ValidationError:
            body = None
        kind: type[PublishError] | None = None
        if body is not None:
            kind = PROBLEM_CLASSES.get(body.problem) or next(
                (CODE_CLASSES[c] for c in body.codes if c in CODE_CLASSES), None)
        words = capped(body.words, 300) if body is not None else f"HTTP {status}"
        if status == 429 or kind is RateLimited:
            wait = seconds_until_unix(response.headers.get("x-rate-limit-reset"), now=now,
                                      default_s=retry_after_s(response, now=now))
            return RateLimited(f"X is rate limiting this account: {words}",
                               retry_after_s=max(wait, 1.0), http_status=status)
        if status == 401 or kind is AuthExpired or (status == 403 and step in (Step.MEDIA,
                                                                                Step.READ)):
            return AuthExpired(f"X refused the connection ({words}); reconnect the X channel",
                               http_status=status)
        if status >= 500:
            return generic_status_error(response, platform="X", now=now)
        if body is None:
            return Transient(f"X answered HTTP {status} with a body Sidestep cannot read",
                             http_status=status)
        code = body.problem
        if status == 403 and body.detail == DUPLICATE_DETAIL:
            return Rejected("X refuses a post whose text this account has already posted; "
                            "change the words to post it again", platform_code="duplicate",
                            http_status=status)
        if step is Step.MEDIA and status == 400 and code != "invalid-request":
            return Transient(f"X failed a media upload step: {words}", platform_code=code,
                             http_status=status)
        if kind is not None:
            return kind(f"X refused the request: {words}", platform_code=code,
                        http_status=status)
        if status in (400, 403, 404) and step is not Step.READ:
            return Rejected(f"X refused the request: {words}", platform_code=code,
                            http_status=status)
        return generic_status_error(response, platform="X", now=now)
