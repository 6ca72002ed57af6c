"""VK API (api.vk.com): posting to a user or community wall.

Endpoints (GET or POST, parameters in the query string or a form body, `v` required):

- `/method/wall.post` (owner_id, from_group, message, attachments, publish_date, guid) —
  https://dev.vk.com/en/method/wall.post
- `/method/wall.delete` (owner_id, post_id) — https://dev.vk.com/en/method/wall.delete

The token is the `access_token` parameter or an `Authorization: Bearer` header
(https://dev.vk.com/en/api/api-requests). Success is `{"response": ...}`; an API error is
answered with HTTP 200 and `{"error": {"error_code", "error_msg", "request_params"}}`
(https://dev.vk.com/en/reference/errors; codes from ../shared/specs/vk/errors.json: 5
authorization failed, 6 too many requests per second, 9 flood control, 10 internal server
error, 14 captcha, 100 bad parameter, 214 access to adding post denied). A repeated `guid`
for the same wall returns the first post's id without a new post, as VK's "guid" parameter
promises. Post ids count per wall.

Not documented by VK and chosen here: an outage (`UNAVAILABLE`) is the front proxy's HTML
503, as any nginx answers; a refused duplicate is error 9 "Flood control", which VK sends for
identical posts in a row.

Conventions: `world.grant_token("vk", access_token, account)`; `restrict_owners(account,
owner_ids)` limits the walls the token may post to (error 214 elsewhere).

For the monitor's probes (catalogue `probes`): vk.com/ is the web page (`_probe_pages`); the
API probe `utils.getServerTime` gets the usual error 5 without a token (HTTP 200).
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sidestep.sim.platforms._probe_pages import web_routes
from sidestep.sim.profile import ErrorKind, Profile
from sidestep.sim.world import SimWorld

API_VERSION = "5.199"
MAX_MESSAGE = 16384
MAX_ATTACHMENTS = 10
ATTACHMENT_RE = re.compile(r"^(photo|video|audio|doc|page|note|poll|album|market|podcast)"
                           r"-?\d+_\d+(_[0-9a-f]+)?$")
SECRET_PARAMS = frozenset({"access_token"})
NGINX_503 = (
    "<html>\r\n<head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n"
    "<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx"
    "</center>\r\n</body>\r\n</html>\r\n"
)


class VkError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class VkProfile(Profile):
    key = "vk"
    hosts = ("api.vk.com", "vk.com")
    spec = None  # VK publishes JSON Schema (draft-07), not OpenAPI; tests check wall.post

    def __init__(self, world: SimWorld) -> None:
        super().__init__(world)
        self._next_post: dict[int, int] = {}
        self._posts: dict[tuple[int, int], str] = {}  # (owner, post id) -> account
        self._guids: dict[tuple[str, int, str], int] = {}
        self._allowed: dict[str, set[int]] = {}

    def routes(self) -> list[BaseRoute]:
        return [*web_routes({"vk.com": "VK"}),
                Route("/method/{name}", self._dispatch, methods=["GET", "POST"])]

    def feature_of(self, request: Request) -> str:
        name = request.url.path.rsplit("/", 1)[-1]
        if name == "wall.post":
            return "text"
        return "auth" if name.startswith(("users.", "account.")) else "read"

    def error(
        self, kind: ErrorKind, message: str, *, retry_after_s: float | None = None
    ) -> Response:
        if kind is ErrorKind.UNAVAILABLE:
            return HTMLResponse(NGINX_503, status_code=503)
        code, text = {
            ErrorKind.SERVER_ERROR: (10, "Internal server error"),
            ErrorKind.RATE_LIMITED: (6, "Too many requests per second"),
            ErrorKind.AUTH_EXPIRED: (5, "User authorization failed: access_token has expired."),
            ErrorKind.AUTH_MISSING: (5, "User authorization failed: invalid access_token (4)."),
            ErrorKind.INVALID_REQUEST: (
                100, f"One of the parameters specified was missing or invalid: {message}"),
            ErrorKind.NOT_FOUND: (104, "Not found"),
            ErrorKind.DUPLICATE: (9, "Flood control"),
            ErrorKind.MEDIA_FAILED: (
                100, "One of the parameters specified was missing or invalid: attachments "
                     "param is invalid"),
        }[kind]
        return _error_body(code, text, [])

    def restrict_owners(self, account: str, owner_ids: list[int]) -> None:
        """Let the account's token post only to these walls (error 214 elsewhere)."""
        self._allowed[account] = set(owner_ids)

    async def _dispatch(self, request: Request) -> Response:
        params: dict[str, str] = dict(request.query_params)
        if request.method == "POST":
            form = await request.form()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        name = str(request.path_params["name"])
        echoed = [{"key": "method", "value": name}, {"key": "oauth", "value": "1"}] + [
            {"key": k, "value": v} for k, v in params.items() if k not in SECRET_PARAMS]
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        token = params.get("access_token") or (bearer.strip() if scheme.lower() == "bearer"
                                               else "")
        try:
            if not token:
                raise VkError(5, "User authorization failed: no access_token passed.")
            account = self.world.account_for(self.key, token)
            if account is None:
                raise VkError(5, "User authorization failed: invalid access_token (4).")
            if not params.get("v"):
                raise VkError(8, "Invalid request: v (version) is required")
            if name == "wall.post":
                result: Any = self._wall_post(account, params)
            elif name == "wall.delete":
                result = self._wall_delete(account, params)
            else:
                raise VkError(3, "Unknown method passed")
        except VkError as exc:
            return _error_body(exc.code, exc.message, echoed)
        return JSONResponse({"response": result})

    def _wall_post(self, account: str, params: dict[str, str]) -> dict[str, int]:
        owner = _int_param(params, "owner_id")
        allowed = self._allowed.get(account)
        if allowed is not None and owner not in allowed:
            raise VkError(214, "Access to adding post denied: access to the wall is denied")
        message = params.get("message", "")
        attachments = [a for a in params.get("attachments", "").split(",") if a]
        if not message.strip() and not attachments:
            raise VkError(100, "One of the parameters specified was missing or invalid: "
                               "message is empty or invalid")
        if len(message) > MAX_MESSAGE:
            raise VkError(100, "One of the parameters specified was missing or invalid: "
                               "message is too long")
        links = [a for a in attachments if a.startswith(("http://", "https://"))]
        media = [a for a in attachments if a not in links]
        if len(attachments) > MAX_ATTACHMENTS or len(links) > 1 or not all(
                ATTACHMENT_RE.match(a) for a in media):
            raise VkError(100, "One of the parameters specified was missing or invalid: "
                               "attachments param is invalid")
        publish_date = params.get("publish_date")
        if publish_date is not None and not publish_date.isdigit():
            raise VkError(100, "One of the parameters specified was missing or invalid: "
                               "publish_date is invalid")
        guid = params.get("guid")
        if guid and (account, owner, guid) in self._guids:
            return {"post_id": self._guids[(account, owner, guid)]}
        self._next_post[owner] = self._next_post.get(owner, 0) + 1
        post_id = self._next_post[owner]
        self._posts[(owner, post_id)] = account
        if guid:
            self._guids[(account, owner, guid)] = post_id
        self.world.record.add(
            platform=self.key, account=account, kind="post", external_id=f"{owner}_{post_id}",
            payload={"owner_id": owner, "message": message, "attachments": attachments,
                     "from_group": params.get("from_group") == "1",
                     "publish_date": int(publish_date) if publish_date else None},
            idempotency_marker=guid or None,
        )
        return {"post_id": post_id}

    def _wall_delete(self, account: str, params: dict[str, str]) -> int:
        owner = _int_param(params, "owner_id")
        post_id = _int_param(params, "post_id")
        if self._posts.get((owner, post_id)) != account:
            raise VkError(104, "Not found")
        del self._posts[(owner, post_id)]
        return 1


def _int_param(params: dict[str, str], name: str) -> int:
    value = params.get(name, "")
    if not re.fullmatch(r"-?\d+", value):
        raise VkError(100, f"One of the parameters specified was missing or invalid: {name} "
                           "not integer")
    return int(value)


def _error_body(code: int, message: str, echoed: list[dict[str, str]]) -> Response:
    """VK's error object, answered with HTTP 200 as the API does."""
    return JSONResponse({"error": {"error_code": code, "error_msg": message,
                                   "request_params": echoed}})
