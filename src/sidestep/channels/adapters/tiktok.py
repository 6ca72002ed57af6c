"""TikTok: direct posts through the Content Posting API.

The flow (https://developers.tiktok.com/doc/content-posting-api-get-started):

1. `POST /v2/post/publish/creator_info/query/` — the privacy levels and interaction settings
   the creator allows (https://developers.tiktok.com/doc/content-posting-api-reference-query-creator-info);
2. a video: `POST /v2/post/publish/video/init/` with `FILE_UPLOAD`, then the bytes `PUT` to the
   returned `upload_url` in chunks with `Content-Range`
   (https://developers.tiktok.com/doc/content-posting-api-reference-direct-post,
   https://developers.tiktok.com/doc/content-posting-api-media-transfer-guide), or with
   `PULL_FROM_URL` when the item has a public `url`; photos: `POST /v2/post/publish/content/init/`
   with `PULL_FROM_URL` (https://developers.tiktok.com/doc/content-posting-api-reference-photo-post);
3. `POST /v2/post/publish/status/fetch/` until `PUBLISH_COMPLETE` or `FAILED`
   (https://developers.tiktok.com/doc/content-posting-api-reference-get-video-status).

Every answer is `{"data": ..., "error": {"code", "message", "log_id"}}`, code "ok" on success
(https://developers.tiktok.com/doc/tiktok-api-v2-error-handling); `API_ERRORS` reads the codes
and `FAIL_REASONS` the `fail_reason` of a FAILED post.

Idempotency: TikTok takes no idempotency key and cannot look a post up by a marker. Once it has
the whole video (the last chunk answered) or accepted a pull, publishing is TikTok's to finish,
so from then on nothing reads as retryable: a status that cannot be read is
`Unknown(maybe_sent=True)`, and a post still processing after `max_polls` is returned as
`Published` under its publish_id (moderation of public posts can take hours, per the status
docs) — a `Transient` there would make the dispatcher post it twice. The API cannot delete
posts, so `delete` raises `Rejected`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ValidationError

from sidestep.channels.base import AccountInfo, Adapter, Published
from sidestep.channels.errors import (
    AuthExpired,
    PublishError,
    RateLimited,
    Rejected,
    Transient,
    Unknown,
    capped,
)
from sidestep.channels.http import generic_status_error, retry_after_s
from sidestep.domain.content import Content, MediaItem, MediaKind, Problem
from sidestep.logs import register_secret
from sidestep.vault import Credentials

MB = 1024 * 1024
PHOTO_TITLE_MAX = 90
PHOTO_DESCRIPTION_MAX = 4000
PHOTO_MIME_TYPES = ("image/jpeg", "image/webp")
# Most reach first; the creator's privacy_level_options say which are allowed.
PRIVACY_PREFERENCE = ("PUBLIC_TO_EVERYONE", "FOLLOWER_OF_CREATOR", "MUTUAL_FOLLOW_FRIENDS",
                      "SELF_ONLY")

Kind = Literal["auth", "rate", "daily", "rejected", "transient"]
M = TypeVar("M", bound=BaseModel)

# error.code -> what it means for the caller, in words a marketer understands.
API_ERRORS: dict[str, tuple[Kind, str]] = {
    "access_token_invalid": ("auth", "TikTok no longer accepts this account's access token; "
                             "reconnect the TikTok account."),
    "scope_not_authorized": ("auth", "The TikTok account did not allow posting (video.publish); "
                             "reconnect it and allow posting."),
    "scope_permission_missed": ("auth", "The TikTok connection lacks a permission it needs; "
                                "reconnect the TikTok account."),
    "spam_risk_user_banned_from_posting": ("auth", "TikTok has banned this account from "
                                           "posting; its owner must resolve it in TikTok."),
    "rate_limit_exceeded": ("rate", "TikTok is limiting how often this account may call it."),
    "spam_risk_too_many_posts": ("daily", "This TikTok account reached its daily post limit."),
    "reached_active_user_cap": ("daily", "Sidestep's TikTok app reached its daily cap of "
                                "posting accounts."),
    "unaudited_client_can_only_post_to_private_accounts": (
        "rejected", "TikTok lets this app post only to private accounts until it is audited."),
    "url_ownership_unverified": ("rejected", "TikTok fetches media only from web addresses "
                                 "verified for this app; the post's media address is not."),
    "privacy_level_option_mismatch": ("rejected", "The post's visibility is not one this TikTok "
                                      "account allows."),
    "invalid_params": ("rejected", "TikTok refused the post's details."),
    "invalid_file_upload": ("rejected", "TikTok says the file does not meet its requirements."),
    "internal_error": ("transient", "TikTok had an internal error."),
}

# fail_reason of a FAILED post (the Get Post Status reference). Nothing was published.
FAIL_REASONS: dict[str, tuple[Kind, str]] = {
    "file_format_check_failed": ("rejected", "TikTok could not read the file; send MP4, MOV or "
                                 "WebM video, or JPEG or WebP photos."),
    "duration_check_failed": ("rejected", "The video is longer or shorter than this TikTok "
                              "account may post."),
    "frame_rate_check_failed": ("rejected", "TikTok does not take the video's frame rate "
                                "(23 to 60 frames per second)."),
    "picture_size_check_failed": ("rejected", "TikTok does not take the picture's size."),
    "video_pull_failed": ("rejected", "TikTok could not download the video from its web "
                          "address; check that the address is public."),
    "photo_pull_failed": ("rejected", "TikTok could not download the photos from their web "
                          "addresses; check that the addresses are public."),
    "publish_cancelled": ("rejected", "The post was cancelled on TikTok."),
    "spam_risk_text": ("rejected", "TikTok flagged the caption as spam."),
    "spam_risk": ("rejected", "TikTok flagged the post as spam."),
    "auth_removed": ("auth", "The account owner removed Sidestep's access in TikTok; reconnect "
                     "the TikTok account."),
    "internal": ("transient", "TikTok failed to process the post on its side."),
    "spam_risk_too_many_posts": API_ERRORS["spam_risk_too_many_posts"],
    "spam_risk_user_banned_from_posting": API_ERRORS["spam_risk_user_banned_from_posting"],
}


class _Error(BaseModel):
    code: str
    message: str = ""
    log_id: str = ""


class _Envelope(BaseModel):
    data: dict[str, Any] | None = None
    error: _Error


class _CreatorInfo(BaseModel):
    creator_username: str = ""
    creator_nickname: str = ""
    privacy_level_options: list[str] = []
    comment_disabled: bool = False
    duet_disabled: bool = False
    stitch_disabled: bool = False


class _Init(BaseModel):
    publish_id: str
    upload_url: str | None = None


class _Status(BaseModel):
    status: str
    fail_reason: str | None = None
    publicaly_available_post_id: list[int | str] = []  # sic: TikTok's spelling


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _photos(content: Content) -> list[MediaItem]:
    return [m for m in content.media if m.kind is MediaKind.IMAGE]


def _videos(content: Content) -> list[MediaItem]:
    return [m for m in content.media if m.kind is MediaKind.VIDEO]


class TikTokAdapter(Adapter):
    """Direct posts of one video or up to 35 photos to a creator's TikTok account."""

    platform = "tiktok"
    credential_fields = ("access_token",)
    default_timeout_s = 60.0  # a 64 MB chunk over an ordinary uplink
    # status/fetch allows 30 calls a minute per token; 12 polls 5 s apart take one of them.
    default_poll_interval_s = 5.0
    max_polls = 12
    can_find = False
    # The transfer guide: a video of up to 64 MB may go as one chunk; larger ones in chunks
    # of 5-64 MB, the last taking the remainder. Instance attributes, so tests can shrink them.
    single_chunk_max_bytes: int = 64 * MB
    chunk_bytes: int = 32 * MB

    # -- content checks ---------------------------------------------------------------

    def text_length(self, text: str) -> int:
        """TikTok counts captions in UTF-16 code units."""
        return _utf16_len(text)

    def validate(self, content: Content) -> list[Problem]:
        """The base checks, with the 4,000-character limit of photo descriptions."""
        problems = super().validate(content)
        if _photos(content) and not _videos(content):
            problems = [p for p in problems if p.code != "too_long"]
            length = self.text_length(content.text)
            if length > PHOTO_DESCRIPTION_MAX:
                problems.append(Problem("too_long", f"TikTok photo descriptions hold at most "
                                        f"{PHOTO_DESCRIPTION_MAX:,} characters; this one has "
                                        f"{length:,}."))
        return problems

    def platform_problems(self, content: Content) -> list[Problem]:
        photos, videos = _photos(content), _videos(content)
        if not photos and not videos:
            return [Problem("media_required", "TikTok posts need a video or photos; a post "
                            "with only text cannot go to TikTok.")]
        if photos and videos:
            return [Problem("mixed_media", "TikTok cannot mix a video and photos in one post.")]
        if len(videos) > 1:
            return [Problem("too_many_media", f"TikTok takes one video per post; this post has "
                            f"{len(videos)}.")]
        problems: list[Problem] = []
        for photo in photos:
            if photo.mime_type not in PHOTO_MIME_TYPES:
                problems.append(Problem("media_kind", f"TikTok takes photos as JPEG or WebP; "
                                        f"{photo.filename} is {photo.mime_type}."))
            if not photo.url:
                problems.append(Problem("media_url_required", f"TikTok fetches photos from a "
                                        f"public web address; {photo.filename} has none."))
        if photos and _utf16_len(content.title) > PHOTO_TITLE_MAX:
            problems.append(Problem("title_too_long", f"TikTok photo titles hold at most "
                                    f"{PHOTO_TITLE_MAX} characters; this one has "
                                    f"{_utf16_len(content.title)}."))
        return problems

    # -- publishing -------------------------------------------------------------------

    async def publish(self, content: Content, credentials: Credentials, *,
                      idempotency_key: str) -> Published:
        """Post `content` directly to the creator's profile; the publish_id is the external id.

        `idempotency_key` is not sent: TikTok has no such mechanism (see the module docstring).
        Raises AuthExpired (credentials missing or refused), Rejected (content TikTok will not
        take, before anything is sent), RateLimited, Transient, PlatformOutage, or
        Unknown(maybe_sent=True) once TikTok may already have the post.
        """
        token = self._token(credentials)
        problems = self.validate(content)
        if problems:
            raise Rejected(" ".join(p.message for p in problems))
        creator = await self._creator_info(token)
        privacy = next((p for p in PRIVACY_PREFERENCE if p in creator.privacy_level_options),
                       None)
        if privacy is None:
            raise Rejected("TikTok offers this account no visibility Sidestep can post with.")
        if _photos(content):
            publish_id = await self._init_photos(token, content, creator, privacy)
        else:
            publish_id = await self._init_video(token, content, creator, privacy)
        return await self._await_publication(token, publish_id, creator,
                                             photo=bool(_photos(content)))

    async def _init_video(self, token: str, content: Content, creator: _CreatorInfo,
                          privacy: str) -> str:
        item = _videos(content)[0]
        post_info = {"title": content.text, "privacy_level": privacy,
                     "disable_duet": creator.duet_disabled,
                     "disable_comment": creator.comment_disabled,
                     "disable_stitch": creator.stitch_disabled}
        if item.url:  # TikTok fetches it and goes on to publish: this call may post
            data = await self._api(token, "video/init/", {"post_info": post_info, "source_info": {
                "source": "PULL_FROM_URL", "video_url": item.url}}, changes=True)
            return self._parse(_Init, data, changes=True).publish_id
        size = item.size_bytes
        chunk = size if size <= self.single_chunk_max_bytes else self.chunk_bytes
        data = await self._api(token, "video/init/", {"post_info": post_info, "source_info": {
            "source": "FILE_UPLOAD", "video_size": size, "chunk_size": chunk,
            "total_chunk_count": size // chunk}}, changes=False)
        init = self._parse(_Init, data, changes=False)
        if not init.upload_url:
            raise Transient("TikTok started the upload but gave no upload address.")
        await self._upload(init.upload_url, item, chunk)
        return init.publish_id

    async def _upload(self, upload_url: str, item: MediaItem, chunk: int) -> None:
        """PUT the file in order; only the last chunk can make TikTok publish."""
        register_secret(urlsplit(upload_url).query)  # carries the upload token
        size, count = item.size_bytes, item.size_bytes // chunk
        for index in range(count):
            first = index * chunk
            last = size - 1 if index == count - 1 else first + chunk - 1
            final = index == count - 1
            response = await self.http.request(
                "PUT", upload_url, changes=final, content=item.data[first:last + 1],
                headers={"Content-Type": item.mime_type,
                         "Content-Range": f"bytes {first}-{last}/{size}"})
            if response.status_code in (201, 206) or (response.is_success and final):
                continue
            if response.status_code == 429 or response.status_code >= 500:
                raise generic_status_error(response, platform=self.platform,
                                           now=self.clock.now())
            raise Transient(f"TikTok refused chunk {index + 1} of {count} of the upload with "
                            f"HTTP {response.status_code}.", http_status=response.status_code)

    async def _init_photos(self, token: str, content: Content, creator: _CreatorInfo,
                           privacy: str) -> str:
        photos = _photos(content)
        body = {"media_type": "PHOTO", "post_mode": "DIRECT_POST",
                "post_info": {"title": content.title, "description": content.text,
                              "privacy_level": privacy,
                              "disable_comment": creator.comment_disabled,
                              "auto_add_music": True},
                "source_info": {"source": "PULL_FROM_URL", "photo_cover_index": 0,
                                "photo_images": [p.url for p in photos]}}
        data = await self._api(token, "content/init/", body, changes=True)
        return self._parse(_Init, data, changes=True).publish_id

    async def _await_publication(self, token: str, publish_id: str, creator: _CreatorInfo, *,
                                 photo: bool) -> Published:
        """Poll until TikTok publishes or fails the post; TikTok has it already."""
        for _ in range(self.max_polls):
            await asyncio.sleep(self.poll_interval_s)
            try:
                data = await self._api(token, "status/fetch/", {"publish_id": publish_id},
                                       changes=False)
                status = self._parse(_Status, data, changes=False)
            except PublishError as exc:
                raise Unknown(f"TikTok has the post ({publish_id}) but its status could not be "
                              f"read: {exc}", maybe_sent=True) from exc
            if status.status == "FAILED":
                raise self._failed(status.fail_reason)
            if status.status == "PUBLISH_COMPLETE":
                url = None
                if status.publicaly_available_post_id and creator.creator_username:
                    path = "photo" if photo else "video"
                    url = (f"https://www.tiktok.com/@{creator.creator_username}/{path}/"
                           f"{status.publicaly_available_post_id[0]}")
                return Published(publish_id, url)
        return Published(publish_id)  # still processing or in moderation: TikTok will publish

    def _failed(self, reason: str | None) -> PublishError:
        entry = FAIL_REASONS.get(reason or "")
        if entry is None:
            return Unknown(f"TikTok did not publish the post (fail_reason {reason!r}).",
                           maybe_sent=False, platform_code=reason)
        kind, text = entry
        return self._classified(kind, f"{text} (fail_reason {reason})", platform_code=reason)

    # -- account ----------------------------------------------------------------------

    async def check_credentials(self, credentials: Credentials) -> AccountInfo:
        """The creator the token belongs to; AuthExpired if TikTok refuses the token."""
        creator = await self._creator_info(self._token(credentials))
        return AccountInfo(account_id=creator.creator_username,
                           name=creator.creator_nickname or creator.creator_username)

    async def delete(self, external_id: str, credentials: Credentials) -> None:
        """Always raises Rejected: the Content Posting API has no way to delete a post."""
        raise Rejected("TikTok's API cannot delete posts; delete it in the TikTok app.")

    async def _creator_info(self, token: str) -> _CreatorInfo:
        data = await self._api(token, "creator_info/query/", {}, changes=False)
        return self._parse(_CreatorInfo, data, changes=False)

    # -- HTTP and the error table -----------------------------------------------------

    def _token(self, credentials: Credentials) -> str:
        missing = self.missing_credentials(credentials)
        if missing:
            raise AuthExpired(f"The TikTok connection lacks {', '.join(missing)}; reconnect it.")
        token = credentials["access_token"]
        register_secret(token)
        return token

    async def _api(self, token: str, path: str, body: dict[str, Any], *,
                   changes: bool) -> dict[str, Any]:
        """POST to /v2/post/publish/<path>; the `data` of a successful answer."""
        url = f"{self.entry.api_base_urls[0]}/v2/post/publish/{path}"
        response = await self.http.request(
            "POST", url, changes=changes, json=body,
            headers={"Authorization": f"Bearer {token}",
                     "Content-Type": "application/json; charset=UTF-8"})
        try:
            envelope = _Envelope.model_validate_json(response.content)
        except ValidationError as exc:
            raise self._unreadable(response, changes=changes) from exc
        if envelope.error.code == "ok" and response.is_success:
            return envelope.data or {}
        raise self._api_error(envelope.error, response)

    def _parse(self, model: type[M], data: dict[str, Any], *,
                             changes: bool) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            message = f"TikTok answered without the expected {model.__name__.strip('_')} data."
            if changes:
                raise Unknown(message, maybe_sent=True) from exc
            raise Transient(message) from exc

    def _unreadable(self, response: httpx.Response, *, changes: bool) -> Exception:
        status = response.status_code
        if status == 429 or status >= 500:
            return generic_status_error(response, platform=self.platform, now=self.clock.now())
        snippet = capped(response.content[:200].decode("utf-8", "replace"), 120)
        message = f"TikTok answered HTTP {status} with something unreadable: {snippet!r}"
        if changes and response.is_success:
            return Unknown(message, maybe_sent=True, http_status=status)
        return Transient(message, http_status=status)

    def _api_error(self, error: _Error, response: httpx.Response) -> Exception:
        entry: tuple[Kind, str] | None = API_ERRORS.get(error.code)
        if entry is None and response.status_code == 401:
            entry = ("auth", "TikTok refused the account's credentials.")
        if entry is None:
            return generic_status_error(response, platform=self.platform, now=self.clock.now())
        kind, text = entry
        detail = f" TikTok said: {error.message}" if kind == "rejected" and error.message else ""
        return self._classified(kind, f"{text}{detail} ({error.code}, log_id {error.log_id})",
                                platform_code=error.code, response=response)

    def _classified(self, kind: Kind, message: str, *, platform_code: str | None,
                    response: httpx.Response | None = None) -> PublishError:
        kw: dict[str, Any] = {"platform_code": platform_code, "http_status": (
            response.status_code if response is not None else None)}
        now = self.clock.now()
        if kind == "rate":
            wait = retry_after_s(response, now=now) if response is not None else 60.0
            return RateLimited(message, retry_after_s=wait, **kw)
        if kind == "daily":
            return RateLimited(message, retry_after_s=_seconds_to_next_utc_day(now), **kw)
        return {"auth": AuthExpired, "rejected": Rejected}.get(kind, Transient)(message, **kw)


def _seconds_to_next_utc_day(now: datetime) -> float:
    """TikTok does not say when its daily caps reset; the next UTC midnight, at least 1 h."""
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(3600.0, (midnight - now).total_seconds())
