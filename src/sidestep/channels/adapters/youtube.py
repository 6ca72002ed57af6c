"""YouTube: video uploads through the Data API v3 resumable upload protocol.

Endpoints (https://developers.google.com/youtube/v3/docs/videos/insert):

- `POST {upload}/videos?uploadType=resumable&part=snippet,status` with the video resource as
  JSON, `X-Upload-Content-Length` and `X-Upload-Content-Type`; the session URI comes back in
  `Location` (https://developers.google.com/youtube/v3/guides/using_resumable_upload_protocol);
- `PUT {session URI}` with the bytes, in chunks of a multiple of 256 KiB with `Content-Range`;
  `308 Resume Incomplete` and its `Range` header say how far YouTube got, `201` carries the
  video resource. After a lost connection or a 5xx, `PUT` with `Content-Range: bytes */TOTAL`
  asks the session how far it got, and the upload resumes from there (same guide);
- `GET {api}/channels?part=snippet&mine=true` — https://developers.google.com/youtube/v3/docs/channels/list
- `DELETE {api}/videos?id=...` — https://developers.google.com/youtube/v3/docs/videos/delete

Errors come in Google's format, `{"error": {"code", "message", "errors": [{"reason",
"domain", "message"}], "status"}}`, with the reasons of
https://developers.google.com/youtube/v3/docs/errors; `REASONS` maps them. Quotas reset at
midnight Pacific time (https://developers.google.com/youtube/v3/getting-started#quota).

Idempotency: the resumable session is YouTube's own. Within one `publish`, a chunk whose answer
was lost is never sent blind: the session is asked what it holds, and if the last bytes arrived
the video it made is returned. YouTube offers no lookup by a marker we could embed, so
`can_find` is False. The video is not polled until processed: it exists (and counts against
the quota) once uploaded, and processing can take far longer than a publish should wait.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import ClassVar, Literal
from zoneinfo import ZoneInfo

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
    Unknown,
    capped,
)
from sidestep.channels.http import generic_status_error, retry_after_s
from sidestep.domain.content import Content, MediaItem, MediaKind, Problem
from sidestep.logs import register_secret
from sidestep.vault import Credentials

TITLE_MAX_CHARS = 100
DESCRIPTION_MAX_BYTES = 5000
CHUNK_QUANTUM = 256 * 1024
PACIFIC = ZoneInfo("America/Los_Angeles")
RANGE_RE = re.compile(r"^bytes=0-(\d+)$")

Kind = Literal["auth", "quota", "rate", "rejected", "transient"]

# errors[0].reason -> what it means for the caller (the errors page in the module docstring).
REASONS: dict[str, Kind] = {
    "authError": "auth", "required": "auth", "unauthorized": "auth", "expired": "auth",
    "insufficientPermissions": "auth", "youtubeSignupRequired": "auth",
    "accountClosed": "auth", "accountSuspended": "auth",
    "quotaExceeded": "quota", "dailyLimitExceeded": "quota", "uploadLimitExceeded": "quota",
    "rateLimitExceeded": "rate", "userRateLimitExceeded": "rate",
    "invalidTitle": "rejected", "invalidDescription": "rejected", "invalidTags": "rejected",
    "invalidCategoryId": "rejected", "invalidVideoMetadata": "rejected",
    "invalidFilename": "rejected", "invalidPublishAt": "rejected",
    "invalidRecordingDetails": "rejected", "invalidVideoGameRating": "rejected",
    "defaultLanguageNotSet": "rejected", "mediaBodyRequired": "rejected",
    "forbiddenLicenseSetting": "rejected", "forbiddenPrivacySetting": "rejected",
    "forbidden": "rejected", "videoNotFound": "rejected",
    "backendError": "transient", "internalError": "transient",
}
WORDS: dict[Kind, str] = {
    "auth": "YouTube no longer accepts this channel's sign-in; reconnect the YouTube account.",
    "quota": "YouTube's daily upload quota is used up; it resets at midnight Pacific time.",
    "rate": "YouTube is limiting how fast this account may upload.",
    "rejected": "YouTube refused the video:",
    "transient": "YouTube had an internal error.",
}


class _ErrorItem(BaseModel):
    reason: str = ""
    domain: str = ""
    message: str = ""


class _Error(BaseModel):
    code: int
    message: str = ""
    errors: list[_ErrorItem] = []


class _ErrorBody(BaseModel):
    error: _Error


class _VideoStatus(BaseModel):
    uploadStatus: str = ""  # noqa: N815 - YouTube's field names
    failureReason: str | None = None  # noqa: N815
    rejectionReason: str | None = None  # noqa: N815


class _Video(BaseModel):
    id: str
    status: _VideoStatus = _VideoStatus()


class _ChannelSnippet(BaseModel):
    title: str = ""


class _Channel(BaseModel):
    id: str
    snippet: _ChannelSnippet = _ChannelSnippet()


class _Channels(BaseModel):
    items: list[_Channel] = []


def _description(content: Content) -> str:
    """The text, with the post's link after it when the text does not carry it already."""
    if content.link and content.link not in content.text:
        return f"{content.text}\n\n{content.link}" if content.text else content.link
    return content.text


class YouTubeAdapter(Adapter):
    """Uploads of one video, titled and described, to the channel of an OAuth token."""

    platform = "youtube"
    credential_fields = ("access_token",)
    default_timeout_s = 120.0  # one 8 MiB chunk over a slow uplink
    can_find = False
    # How often one publish may ask the session and go on after a lost answer or a 5xx.
    max_resumes: ClassVar[int] = 3
    # A multiple of 256 KiB, as the protocol requires; an instance attribute so tests can
    # upload in small chunks.
    upload_chunk_bytes: int = 32 * CHUNK_QUANTUM

    # -- content checks ---------------------------------------------------------------

    def validate(self, content: Content) -> list[Problem]:
        """The base checks, with the description counted as YouTube does: UTF-8 bytes."""
        problems = [p for p in super().validate(content) if p.code != "too_long"]
        size = len(_description(content).encode())
        if size > DESCRIPTION_MAX_BYTES:
            problems.append(Problem("too_long", f"YouTube descriptions hold at most "
                                    f"{DESCRIPTION_MAX_BYTES:,} bytes (accented letters and "
                                    f"emoji take 2 to 4 each); this one has {size:,}."))
        return problems

    def platform_problems(self, content: Content) -> list[Problem]:
        problems: list[Problem] = []
        if not any(m.kind is MediaKind.VIDEO for m in content.media):
            problems.append(Problem("media_required", "YouTube needs a video; this post has "
                                    "none."))
        title = content.title.strip()
        if not title:
            problems.append(Problem("title_required", "YouTube needs a title for the video."))
        elif len(title) > TITLE_MAX_CHARS:
            problems.append(Problem("title_too_long", f"YouTube titles hold at most "
                                    f"{TITLE_MAX_CHARS} characters; this one has {len(title)}."))
        for name, value in (("title", title), ("description", _description(content))):
            if "<" in value or ">" in value:
                problems.append(Problem("forbidden_characters", f"YouTube does not allow the "
                                        f"characters < and > in a {name}."))
        return problems

    # -- publishing -------------------------------------------------------------------

    async def publish(self, content: Content, credentials: Credentials, *,
                      idempotency_key: str) -> Published:
        """Upload the post's video as a public video; its id is the external id.

        `idempotency_key` is not sent: the resumable session is YouTube's idempotency, used
        within this call (see the module docstring). Raises AuthExpired, Rejected (before
        anything is sent, for content YouTube will not take), RateLimited (quota: until
        midnight Pacific), Transient, PlatformOutage, or Unknown(maybe_sent=True) when the
        last bytes may have arrived and the session could not be asked.
        """
        token = self._token(credentials)
        problems = self.validate(content)
        if problems:
            raise Rejected(" ".join(p.message for p in problems))
        video = next(m for m in content.media if m.kind is MediaKind.VIDEO)
        session_uri = await self._start_session(token, content, video)
        uploaded = await self._upload(token, session_uri, video)
        if uploaded.status.uploadStatus in ("failed", "rejected"):
            reason = uploaded.status.failureReason or uploaded.status.rejectionReason
            raise Rejected(f"YouTube took the upload but {uploaded.status.uploadStatus} the "
                           f"video ({reason}); its id is {uploaded.id}.", platform_code=reason)
        return Published(uploaded.id, f"https://www.youtube.com/watch?v={uploaded.id}")

    async def _start_session(self, token: str, content: Content, video: MediaItem) -> str:
        resource = {"snippet": {"title": content.title.strip(),
                                "description": _description(content), "categoryId": "22"},
                    "status": {"privacyStatus": "public", "selfDeclaredMadeForKids": False}}
        response = await self.http.request(  # a session alone publishes nothing
            "POST", f"{self._base('upload')}/videos", changes=False, json=resource,
            params={"uploadType": "resumable", "part": "snippet,status"},
            headers=self._auth(token) | {
                "X-Upload-Content-Length": str(video.size_bytes),
                "X-Upload-Content-Type": video.mime_type})
        if not response.is_success:
            raise self._error(response, changes=False)
        location = str(response.headers.get("location", ""))
        if not location:
            raise Transient("YouTube opened no upload session (its answer had no Location).",
                            http_status=response.status_code)
        register_secret(location)  # the upload id in it is as good as a credential
        return location

    async def _upload(self, token: str, session_uri: str, video: MediaItem) -> _Video:
        """Send the bytes from where the session stands; the video YouTube made of them."""
        total, offset, resumes = video.size_bytes, 0, 0
        while True:
            end, asked = min(offset + self.upload_chunk_bytes, total), False
            try:
                response = await self.http.request(
                    "PUT", session_uri, changes=end == total, content=video.data[offset:end],
                    headers=self._auth(token) | {"Content-Type": video.mime_type,
                                                 "Content-Range": f"bytes {offset}-{end - 1}/"
                                                                  f"{total}"})
            except (Unknown, Transient, PlatformOutage) as lost:
                resumes += 1
                if resumes > self.max_resumes:
                    raise
                response, asked = await self._ask_session(token, session_uri, total, lost), True
            while response.status_code >= 500 and resumes < self.max_resumes:
                resumes += 1  # the guide: after a 5xx, ask the session and resume
                response, asked = await self._ask_session(token, session_uri, total, None), True
            if response.status_code in (200, 201):
                return self._video(response, final=end == total)
            if response.status_code != 308:
                raise self._error(response, changes=end == total)
            received = _received(response)
            if received <= offset and not asked:  # the session took none of the chunk
                resumes += 1
                if resumes > self.max_resumes:
                    raise Transient("YouTube's upload session stopped taking the video's bytes.")
            offset = received

    async def _ask_session(self, token: str, session_uri: str, total: int,
                           lost: PublishError | None) -> httpx.Response:
        """How far the upload got (`bytes */TOTAL`); a failure to ask after the last bytes
        may have arrived is Unknown(maybe_sent=True)."""
        try:
            return await self.http.request(
                "PUT", session_uri, changes=False, content=b"",
                headers=self._auth(token) | {"Content-Range": f"bytes */{total}"})
        except PublishError as exc:
            if isinstance(lost, Unknown) and lost.maybe_sent:
                raise Unknown(f"YouTube may have the whole video: the answer to its last bytes "
                              f"was lost and the upload session could not be asked ({exc}).",
                              maybe_sent=True) from exc
            raise

    def _video(self, response: httpx.Response, *, final: bool) -> _Video:
        try:
            return _Video.model_validate_json(response.content)
        except ValidationError as exc:
            raise self._unreadable(response, changes=final) from exc

    # -- account ----------------------------------------------------------------------

    async def check_credentials(self, credentials: Credentials) -> AccountInfo:
        """The channel of the token; AuthExpired if Google refuses it or it has no channel."""
        token = self._token(credentials)
        response = await self.http.request(
            "GET", f"{self._base('api')}/channels", changes=False,
            params={"part": "snippet", "mine": "true"}, headers=self._auth(token))
        if not response.is_success:
            raise self._error(response, changes=False)
        try:
            channels = _Channels.model_validate_json(response.content)
        except ValidationError as exc:
            raise self._unreadable(response, changes=False) from exc
        if not channels.items:
            raise AuthExpired("This Google account has no YouTube channel; create one and "
                              "reconnect.")
        channel = channels.items[0]
        return AccountInfo(account_id=channel.id, name=channel.snippet.title or channel.id)

    async def delete(self, external_id: str, credentials: Credentials) -> None:
        """Delete the video; Rejected if it is gone or not this channel's."""
        response = await self.http.request(
            "DELETE", f"{self._base('api')}/videos", changes=True, params={"id": external_id},
            headers=self._auth(self._token(credentials)))
        if not response.is_success:
            raise self._error(response, changes=True)

    # -- HTTP and the error table -----------------------------------------------------

    def _token(self, credentials: Credentials) -> str:
        missing = self.missing_credentials(credentials)
        if missing:
            raise AuthExpired(f"The YouTube connection lacks {', '.join(missing)}; "
                              "reconnect it.")
        token = credentials["access_token"]
        register_secret(token)
        return token

    @staticmethod
    def _auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def _base(self, which: Literal["api", "upload"]) -> str:
        """The catalogue's Data API or upload base URL."""
        urls = self.entry.api_base_urls
        upload = [u for u in urls if "/upload/" in u]
        if which == "upload":
            return upload[0]
        return next(u for u in urls if u not in upload)

    def _error(self, response: httpx.Response, *, changes: bool) -> Exception:
        """The taxonomy for an error answer, by Google's `errors[0].reason`."""
        try:
            error = _ErrorBody.model_validate_json(response.content).error
        except ValidationError:
            return self._unreadable(response, changes=changes)
        reason = error.errors[0].reason if error.errors else ""
        kind = REASONS.get(reason)
        if kind is None and response.status_code == 401:
            kind = "auth"
        if kind is None:
            return generic_status_error(response, platform=self.platform, now=self.clock.now())
        status, now = response.status_code, self.clock.now()
        message = WORDS[kind]
        if kind == "rejected":
            message = f"{message} {error.message} ({reason})"
        if kind == "auth":
            return AuthExpired(message, platform_code=reason, http_status=status)
        if kind == "quota":
            return RateLimited(message, retry_after_s=_seconds_to_pacific_midnight(now),
                               platform_code=reason, http_status=status)
        if kind == "rate":
            return RateLimited(message, retry_after_s=retry_after_s(response, now=now),
                               platform_code=reason, http_status=status)
        if kind == "rejected":
            return Rejected(message, platform_code=reason, http_status=status)
        return Transient(message, platform_code=reason, http_status=status)

    def _unreadable(self, response: httpx.Response, *, changes: bool) -> Exception:
        status = response.status_code
        if status == 429 or status >= 500:
            return generic_status_error(response, platform=self.platform, now=self.clock.now())
        snippet = capped(response.content[:200].decode("utf-8", "replace"), 120)
        message = f"YouTube answered HTTP {status} with something unreadable: {snippet!r}"
        if changes and response.is_success:
            return Unknown(message, maybe_sent=True, http_status=status)
        return Transient(message, http_status=status)


def _received(response: httpx.Response) -> int:
    """The offset to go on from, after a 308: one past the Range YouTube holds (0 if none)."""
    match = RANGE_RE.match(response.headers.get("range", ""))
    return int(match[1]) + 1 if match else 0


def _seconds_to_pacific_midnight(now: datetime) -> float:
    local = now.astimezone(PACIFIC)
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(60.0, (midnight - local).total_seconds())

