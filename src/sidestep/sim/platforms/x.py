"""X (formerly Twitter): API v2 posts and media upload, and the v1.1 chunked media upload.

Endpoints (hosts api.x.com and its alias api.twitter.com; upload.twitter.com for v1.1):

- `POST /2/tweets` — https://docs.x.com/x-api/posts/creation-of-a-post
- `DELETE /2/tweets/{id}` —
  https://developer.x.com/en/docs/x-api/tweets/manage-tweets/api-reference/delete-tweets-id
- `GET /2/users/me` — https://docs.x.com/x-api/users/lookup/quickstart/authenticated-lookup
- `POST /2/media/upload/initialize`, `POST /2/media/upload/{id}/append`,
  `POST /2/media/upload/{id}/finalize`, `GET /2/media/upload?command=STATUS&media_id=` —
  https://docs.x.com/x-api/media/quickstart/media-upload-chunked (limits: image 5 MB, GIF 15 MB,
  video 512 MB, https://docs.x.com/x-api/media)
- `POST upload.twitter.com/1.1/media/upload.json` (INIT|APPEND|FINALIZE|STATUS, OAuth 1.0a):
  see `_x_v11`, which speaks v1.1 over this profile's upload mechanics

Errors: v2 answers RFC 7807 problems (`application/problem+json`, `type` `about:blank` or
`https://api.x.com/2/problems/...`), https://docs.x.com/x-api/fundamentals/response-codes-and-errors;
429 carries `x-rate-limit-limit/-remaining/-reset` (Unix seconds),
https://docs.x.com/fundamentals/rate-limits. Duplicate text: 403 "You are not allowed to
create a Tweet with duplicate content." Text length is twitter-text weighted (CJK and emoji 2,
URLs 23), at most 280 for standard accounts; the wording of the 403 for longer text is the
simulator's (the reference does not give it).

`error()` speaks v2; `error_for(request, ...)` answers in the v1.1 words on the v1.1 upload path.

For the monitor's probes (catalogue `probes`): abs.twimg.com serves the favicon
(`/favicons/twitter.3.ico`, 403 for anything else, `_probe_pages`); the web page x.com/ is
on `oauth_hosts`, which serves that host, and answers to x's faults.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import re
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Host, Route, Router

from sidestep.sim.platforms import _x_v11 as v11
from sidestep.sim.platforms._oauth import oauth_routes
from sidestep.sim.platforms._probe_pages import ICO, cdn_routes
from sidestep.sim.profile import ErrorKind, Profile, SpecRef
from sidestep.sim.world import SimWorld

MAX_WEIGHTED_TEXT = 280
MAX_CHUNK_BYTES = 5 * 1024 * 1024
LIMITS = {"image": 5 * 1024 * 1024, "gif": 15 * 1024 * 1024, "video": 512 * 1024 * 1024}
MEDIA_KEPT_BYTES = 64 * 1024 * 1024  # bytes kept in memory; beyond it only sizes are kept
PROCESSING_S = 3.0  # simulated transcoding time of a video or GIF, on the world clock
EXPIRES_S = 86400
TWEETS_PER_15_MIN = 100  # POST /2/tweets per user (https://docs.x.com/x-api/fundamentals/rate-limits)
TWITTER_EPOCH_MS = 1288834974657
PROBLEMS = "https://api.x.com/2/problems/"
URL_RE = re.compile(r"https?://\S+")
_EMOJI_BASE = "[\u2600-\u27bf\U0001f000-\U0001faff]"
_EMOJI_MODS = "(?:\ufe0f|[\U0001f3fb-\U0001f3ff])*"
# Flags, keycaps, and pictographs with their variation selectors, skin tones, tags and
# zero-width-joined partners: each counts once.
EMOJI_RE = re.compile("[\U0001f1e6-\U0001f1ff]{2}|[0-9#*]\ufe0f?\u20e3"
                      f"|{_EMOJI_BASE}{_EMOJI_MODS}[\U000e0020-\U000e007f]*"
                      f"(?:\u200d{_EMOJI_BASE}{_EMOJI_MODS})*")
DUPLICATE = "You are not allowed to create a Tweet with duplicate content."


class XRefusal(Exception):
    """A finished refusal response, raised from deep inside a handler."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class BadParam(Exception):
    """An invalid parameter; v2 answers it as invalid-request, v1.1 as a media error."""

    def __init__(self, parameter: str, value: Any, message: str) -> None:
        super().__init__(message)
        self.parameter, self.value, self.message = parameter, value, message


@dataclass(slots=True)
class Upload:
    account: str
    media_type: str
    kind: str  # "image" | "gif" | "video"
    total_bytes: int
    received: int = 0
    segments: set[int] = field(default_factory=set)
    content: bytearray | None = field(default_factory=bytearray)
    finalized_at: float | None = None

    @property
    def needs_processing(self) -> bool:
        return self.kind in ("video", "gif")


def weighted_length(text: str) -> int:
    """Length as twitter-text counts it: URLs are 23, an emoji sequence 2 however many code
    points it joins (https://github.com/twitter/twitter-text, config v3), other code points
    outside Latin ranges 2."""
    text = unicodedata.normalize("NFC", text)
    total = 23 * len(URL_RE.findall(text))
    rest = URL_RE.sub("", text)
    total += 2 * len(EMOJI_RE.findall(rest))
    for char in EMOJI_RE.sub("", rest):
        point = ord(char)
        light = point <= 4351 or 8192 <= point <= 8205 or 8208 <= point <= 8223 \
            or 8242 <= point <= 8247
        total += 1 if light else 2
    return total


def _problem(status: int, title: str, detail: str, type_: str = "about:blank",
             headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = {"title": title, "detail": detail, "type": type_, "status": status} | extra
    return JSONResponse(body, status, headers=headers, media_type="application/problem+json")


def _invalid(parameter: str, value: Any, message: str) -> Response:
    return JSONResponse({
        "errors": [{"parameters": {parameter: [str(value)]}, "message": message}],
        "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
        "type": PROBLEMS + "invalid-request"}, 400, media_type="application/problem+json")


Handler = Callable[["XProfile", Request, str], Awaitable[Response]]


def _bearer(handler: Handler) -> Callable[[XProfile, Request], Awaitable[Response]]:
    """Resolve the OAuth 2.0 bearer token to an account; turn refusals into responses."""
    @functools.wraps(handler)
    async def wrapper(self: XProfile, request: Request) -> Response:
        account = self.bearer_account(request)
        if account is None:
            return self.error(ErrorKind.AUTH_MISSING, "")
        try:
            return await handler(self, request, account)
        except XRefusal as refusal:
            return refusal.response
        except BadParam as bad:
            return _invalid(bad.parameter, bad.value, bad.message)
    return wrapper


class XProfile(Profile):
    key = "x"
    hosts = ("api.x.com", "api.twitter.com", "upload.twitter.com", "abs.twimg.com")
    spec = SpecRef(file="x/openapi.json", server="https://api.x.com")

    def __init__(self, world: SimWorld) -> None:
        super().__init__(world)
        self._tweets: dict[str, tuple[str, str]] = {}  # id -> (account, text)
        self._uploads: dict[str, Upload] = {}
        self._kept_bytes = 0
        self._windows: dict[str, tuple[float, int]] = {}  # account -> (window start, count)

    # -- declared surface -------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [
            *oauth_routes(self.world, "x", token=("/2/oauth2/token",)),
            Route("/2/tweets", self._create_tweet, methods=["POST"]),
            Route("/2/tweets/{id}", self._delete_tweet, methods=["DELETE"]),
            Route("/2/users/me", self._me, methods=["GET"]),
            Route("/2/media/upload/initialize", self._v2_initialize, methods=["POST"]),
            Route("/2/media/upload/{id}/append", self._v2_append, methods=["POST"]),
            Route("/2/media/upload/{id}/finalize", self._v2_finalize, methods=["POST"]),
            Route("/2/media/upload", self._v2_status, methods=["GET"]),
            Host("upload.twitter.com", Router([
                Route(v11.PATH, self._v11_upload, methods=["GET", "POST"])])),
            *cdn_routes({"abs.twimg.com": {"/favicons/twitter.3.ico": ICO}}),
        ]

    def feature_of(self, request: Request) -> str:
        path = request.url.path
        if "/media/upload" in path:
            return "media"
        if path == "/2/users/me":
            return "auth"
        return "text"

    def error(self, kind: ErrorKind, message: str, *,
              retry_after_s: float | None = None) -> Response:
        if kind is ErrorKind.RATE_LIMITED:
            return _problem(429, "Too Many Requests", "Too Many Requests",
                            headers=self._rate_headers(retry_after_s))
        if kind is ErrorKind.INVALID_REQUEST:
            return _invalid("body", "", message or "Invalid request")
        status, title, detail = {
            ErrorKind.SERVER_ERROR: (500, "Internal Server Error", "Internal Server Error"),
            ErrorKind.UNAVAILABLE: (503, "Service Unavailable", "Service Unavailable"),
            ErrorKind.AUTH_EXPIRED: (401, "Unauthorized", "Unauthorized"),
            ErrorKind.AUTH_MISSING: (401, "Unauthorized", "Unauthorized"),
            ErrorKind.NOT_FOUND: (404, "Not Found", "Not Found"),
            ErrorKind.DUPLICATE: (403, "Forbidden", DUPLICATE),
            ErrorKind.MEDIA_FAILED: (400, "Bad Request", message or "Your media IDs are invalid."),
        }[kind]
        return _problem(status, title, detail)

    def error_for(self, request: Request, kind: ErrorKind, message: str, *,
                  retry_after_s: float | None = None) -> Response:
        """Like `error`, but in v1.1 words for the v1.1 upload endpoint."""
        if not request.url.path.startswith("/1.1/"):
            return self.error(kind, message, retry_after_s=retry_after_s)
        return v11.error_for(kind, message, rate_headers=self._rate_headers(retry_after_s))

    # -- v2 posts ---------------------------------------------------------------------

    @_bearer
    async def _create_tweet(self, request: Request, account: str) -> Response:
        headers = self._count_tweet(account)
        body = await _json_object(request)
        text = body.get("text", "")
        if not isinstance(text, str):
            raise BadParam("text", text, "text must be a string")
        media_ids = self._attached_media(account, body.get("media"))
        if not text.strip() and not media_ids and "poll" not in body:
            raise BadParam("text", text, "Post text or media is required")
        if weighted_length(text) > MAX_WEIGHTED_TEXT:
            raise XRefusal(_problem(403, "Forbidden", "Your Tweet text is too long. For more "
                                    "information on how X determines text length see "
                                    "https://github.com/twitter/twitter-text."))
        reply = body.get("reply")
        if isinstance(reply, dict) and reply.get("in_reply_to_tweet_id") not in self._tweets:
            raise XRefusal(_problem(403, "Forbidden", "You attempted to reply to a Tweet that "
                                    "is deleted or not visible to you."))
        if text.strip() and (account, text) in self._tweets.values():
            raise XRefusal(_problem(403, "Forbidden", DUPLICATE))
        tweet_id = self._snowflake()
        self._tweets[tweet_id] = (account, text)
        self.world.record.add(platform=self.key, account=account, kind="post",
                              external_id=tweet_id, payload=body, idempotency_marker=None)
        return JSONResponse({"data": {"id": tweet_id, "text": text,
                                      "edit_history_tweet_ids": [tweet_id]}}, 201, headers=headers)

    @_bearer
    async def _delete_tweet(self, request: Request, account: str) -> Response:
        tweet_id = str(request.path_params["id"])
        found = self._tweets.get(tweet_id)
        if found is None:
            return _problem(404, "Not Found Error", f"Could not find tweet with id: [{tweet_id}].",
                            PROBLEMS + "resource-not-found", resource_type="tweet",
                            resource_id=tweet_id, parameter="id", value=tweet_id)
        if found[0] != account:
            return _problem(403, "Forbidden", "You are not allowed to delete this Tweet.")
        del self._tweets[tweet_id]
        return JSONResponse({"data": {"deleted": True}})

    @_bearer
    async def _me(self, request: Request, account: str) -> Response:
        return JSONResponse({"data": {"id": _user_id(account), "name": account,
                                      "username": re.sub(r"\W", "_", account)[:15]}})

    # -- v2 media ---------------------------------------------------------------------

    @_bearer
    async def _v2_initialize(self, request: Request, account: str) -> Response:
        body = await _json_object(request)
        media_id = self._init_upload(account, body.get("media_type"), body.get("total_bytes"),
                                     body.get("media_category"))
        return JSONResponse({"data": {"id": media_id, "media_key": self._media_key(media_id),
                                      "expires_after_secs": EXPIRES_S}})

    @_bearer
    async def _v2_append(self, request: Request, account: str) -> Response:
        upload = self._own_upload(account, str(request.path_params["id"]))
        await self._append(upload, await _params(request))
        expires = int(self.world.clock.now().timestamp()) + EXPIRES_S
        return JSONResponse({"data": {"expires_at": expires}})

    @_bearer
    async def _v2_finalize(self, request: Request, account: str) -> Response:
        media_id = str(request.path_params["id"])
        self._finalize(self._own_upload(account, media_id))
        return JSONResponse({"data": self._media_status(media_id)})

    @_bearer
    async def _v2_status(self, request: Request, account: str) -> Response:
        media_id = request.query_params.get("media_id", "")
        self._own_upload(account, media_id)
        return JSONResponse({"data": self._media_status(media_id)})

    # -- v1.1 chunked upload ----------------------------------------------------------

    async def _v11_upload(self, request: Request) -> Response:
        try:
            return await v11.upload(self, request, await _params(request), expires_s=EXPIRES_S)
        except BadParam as bad:
            return v11.media_error(bad.message)

    # -- shared upload mechanics ------------------------------------------------------

    def _init_upload(self, account: str, media_type: Any, total_bytes: Any, category: Any) -> str:
        if not isinstance(media_type, str) or "/" not in media_type:
            raise BadParam("media_type", media_type, "media_type is required")
        if not isinstance(total_bytes, int) or isinstance(total_bytes, bool) or total_bytes <= 0:
            raise BadParam("total_bytes", total_bytes, "total_bytes is required")
        kind = "gif" if media_type == "image/gif" else media_type.split("/")[0]
        if kind not in LIMITS or (category is not None and not isinstance(category, str)):
            raise BadParam("media_type", media_type, f"Unsupported media type: {media_type}")
        if total_bytes > LIMITS[kind]:
            raise BadParam("total_bytes", total_bytes,
                           f"File size exceeds {LIMITS[kind]} bytes.")
        media_id = self._snowflake()
        self._uploads[media_id] = Upload(account, media_type, kind, total_bytes)
        return media_id

    def _own_upload(self, account: str, media_id: str) -> Upload:
        upload = self._uploads.get(media_id)
        if upload is None or upload.account != account:
            raise BadParam("media_id", media_id, "Invalid mediaId.")
        return upload

    async def _append(self, upload: Upload, params: dict[str, Any]) -> None:
        if upload.finalized_at is not None:
            raise BadParam("media_id", "", "Upload already finalized.")
        index = v11.int_param(params.get("segment_index"))
        if index is None or not 0 <= index <= 999:
            raise BadParam("segment_index", params.get("segment_index"),
                           "segment_index must be between 0 and 999")
        media = params.get("media", params.get("media_data"))
        if isinstance(media, UploadFile):
            chunk = await media.read()
        elif isinstance(media, str) and media:
            try:
                chunk = base64.b64decode(media, validate=True)
            except ValueError as exc:
                raise BadParam("media", "", "media is not valid base64") from exc
        else:
            raise BadParam("media", "", "media is required")
        if len(chunk) > MAX_CHUNK_BYTES:
            raise BadParam("media", "", "Chunk size must be <= 5 MB.")
        if upload.received + len(chunk) > upload.total_bytes:
            raise BadParam("media", "", "Segments exceed the declared total file size.")
        upload.segments.add(index)
        upload.received += len(chunk)
        if upload.content is not None:
            if self._kept_bytes + len(chunk) > MEDIA_KEPT_BYTES:
                self._kept_bytes -= len(upload.content)
                upload.content = None
            else:
                upload.content.extend(chunk)
                self._kept_bytes += len(chunk)

    def _finalize(self, upload: Upload) -> None:
        if upload.received != upload.total_bytes:
            raise BadParam("media_id", "", "Segments do not add up to provided total file size.")
        if upload.finalized_at is None:
            upload.finalized_at = self.world.clock.now().timestamp()

    def _media_status(self, media_id: str) -> dict[str, Any]:
        upload = self._uploads[media_id]
        data: dict[str, Any] = {"id": media_id, "media_key": self._media_key(media_id),
                                "size": upload.total_bytes, "expires_after_secs": EXPIRES_S}
        if upload.needs_processing:
            elapsed = 0.0 if upload.finalized_at is None \
                else self.world.clock.now().timestamp() - upload.finalized_at
            if upload.finalized_at is None:
                data["processing_info"] = {"state": "pending", "check_after_secs": 1}
            elif elapsed >= PROCESSING_S:
                data["processing_info"] = {"state": "succeeded", "progress_percent": 100}
            else:
                data["processing_info"] = {
                    "state": "in_progress", "check_after_secs": math.ceil(PROCESSING_S - elapsed),
                    "progress_percent": int(100 * elapsed / PROCESSING_S)}
        return data

    def _attached_media(self, account: str, media: Any) -> list[str]:
        if media is None:
            return []
        ids = media.get("media_ids") if isinstance(media, dict) else None
        if not isinstance(ids, list) or not 1 <= len(ids) <= 4:
            raise BadParam("media.media_ids", ids, "media.media_ids must list 1 to 4 ids")
        uploads = [self._uploads.get(str(i)) for i in ids]
        for media_id, upload in zip(ids, uploads, strict=True):
            ready = upload is not None and upload.account == account \
                and upload.finalized_at is not None and (not upload.needs_processing or
                self._media_status(str(media_id))["processing_info"]["state"] == "succeeded")
            if not ready:
                raise BadParam("media.media_ids", media_id, "Your media IDs are invalid.")
        if len(ids) > 1 and any(u is not None and u.kind != "image" for u in uploads):
            raise BadParam("media.media_ids", ids, "Your media IDs are invalid.")
        return [str(i) for i in ids]

    def _count_tweet(self, account: str) -> dict[str, str]:
        now = self.world.clock.now().timestamp()
        start, count = self._windows.get(account, (now, 0))
        if now - start >= 900:
            start, count = now, 0
        reset = str(int(start + 900))
        if count >= TWEETS_PER_15_MIN:
            raise XRefusal(_problem(429, "Too Many Requests", "Too Many Requests", headers={
                "x-rate-limit-limit": str(TWEETS_PER_15_MIN), "x-rate-limit-remaining": "0",
                "x-rate-limit-reset": reset}))
        self._windows[account] = (start, count + 1)
        return {"x-rate-limit-limit": str(TWEETS_PER_15_MIN),
                "x-rate-limit-remaining": str(TWEETS_PER_15_MIN - count - 1),
                "x-rate-limit-reset": reset}

    def _rate_headers(self, retry_after_s: float | None) -> dict[str, str]:
        reset = self.world.clock.now().timestamp() + (retry_after_s if retry_after_s else 900)
        return {"x-rate-limit-limit": str(TWEETS_PER_15_MIN), "x-rate-limit-remaining": "0",
                "x-rate-limit-reset": str(math.ceil(reset))}

    def _snowflake(self) -> str:
        ms = int(self.world.clock.now().timestamp() * 1000) - TWITTER_EPOCH_MS
        return str((ms << 22) | (self.world.next_number() & 0x3FFFFF))

    def _media_key(self, media_id: str) -> str:
        prefix = {"image": "3", "gif": "16", "video": "7"}[self._uploads[media_id].kind]
        return f"{prefix}_{media_id}"


def _user_id(account: str) -> str:
    digest = int(hashlib.sha256(account.encode()).hexdigest()[:15], 16)
    return str(10**18 + digest % (9 * 10**18))


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise BadParam("body", "", "Request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise BadParam("body", "", "Request body must be a JSON object")
    return body


async def _params(request: Request) -> dict[str, Any]:
    """Query parameters plus the form or JSON body (uploads keep their UploadFile)."""
    params: dict[str, Any] = dict(request.query_params)
    ctype = request.headers.get("content-type", "").lower()
    if ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        form = await request.form(max_part_size=2 * MAX_CHUNK_BYTES)
        params.update(form.multi_items())
    elif ctype.startswith("application/json"):
        params.update(await _json_object(request))
    return params
