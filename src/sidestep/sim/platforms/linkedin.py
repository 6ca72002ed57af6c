"""LinkedIn: the versioned Posts and Images APIs, and OpenID Connect userinfo.

Endpoints (api.linkedin.com, upload host www.linkedin.com):

- `POST /rest/posts`, `DELETE /rest/posts/{urn}` —
  https://learn.microsoft.com/en-us/linkedin/marketing/community-management/shares/posts-api
- `POST /rest/images?action=initializeUpload`, `GET /rest/images/{urn}`, then
  `PUT https://www.linkedin.com/dms-uploads/...` (the returned `uploadUrl`) —
  https://learn.microsoft.com/en-us/linkedin/marketing/community-management/shares/images-api
- `GET /v2/userinfo` —
  https://learn.microsoft.com/en-us/linkedin/consumer/integrations/self-serve/sign-in-with-linkedin-v2

Every `/rest/` call needs `LinkedIn-Version: YYYYMM` (a version is served for 12 months;
https://learn.microsoft.com/en-us/linkedin/marketing/versioning) and
`X-Restli-Protocol-Version: 2.0.0`. A created post answers 201 with an empty body and its URN in
`x-restli-id`. Errors, as LinkedIn sends them (status, serviceErrorCode, code, message):
401 65600 INVALID_ACCESS_TOKEN / 65602 EXPIRED_ACCESS_TOKEN, 426 NONEXISTENT_VERSION "Requested
version 202401 is not active", 422 schema errors "ERROR :: /field :: ...", 422 DUPLICATE_POST
"Content is a duplicate of urn:li:share:...", 429 "Resource level throttle limit for calls to this
resource is reached." with no rate-limit headers
(https://learn.microsoft.com/en-us/linkedin/shared/api-guide/concepts/rate-limits).

Simulator conventions: tokens map to members with `world.grant_token("linkedin", ...)`; a member
posts as `urn:li:person:<sub>` (sub from /v2/userinfo) or as an organization granted with
`grant_organization`. The refusal of a missing X-Restli-Protocol-Version is the simulator's
strictness (LinkedIn documents the header as required, not the error it answers); so is the
wording of the 400 VERSION_MISSING and of the refusals of images not yet AVAILABLE. LinkedIn
publishes no byte limit for images; only the in-memory cap applies. Images become AVAILABLE
`PROCESSING_S` after their upload, on the world clock.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Host, Route, Router

from sidestep.sim.platforms._oauth import oauth_routes
from sidestep.sim.platforms._probe_pages import web_routes
from sidestep.sim.profile import ErrorKind, Profile
from sidestep.sim.world import SimWorld

MAX_COMMENTARY = 3000
VERSION_LIFETIME_MONTHS = 12
PROCESSING_S = 1.0
MEDIA_KEPT_BYTES = 64 * 1024 * 1024
UPLOAD_URL_LIFETIME_MS = 24 * 3600 * 1000
AUTHOR_RE = re.compile(r"^urn:li:(person|organization):([A-Za-z0-9_-]+)$")
VISIBILITIES = ("PUBLIC", "CONNECTIONS", "LOGGED_IN", "CONTAINER")


class LinkedInRefusal(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


@dataclass(slots=True)
class Image:
    owner: str
    upload_token: str
    uploaded_at: float | None = None
    size: int = 0
    content: bytes | None = None


def _error(status: int, code: str | None, message: str,
           service_code: int | None = None) -> Response:
    body: dict[str, Any] = {"status": status}
    if service_code is not None:
        body["serviceErrorCode"] = service_code
    if code is not None:
        body["code"] = code
    body["message"] = message
    return JSONResponse(body, status)


def _schema_error(*problems: str) -> LinkedInRefusal:
    """422 as the Rest.li schema validator words it, one line per problem."""
    message = "".join(f"ERROR :: {problem}\n" for problem in problems)
    return LinkedInRefusal(JSONResponse({"message": message, "status": 422}, 422))


def _sub(account: str) -> str:
    digest = hashlib.sha256(f"linkedin:{account}".encode()).digest()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(alphabet[b % 62] for b in digest[:10])


class LinkedInProfile(Profile):
    key = "linkedin"
    hosts = ("api.linkedin.com", "www.linkedin.com")
    spec = None  # LinkedIn publishes no machine-readable description of these APIs

    def __init__(self, world: SimWorld) -> None:
        super().__init__(world)
        self._posts: dict[str, tuple[str, str]] = {}  # share urn -> (author urn, commentary)
        self._images: dict[str, Image] = {}
        self._organizations: dict[str, set[str]] = {}  # account -> organization ids
        self._kept_bytes = 0

    # -- declared surface -------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [
            *oauth_routes(self.world, "linkedin", authorize=("/oauth/v2/authorization",),
                          token=("/oauth/v2/accessToken",)),
            Route("/rest/posts", self._create_post, methods=["POST"]),
            Route("/rest/posts/{urn}", self._delete_post, methods=["DELETE"]),
            Route("/rest/images", self._initialize_upload, methods=["POST"]),
            Route("/rest/images/{urn}", self._get_image, methods=["GET"]),
            *web_routes({"www.linkedin.com": "LinkedIn"}),  # the monitor's web probe
            Host("www.linkedin.com", Router([Route("/dms-uploads/{asset}/{rest:path}",
                                                   self._upload, methods=["PUT", "POST"])])),
            Route("/v2/userinfo", self._userinfo, methods=["GET"]),
        ]

    def feature_of(self, request: Request) -> str:
        path = request.url.path
        if path.startswith(("/rest/images", "/dms-uploads/")):
            return "media"
        if path == "/v2/userinfo":
            return "auth"
        if path == "/" and request.method in ("GET", "HEAD"):
            return "read"  # the web page
        return "text"

    def error(self, kind: ErrorKind, message: str, *,
              retry_after_s: float | None = None) -> Response:
        if kind is ErrorKind.INVALID_REQUEST:
            return _schema_error(message or "/ :: invalid request").response
        if kind is ErrorKind.DUPLICATE:
            return self._duplicate("urn:li:share:7100000000000000000")
        status, code, text, service = {
            ErrorKind.SERVER_ERROR: (500, "INTERNAL_SERVER_ERROR", "Internal Server Error", None),
            ErrorKind.UNAVAILABLE: (503, "SERVICE_UNAVAILABLE", "Service Unavailable", None),
            ErrorKind.RATE_LIMITED: (429, None, "Resource level throttle limit for calls to this "
                                     "resource is reached.", None),
            ErrorKind.AUTH_EXPIRED: (401, "EXPIRED_ACCESS_TOKEN",
                                     "The token used in the request has expired", 65602),
            ErrorKind.AUTH_MISSING: (401, "INVALID_ACCESS_TOKEN", "Invalid access token", 65600),
            ErrorKind.NOT_FOUND: (404, "NOT_FOUND", message or "Not Found", None),
            ErrorKind.MEDIA_FAILED: (400, "ILLEGAL_ARGUMENT",
                                     message or "Image processing failed", None),
        }[kind]
        return _error(status, code, text, service)

    def grant_organization(self, account: str, organization_id: str) -> None:
        """Let the member post as `urn:li:organization:<id>` (a page administrator)."""
        self._organizations.setdefault(account, set()).add(organization_id)

    def person_urn(self, account: str) -> str:
        return f"urn:li:person:{_sub(account)}"

    # -- posts ------------------------------------------------------------------------

    async def _create_post(self, request: Request) -> Response:
        try:
            account = self._rest_account(request)
            body = await _json_body(request)
            problems = [f"/{name} :: field is required but not found and has no default value"
                        for name in ("author", "commentary", "visibility", "distribution",
                                     "lifecycleState") if name not in body]
            if problems:
                raise _schema_error(*problems)
            author = self._author(account, body["author"])
            commentary = body["commentary"]
            if not isinstance(commentary, str):
                raise _schema_error(f"/commentary :: {json.dumps(commentary)} is not a string")
            if len(commentary) > MAX_COMMENTARY:
                raise _schema_error(f"/commentary :: length of {len(commentary)} exceeds the "
                                    f"maximum of {MAX_COMMENTARY}")
            if body["visibility"] not in VISIBILITIES:
                raise _schema_error(f"/visibility :: \"{body['visibility']}\" is not an enum "
                                    f"symbol")
            distribution = body["distribution"]
            if not isinstance(distribution, dict) or \
                    distribution.get("feedDistribution") not in ("MAIN_FEED", "NONE"):
                raise _schema_error("/distribution/feedDistribution :: field is required but "
                                    "not found and has no default value")
            if body["lifecycleState"] not in ("PUBLISHED", "DRAFT"):
                raise _schema_error(f"/lifecycleState :: \"{body['lifecycleState']}\" is not "
                                    f"an enum symbol")
            self._check_media(author, body.get("content"))
            duplicate = next((urn for urn, (by, text) in self._posts.items()
                              if by == author and text == commentary), None)
            if duplicate is not None:
                raise LinkedInRefusal(self._duplicate(duplicate))
        except LinkedInRefusal as refusal:
            return refusal.response
        urn = f"urn:li:share:{7_100_000_000_000_000_000 + self.world.next_number()}"
        self._posts[urn] = (author, commentary)
        self.world.record.add(platform=self.key, account=account, kind="post", external_id=urn,
                              payload=body, idempotency_marker=None)
        return Response(status_code=201, headers={"x-restli-id": urn})

    async def _delete_post(self, request: Request) -> Response:
        try:
            account = self._rest_account(request)
        except LinkedInRefusal as refusal:
            return refusal.response
        urn = str(request.path_params["urn"])
        found = self._posts.get(urn)
        if found is None:
            return _error(404, "NOT_FOUND", f"Post {urn} does not exist")
        if found[0] not in self._authors_of(account):
            return _error(403, "ACCESS_DENIED", "Not enough permissions to delete this post", 100)
        del self._posts[urn]
        return Response(status_code=204)

    def _check_media(self, author: str, content: Any) -> None:
        if content is None:
            return
        media = content.get("media") if isinstance(content, dict) else None
        image_urn = media.get("id") if isinstance(media, dict) else None
        if not isinstance(image_urn, str):
            raise _schema_error("/content/media/id :: field is required but not found and has "
                                "no default value")
        image = self._images.get(image_urn)
        if image is None or image.owner != author:
            raise LinkedInRefusal(_error(400, "INVALID_CONTENT_OWNERSHIP",
                                         "Content(s) you provided must be owned by post author"))
        if self._image_status(image) != "AVAILABLE":
            raise LinkedInRefusal(_error(400, "ILLEGAL_ARGUMENT",
                                         f"Media {image_urn} is not ready to be used"))

    def _duplicate(self, urn: str) -> Response:
        return JSONResponse({
            "errorDetailType": "com.linkedin.common.error.BadRequest",
            "message": "com.linkedin.content.common.exception.BadRequestResponseException: "
                       f"Content is a duplicate of {urn}",
            "errorDetails": {"inputErrors": [{"description": "Duplicate post is detected",
                                              "input": {}, "code": "DUPLICATE_POST"}]},
            "status": 422}, 422)

    # -- images -----------------------------------------------------------------------

    async def _initialize_upload(self, request: Request) -> Response:
        try:
            account = self._rest_account(request)
            if request.query_params.get("action") != "initializeUpload":
                raise LinkedInRefusal(_error(400, "ILLEGAL_ARGUMENT", "Unsupported action"))
            body = await _json_body(request)
            init = body.get("initializeUploadRequest")
            if not isinstance(init, dict) or "owner" not in init:
                raise _schema_error("/initializeUploadRequest/owner :: field is required but "
                                    "not found and has no default value")
            owner = self._author(account, init["owner"])
        except LinkedInRefusal as refusal:
            return refusal.response
        number = self.world.next_number()
        asset = "D4E10AQ" + _sub(f"image-{number}") + f"{number:03d}"[-3:]
        token = hashlib.sha256(f"upload-{number}".encode()).hexdigest()[:24]
        urn = f"urn:li:image:{asset}"
        self._images[urn] = Image(owner, token)
        now_ms = int(self.world.clock.now().timestamp() * 1000)
        return JSONResponse({"value": {
            "uploadUrlExpiresAt": now_ms + UPLOAD_URL_LIFETIME_MS,
            "uploadUrl": f"https://www.linkedin.com/dms-uploads/{asset}/uploaded-image/0"
                         f"?ca=vector_feedshare&cn=uploads&sync=0&v=beta&ut={token}",
            "image": urn}})

    async def _upload(self, request: Request) -> Response:
        urn = f"urn:li:image:{request.path_params['asset']}"
        image = self._images.get(urn)
        token = parse_qs(request.url.query).get("ut", [""])[0]
        if image is None or token != image.upload_token:
            return _error(403, None, "Upload URL is not valid")
        if image.uploaded_at is not None:
            return _error(400, "ILLEGAL_ARGUMENT", "Image was already uploaded")
        content = await request.body()
        if not content:
            return _error(400, "ILLEGAL_ARGUMENT", "Empty upload")
        image.size = len(content)
        if self._kept_bytes + len(content) <= MEDIA_KEPT_BYTES:
            image.content = content
            self._kept_bytes += len(content)
        image.uploaded_at = self.world.clock.now().timestamp()
        return Response(status_code=201)

    async def _get_image(self, request: Request) -> Response:
        try:
            account = self._rest_account(request)
        except LinkedInRefusal as refusal:
            return refusal.response
        urn = str(request.path_params["urn"])
        image = self._images.get(urn)
        if image is None or image.owner not in self._authors_of(account):
            return _error(404, "NOT_FOUND", f"Image {urn} does not exist")
        status = self._image_status(image)
        body: dict[str, Any] = {"owner": image.owner, "status": status, "id": urn}
        if status == "AVAILABLE":
            now_ms = int(self.world.clock.now().timestamp() * 1000)
            body |= {"downloadUrlExpiresAt": now_ms + UPLOAD_URL_LIFETIME_MS,
                     "downloadUrl": f"https://media.licdn.com/dms/image/{urn.rsplit(':', 1)[1]}"
                                    "/feedshare-shrink_800/0/"}
        return JSONResponse(body)

    def _image_status(self, image: Image) -> str:
        if image.uploaded_at is None:
            return "WAITING_UPLOAD"
        if self.world.clock.now().timestamp() - image.uploaded_at < PROCESSING_S:
            return "PROCESSING"
        return "AVAILABLE"

    # -- identity ---------------------------------------------------------------------

    async def _userinfo(self, request: Request) -> Response:
        account = self.bearer_account(request)
        if account is None:
            return self.error(ErrorKind.AUTH_MISSING, "")
        given, _, family = account.partition(" ")
        return JSONResponse({
            "sub": _sub(account), "email_verified": True, "name": account,
            "locale": {"country": "US", "language": "en"}, "given_name": given,
            "family_name": family, "email": f"{re.sub(r'[^a-z0-9]', '', account.lower())}"
                                            "@example.com"})

    # -- helpers ----------------------------------------------------------------------

    def _rest_account(self, request: Request) -> str:
        """The member behind the token of a versioned /rest/ call; refuses bad headers."""
        account = self.bearer_account(request)
        if account is None:
            raise LinkedInRefusal(self.error(ErrorKind.AUTH_MISSING, ""))
        version = request.headers.get("linkedin-version", "")
        if not version:
            raise LinkedInRefusal(_error(400, "VERSION_MISSING", "A version must be present. "
                                         "Please specify a version by adding the "
                                         "LinkedIn-Version header."))
        if not self._version_active(version):
            digits = version.split(".")[0]
            raise LinkedInRefusal(_error(426, "NONEXISTENT_VERSION", f"Requested version "
                                         f"{digits}{'01' if len(digits) == 6 else ''} is not "
                                         "active"))
        if request.headers.get("x-restli-protocol-version") != "2.0.0":
            raise LinkedInRefusal(_error(400, "ILLEGAL_ARGUMENT",
                                         "X-Restli-Protocol-Version 2.0.0 is required"))
        return account

    def _version_active(self, version: str) -> bool:
        match = re.fullmatch(r"(\d{4})(\d{2})(\.\d{2})?", version)
        if match is None or not 1 <= int(match[2]) <= 12:
            return False
        now = self.world.clock.now()
        age = (now.year - int(match[1])) * 12 + now.month - int(match[2])
        return 0 <= age < VERSION_LIFETIME_MONTHS

    def _authors_of(self, account: str) -> set[str]:
        orgs = self._organizations.get(account, set())
        return {self.person_urn(account)} | {f"urn:li:organization:{o}" for o in orgs}

    def _author(self, account: str, author: Any) -> str:
        if not isinstance(author, str) or AUTHOR_RE.match(author) is None:
            raise _schema_error(f"/author :: {json.dumps(author)} is not a valid URN")
        if author not in self._authors_of(account):
            raise LinkedInRefusal(_error(403, "ACCESS_DENIED", "Not enough permissions to "
                                         f"act as {author}", 100))
        return author


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise LinkedInRefusal(_error(400, "ILLEGAL_ARGUMENT",
                                     "Request body could not be converted to data map"))
    return body
