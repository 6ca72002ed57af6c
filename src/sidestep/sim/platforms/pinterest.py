"""Pinterest API v5: pins, the user account, and video upload through a signed S3 form.

Endpoints (api.pinterest.com/v5; uploads to pinterest-media-upload.s3-accelerate.amazonaws.com):

- `POST /v5/pins` (pins/create), `GET /v5/pins/{pin_id}` (pins/get), `DELETE /v5/pins/{pin_id}`
  (pins/delete) — https://developers.pinterest.com/docs/api/v5/pins-create
- `GET /v5/user_account` (user_account/get) — https://developers.pinterest.com/docs/api/v5/
- `POST /v5/media` (media/create: `upload_url` + `upload_parameters`), then a multipart `POST`
  of those parameters and `file` to the upload URL, then `GET /v5/media/{media_id}` (media/get:
  registered, processing, succeeded, failed) —
  https://developers.pinterest.com/docs/work-with-ads/manage-media-library-assets/ (the same
  register, upload, poll flow; operation ids as in the published description)

Shapes, limits and error bodies follow the published OpenAPI description (pinterest/openapi.yaml,
v5.23.0): title <= 100, description <= 800, alt_text <= 500, link <= 2048 characters; errors are
`{"code": int, "message": str}` — 401 code 2 "Authentication failed.", 404 code 50 "Pin not
found.", 429 code 8 (rate limit), 503 code 4197 (endpoint ramped down); the description declares
no rate-limit headers. Pinterest documents no refusal of duplicate pins, so DUPLICATE answers the
generic 400 (code 1). The S3 host answers like S3: 204 on success, XML `<Error>` otherwise.

Simulator conventions: boards exist once `add_board(account, board_id)` is called; images given
as base64 are limited to 20 MB, videos to 2 GB
(https://help.pinterest.com/en/business/article/pinterest-product-specs, which also shows a
500-character description: that is what feeds display; the API description accepts 800);
a video is `processing` for `PROCESSING_S` on the world clock.

For the monitor's probes (catalogue `probes`): i.pinimg.com answers as a CDN without the
object asked for (403, `_probe_pages.cdn_routes`); www.pinterest.com/ (the web page) is on
`oauth_hosts`, which serves that host, and answers to pinterest's faults.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Host, Route, Router

from sidestep.sim.platforms._oauth import oauth_routes
from sidestep.sim.platforms._probe_pages import cdn_routes
from sidestep.sim.profile import ErrorKind, Profile, SpecRef
from sidestep.sim.world import SimWorld

CDN_HOST = "i.pinimg.com"  # pin images; probed by the monitor as pinterest's media
UPLOAD_HOST = "pinterest-media-upload.s3-accelerate.amazonaws.com"
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_VIDEO_BYTES = 2 * 1024 * 1024 * 1024
MEDIA_KEPT_BYTES = 64 * 1024 * 1024
PROCESSING_S = 2.0
LENGTHS = {"title": 100, "description": 800, "alt_text": 500, "link": 2048}
RATE_LIMIT_MESSAGE = ("This request exceeded a rate limit. This can happen if the client exceeds "
                      "one of the published rate limits within a short time window.")
SIGNING_KEY = b"sidestep-simulated-pinterest-upload"


class PinterestError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(slots=True)
class Video:
    account: str
    key: str
    uploaded_at: float | None = None
    size: int = 0
    content: bytes | None = None


def _error(status: int, code: int, message: str) -> Response:
    return JSONResponse({"code": code, "message": message}, status)


def _s3_error(status: int, code: str, message: str) -> Response:
    xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
           f"<Message>{message}</Message></Error>")
    return Response(xml, status, media_type="application/xml")


class PinterestProfile(Profile):
    key = "pinterest"
    hosts = ("api.pinterest.com", UPLOAD_HOST, CDN_HOST)
    spec = SpecRef(file="pinterest/openapi.yaml", server="https://api.pinterest.com/v5")

    def __init__(self, world: SimWorld) -> None:
        super().__init__(world)
        self._boards: dict[str, str] = {}  # board id -> account
        self._pins: dict[str, dict[str, Any]] = {}
        self._pin_owner: dict[str, str] = {}
        self._videos: dict[str, Video] = {}
        self._kept_bytes = 0

    # -- declared surface -------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [
            *oauth_routes(self.world, "pinterest", token=("/v5/oauth/token",)),
            Host(UPLOAD_HOST, Router([Route("/", self._s3_upload, methods=["POST"])])),
            *cdn_routes({CDN_HOST: {}}),
            Route("/v5/pins", self._create_pin, methods=["POST"]),
            Route("/v5/pins/{pin_id}", self._get_pin, methods=["GET"]),
            Route("/v5/pins/{pin_id}", self._delete_pin, methods=["DELETE"]),
            Route("/v5/user_account", self._user_account, methods=["GET"]),
            Route("/v5/media", self._register_media, methods=["POST"]),
            Route("/v5/media/{media_id}", self._get_media, methods=["GET"]),
        ]

    def feature_of(self, request: Request) -> str:
        if request.url.path.startswith("/v5/media") or request.url.hostname == UPLOAD_HOST:
            return "media"
        if request.url.path == "/v5/user_account":
            return "auth"
        return "read" if request.method == "GET" else "text"

    def error(self, kind: ErrorKind, message: str, *,
              retry_after_s: float | None = None) -> Response:
        status, code, text = {
            ErrorKind.SERVER_ERROR: (500, 500, message or "Internal Server Error"),
            ErrorKind.UNAVAILABLE: (503, 4197, "The endpoint has been ramped down and is "
                                    "currently not accepting any traffic."),
            ErrorKind.RATE_LIMITED: (429, 8, RATE_LIMIT_MESSAGE),
            ErrorKind.AUTH_EXPIRED: (401, 2, "Authentication failed."),
            ErrorKind.AUTH_MISSING: (401, 2, "Authentication failed."),
            ErrorKind.INVALID_REQUEST: (400, 1, message or "Invalid parameters."),
            ErrorKind.NOT_FOUND: (404, 50, "Pin not found."),
            ErrorKind.DUPLICATE: (400, 1, message or "Invalid parameters."),
            ErrorKind.MEDIA_FAILED: (400, 1, message or "Media upload failed."),
        }[kind]
        return _error(status, code, text)

    def add_board(self, account: str, board_id: str) -> None:
        """Give the account a board (boards are not created through this simulator)."""
        self._boards[board_id] = account

    # -- pins -------------------------------------------------------------------------

    async def _create_pin(self, request: Request) -> Response:
        account = self.bearer_account(request)
        if account is None:
            return self.error(ErrorKind.AUTH_MISSING, "")
        try:
            body = await _json_body(request)
            for name in ("board_id", "media_source"):
                if name not in body:
                    raise PinterestError(400, 1, f"'{name}' is a required property")
            for name, limit in LENGTHS.items():
                value = body.get(name)
                if value is not None and (not isinstance(value, str) or len(value) > limit):
                    raise PinterestError(400, 1, f"'{name}' must be a string of at most "
                                                 f"{limit} characters")
            board_id = body["board_id"]
            if not isinstance(board_id, str) or not board_id.isdigit():
                raise PinterestError(400, 1, f"'board_id' value '{board_id}' must match the "
                                             "pattern: ^\\d+$")
            if self._boards.get(board_id) != account:
                raise PinterestError(404, 40, "Board not found.")
            media = self._media_of(account, body["media_source"])
        except PinterestError as exc:
            return _error(exc.status, exc.code, exc.message)
        pin_id = str(813_744_226_420_000_000 + self.world.next_number())
        created = self.world.clock.now()
        pin = {
            "id": pin_id, "created_at": _iso(created), "link": body.get("link"),
            "title": body.get("title"), "description": body.get("description"),
            "dominant_color": body.get("dominant_color"), "alt_text": body.get("alt_text"),
            "creative_type": "VIDEO" if media["media_type"] == "video" else "REGULAR",
            "board_id": board_id, "board_section_id": body.get("board_section_id"),
            "board_owner": {"username": _username(account)}, "is_owner": True, "media": media,
            "parent_pin_id": None, "is_standard": True, "has_been_promoted": False,
            "pin_metrics": None,
        }
        self._pins[pin_id] = pin
        self._pin_owner[pin_id] = account
        self.world.record.add(platform=self.key, account=account, kind="pin", external_id=pin_id,
                              payload=body, idempotency_marker=None)
        return JSONResponse(pin, 201)

    async def _get_pin(self, request: Request) -> Response:
        account = self.bearer_account(request)
        if account is None:
            return self.error(ErrorKind.AUTH_MISSING, "")
        pin_id = str(request.path_params["pin_id"])
        if pin_id not in self._pins:
            return self.error(ErrorKind.NOT_FOUND, "")
        return JSONResponse(self._pins[pin_id] | {"is_owner": self._pin_owner[pin_id] == account})

    async def _delete_pin(self, request: Request) -> Response:
        account = self.bearer_account(request)
        if account is None:
            return self.error(ErrorKind.AUTH_MISSING, "")
        pin_id = str(request.path_params["pin_id"])
        if pin_id not in self._pins:
            return self.error(ErrorKind.NOT_FOUND, "")
        if self._pin_owner[pin_id] != account:
            return _error(403, 29, "You are not permitted to access that resource.")
        del self._pins[pin_id], self._pin_owner[pin_id]
        return Response(status_code=204)

    def _media_of(self, account: str, source: Any) -> dict[str, Any]:
        """The pin's `media` object for a media_source, or a refusal."""
        kind = source.get("source_type") if isinstance(source, dict) else None
        if kind == "image_url":
            url = source.get("url")
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise PinterestError(400, 1, "'media_source.url' must be an http(s) URL")
            return _image_media(url)
        if kind == "image_base64":
            if source.get("content_type") not in ("image/jpeg", "image/png"):
                raise PinterestError(400, 1, "'media_source.content_type' must be one of "
                                             "['image/jpeg', 'image/png']")
            try:
                data = base64.b64decode(str(source.get("data", "")), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise PinterestError(400, 1, "'media_source.data' is not valid base64") from exc
            if not data or len(data) > MAX_IMAGE_BYTES:
                raise PinterestError(400, 1, "Image must be between 1 byte and 20 MB")
            digest = hashlib.sha256(data).hexdigest()[:32]
            return _image_media(f"https://i.pinimg.com/originals/{digest}.jpg")
        if kind == "video_id":
            video = self._videos.get(str(source.get("media_id")))
            if video is None or video.account != account:
                raise PinterestError(400, 1, "'media_source.media_id' is not a media upload of "
                                             "this user")
            if self._status(video) != "succeeded":
                raise PinterestError(400, 1, "Video is not ready: media status is "
                                             f"{self._status(video)}")
            cover = source.get("cover_image_url") or "https://i.pinimg.com/videos/thumbnails/"
            return {"media_type": "video", "cover_image_url": cover, "duration": None,
                    "height": None, "width": None, "images": {}}
        raise PinterestError(400, 1, f"'media_source.source_type' value '{kind}' is not "
                                     "supported")

    # -- media ------------------------------------------------------------------------

    async def _register_media(self, request: Request) -> Response:
        account = self.bearer_account(request)
        if account is None:
            return self.error(ErrorKind.AUTH_MISSING, "")
        try:
            body = await _json_body(request)
            if body.get("media_type") != "video":
                raise PinterestError(400, 1, "'media_type' must be one of ['video']")
        except PinterestError as exc:
            return _error(exc.status, exc.code, exc.message)
        media_id = str(5_212_123_920_968_000_000 + self.world.next_number())
        now = self.world.clock.now()
        key = f"uploads/{media_id[-2:]}/{media_id[-4:-2]}/video:{media_id}"
        self._videos[media_id] = Video(account, key)
        credential = f"ASIASIDESTEPSIMULATED/{now:%Y%m%d}/us-east-1/s3/aws4_request"
        policy = base64.b64encode(json.dumps({"expiration": _iso(now), "conditions": [
            {"bucket": "pinterest-media-upload"}, {"key": key},
            ["content-length-range", 0, MAX_VIDEO_BYTES]]}).encode()).decode()
        return JSONResponse({
            "media_id": media_id, "media_type": "video",
            "upload_url": f"https://{UPLOAD_HOST}/",
            "upload_parameters": {
                "x-amz-date": f"{now:%Y%m%dT%H%M%SZ}", "x-amz-signature": _sign(policy),
                "x-amz-security-token": "IQoJb3JpZ2luX2VjEJr-simulated",
                "x-amz-algorithm": "AWS4-HMAC-SHA256", "key": key, "policy": policy,
                "x-amz-credential": credential, "Content-Type": "multipart/form-data"},
        }, 201)

    async def _get_media(self, request: Request) -> Response:
        account = self.bearer_account(request)
        if account is None:
            return self.error(ErrorKind.AUTH_MISSING, "")
        media_id = str(request.path_params["media_id"])
        video = self._videos.get(media_id)
        if video is None or video.account != account:
            return _error(404, 404, "Media upload not found.")
        return JSONResponse({"media_id": media_id, "media_type": "video",
                             "status": self._status(video)})

    async def _s3_upload(self, request: Request) -> Response:
        form = await request.form(max_part_size=1024 * 1024)
        key, policy = str(form.get("key", "")), str(form.get("policy", ""))
        video = next((v for v in self._videos.values() if v.key == key), None)
        if video is None or not hmac.compare_digest(str(form.get("x-amz-signature", "")),
                                                    _sign(policy)):
            return _s3_error(403, "AccessDenied", "Invalid according to Policy: Policy Condition "
                                                  "failed")
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return _s3_error(400, "InvalidArgument", "POST requires exactly one file upload "
                                                     "per request.")
        content = await upload.read()
        if len(content) > MAX_VIDEO_BYTES:
            return _s3_error(400, "EntityTooLarge", "Your proposed upload exceeds the maximum "
                                                    "allowed size")
        video.size = len(content)
        if self._kept_bytes + len(content) <= MEDIA_KEPT_BYTES:
            video.content = content
            self._kept_bytes += len(content)
        video.uploaded_at = self.world.clock.now().timestamp()
        return Response(status_code=204)

    def _status(self, video: Video) -> str:
        if video.uploaded_at is None:
            return "registered"
        if not video.size:
            return "failed"
        elapsed = self.world.clock.now().timestamp() - video.uploaded_at
        return "succeeded" if elapsed >= PROCESSING_S else "processing"

    # -- identity ---------------------------------------------------------------------

    async def _user_account(self, request: Request) -> Response:
        account = self.bearer_account(request)
        if account is None:
            return self.error(ErrorKind.AUTH_MISSING, "")
        digest = int(hashlib.sha256(account.encode()).hexdigest()[:15], 16)
        return JSONResponse({
            "account_type": "BUSINESS", "id": str(10**18 + digest % (9 * 10**18)),
            "username": _username(account), "business_name": account, "about": "",
            "profile_image": "https://i.pinimg.com/600x600_R/simulated.jpg",
            "website_url": "", "board_count": sum(a == account for a in self._boards.values()),
            "pin_count": sum(a == account for a in self._pin_owner.values()),
            "follower_count": 0, "following_count": 0, "monthly_views": 0})


def _image_media(url: str) -> dict[str, Any]:
    sizes = {"150x150": 150, "400x300": 400, "600x": 600, "1200x": 1200}
    return {"media_type": "image", "images": {
        name: {"width": width, "height": width, "url": url} for name, width in sizes.items()}}


def _username(account: str) -> str:
    return "".join(c for c in account.lower() if c.isalnum()) or "pinner"


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def _sign(policy: str) -> str:
    return hmac.new(SIGNING_KEY, policy.encode(), hashlib.sha256).hexdigest()


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise PinterestError(400, 1, "Invalid request body")
    return body
