"""Pinterest: Pins on one board through API v5; videos through the media upload.

Endpoints, relative to the catalogue's base URL (https://api.pinterest.com/v5), OAuth bearer:

- `POST /pins` (pins/create) {board_id, title, description, link, alt_text, media_source:
  image_base64 | image_url | video_id} -> 201 Pin {id}; `DELETE /pins/{pin_id}` (pins/delete) —
  https://developers.pinterest.com/docs/api/v5/pins-create
- `POST /media` (media/create) {media_type: video} -> media_id, upload_url, upload_parameters;
  a multipart `POST` of those parameters and the file to upload_url (Pinterest's S3 bucket,
  which takes no bearer token); `GET /media/{media_id}` (media/get) until `succeeded` —
  https://developers.pinterest.com/docs/api-features/media-uploads/
- `GET /user_account` (user_account/get) —
  https://developers.pinterest.com/docs/api/v5/user_account-get

A Pin needs an image or a video. Its title is the post's title, else the text's first line
(then the rest of the text is the description). Pinterest takes titles up to 100 characters,
descriptions up to 800 (the catalogue's 500, what feeds show, is checked first), alt text up
to 500 and links up to 2,048 (the published OpenAPI description, pinterest/api-description
v5). Images go as base64 (JPEG or PNG, the only `content_type`s Pinterest takes) or, for other
formats, by the item's public URL. Videos are pinned with their first frame as the cover.
One image or one video per Pin (carousels are not done yet); Pins cannot reply to Pins.

Errors are `{"code": int, "message": str}`:

- AuthExpired: 401 (code 2 authentication failed, code 3 missing scopes); 403 (code 29 not
  permitted); 404 code 40 (the channel's board is gone): a person must fix the channel.
- RateLimited: 429 / code 8; Pinterest sends no rate-limit headers
  (https://developers.pinterest.com/docs/reference/rate-limits/), so Retry-After if present,
  else 60 s.
- PlatformOutage: code 4197 (endpoint ramped down, 503); 502, 503, 504.
- Rejected: code 1 and other 400s to `POST /pins`; a video Pinterest failed to process.
- Transient: a 4xx to a media step (they carry none of the Pin's words: the refusal is
  Pinterest's trouble, not the content's); 500; an error body that cannot be read.
- Unknown(maybe_sent=True): a 2xx to `POST /pins` whose body cannot be read.

Pinterest documents no refusal of duplicate Pins and no idempotency key; a Pin cannot be found
by a marker we send (`can_find` is False).
"""

from __future__ import annotations

import base64
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
from sidestep.channels.http import generic_status_error, read_model, retry_after_s
from sidestep.domain.content import Content, MediaItem, MediaKind, Problem
from sidestep.logs import register_secret
from sidestep.vault import Credentials

BASE64_TYPES = ("image/jpeg", "image/png")
TITLE_MAX = 100
ALT_TEXT_MAX = 500
LINK_MAX = 2048
CODE_CLASSES: dict[int, type[PublishError]] = {
    2: AuthExpired,  # authentication failed
    3: AuthExpired,  # the token lacks the scopes
    8: RateLimited,
    29: AuthExpired,  # not permitted to access that resource
    40: AuthExpired,  # board not found
    4197: PlatformOutage,  # the endpoint has been ramped down
}
PIN_NOT_FOUND = 50



class Step(StrEnum):
    """Which kind of call an error answered: it decides what a bare 400 means."""

    PIN = "pin"
    MEDIA = "media"
    OTHER = "other"


class _Error(BaseModel):
    code: int
    message: str = ""


class _Pin(BaseModel):
    id: str


class _MediaUpload(BaseModel):
    media_id: str
    upload_url: str
    upload_parameters: dict[str, str]


class _Media(BaseModel):
    status: str = "registered"


class _Account(BaseModel):
    id: str = ""
    username: str = ""
    business_name: str | None = None


def title_and_description(content: Content) -> tuple[str, str]:
    """The Pin's title (the post's title, else its first line) and description."""
    if content.title.strip():
        return content.title.strip(), content.text.strip()
    first, _, rest = content.text.strip().partition("\n")
    return first.strip(), rest.strip()


class PinterestAdapter(Adapter):
    """Pins to one board (`board_id`) of the account a user access token opens."""

    platform: ClassVar[str] = "pinterest"
    credential_fields: ClassVar[tuple[str, ...]] = ("access_token", "board_id")
    default_timeout_s: ClassVar[float] = 30.0
    default_poll_interval_s: ClassVar[float] = 2.0
    max_polls: ClassVar[int] = 90
    can_find: ClassVar[bool] = False

    @property
    def base_url(self) -> str:
        return self.entry.api_base_urls[0].rstrip("/")

    def platform_problems(self, content: Content) -> list[Problem]:
        problems: list[Problem] = []
        if not content.media:
            problems.append(Problem("media_missing", "A Pinterest Pin needs an image or a "
                                    "video; this post has neither."))
        elif len(content.media) > 1:
            problems.append(Problem("too_many_media", "Sidestep pins one image or one video per "
                                    f"Pin so far; this post has {len(content.media)}."))
        for item in content.media:
            if item.kind is MediaKind.IMAGE and item.mime_type not in BASE64_TYPES \
                    and not item.url:
                problems.append(Problem("media_kind", f"Pinterest takes {item.filename} "
                                        "only from a public address; use a JPEG or PNG file."))
            if len(item.alt) > ALT_TEXT_MAX:
                problems.append(Problem("alt_too_long", f"Pinterest takes alt text up to "
                                        f"{ALT_TEXT_MAX} characters; {item.filename} has "
                                        f"{len(item.alt)}."))
        if content.reply_to:
            problems.append(Problem("reply_unsupported", "A Pin cannot reply to another Pin; "
                                    "send this part as a Pin of its own."))
        title, _ = title_and_description(content)
        if len(title) > TITLE_MAX:
            where = "the title" if content.title.strip() else \
                "the first line of this post, used as the title,"
            problems.append(Problem("title_too_long", f"Pinterest titles hold up to {TITLE_MAX} "
                                    f"characters; {where} has {len(title)}. Give the post a "
                                    "shorter title."))
        if content.link and len(content.link) > LINK_MAX:
            problems.append(Problem("link_too_long", f"Pinterest takes links up to {LINK_MAX:,} "
                                    "characters."))
        return problems

    def _session(self, credentials: Credentials) -> dict[str, str]:
        missing = self.missing_credentials(credentials)
        if missing:
            raise AuthExpired(f"the Pinterest channel lacks {', '.join(missing)}; reconnect it")
        token = credentials["access_token"]
        register_secret(token)
        return {"Authorization": f"Bearer {token}"}

    async def publish(self, content: Content, credentials: Credentials, *,
                      idempotency_key: str) -> Published:
        """Upload the video (if any), then create the Pin on the channel's board, once.

        Returns the Pin's id and URL. Raises AuthExpired (refused token, board gone), Rejected,
        RateLimited, Transient, PlatformOutage, or Unknown(maybe_sent=True) when the Pin may
        exist unconfirmed.
        """
        headers = self._session(credentials)
        if not content.media:
            raise Rejected("a Pinterest Pin needs an image or a video",
                           platform_code="media_missing")
        item = content.media[0]
        title, description = title_and_description(content)
        body: dict[str, object] = {"board_id": credentials["board_id"],
                                   "media_source": await self._media_source(item, headers)}
        optional = {"title": title, "description": description, "link": content.link,
                    "alt_text": item.alt}
        body.update({name: value for name, value in optional.items() if value})
        response = await self.http.request("POST", f"{self.base_url}/pins", changes=True,
                                           headers=headers, json=body)
        if not 200 <= response.status_code < 300:
            raise self._error(response, Step.PIN)
        pin = read_model(_Pin, response, platform=self.entry.name, changes=True)
        return Published(external_id=pin.id, url=f"https://www.pinterest.com/pin/{pin.id}/")

    async def _media_source(self, item: MediaItem, headers: dict[str, str]) -> dict[str, object]:
        if item.kind is MediaKind.VIDEO:
            return {"source_type": "video_id", "cover_image_key_frame_time": 0,
                    "media_id": await self._upload_video(item, headers)}
        if item.mime_type in BASE64_TYPES:
            return {"source_type": "image_base64", "content_type": item.mime_type,
                    "data": base64.b64encode(item.data).decode("ascii")}
        return {"source_type": "image_url", "url": item.url}

    async def _upload_video(self, item: MediaItem, headers: dict[str, str]) -> str:
        """Register the upload, send the file to Pinterest's bucket, wait until `succeeded`;
        the media id."""
        response = await self._media_call("POST", f"{self.base_url}/media", headers=headers,
                                          json={"media_type": "video"})
        upload = read_model(_MediaUpload, response, platform=self.entry.name)
        # The bucket authorises by the signed policy in the parameters, never by our token.
        sent = await self.http.request("POST", upload.upload_url, changes=False,
                                       data=upload.upload_parameters,
                                       files={"file": (item.filename, item.data,
                                                       item.mime_type)})
        if sent.status_code >= 500:
            raise generic_status_error(sent, platform="Pinterest's upload bucket",
                                       now=self.clock.now())
        if not 200 <= sent.status_code < 300:  # S3's XML: an expired policy, a size refused
            raise Transient(f"Pinterest's upload bucket refused {item.filename} "
                            f"(HTTP {sent.status_code})", http_status=sent.status_code)
        status_url = f"{self.base_url}/media/{upload.media_id}"

        async def succeeded() -> str | None:
            response = await self._media_call("GET", status_url, headers=headers)
            status = read_model(_Media, response, platform=self.entry.name).status
            if status == "failed":
                raise Rejected(f"Pinterest could not process {item.filename}",
                               platform_code="media_failed")
            return upload.media_id if status == "succeeded" else None

        return await self.poll(succeeded, what=item.filename)

    async def _media_call(self, method: str, url: str, **kwargs: object) -> httpx.Response:
        # An upload no Pin uses is invisible, so a lost answer is only Transient.
        response = await self.http.request(method, url, changes=False, **kwargs)
        if not 200 <= response.status_code < 300:
            raise self._error(response, Step.MEDIA)
        return response

    async def delete(self, external_id: str, credentials: Credentials) -> None:
        """Delete the Pin; one that is already gone counts as deleted.

        Raises AuthExpired (not this account's Pin, or a refused token), RateLimited,
        Transient or PlatformOutage.
        """
        headers = self._session(credentials)
        # Deleting twice is harmless (the second answers 404), so a lost answer is Transient.
        response = await self.http.request("DELETE", f"{self.base_url}/pins/{external_id}",
                                           changes=False, headers=headers)
        if response.status_code == 404 or 200 <= response.status_code < 300:
            return
        raise self._error(response, Step.OTHER)

    async def check_credentials(self, credentials: Credentials) -> AccountInfo:
        """The account the token opens (id and username); AuthExpired if it opens none."""
        headers = self._session(credentials)
        response = await self.http.request("GET", f"{self.base_url}/user_account",
                                           changes=False, headers=headers)
        if response.status_code != 200:
            raise self._error(response, Step.OTHER)
        account = read_model(_Account, response, platform=self.entry.name)
        return AccountInfo(account_id=account.id or account.username,
                           name=account.username or account.business_name or account.id)

    def _error(self, response: httpx.Response, step: Step) -> Exception:
        """The taxonomy for an error answer, by the table in the module docstring."""
        status = response.status_code
        now = self.clock.now()
        try:
            body: _Error | None = _Error.model_validate_json(response.content)
        except ValidationError:
            body = None
        kind = CODE_CLASSES.get(body.code) if body else None
        code = str(body.code) if body else None
        words = capped(body.message or f"code {body.code}", 300) if body else f"HTTP {status}"
        if status == 429 or kind is RateLimited:
            wait = retry_after_s(response, now=now, default_s=60.0)
            return RateLimited(f"Pinterest is rate limiting: {words}",
                               retry_after_s=max(wait, 1.0), platform_code=code,
                               http_status=status)
        if kind is PlatformOutage:
            return PlatformOutage(f"Pinterest is not taking requests: {words}",
                                  platform_code=code, http_status=status)
        if status in (401, 403) or kind is AuthExpired:
            return AuthExpired(f"Pinterest refused the request ({words}); reconnect the "
                               "Pinterest channel or choose its board again",
                               platform_code=code, http_status=status)
        if status >= 500:
            return generic_status_error(response, platform="Pinterest", now=now)
        if body is None:  # a proxy's page or the bucket's XML, not the API's word
            return Transient(f"Pinterest answered HTTP {status} with a body Sidestep cannot "
                             "read", http_status=status)
        if step is Step.MEDIA and 400 <= status < 500:
            return Transient(f"Pinterest failed a video upload step: {words}",
                             platform_code=code, http_status=status)
        if status == 400 or (status == 404 and step is Step.PIN
                             and body.code != PIN_NOT_FOUND):
            return Rejected(f"Pinterest refused the Pin: {words}", platform_code=code,
                            http_status=status)
        return generic_status_error(response, platform="Pinterest", now=now)
