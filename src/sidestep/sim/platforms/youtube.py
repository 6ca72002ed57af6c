"""YouTube Data API v3: resumable video upload, video status, the caller's channel.

Endpoints (www.googleapis.com, alias youtube.googleapis.com):

- `POST /upload/youtube/v3/videos?uploadType=resumable&part=...` (also the discovery document's
  `/resumable/upload/youtube/v3/videos`): JSON video resource, `X-Upload-Content-Length`,
  `X-Upload-Content-Type`; 200 with the session URI in `Location` —
  https://developers.google.com/youtube/v3/guides/using_resumable_upload_protocol
- `PUT {session URI}`: the whole file, or chunks with `Content-Range: bytes a-b/total`
  (multiples of 256 KiB but the last) answered `308 Resume Incomplete` with `Range: bytes=0-n`;
  `Content-Range: bytes */total` with no body asks how far the upload got; the last byte answers
  201 with the video resource — same guide; https://developers.google.com/youtube/v3/docs/videos/insert
- `GET /youtube/v3/videos?id=...&part=status,snippet`, `DELETE /youtube/v3/videos?id=` —
  https://developers.google.com/youtube/v3/docs/videos/list, .../videos/delete
- `GET /youtube/v3/channels?mine=true&part=...` — https://developers.google.com/youtube/v3/docs/channels/list

Errors in Google's format (see `_google`), with YouTube's reasons
(https://developers.google.com/youtube/v3/docs/errors): 401 authError/required, 400 invalidTitle /
invalidDescription / invalidCategoryId / uploadLimitExceeded, 403 quotaExceeded (domain
youtube.quota, the answer to an exhausted quota: YouTube sends no 429 and no Retry-After), 404
videoNotFound, 5xx backendError (the resumable guide says to resume after 500/502/503/504, so a
failed upload answers 503 too). YouTube refuses no duplicate at upload (it may reject one later),
so DUPLICATE answers the generic 400.

The metadata rules (snippet.title required, at most 100 characters, description at most 5000
bytes, neither with `<` or `>`, status.privacyStatus public|unlisted|private) come from the
videos resource documentation (https://developers.google.com/youtube/v3/docs/videos). The
published description is a Google Discovery document, not OpenAPI, so `spec` is None; the tests
check the requests they send against its schemas instead.

Simulator conventions: `INSERTS_PER_DAY` videos.insert calls per project per Pacific day (the
default bucket); an upload is `uploaded`, then `processed` `PROCESSING_S` later on the world clock,
or `failed` (failureReason invalidFile) when the bytes are not MP4/MOV/WebM.

For the monitor's probes (catalogue `probes`): www.youtube.com/ is the web page and i.ytimg.com
serves the probed thumbnail (403 for anything else), from `_probe_pages`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sidestep.sim.platforms._google import common_error, credentials_error, google_error
from sidestep.sim.platforms._probe_pages import JPEG, cdn_routes, web_routes
from sidestep.sim.profile import ErrorKind, Profile
from sidestep.sim.world import SimWorld

UPLOAD_PATHS = ("/upload/youtube/v3/videos", "/resumable/upload/youtube/v3/videos")
MAX_VIDEO_BYTES = 274_877_906_944  # the discovery document's mediaUpload.maxSize
CHUNK_QUANTUM = 256 * 1024
MAX_TITLE, MAX_DESCRIPTION_BYTES = 100, 5000
PRIVACY = ("public", "unlisted", "private")
INSERTS_PER_DAY = 100
PROCESSING_S = 5.0
MEDIA_KEPT_BYTES = 64 * 1024 * 1024
PACIFIC = ZoneInfo("America/Los_Angeles")
QUOTA_MESSAGE = ('The request cannot be completed because you have exceeded your <a href="/youtube/'
                 'v3/getting-started#quota">quota</a>.')
RANGE_RE = re.compile(r"^bytes (?:(\d+)-(\d+)|\*)/(\d+)$")


class YouTubeError(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def _bad(reason: str, message: str, domain: str = "youtube.video") -> YouTubeError:
    return YouTubeError(google_error(400, message, reason=reason, domain=domain))


@dataclass(slots=True)
class Session:
    account: str
    parts: list[str]
    resource: dict[str, Any]
    total: int
    received: int = 0
    content: bytearray | None = field(default_factory=bytearray)
    head: bytes = b""
    video_id: str | None = None


@dataclass(slots=True)
class Video:
    account: str
    resource: dict[str, Any]
    uploaded_at: float
    playable: bool


THUMBNAILS = "i.ytimg.com"


class YouTubeProfile(Profile):
    key = "youtube"
    hosts = ("www.googleapis.com", "youtube.googleapis.com", "www.youtube.com", THUMBNAILS)
    spec = None  # a Discovery document, not OpenAPI; see the module docstring

    def __init__(self, world: SimWorld) -> None:
        super().__init__(world)
        self._sessions: dict[str, Session] = {}
        self._videos: dict[str, Video] = {}
        self._inserts: dict[str, int] = {}  # Pacific date -> videos.insert calls
        self._kept_bytes = 0

    # -- declared surface -------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        uploads: list[BaseRoute] = [Route(path, self._upload, methods=["POST", "PUT"])
                                    for path in UPLOAD_PATHS]
        return uploads + [
            Route("/youtube/v3/videos", self._videos_list, methods=["GET"]),
            Route("/youtube/v3/videos", self._videos_delete, methods=["DELETE"]),
            Route("/youtube/v3/channels", self._channels, methods=["GET"]),
            *web_routes({"www.youtube.com": "YouTube"}),
            *cdn_routes({THUMBNAILS: {"/vi/dQw4w9WgXcQ/hqdefault.jpg": JPEG}}),
        ]

    def feature_of(self, request: Request) -> str:
        if request.url.path in UPLOAD_PATHS:
            return "media"
        if request.url.path == "/youtube/v3/channels":
            return "auth"
        return "read"

    def error(self, kind: ErrorKind, message: str, *,
              retry_after_s: float | None = None) -> Response:
        common = common_error(kind, message)
        if common is not None:
            return common
        if kind is ErrorKind.RATE_LIMITED:
            return google_error(403, QUOTA_MESSAGE, reason="quotaExceeded", domain="youtube.quota")
        if kind is ErrorKind.NOT_FOUND:
            return google_error(404, "The video identified by the id parameter could not be "
                                "found.", reason="videoNotFound", domain="youtube.video")
        if kind is ErrorKind.MEDIA_FAILED:
            return google_error(503, "The service is currently unavailable.",
                                reason="backendError")
        return google_error(400, message or "The request metadata is invalid.",
                            reason="invalidVideoMetadata", domain="youtube.video")

    # -- upload -----------------------------------------------------------------------

    async def _upload(self, request: Request) -> Response:
        account = self.bearer_account(request)
        if account is None:
            return credentials_error(missing="authorization" not in request.headers)
        try:
            if request.method == "POST":
                return await self._start_session(request, account)
            return await self._receive(request, account)
        except YouTubeError as exc:
            return exc.response

    async def _start_session(self, request: Request, account: str) -> Response:
        query = request.query_params
        if query.get("uploadType") != "resumable" and request.url.path == UPLOAD_PATHS[0]:
            raise _bad("badRequest", "Only uploadType=resumable is simulated.", "global")
        parts = [p for p in query.get("part", "").split(",") if p]
        if not parts:
            raise YouTubeError(google_error(400, "'part' is required", reason="required",
                                            location="part"))
        total = int(request.headers.get("x-upload-content-length", "0") or 0)
        ctype = request.headers.get("x-upload-content-type", "video/*")
        if not (ctype.startswith("video/") or ctype == "application/octet-stream"):
            raise _bad("mediaBodyRequired", "The request does not include the video content.")
        if not 0 < total <= MAX_VIDEO_BYTES:
            raise _bad("mediaBodyRequired", "The request does not include the video content.")
        try:
            resource = json.loads(await request.body() or b"{}")
        except ValueError as exc:
            raise YouTubeError(google_error(400, "Parse Error", reason="parseError")) from exc
        if not isinstance(resource, dict):
            raise YouTubeError(google_error(400, "Parse Error", reason="parseError"))
        check_metadata(resource)
        day = self.world.clock.now().astimezone(PACIFIC).date().isoformat()
        if self._inserts.get(day, 0) >= INSERTS_PER_DAY:
            raise YouTubeError(self.error(ErrorKind.RATE_LIMITED, ""))
        self._inserts[day] = self._inserts.get(day, 0) + 1
        number = self.world.next_number()
        upload_id = "AEnB2U" + base64.urlsafe_b64encode(
            hashlib.sha256(f"yt-session-{number}".encode()).digest()).decode().rstrip("=")
        self._sessions[upload_id] = Session(account, parts, resource, total)
        location = f"https://{request.url.hostname}{request.url.path}?" + urlencode(
            {"uploadType": "resumable", "part": ",".join(parts), "upload_id": upload_id})
        return Response(status_code=200, headers={"Location": location,
                                                  "X-GUploader-UploadID": upload_id})

    async def _receive(self, request: Request, account: str) -> Response:
        session = self._sessions.get(request.query_params.get("upload_id", ""))
        if session is None or session.account != account:
            return Response("Not Found", status_code=404)
        body = await request.body()
        header = request.headers.get("content-range")
        if header is None:
            first, last = 0, len(body) - 1
        else:
            match = RANGE_RE.match(header)
            if match is None or int(match[3]) != session.total:
                raise _bad("badContent", "Failed to parse Content-Range header.", "global")
            if match[1] is None:  # "bytes */total": where are we?
                return self._progress(session)
            first, last = int(match[1]), int(match[2])
        if session.video_id is not None:
            return self._progress(session)
        if first != session.received or last - first + 1 != len(body) or last >= session.total:
            raise _bad("badContent", "Invalid request. Content-Range does not match the "
                       "bytes received so far.", "global")
        if last + 1 < session.total and len(body) % CHUNK_QUANTUM:
            raise _bad("badContent", "Invalid request. The number of bytes uploaded is required "
                       "to be equal or greater than 262144, except for the final request (it's "
                       "recommended to be the exact multiple of 262144).", "global")
        session.received += len(body)
        session.head = (session.head + body)[:64]
        if session.content is not None:
            if self._kept_bytes + len(body) > MEDIA_KEPT_BYTES:
                self._kept_bytes -= len(session.content)
                session.content = None
            else:
                session.content.extend(body)
                self._kept_bytes += len(body)
        if session.received < session.total:
            return self._progress(session)
        return self._complete(session)

    def _progress(self, session: Session) -> Response:
        if session.video_id is not None:
            return JSONResponse(self._resource(session.video_id, session.parts), 201)
        headers = {"Range": f"bytes=0-{session.received - 1}"} if session.received else {}
        return Response(status_code=308, headers=headers)

    def _complete(self, session: Session) -> Response:
        video_id = base64.urlsafe_b64encode(hashlib.sha256(
            f"yt-video-{self.world.next_number()}".encode()).digest()).decode()[:11]
        session.video_id = video_id
        now = self.world.clock.now()
        snippet = session.resource.get("snippet", {})
        status = session.resource.get("status", {})
        playable = session.head[4:8] == b"ftyp" or session.head.startswith(b"\x1a\x45\xdf\xa3")
        resource = {
            "kind": "youtube#video", "id": video_id,
            "snippet": {"publishedAt": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "channelId": _channel_id(session.account), "title": snippet["title"],
                        "description": snippet.get("description", ""),
                        "thumbnails": {"default": {"url": f"https://i.ytimg.com/vi/{video_id}/"
                                                          "default.jpg", "width": 120,
                                                   "height": 90}},
                        "channelTitle": session.account, "tags": snippet.get("tags", []),
                        "categoryId": snippet.get("categoryId", "22"),
                        "liveBroadcastContent": "none",
                        "localized": {"title": snippet["title"],
                                      "description": snippet.get("description", "")}},
            "status": {"uploadStatus": "uploaded",
                       "privacyStatus": status.get("privacyStatus", "public"),
                       "license": status.get("license", "youtube"),
                       "embeddable": status.get("embeddable", True),
                       "publicStatsViewable": status.get("publicStatsViewable", True),
                       "madeForKids": status.get("selfDeclaredMadeForKids", False)},
        }
        self._videos[video_id] = Video(session.account, resource, now.timestamp(), playable)
        self.world.record.add(platform=self.key, account=session.account, kind="video",
                              external_id=video_id, payload=session.resource | {
                                  "size": session.total}, idempotency_marker=None)
        return JSONResponse(self._resource(video_id, session.parts), 201)

    # -- reads ------------------------------------------------------------------------

    async def _videos_list(self, request: Request) -> Response:
        account = self.bearer_account(request)
        if account is None:
            return credentials_error(missing="authorization" not in request.headers)
        parts = [p for p in request.query_params.get("part", "").split(",") if p]
        if not parts:
            return google_error(400, "'part' is required", reason="required", location="part")
        ids = [i for i in request.query_params.get("id", "").split(",") if i in self._videos]
        items = [self._resource(i, parts) for i in ids]
        return JSONResponse({"kind": "youtube#videoListResponse", "etag": _etag(items),
                             "items": items, "pageInfo": {"totalResults": len(items),
                                                          "resultsPerPage": len(items)}})

    async def _videos_delete(self, request: Request) -> Response:
        account = self.bearer_account(request)
        if account is None:
            return credentials_error(missing="authorization" not in request.headers)
        video = self._videos.get(request.query_params.get("id", ""))
        if video is None:
            return self.error(ErrorKind.NOT_FOUND, "")
        if video.account != account:
            return google_error(403, "The video that you are trying to delete cannot be "
                                "deleted.", reason="forbidden", domain="youtube.video")
        del self._videos[request.query_params["id"]]
        return Response(status_code=204)

    async def _channels(self, request: Request) -> Response:
        account = self.bearer_account(request)
        if account is None:
            return credentials_error(missing="authorization" not in request.headers)
        if request.query_params.get("mine") != "true":
            return google_error(400, "No filter selected. Expected one of: mine, id, "
                                "forHandle, forUsername, managedByMe",
                                reason="missingRequiredParameter", domain="youtube.parameter")
        channel = {"kind": "youtube#channel", "etag": _etag(account),
                   "id": _channel_id(account),
                   "snippet": {"title": account, "description": "",
                               "customUrl": "@" + re.sub(r"\W", "", account.lower()),
                               "publishedAt": "2015-03-01T10:00:00Z",
                               "localized": {"title": account, "description": ""}}}
        return JSONResponse({"kind": "youtube#channelListResponse", "etag": _etag(channel),
                             "pageInfo": {"totalResults": 1, "resultsPerPage": 5},
                             "items": [channel]})

    def _resource(self, video_id: str, parts: list[str]) -> dict[str, Any]:
        video = self._videos[video_id]
        full = json.loads(json.dumps(video.resource))
        if self.world.clock.now().timestamp() - video.uploaded_at >= PROCESSING_S:
            full["status"]["uploadStatus"] = "processed" if video.playable else "failed"
            if not video.playable:
                full["status"]["failureReason"] = "invalidFile"
        picked = {k: v for k, v in full.items() if k in ("kind", "id") or k in parts}
        return picked | {"etag": _etag(picked)}


def check_metadata(resource: dict[str, Any]) -> None:
    """YouTube's documented rules for the metadata of videos.insert; raises its 400s."""
    snippet = resource.get("snippet")
    if not isinstance(snippet, dict):
        snippet = {}
    title = snippet.get("title")
    if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE \
            or "<" in title or ">" in title:
        raise _bad("invalidTitle", "The request metadata specifies an invalid or empty video "
                   "title.")
    description = snippet.get("description", "")
    if not isinstance(description, str) or "<" in description or ">" in description \
            or len(description.encode()) > MAX_DESCRIPTION_BYTES:
        raise _bad("invalidDescription", "The request metadata specifies an invalid video "
                   "description.")
    category = snippet.get("categoryId", "22")
    if not isinstance(category, str) or not category.isdigit():
        raise _bad("invalidCategoryId", "The snippet.categoryId property specifies an invalid "
                   "category ID.")
    status = resource.get("status", {})
    if not isinstance(status, dict) or status.get("privacyStatus", "public") not in PRIVACY:
        raise _bad("invalidVideoMetadata", "The request metadata is invalid.")


def _channel_id(account: str) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(account.encode()).digest()).decode()
    return "UC" + digest[:22]


def _etag(value: Any) -> str:
    raw = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(raw).decode()[:27]
