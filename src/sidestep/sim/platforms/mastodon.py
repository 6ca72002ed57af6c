"""Mastodon REST API of one instance, mastodon.social (media files on files.mastodon.social).

Endpoints:

- `POST /api/v1/statuses` (JSON or form; `Idempotency-Key` header: a repeated key from the
  same account within 1 hour returns the first status; `in_reply_to_id` of an unknown status
  is 404 "The post you are trying to reply to does not appear to exist.") —
  https://docs.joinmastodon.org/methods/statuses/#create
- `GET|DELETE /api/v1/statuses/{id}` — https://docs.joinmastodon.org/methods/statuses/#get,
  https://docs.joinmastodon.org/methods/statuses/#delete
- `GET /api/v1/accounts/verify_credentials` —
  https://docs.joinmastodon.org/methods/accounts/#verify_credentials
- `POST /api/v2/media` (200 with `url` for a small image, 202 with `url: null` while a video or
  large image is processed) — https://docs.joinmastodon.org/methods/media/#v2
- `GET /api/v1/media/{id}` (206 while processing, 200 when done) —
  https://docs.joinmastodon.org/methods/media/#get
- `GET /media_attachments/files/...` on files.mastodon.social — the stored file.
- For the monitor's probes (catalogue `probes`): `GET /api/v2/instance` (no auth; the
  instance's limits below) — https://docs.joinmastodon.org/methods/instance/#v2, and
  `GET /about` (the web page).

Limits (mastodon.social's defaults, https://docs.joinmastodon.org/methods/instance/#v2):
500 characters counted as graphemes, each URL as 23 and a mention as its local part
(https://docs.joinmastodon.org/user/posting/#text); spoiler text counts too; 4 attachments;
images 16 MB, videos 99 MB. Errors are `{"error": ...}` (https://docs.joinmastodon.org/entities/Error/),
422 for validation (texts of Mastodon's PostStatusService), 401 with Doorkeeper's texts, 429
"Too many requests"; every answer carries X-RateLimit-Limit/Remaining/Reset, the reset as an
ISO 8601 time (https://docs.joinmastodon.org/api/rate-limits/). Ids are Mastodon snowflakes:
milliseconds since the epoch shifted 16 bits, plus a sequence.

Convention: `world.grant_token("mastodon", access_token, account)`; media processing ends at
the second `GET /api/v1/media/{id}` or 5 s (world clock) after the upload, whichever is first.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sidestep.sim.platforms._lexicon import grapheme_count
from sidestep.sim.platforms._probe_pages import web_routes
from sidestep.sim.profile import ErrorKind, Profile, SpecRef
from sidestep.sim.world import SimWorld

HOST = "mastodon.social"
FILES = "https://files.mastodon.social"
MAX_CHARS = 500
INSTANCE_VERSION = "4.4.0"  # what /api/v2/instance reports
URL_WEIGHT = 23
MAX_MEDIA = 4
IMAGE_LIMIT = 16 * 1024 * 1024
VIDEO_LIMIT = 99 * 1024 * 1024
SYNC_IMAGE_LIMIT = 1024 * 1024  # larger images are processed asynchronously (202)
MEDIA_KEPT_BYTES = 64 * 1024 * 1024
IDEMPOTENCY_TTL = timedelta(hours=1)
PROCESSING = timedelta(seconds=5)
RATE_LIMIT, RATE_WINDOW = 300, timedelta(minutes=5)
NOT_READY = "Cannot attach files that have not finished processing. Try again in a moment!"
REPLY_NOT_FOUND = "The post you are trying to reply to does not appear to exist."
VISIBILITIES = ("public", "unlisted", "private", "direct")
URL_RE = re.compile(r"https?://[^\s<>\"]+")
MENTION_RE = re.compile(r"@([A-Za-z0-9_]+)@[A-Za-z0-9.-]+\.[A-Za-z]+")


class MastodonError(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


@dataclass(slots=True)
class Media:
    id: str
    account: str
    type: str  # "image" | "video" | "gifv" | "audio"
    filename: str
    content_type: str
    size: int
    description: str | None
    uploaded_at: datetime
    processed: bool
    content: bytes | None
    status_id: str | None = None
    polls: int = 0


@dataclass(slots=True)
class Window:
    start: datetime
    used: int = 0


def countable_length(text: str) -> int:
    """Mastodon's status length: URLs weigh 23, remote mentions count only the username."""
    text = URL_RE.sub("x" * URL_WEIGHT, text)
    text = MENTION_RE.sub(lambda m: "@" + m.group(1), text)
    return grapheme_count(text)


class MastodonProfile(Profile):
    key = "mastodon"
    hosts = (HOST, "files.mastodon.social")
    spec = SpecRef(file="mastodon/schema.json", server=f"https://{HOST}", lenient_one_of=True)

    def __init__(self, world: SimWorld) -> None:
        super().__init__(world)
        self._statuses: dict[str, dict[str, Any]] = {}
        self._owners: dict[str, str] = {}  # status id -> account
        self._media: dict[str, Media] = {}
        self._kept_bytes = 0
        self._idempotency: dict[tuple[str, str], tuple[datetime, str]] = {}
        self._windows: dict[str, Window] = {}

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/v1/statuses", self._create_status, methods=["POST"]),
            Route("/api/v1/statuses/{id}", self._status, methods=["GET", "DELETE"]),
            Route("/api/v1/accounts/verify_credentials", self._verify, methods=["GET"]),
            Route("/api/v2/media", self._upload, methods=["POST"]),
            Route("/api/v1/media/{id}", self._get_media, methods=["GET"]),
            Route("/media_attachments/files/{path:path}", self._file, methods=["GET"]),
            Route("/api/v2/instance", self._instance, methods=["GET"]),
            *web_routes({HOST: "Mastodon"}, path="/about"),
        ]

    async def _instance(self, request: Request) -> Response:
        """The instance (v2), public: what the monitor's API probe fetches."""
        return JSONResponse({
            "domain": HOST, "title": "Mastodon", "version": INSTANCE_VERSION,
            "source_url": "https://github.com/mastodon/mastodon",
            "description": "The original server operated by the Mastodon gGmbH non-profit",
            "languages": ["en"],
            "configuration": {
                "urls": {"streaming": f"wss://streaming.{HOST}"},
                "accounts": {"max_featured_tags": 10},
                "statuses": {"max_characters": MAX_CHARS, "max_media_attachments": MAX_MEDIA,
                             "characters_reserved_per_url": URL_WEIGHT},
                "media_attachments": {"image_size_limit": IMAGE_LIMIT,
                                      "video_size_limit": VIDEO_LIMIT},
            },
            "registrations": {"enabled": True, "approval_required": False, "message": None},
            "contact": {"email": f"staff@{HOST}"},
            "rules": [],
        })

    def feature_of(self, request: Request) -> str:
        path = request.url.path
        if "/media" in path:
            return "media"
        if path.endswith("verify_credentials"):
            return "auth"
        return "read" if request.method == "GET" else "text"

    def error(
        self, kind: ErrorKind, message: str, *, retry_after_s: float | None = None
    ) -> Response:
        if kind is ErrorKind.RATE_LIMITED:
            reset = self.world.clock.now() + timedelta(seconds=retry_after_s or 300)
            headers = {"X-RateLimit-Limit": str(RATE_LIMIT), "X-RateLimit-Remaining": "0",
                       "X-RateLimit-Reset": _iso(reset)}
            return JSONResponse({"error": "Too many requests"}, status_code=429, headers=headers)
        status, text = {
            ErrorKind.SERVER_ERROR: (500, "Internal Server Error"),
            ErrorKind.UNAVAILABLE: (
                503, "There was a temporary problem serving your request, please try again"),
            ErrorKind.AUTH_EXPIRED: (401, "The access token expired"),
            ErrorKind.AUTH_MISSING: (401, "The access token is invalid"),
            ErrorKind.INVALID_REQUEST: (422, f"Validation failed: {message}"),
            ErrorKind.NOT_FOUND: (404, "Record not found"),
            ErrorKind.DUPLICATE: (422, f"Validation failed: {message}"),
            ErrorKind.MEDIA_FAILED: (500, "Error processing thumbnail for uploaded media"),
        }[kind]
        return JSONResponse({"error": text}, status_code=status)

    # -- statuses ---------------------------------------------------------------------

    async def _create_status(self, request: Request) -> Response:
        account = self.bearer_account(request)
        if account is None:
            return self.error(ErrorKind.AUTH_MISSING, "")
        now = self.world.clock.now()
        key = request.headers.get("idempotency-key")
        if key:
            earlier = self._idempotency.get((account, key))
            if earlier is not None and now - earlier[0] < IDEMPOTENCY_TTL:
                found = self._statuses.get(earlier[1])
                if found is not None:
                    return self._ok(account, found)
        try:
            params = await _params(request)
            status = self._new_status(account, params, now)
        except MastodonError as exc:
            return self._ok(account, {"error": exc.error}, status_code=exc.status)
        if key:
            self._idempotency[(account, key)] = (now, status["id"])
        self._statuses[status["id"]] = status
        self._owners[status["id"]] = account
        self.world.record.add(
            platform=self.key, account=account, kind="status", external_id=status["id"],
            payload={"status": params.get("status") or "", "visibility": status["visibility"],
                     "spoiler_text": status["spoiler_text"], "language": status["language"],
                     "media_ids": [m["id"] for m in status["media_attachments"]],
                     "in_reply_to_id": status["in_reply_to_id"]},
            idempotency_marker=key or None,
        )
        return self._ok(account, status)

    def _new_status(self, account: str, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        text = params.get("status") or ""
        spoiler = params.get("spoiler_text") or ""
        media_ids = params.get("media_ids") or []
        if not isinstance(text, str) or not isinstance(spoiler, str):
            raise MastodonError(422, "Validation failed: Text can't be blank")
        if not isinstance(media_ids, list):
            media_ids = [media_ids]
        media_ids = [str(m) for m in media_ids]
        if len(media_ids) > MAX_MEDIA:
            raise MastodonError(422, "Cannot attach more than 4 files")
        media = [self._media.get(m) for m in media_ids]
        missing = [m for m, found in zip(media_ids, media, strict=True)
                   if found is None or found.account != account or found.status_id is not None]
        if missing:
            raise MastodonError(422, f"Media {', '.join(missing)} not found")
        attached = [m for m in media if m is not None]
        if len(attached) > 1 and any(m.type in ("video", "audio") for m in attached):
            raise MastodonError(422, "Cannot attach a video to a post that already contains images")
        if any(not self._processed(m) for m in attached):
            raise MastodonError(422, NOT_READY)
        if not text.strip() and not attached:
            raise MastodonError(422, "Validation failed: Text can't be blank")
        if countable_length(text) + countable_length(spoiler) > MAX_CHARS:
            raise MastodonError(422, f"Validation failed: Text character limit of {MAX_CHARS} "
                                     "exceeded")
        visibility = params.get("visibility") or "public"
        if visibility not in VISIBILITIES:
            raise MastodonError(422, f"'{visibility}' is not a valid visibility")
        reply_to = params.get("in_reply_to_id") or None
        if reply_to is not None and str(reply_to) not in self._statuses:
            # StatusesController#set_thread answers an unknown or hidden parent with 404.
            raise MastodonError(404, REPLY_NOT_FOUND)
        status_id = self._snowflake(now)
        for item in attached:
            item.status_id = status_id
        username = _username(account)
        return {
            "id": status_id, "created_at": _iso(now),
            "in_reply_to_id": str(reply_to) if reply_to is not None else None,
            "in_reply_to_account_id": (str(self._account(self._owners[str(reply_to)])["id"])
                                       if reply_to is not None else None),
            "sensitive": bool(spoiler) or _truthy(params.get("sensitive")),
            "spoiler_text": spoiler, "visibility": visibility,
            "language": params.get("language") or "en",
            "uri": f"https://{HOST}/users/{username}/statuses/{status_id}",
            "url": f"https://{HOST}/@{username}/{status_id}",
            "replies_count": 0, "reblogs_count": 0, "favourites_count": 0, "edited_at": None,
            "content": _html(text), "reblog": None,
            "application": {"name": "Sidestep", "website": None},
            "account": self._account(account), "media_attachments": [
                self._attachment(m) for m in attached],
            "mentions": [], "tags": [], "emojis": [], "card": None, "poll": None,
        }

    async def _status(self, request: Request) -> Response:
        account = self.bearer_account(request)
        if account is None:
            return self.error(ErrorKind.AUTH_MISSING, "")
        status_id = str(request.path_params["id"])
        status = self._statuses.get(status_id)
        if status is None:
            return self._ok(account, {"error": "Record not found"}, status_code=404)
        if request.method == "DELETE":
            if self._owners[status_id] != account:
                return self._ok(account, {"error": "This action is not allowed"}, status_code=403)
            del self._statuses[status_id]
            return self._ok(account, status | {"text": _text_of(status["content"])})
        return self._ok(account, status)

    async def _verify(self, request: Request) -> Response:
        account = self.bearer_account(request)
        if account is None:
            return self.error(ErrorKind.AUTH_MISSING, "")
        source = {"privacy": "public", "sensitive": False, "language": "en", "note": "",
                  "fields": [], "follow_requests_count": 0}
        return self._ok(account, self._account(account) | {"source": source})

    # -- media ------------------------------------------------------------------------

    async def _upload(self, request: Request) -> Response:
        account = self.bearer_account(request)
        if account is None:
            return self.error(ErrorKind.AUTH_MISSING, "")
        form = await request.form(max_files=1, max_part_size=VIDEO_LIMIT)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return self._ok(account, {"error": "Validation failed: File can't be blank"},
                            status_code=422)
        content = await upload.read()
        ctype = (upload.content_type or "").lower()
        kind = ("gifv" if ctype == "image/gif" else "image") if ctype.startswith("image/") else (
            "video" if ctype.startswith("video/") else "audio" if ctype.startswith("audio/")
            else "")
        if not kind:
            return self._ok(account, {"error": "Validation failed: File content type is invalid, "
                                               "File is invalid"}, status_code=422)
        limit = IMAGE_LIMIT if kind == "image" else VIDEO_LIMIT
        if len(content) > limit:
            return self._ok(account, {"error": "Validation failed: File file size must be less "
                                               f"than {limit // (1024 * 1024)} MB"},
                            status_code=422)
        now = self.world.clock.now()
        description = form.get("description")
        media = Media(
            id=self._snowflake(now), account=account, type=kind,
            filename=upload.filename or "file", content_type=ctype, size=len(content),
            description=description if isinstance(description, str) else None,
            uploaded_at=now, processed=kind == "image" and len(content) <= SYNC_IMAGE_LIMIT,
            content=content,
        )
        self._keep(media)
        self._media[media.id] = media
        return self._ok(account, self._attachment(media),
                        status_code=200 if media.processed else 202)

    async def _get_media(self, request: Request) -> Response:
        account = self.bearer_account(request)
        if account is None:
            return self.error(ErrorKind.AUTH_MISSING, "")
        media = self._media.get(str(request.path_params["id"]))
        if media is None or media.account != account:
            return self._ok(account, {"error": "Record not found"}, status_code=404)
        media.polls += 1
        done = self._processed(media) or media.polls >= 2
        media.processed = done
        return self._ok(account, self._attachment(media), status_code=200 if done else 206)

    async def _file(self, request: Request) -> Response:
        media_id = str(request.path_params["path"]).split("/original/", 1)[0].replace("/", "")
        media = self._media.get(media_id)
        if media is None or media.content is None or not self._processed(media):
            return Response("Not Found", status_code=404)
        return Response(media.content, media_type=media.content_type)

    def _processed(self, media: Media) -> bool:
        if not media.processed and self.world.clock.now() - media.uploaded_at >= PROCESSING:
            media.processed = True
        return media.processed

    def _keep(self, media: Media) -> None:
        for earlier in self._media.values():
            if self._kept_bytes + media.size <= MEDIA_KEPT_BYTES:
                break
            if earlier.content is not None:
                self._kept_bytes -= len(earlier.content)
                earlier.content = None
        self._kept_bytes += media.size

    def _attachment(self, media: Media) -> dict[str, Any]:
        digest = hashlib.sha256(media.id.encode()).hexdigest()[:16]
        ext = media.filename.rsplit(".", 1)[-1].lower() if "." in media.filename else "bin"
        folder = "/".join(media.id[i:i + 3] for i in range(0, len(media.id), 3))
        url = f"{FILES}/media_attachments/files/{folder}/original/{digest}.{ext}"
        preview = f"{FILES}/media_attachments/files/{folder}/small/{digest}.png"
        ready = self._processed(media)
        return {"id": media.id, "type": media.type, "url": url if ready else None,
                "preview_url": preview, "remote_url": None, "text_url": None,
                "meta": {"original": {"size": f"{media.size}B"}} if ready else None,
                "description": media.description, "blurhash": "UFO|b2ofWBWB~qof%Mj[a|ayWBay"}

    # -- helpers ----------------------------------------------------------------------

    def _account(self, account: str) -> dict[str, Any]:
        username = _username(account)
        number = int(hashlib.sha256(account.encode()).hexdigest()[:12], 16)
        return {
            "id": str(number), "username": username, "acct": username,
            "display_name": account, "locked": False, "bot": False, "discoverable": True,
            "indexable": True, "group": False, "created_at": "2022-11-01T00:00:00.000Z",
            "note": "", "url": f"https://{HOST}/@{username}",
            "uri": f"https://{HOST}/users/{username}",
            "avatar": f"{FILES}/accounts/avatars/missing.png",
            "avatar_static": f"{FILES}/accounts/avatars/missing.png",
            "header": f"{FILES}/headers/original/missing.png",
            "header_static": f"{FILES}/headers/original/missing.png",
            "followers_count": 0, "following_count": 0,
            "statuses_count": sum(1 for a in self._owners.values() if a == account),
            "last_status_at": None, "emojis": [], "fields": [],
        }

    def _snowflake(self, now: datetime) -> str:
        ms = int(now.timestamp() * 1000)
        return str((ms << 16) | (self.world.next_number() % 65536))

    def _ok(self, account: str, body: dict[str, Any], *, status_code: int = 200) -> Response:
        """An answer with the per-account rate-limit headers Mastodon sends on each one."""
        now = self.world.clock.now()
        window = self._windows.get(account)
        if window is None or now - window.start >= RATE_WINDOW:
            window = self._windows[account] = Window(start=now)
        window.used += 1
        headers = {"X-RateLimit-Limit": str(RATE_LIMIT),
                   "X-RateLimit-Remaining": str(max(0, RATE_LIMIT - window.used)),
                   "X-RateLimit-Reset": _iso(window.start + RATE_WINDOW)}
        return JSONResponse(body, status_code=status_code, headers=headers)


async def _params(request: Request) -> dict[str, Any]:
    ctype = request.headers.get("content-type", "").lower()
    if ctype.startswith("application/json"):
        try:
            data = await request.json()
        except ValueError as exc:
            raise MastodonError(422, "Validation failed: Text can't be blank") from exc
        return data if isinstance(data, dict) else {}
    form = await request.form()
    params: dict[str, Any] = {}
    for name, value in form.multi_items():
        if name in ("media_ids[]", "media_ids"):
            params.setdefault("media_ids", []).append(value)
        else:
            params[name] = value
    return params


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _username(account: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", account)[:30] or "user"


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1"))


def _html(text: str) -> str:
    paragraphs = [p for p in re.split(r"\n{2,}", text.strip()) if p]
    return "".join(f"<p>{html.escape(p).replace(chr(10), '<br />')}</p>" for p in paragraphs)


def _text_of(content: str) -> str:
    text = content.replace("</p><p>", "\n\n").replace("<br />", "\n")
    return html.unescape(re.sub(r"<[^>]+>", "", text))
