"""TikTok Content Posting API: creator info, video and photo posts, chunked upload, status.

Endpoints (open.tiktokapis.com; chunk uploads to open-upload.tiktokapis.com):

- `POST /v2/post/publish/creator_info/query/` —
  https://developers.tiktok.com/doc/content-posting-api-reference-query-creator-info
- `POST /v2/post/publish/video/init/` (direct post) —
  https://developers.tiktok.com/doc/content-posting-api-reference-direct-post
- `POST /v2/post/publish/inbox/video/init/` (upload to the creator's inbox) —
  https://developers.tiktok.com/doc/content-posting-api-reference-upload-video
- `PUT {upload_url}` with `Content-Range: bytes first-last/total`, 206 until the last chunk,
  then 201 — https://developers.tiktok.com/doc/content-posting-api-media-transfer-guide
  (chunks 5-64 MB, the last up to 128 MB, a video under 5 MB in one chunk, 1-1000 chunks,
  sequential; total_chunk_count = floor(video_size / chunk_size))
- `POST /v2/post/publish/content/init/` (photo posts, PULL_FROM_URL, up to 35 images) —
  https://developers.tiktok.com/doc/content-posting-api-reference-photo-post
- `POST /v2/post/publish/status/fetch/` —
  https://developers.tiktok.com/doc/content-posting-api-reference-get-video-status

Every answer is `{"data": {...}, "error": {"code", "message", "log_id"}}` with code "ok" on
success (https://developers.tiktok.com/doc/tiktok-api-v2-error-handling): 401
access_token_invalid, 400 invalid_params / invalid_file_upload / privacy_level_option_mismatch,
403 spam_risk_too_many_posts / url_ownership_unverified, 429 rate_limit_exceeded, 500
internal_error. Per user token: 6 init requests, 20 creator_info queries and 30 status fetches
per minute. TikTok documents no duplicate refusal, so DUPLICATE answers invalid_params.

Simulator conventions: `DAILY_POST_CAP` posts per creator per UTC day (TikTok does not publish
the cap); PULL_FROM_URL sources must start with a prefix granted by `verify_url_prefix`; an
uploaded file that is not MP4/MOV (an ISO `ftyp` box) or WebM ends FAILED with fail_reason
file_format_check_failed; processing takes `PROCESSING_S` on the world clock. A post is recorded
once, when TikTok would go on to publish it (last chunk stored, or a pull accepted).

For the monitor's probes (catalogue `probes`): `GET /v2/user/info/` answers a request without
a valid token 401 access_token_invalid (https://developers.tiktok.com/doc/tiktok-api-v2-get-user-info);
p16-sign-va.tiktokcdn.com answers as a CDN without the object (403, `_probe_pages`); the web
page www.tiktok.com/ is on `oauth_hosts`, which serves that host, and answers to tiktok's faults.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Host, Route, Router

from sidestep.sim.platforms._oauth import oauth_routes
from sidestep.sim.platforms._probe_pages import cdn_routes
from sidestep.sim.profile import ErrorKind, Profile
from sidestep.sim.world import SimWorld

UPLOAD_HOST = "open-upload.tiktokapis.com"
CDN_HOST = "p16-sign-va.tiktokcdn.com"  # avatars and covers; the monitor's media probe
MB = 1024 * 1024
MAX_VIDEO_BYTES = 4 * 1024 * MB
MAX_VIDEO_TITLE = 2200  # UTF-16 code units
MAX_PHOTO_TITLE, MAX_PHOTO_DESCRIPTION, MAX_PHOTOS = 90, 4000, 35
MEDIA_KEPT_BYTES = 64 * MB
PROCESSING_S = 2.0
DAILY_POST_CAP = 15
PER_MINUTE = {"init": 6, "creator_info": 20, "status": 30}
PRIVACY_LEVELS = ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR",
                  "SELF_ONLY"]
RANGE_RE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
MESSAGES = {
    "access_token_invalid": "The access token is invalid or not found in the request.",
    "rate_limit_exceeded": "The API rate limit was exceeded. Please try again later.",
    "internal_error": "Something went wrong. Please try again later.",
    "invalid_file_upload": "The uploaded file does not meet API specifications.",
    "spam_risk_too_many_posts": "The daily post cap from the API is reached for the current "
                                "user.",
}


class TikTokError(Exception):
    def __init__(self, status: int, code: str, message: str | None = None) -> None:
        super().__init__(code)
        self.status, self.code = status, code
        self.message = message or MESSAGES.get(code, code)


@dataclass(slots=True)
class Publish:
    account: str
    kind: str  # "video" | "photo"
    mode: str  # "DIRECT_POST" | "MEDIA_UPLOAD"
    privacy: str | None
    source: str  # "FILE_UPLOAD" | "PULL_FROM_URL"
    body: dict[str, Any]
    video_size: int = 0
    chunk_size: int = 0
    chunks: int = 0
    upload_token: str = ""
    received: int = 0
    content: bytearray | None = field(default_factory=bytearray)
    ready_at: float | None = None  # when the file was complete (or the pull accepted)
    fail_reason: str | None = None
    post_id: str | None = None


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class TikTokProfile(Profile):
    key = "tiktok"
    hosts = ("open.tiktokapis.com", UPLOAD_HOST, CDN_HOST)
    spec = None  # TikTok publishes no machine-readable description of the Content Posting API

    def __init__(self, world: SimWorld) -> None:
        super().__init__(world)
        self._publishes: dict[str, Publish] = {}
        self._calls: dict[tuple[str, str], list[float]] = {}  # (account, bucket) -> times
        self._verified_prefixes: set[str] = set()
        self._kept_bytes = 0

    # -- declared surface -------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        base = "/v2/post/publish"
        return [
            *oauth_routes(self.world, "tiktok", token=("/v2/oauth/token/",)),
            Route(f"{base}/creator_info/query/", self._creator_info, methods=["POST"]),
            Route(f"{base}/video/init/", self._video_init, methods=["POST"]),
            Route(f"{base}/inbox/video/init/", self._inbox_init, methods=["POST"]),
            Route(f"{base}/content/init/", self._photo_init, methods=["POST"]),
            Route(f"{base}/status/fetch/", self._status_fetch, methods=["POST"]),
            Host(UPLOAD_HOST, Router([Route("/video/", self._upload_chunk, methods=["PUT"])])),
            *cdn_routes({CDN_HOST: {}}),
            Route("/v2/user/info/", self._user_info, methods=["GET"]),
        ]

    async def _user_info(self, request: Request) -> Response:
        account = self.bearer_account(request)
        if account is None:
            return self.error(ErrorKind.AUTH_MISSING, "")
        open_id = hashlib.sha256(account.encode()).hexdigest()[:32]
        return self._answer({"user": {"open_id": open_id, "display_name": account}})

    def feature_of(self, request: Request) -> str:
        path = request.url.path
        if path == "/video/" or path.endswith(("/video/init/", "/content/init/")):
            return "media"
        if path.endswith("/creator_info/query/"):
            return "auth"
        return "read"

    def error(self, kind: ErrorKind, message: str, *,
              retry_after_s: float | None = None) -> Response:
        status, code = {
            ErrorKind.SERVER_ERROR: (500, "internal_error"),
            ErrorKind.UNAVAILABLE: (503, "internal_error"),
            ErrorKind.RATE_LIMITED: (429, "rate_limit_exceeded"),
            ErrorKind.AUTH_EXPIRED: (401, "access_token_invalid"),
            ErrorKind.AUTH_MISSING: (401, "access_token_invalid"),
            ErrorKind.INVALID_REQUEST: (400, "invalid_params"),
            ErrorKind.NOT_FOUND: (400, "invalid_params"),
            ErrorKind.DUPLICATE: (400, "invalid_params"),
            # A media pipeline failing on TikTok's side is one of its internal errors; the
            # documented invalid_file_upload means the client's file is wrong, which would
            # tell the caller to change the post rather than to wait.
            ErrorKind.MEDIA_FAILED: (500, "internal_error"),
        }[kind]
        text = MESSAGES.get(code) if code != "invalid_params" else None
        return self._answer({}, status, code, text or message or "Invalid parameters.")

    def verify_url_prefix(self, prefix: str) -> None:
        """Mark a URL prefix as verified for PULL_FROM_URL (done in TikTok's developer portal)."""
        self._verified_prefixes.add(prefix)

    # -- endpoints --------------------------------------------------------------------

    async def _creator_info(self, request: Request) -> Response:
        try:
            account = self._account(request, "creator_info")
        except TikTokError as exc:
            return self._answer({}, exc.status, exc.code, exc.message)
        handle = re.sub(r"\W", "", account.lower()) or "creator"
        return self._answer({
            "creator_avatar_url": f"https://p16-sign-va.tiktokcdn.com/{handle}~c5_168x168.jpeg",
            "creator_username": handle, "creator_nickname": account,
            "privacy_level_options": PRIVACY_LEVELS, "comment_disabled": False,
            "duet_disabled": False, "stitch_disabled": False,
            "max_video_post_duration_sec": 600})

    async def _video_init(self, request: Request) -> Response:
        return await self._init_video(request, mode="DIRECT_POST")

    async def _inbox_init(self, request: Request) -> Response:
        return await self._init_video(request, mode="MEDIA_UPLOAD")

    async def _init_video(self, request: Request, *, mode: str) -> Response:
        try:
            account = self._account(request, "init")
            body = await _json_body(request)
            privacy = None
            if mode == "DIRECT_POST":
                post_info = body.get("post_info")
                if not isinstance(post_info, dict):
                    raise TikTokError(400, "invalid_params", "post_info is required")
                title = post_info.get("title", "")
                if not isinstance(title, str) or _utf16_len(title) > MAX_VIDEO_TITLE:
                    raise TikTokError(400, "invalid_params", "title must be a string of at "
                                      f"most {MAX_VIDEO_TITLE} characters")
                privacy = self._privacy(post_info.get("privacy_level"))
            source = body.get("source_info")
            if not isinstance(source, dict):
                raise TikTokError(400, "invalid_params", "source_info is required")
            publish = Publish(account, "video", mode, privacy, str(source.get("source")), body)
            if publish.source == "FILE_UPLOAD":
                _check_chunks(publish, source)
            elif publish.source == "PULL_FROM_URL":
                self._check_pull_url(source.get("video_url"))
            else:
                raise TikTokError(400, "invalid_params", "source must be FILE_UPLOAD or "
                                  "PULL_FROM_URL")
            self._check_daily_cap(account)
        except TikTokError as exc:
            return self._answer({}, exc.status, exc.code, exc.message)
        kind = "file" if publish.source == "FILE_UPLOAD" else "url"
        publish_id = f"v_pub_{kind}~v2-1.{7_400_000_000_000_000_000 + self.world.next_number()}"
        self._publishes[publish_id] = publish
        if publish.source == "PULL_FROM_URL":
            self._accept(publish_id, publish)
            return self._answer({"publish_id": publish_id})
        number = self.world.next_number()
        publish.upload_token = hashlib.sha256(f"tiktok-upload-{number}".encode()).hexdigest()[:32]
        return self._answer({"publish_id": publish_id, "upload_url": (
            f"https://{UPLOAD_HOST}/video/?upload_id={publish_id.rsplit('.', 1)[1]}"
            f"&upload_token={publish.upload_token}")})

    async def _photo_init(self, request: Request) -> Response:
        try:
            account = self._account(request, "init")
            body = await _json_body(request)
            if body.get("media_type") != "PHOTO":
                raise TikTokError(400, "invalid_params", "media_type must be PHOTO")
            mode = body.get("post_mode")
            if mode not in ("DIRECT_POST", "MEDIA_UPLOAD"):
                raise TikTokError(400, "invalid_params", "post_mode must be DIRECT_POST or "
                                  "MEDIA_UPLOAD")
            post_info = _object(body.get("post_info"))
            for name, limit in (("title", MAX_PHOTO_TITLE),
                                ("description", MAX_PHOTO_DESCRIPTION)):
                value = post_info.get(name, "")
                if not isinstance(value, str) or _utf16_len(value) > limit:
                    raise TikTokError(400, "invalid_params", f"{name} must be a string of at "
                                      f"most {limit} characters")
            privacy = self._privacy(post_info.get("privacy_level")) if mode == "DIRECT_POST" \
                else None
            source = _object(body.get("source_info"))
            images = source.get("photo_images")
            if source.get("source") != "PULL_FROM_URL" or not isinstance(images, list) \
                    or not 1 <= len(images) <= MAX_PHOTOS:
                raise TikTokError(400, "invalid_params", "source_info needs PULL_FROM_URL and "
                                  f"1 to {MAX_PHOTOS} photo_images")
            cover = source.get("photo_cover_index", 0)
            if not isinstance(cover, int) or not 0 <= cover < len(images):
                raise TikTokError(400, "invalid_params", "photo_cover_index is out of range")
            for url in images:
                self._check_pull_url(url)
            self._check_daily_cap(account)
        except TikTokError as exc:
            return self._answer({}, exc.status, exc.code, exc.message)
        publish_id = f"p_pub_url~v2.{7_400_000_000_000_000_000 + self.world.next_number()}"
        publish = Publish(account, "photo", str(mode), privacy, "PULL_FROM_URL", body)
        self._publishes[publish_id] = publish
        self._accept(publish_id, publish)
        return self._answer({"publish_id": publish_id})

    async def _upload_chunk(self, request: Request) -> Response:
        query = parse_qs(request.url.query)
        upload_id, token = query.get("upload_id", [""])[0], query.get("upload_token", [""])[0]
        found = next(((pid, p) for pid, p in self._publishes.items()
                      if pid.endswith(f".{upload_id}") and p.upload_token == token and token),
                     None)
        if found is None:
            return Response(status_code=404)
        publish_id, publish = found
        match = RANGE_RE.match(request.headers.get("content-range", ""))
        if match is None or int(match[3]) != publish.video_size:
            return Response(status_code=400)
        first, last = int(match[1]), int(match[2])
        index = publish.received // publish.chunk_size if publish.chunk_size else 0
        expected = publish.video_size - index * publish.chunk_size \
            if index == publish.chunks - 1 else publish.chunk_size
        if publish.ready_at is not None or first != publish.received \
                or last - first + 1 != expected:
            return Response(status_code=416, headers={
                "Content-Range": f"bytes 0-{publish.received - 1}/{publish.video_size}"})
        chunk = await request.body()
        if len(chunk) != expected:
            return Response(status_code=400)
        publish.received += len(chunk)
        if publish.content is not None:
            if self._kept_bytes + len(chunk) > MEDIA_KEPT_BYTES:
                self._kept_bytes -= len(publish.content)
                publish.content = None
            else:
                publish.content.extend(chunk)
                self._kept_bytes += len(chunk)
        if publish.received < publish.video_size:
            return Response(status_code=206)
        head = bytes(publish.content[:64]) if publish.content is not None else chunk[:64]
        if head[4:8] != b"ftyp" and not head.startswith(b"\x1a\x45\xdf\xa3"):
            publish.fail_reason = "file_format_check_failed"
            publish.ready_at = self.world.clock.now().timestamp()
        else:
            self._accept(publish_id, publish)
        return Response(status_code=201)

    async def _status_fetch(self, request: Request) -> Response:
        try:
            account = self._account(request, "status")
            body = await _json_body(request)
            publish = self._publishes.get(str(body.get("publish_id")))
            if publish is None or publish.account != account:
                raise TikTokError(400, "invalid_params", "publish_id is invalid")
        except TikTokError as exc:
            return self._answer({}, exc.status, exc.code, exc.message)
        data: dict[str, Any] = {}
        if publish.source == "FILE_UPLOAD":
            data["uploaded_bytes"] = publish.received
        now = self.world.clock.now().timestamp()
        if publish.fail_reason is not None:
            data |= {"status": "FAILED", "fail_reason": publish.fail_reason}
        elif publish.ready_at is None:
            data["status"] = "PROCESSING_UPLOAD"
        elif now - publish.ready_at < PROCESSING_S:
            data["status"] = "PROCESSING_DOWNLOAD" if publish.source == "PULL_FROM_URL" \
                else "PROCESSING_UPLOAD"
        elif publish.mode == "MEDIA_UPLOAD":
            data["status"] = "SEND_TO_USER_INBOX"
        else:
            public = publish.privacy == "PUBLIC_TO_EVERYONE"
            data |= {"status": "PUBLISH_COMPLETE",
                     "publicaly_available_post_id": [int(publish.post_id or 0)] if public else []}
        return self._answer(data)

    # -- helpers ----------------------------------------------------------------------

    def _accept(self, publish_id: str, publish: Publish) -> None:
        """TikTok now has everything it needs: record the post, exactly once."""
        publish.ready_at = self.world.clock.now().timestamp()
        publish.post_id = str(7_300_000_000_000_000_000 + self.world.next_number())
        self.world.record.add(
            platform=self.key, account=publish.account, kind=publish.kind,
            external_id=publish_id, idempotency_marker=None,
            payload=publish.body | {"post_id": publish.post_id, "size": publish.received})

    def _account(self, request: Request, bucket: str) -> str:
        account = self.bearer_account(request)
        if account is None:
            raise TikTokError(401, "access_token_invalid")
        now = self.world.clock.now().timestamp()
        calls = [t for t in self._calls.get((account, bucket), []) if now - t < 60]
        if len(calls) >= PER_MINUTE[bucket]:
            raise TikTokError(429, "rate_limit_exceeded")
        self._calls[(account, bucket)] = calls + [now]
        return account

    def _check_daily_cap(self, account: str) -> None:
        today = self.world.clock.now().date()
        posts = sum(1 for p in self.world.record.all(self.key)
                    if p.account == account and p.at.date() == today)
        if posts >= DAILY_POST_CAP:
            raise TikTokError(403, "spam_risk_too_many_posts")

    def _check_pull_url(self, url: Any) -> None:
        if not isinstance(url, str) or not url.startswith("https://"):
            raise TikTokError(400, "invalid_params", "media URLs must be https")
        if not any(url.startswith(prefix) for prefix in self._verified_prefixes):
            raise TikTokError(403, "url_ownership_unverified", "Please review our URL "
                              "ownership verification rules.")

    @staticmethod
    def _privacy(level: Any) -> str:
        if level not in PRIVACY_LEVELS:
            raise TikTokError(400, "privacy_level_option_mismatch", "privacy_level is not one "
                              "of the creator's privacy_level_options")
        return str(level)

    def _answer(self, data: dict[str, Any], status: int = 200, code: str = "ok",
                message: str = "") -> Response:
        now = self.world.clock.now()
        tail = hashlib.sha256(str(self.world.next_number()).encode()).hexdigest()[:20].upper()
        return JSONResponse({"data": data, "error": {
            "code": code, "message": message, "log_id": f"{now:%Y%m%d%H%M%S}{tail}"}}, status)


def _check_chunks(publish: Publish, source: dict[str, Any]) -> None:
    """The media transfer guide's chunk rules, checked at init."""
    values = [source.get(k) for k in ("video_size", "chunk_size", "total_chunk_count")]
    numbers = [v for v in values if isinstance(v, int) and not isinstance(v, bool) and v > 0]
    if len(numbers) != 3:
        raise TikTokError(400, "invalid_params", "video_size, chunk_size and total_chunk_count "
                          "are required for FILE_UPLOAD")
    size, chunk, count = numbers
    if size > MAX_VIDEO_BYTES:
        raise TikTokError(400, "invalid_params", "video_size exceeds 4 GB")
    if size < 5 * MB and chunk != size:
        raise TikTokError(400, "invalid_params", "a video under 5 MB must be sent as one chunk")
    if size >= 5 * MB and not 5 * MB <= chunk <= 64 * MB:
        raise TikTokError(400, "invalid_params", "chunk_size must be between 5 MB and 64 MB")
    if count != size // chunk or not 1 <= count <= 1000 or size - (count - 1) * chunk > 128 * MB:
        raise TikTokError(400, "invalid_params", "total_chunk_count must be video_size divided "
                          "by chunk_size, rounded down")
    publish.video_size, publish.chunk_size, publish.chunks = size, chunk, count


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise TikTokError(400, "invalid_params", "The request body is not valid JSON")
    return body
