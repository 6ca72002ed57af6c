"""Reddit's OAuth API: submit, delete, the caller's identity and submissions, image upload.

Endpoints (oauth.reddit.com; image uploads to reddit-uploaded-media.s3-accelerate.amazonaws.com):

- `POST /api/submit` (form: sr, kind self|link|image, title, text, url, resubmit,
  api_type=json) — https://www.reddit.com/dev/api#POST_api_submit
- `POST /api/del` (form: id=t3_...) — https://www.reddit.com/dev/api#POST_api_del
- `GET /api/v1/me` — https://www.reddit.com/dev/api#GET_api_v1_me
- `GET /user/{username}/submitted` — https://www.reddit.com/dev/api#GET_user_{username}_submitted
- `POST /api/media/asset.json` (form: filepath, mimetype) answering an S3 POST lease, then a
  multipart POST to the lease's `action` (201 with an XML `<Location>`), then `/api/submit`
  kind=image with that location as `url`. This upload path is not in Reddit's API reference;
  it is simulated as Reddit's own clients and PRAW use it (praw/endpoints.py `media_asset`).
  As on Reddit, an image submission answers no post id, only `user_submitted_page` and a
  `websocket_url` (the websocket is not simulated; find the post in /user/{name}/submitted).

Answers with `api_type=json` are `{"json": {"errors": [[CODE, message, field]], "data": {...}}}`
with HTTP 200 even when refused (SUBREDDIT_NOEXIST, NO_TEXT, TOO_LONG, NO_URL, BAD_URL,
ALREADY_SUB for a link already submitted to that subreddit); HTTP errors are
`{"message": "Unauthorized", "error": 401}` and the like; a 503 is Reddit's HTML page.
Every response carries `x-ratelimit-used`, `x-ratelimit-remaining` and `x-ratelimit-reset`
(seconds to the end of the window): 100 queries per minute averaged over 10 minutes
(https://support.reddithelp.com/hc/en-us/articles/16160319875092-Reddit-Data-API-Wiki).
Requests without a unique, descriptive User-Agent (`<platform>:<app ID>:<version> (by
/u/<name>)`; default library agents are "drastically limited", https://github.com/reddit-archive/reddit/wiki/API)
are answered 429 here.

For the monitor's probes (catalogue `probes`): www.reddit.com/ is the web page
(`_probe_pages`); `/api/v1/me` without a token is the 401 above.

Simulator conventions: subreddits exist once `add_subreddit(name)` is called (with the post
kinds they allow); titles <= 300, self text <= 40000 characters; images <= 20 MB.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Host, Route, Router

from sidestep.sim.platforms._probe_pages import web_routes
from sidestep.sim.profile import ErrorKind, Profile
from sidestep.sim.world import SimWorld

UPLOAD_HOST = "reddit-uploaded-media.s3-accelerate.amazonaws.com"
WINDOW_S, WINDOW_LIMIT = 600, 1000  # 100 QPM averaged over 10 minutes
MAX_TITLE, MAX_TEXT = 300, 40000
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MEDIA_KEPT_BYTES = 64 * 1024 * 1024
GENERIC_AGENTS = re.compile(r"^(python-requests|python-httpx|python-urllib|curl|wget|java|"
                            r"go-http-client|okhttp|node-fetch|axios|aiohttp|libwww-perl)",
                            re.IGNORECASE)
SIGNING_KEY = b"sidestep-simulated-reddit-lease"
BUSY_PAGE = ("<!doctype html><html><head><title>Reddit - Service Unavailable</title></head><body>"
             "<h1>all of our servers are busy right now</h1><p>please try again in a minute</p>"
             "</body></html>")


@dataclass(slots=True)
class Submission:
    account: str
    subreddit: str
    kind: str
    title: str
    url: str
    created: float


def _http_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"message": message, "error": status}, status, headers=headers)


def _refused(code: str, message: str, field: str) -> Response:
    return JSONResponse({"json": {"errors": [[code, message, field]]}})


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while number:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
    return out or "0"


class RedditProfile(Profile):
    key = "reddit"
    hosts = ("oauth.reddit.com", UPLOAD_HOST, "www.reddit.com")
    spec = None  # Reddit publishes no machine-readable description of its API

    def __init__(self, world: SimWorld) -> None:
        super().__init__(world)
        self._subreddits: dict[str, set[str]] = {}  # lower-case name -> allowed kinds
        self._posts: dict[str, Submission] = {}  # base36 id -> submission
        self._assets: dict[str, tuple[str, int]] = {}  # asset id -> (account, size; -1: leased)
        self._images: dict[str, bytes] = {}
        self._kept_bytes = 0
        self._windows: dict[str, tuple[float, int]] = {}

    # -- declared surface -------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        def both(path: str, endpoint: Any, methods: list[str]) -> list[BaseRoute]:
            return [Route(path, endpoint, methods=methods),
                    Route(path + "/", endpoint, methods=methods)]
        return [
            Host(UPLOAD_HOST, Router([Route("/", self._s3_upload, methods=["POST"])])),
            *both("/api/submit", self._submit, ["POST"]),
            *both("/api/del", self._delete, ["POST"]),
            *both("/api/v1/me", self._me, ["GET"]),
            *both("/user/{username}/submitted", self._submitted, ["GET"]),
            Route("/api/media/asset.json", self._lease, methods=["POST"]),
            *web_routes({"www.reddit.com": "Reddit - The heart of the internet"}),
        ]

    def feature_of(self, request: Request) -> str:
        if request.url.path.startswith("/api/media") or request.url.hostname == UPLOAD_HOST:
            return "media"
        if request.url.path.startswith("/api/v1/me"):
            return "auth"
        return "read" if request.method == "GET" else "text"

    def error(self, kind: ErrorKind, message: str, *,
              retry_after_s: float | None = None) -> Response:
        if kind is ErrorKind.RATE_LIMITED:
            reset = int(retry_after_s) if retry_after_s is not None else WINDOW_S
            return _http_error(429, "Too Many Requests", {
                "x-ratelimit-used": str(WINDOW_LIMIT), "x-ratelimit-remaining": "0.0",
                "x-ratelimit-reset": str(reset)})
        if kind is ErrorKind.UNAVAILABLE:
            return HTMLResponse(BUSY_PAGE, 503)
        if kind is ErrorKind.INVALID_REQUEST:
            return _refused("INVALID_OPTION", message or "that option is not valid", "kind")
        if kind is ErrorKind.DUPLICATE:
            return _refused("ALREADY_SUB", "that link has already been submitted", "url")
        if kind is ErrorKind.MEDIA_FAILED:
            return _refused("BAD_URL", "you should check that url", "url")
        status, text = {
            ErrorKind.SERVER_ERROR: (500, "Internal Server Error"),
            ErrorKind.AUTH_EXPIRED: (401, "Unauthorized"),
            ErrorKind.AUTH_MISSING: (401, "Unauthorized"),
            ErrorKind.NOT_FOUND: (404, "Not Found"),
        }[kind]
        return _http_error(status, text)

    def add_subreddit(self, name: str, *,
                      kinds: tuple[str, ...] = ("self", "link", "image")) -> None:
        """Create a subreddit that accepts these post kinds."""
        self._subreddits[name.lower()] = set(kinds)

    # -- gatekeeping ------------------------------------------------------------------

    def _gate(self, request: Request) -> tuple[str | None, Response | None, dict[str, str]]:
        """(account, refusal, rate-limit headers) for a call to oauth.reddit.com."""
        agent = request.headers.get("user-agent", "")
        if not agent or GENERIC_AGENTS.match(agent):
            return None, _http_error(429, "Too Many Requests"), {}
        account = self.bearer_account(request)
        if account is None:
            return None, _http_error(401, "Unauthorized", {
                "www-authenticate": 'Bearer realm="reddit", error="invalid_token"'}), {}
        now = self.world.clock.now().timestamp()
        start, used = self._windows.get(account, (now, 0))
        if now - start >= WINDOW_S:
            start, used = now, 0
        used += 1
        self._windows[account] = (start, used)
        headers = {"x-ratelimit-used": str(used),
                   "x-ratelimit-remaining": f"{max(0, WINDOW_LIMIT - used):.1f}",
                   "x-ratelimit-reset": str(int(start + WINDOW_S - now))}
        if used > WINDOW_LIMIT:
            return None, _http_error(429, "Too Many Requests", headers), headers
        return account, None, headers

    # -- endpoints --------------------------------------------------------------------

    async def _submit(self, request: Request) -> Response:
        account, refusal, headers = self._gate(request)
        if account is None:
            return refusal or _http_error(401, "Unauthorized")
        form = await request.form()
        response = self._submission(account, {k: str(v) for k, v in form.items()})
        response.headers.update(headers)
        return response

    def _submission(self, account: str, form: dict[str, str]) -> Response:
        name = form.get("sr", "").removeprefix("r/").lower()
        kind, title = form.get("kind", "link"), form.get("title", "")
        if name not in self._subreddits:
            return _refused("SUBREDDIT_NOEXIST", "that subreddit doesn't exist", "sr")
        if kind not in ("self", "link", "image"):
            return _refused("INVALID_OPTION", "that option is not valid", "kind")
        if kind not in self._subreddits[name]:
            return _refused("NO_SELFS" if kind == "self" else "NO_LINKS",
                            "this subreddit doesn't allow that kind of post", "kind")
        if not title.strip():
            return _refused("NO_TEXT", "we need something here", "title")
        if len(title) > MAX_TITLE:
            return _refused("TOO_LONG", f"this is too long (max: {MAX_TITLE})", "title")
        url = form.get("url", "")
        if kind == "self" and len(form.get("text", "")) > MAX_TEXT:
            return _refused("TOO_LONG", f"this is too long (max: {MAX_TEXT})", "text")
        if kind == "link":
            if not url:
                return _refused("NO_URL", "a url is required", "url")
            if not re.match(r"^https?://[^\s/]+\.[^\s]+$", url):
                return _refused("BAD_URL", "you should check that url", "url")
            if form.get("resubmit", "").lower() != "true" and any(
                    p.url == url and p.subreddit == name for p in self._posts.values()):
                return _refused("ALREADY_SUB", "that link has already been submitted", "url")
        if kind == "image":
            owner, size = self._assets.get(unquote(url).rsplit("/", 1)[-1], ("", -1))
            if not url.startswith(f"https://{UPLOAD_HOST}/") or owner != account or size < 0:
                return _refused("BAD_URL", "you should check that url", "url")
        post_id = _base36(3_000_000_000 + self.world.next_number())
        self._posts[post_id] = Submission(account, name, kind, title, url,
                                          self.world.clock.now().timestamp())
        self.world.record.add(platform=self.key, account=account, kind=kind,
                              external_id=f"t3_{post_id}", payload=form, idempotency_marker=None)
        if kind == "image":
            return JSONResponse({"json": {"errors": [], "data": {
                "user_submitted_page": f"https://www.reddit.com/user/{_username(account)}"
                                       "/submitted/",
                "websocket_url": f"wss://ws-{post_id}.wss.redditmedia.com/rte_images/{post_id}"}}})
        slug = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")[:50]
        return JSONResponse({"json": {"errors": [], "data": {
            "url": f"https://www.reddit.com/r/{name}/comments/{post_id}/{slug}/",
            "drafts_count": 0, "id": post_id, "name": f"t3_{post_id}"}}})

    async def _delete(self, request: Request) -> Response:
        account, refusal, headers = self._gate(request)
        if account is None:
            return refusal or _http_error(401, "Unauthorized")
        thing = str((await request.form()).get("id", ""))
        post = self._posts.get(thing.removeprefix("t3_"))
        if post is not None and post.account == account:
            del self._posts[thing.removeprefix("t3_")]
        return JSONResponse({}, headers=headers)  # Reddit answers {} whatever it did

    async def _me(self, request: Request) -> Response:
        account, refusal, headers = self._gate(request)
        if account is None:
            return refusal or _http_error(401, "Unauthorized")
        digest = int(hashlib.sha256(account.encode()).hexdigest()[:10], 16)
        return JSONResponse({"name": _username(account), "id": _base36(digest),
                             "created_utc": 1_420_070_400.0, "link_karma": 1,
                             "comment_karma": 0, "has_verified_email": True,
                             "is_suspended": False, "over_18": False}, headers=headers)

    async def _submitted(self, request: Request) -> Response:
        account, refusal, headers = self._gate(request)
        if account is None:
            return refusal or _http_error(401, "Unauthorized")
        user = str(request.path_params["username"])
        children = [{"kind": "t3", "data": {
            "id": pid, "name": f"t3_{pid}", "title": p.title, "subreddit": p.subreddit,
            "author": user, "permalink": f"/r/{p.subreddit}/comments/{pid}/",
            "url": p.url or f"https://www.reddit.com/r/{p.subreddit}/comments/{pid}/",
            "created_utc": p.created, "is_self": p.kind == "self"}}
            for pid, p in reversed(self._posts.items()) if _username(p.account) == user]
        return JSONResponse({"kind": "Listing", "data": {
            "after": None, "dist": len(children), "children": children, "before": None}},
            headers=headers)

    # -- image upload -----------------------------------------------------------------

    async def _lease(self, request: Request) -> Response:
        account, refusal, headers = self._gate(request)
        if account is None:
            return refusal or _http_error(401, "Unauthorized")
        form = await request.form()
        filepath, mimetype = str(form.get("filepath", "")), str(form.get("mimetype", ""))
        if not filepath or not mimetype.startswith("image/"):
            return _http_error(400, "Bad Request", headers)
        asset = base64.b32encode(hashlib.sha256(
            f"asset-{self.world.next_number()}".encode()).digest()).decode().lower()[:13]
        self._assets[asset] = (account, -1)
        key = f"rte_images/{asset}"
        now = self.world.clock.now()
        fields = {"acl": "private", "key": key, "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
                  "X-Amz-Credential": f"ASIASIDESTEP/{now:%Y%m%d}/us-east-1/s3/aws4_request",
                  "X-Amz-Date": f"{now:%Y%m%dT%H%M%SZ}", "success_action_status": "201",
                  "content-type": mimetype, "x-amz-storage-class": "STANDARD",
                  "x-amz-meta-ext": filepath.rsplit(".", 1)[-1], "policy": base64.b64encode(
                      key.encode()).decode(), "X-Amz-Signature": _sign(key)}
        return JSONResponse({
            "args": {"action": f"//{UPLOAD_HOST}",
                     "fields": [{"name": k, "value": v} for k, v in fields.items()]},
            "asset": {"asset_id": asset, "processing_state": "incomplete",
                      "payload": {"filepath": filepath},
                      "websocket_url": f"wss://ws-{asset}.wss.redditmedia.com/rte_images/{asset}"}},
            headers=headers)

    async def _s3_upload(self, request: Request) -> Response:
        form = await request.form(max_part_size=1024 * 1024)
        key = str(form.get("key", ""))
        asset = key.removeprefix("rte_images/")
        if asset not in self._assets or not hmac.compare_digest(
                str(form.get("X-Amz-Signature", "")), _sign(key)):
            return _s3_error(403, "AccessDenied", "Invalid according to Policy")
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return _s3_error(400, "InvalidArgument", "POST requires exactly one file upload "
                                                     "per request.")
        content = await upload.read()
        if len(content) > MAX_IMAGE_BYTES:
            return _s3_error(400, "EntityTooLarge", "Your proposed upload exceeds the maximum "
                                                    "allowed size")
        self._assets[asset] = (self._assets[asset][0], len(content))
        if self._kept_bytes + len(content) <= MEDIA_KEPT_BYTES:
            self._images[asset] = content
            self._kept_bytes += len(content)
        location = f"https://{UPLOAD_HOST}/rte_images%2F{asset}"
        etag = hashlib.md5(key.encode(), usedforsecurity=False).hexdigest()
        return Response(f'<?xml version="1.0" encoding="UTF-8"?>\n<PostResponse><Location>'
                        f"{location}</Location><Bucket>reddit-uploaded-media</Bucket><Key>{key}"
                        f'</Key><ETag>"{etag}"</ETag></PostResponse>', 201,
                        media_type="application/xml")


def _s3_error(status: int, code: str, message: str) -> Response:
    return Response(f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                    f"<Message>{message}</Message></Error>", status, media_type="application/xml")


def _sign(key: str) -> str:
    return hmac.new(SIGNING_KEY, key.encode(), hashlib.sha256).hexdigest()


def _username(account: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", account)[:20]
