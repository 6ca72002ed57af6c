"""Google Business Profile local posts (the My Business API v4 `localPosts` resource).

Endpoints (mybusiness.googleapis.com):

- `POST /v4/accounts/{accountId}/locations/{locationId}/localPosts` —
  https://developers.google.com/my-business/reference/rest/v4/accounts.locations.localPosts/create
- `GET .../localPosts` and `GET .../localPosts/{localPostId}` —
  https://developers.google.com/my-business/reference/rest/v4/accounts.locations.localPosts/list
  and .../get
- `DELETE .../localPosts/{localPostId}` (answers the empty message `{}`) —
  https://developers.google.com/my-business/reference/rest/v4/accounts.locations.localPosts/delete

The LocalPost resource (https://developers.google.com/my-business/reference/rest/v4/accounts.
locations.localPosts#LocalPost): `summary` (at most 1500 characters), `topicType` STANDARD |
EVENT | OFFER | ALERT, `event` required for EVENT and OFFER, `callToAction` {actionType BOOK |
ORDER | SHOP | LEARN_MORE | SIGN_UP | CALL, url} (ignored for OFFER), `media` [{mediaFormat
PHOTO | VIDEO, sourceUrl}]; the answer adds `name`, `createTime`, `updateTime`, `state` and
`searchUrl`. `state` is PROCESSING, then LIVE, or REJECTED "due to content policy violation"
(the LocalPostState enum): a summary carrying a phone number ends REJECTED, as the Business
Profile posts content policy has it.

Errors are Google's (see `_google`): 400 INVALID_ARGUMENT with a
`google.mybusiness.v4.ValidationError` detail naming the field, 401, 403 PERMISSION_DENIED,
404 NOT_FOUND "Requested entity was not found.", 429 RESOURCE_EXHAUSTED (quota per minute),
5xx. There is no machine-readable description of v4 (it is not in Google's discovery service),
so `spec` is None. The API refuses no duplicate post, so DUPLICATE answers the generic 400.

Simulator conventions: locations exist once `add_location(account, account_id, location_id)`
is called; review takes `REVIEW_S` on the world clock.

For the monitor's probes (catalogue `probes`): business.google.com/ is the web page
(`_probe_pages`), and `GET mybusinessaccountmanagement.googleapis.com/v1/accounts` answers
Google's 401 without credentials, else the caller's one account
(https://developers.google.com/my-business/reference/accountmanagement/rest/v1/accounts/list).
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sidestep.sim.platforms._google import common_error, credentials_error, google_error
from sidestep.sim.platforms._probe_pages import web_routes
from sidestep.sim.profile import ErrorKind, Profile
from sidestep.sim.world import SimWorld

MAX_SUMMARY = 1500
REVIEW_S = 1.0
TOPICS = ("STANDARD", "EVENT", "OFFER", "ALERT")
ACTIONS = ("BOOK", "ORDER", "SHOP", "LEARN_MORE", "SIGN_UP", "CALL")
PHONE_RE = re.compile(r"\+?\(?\d[\d\s().-]{7,}\d(?![\d:])")  # 9-15 digits: see _validated
BASE = "/v4/accounts/{account_id}/locations/{location_id}/localPosts"
QUOTA_MESSAGE = ("Quota exceeded for quota metric 'Requests' and limit 'Requests per minute' of "
                 "service 'mybusiness.googleapis.com' for consumer 'project_number:000000000000'.")


class InvalidPost(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


def _invalid(field: str, message: str) -> Response:
    return google_error(400, "Request contains an invalid argument.", reason="badRequest",
                        detail=message, details=[{
                            "@type": "type.googleapis.com/google.mybusiness.v4.ValidationError",
                            "errorDetails": [{"code": 3, "field": field, "message": message}]}])


def _not_found() -> Response:
    return google_error(404, "Requested entity was not found.", reason="notFound")


ACCOUNTS_HOST = "mybusinessaccountmanagement.googleapis.com"


class GoogleBusinessProfile(Profile):
    key = "google_business_profile"
    hosts = ("mybusiness.googleapis.com", ACCOUNTS_HOST, "business.google.com")
    spec = None  # v4 is not published in Google's discovery service; see the module docstring

    def __init__(self, world: SimWorld) -> None:
        super().__init__(world)
        self._locations: dict[tuple[str, str], str] = {}  # (account id, location id) -> account
        self._posts: dict[str, dict[str, Any]] = {}  # resource name -> LocalPost
        self._reviews: dict[str, tuple[float, bool]] = {}  # name -> (created, violates policy)

    # -- declared surface -------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [
            Route(BASE, self._create, methods=["POST"]),
            Route(BASE, self._list, methods=["GET"]),
            Route(BASE + "/{post_id}", self._get, methods=["GET"]),
            Route(BASE + "/{post_id}", self._delete, methods=["DELETE"]),
            Route("/v1/accounts", self._accounts, methods=["GET"]),
            *web_routes({"business.google.com": "Google Business Profile"}),
        ]

    async def _accounts(self, request: Request) -> Response:
        account = self.bearer_account(request)
        if account is None:
            return credentials_error(missing="authorization" not in request.headers)
        number = int.from_bytes(account.encode()[:6].ljust(6, b"0"), "big")
        return JSONResponse({"accounts": [{"name": f"accounts/{number}", "accountName": account,
                                           "type": "PERSONAL"}]})

    def feature_of(self, request: Request) -> str:
        return "text" if request.method == "POST" else "read"

    def error(self, kind: ErrorKind, message: str, *,
              retry_after_s: float | None = None) -> Response:
        common = common_error(kind, message)
        if common is not None:
            return common
        if kind is ErrorKind.RATE_LIMITED:
            return google_error(429, QUOTA_MESSAGE, reason="rateLimitExceeded")
        if kind is ErrorKind.NOT_FOUND:
            return _not_found()
        return _invalid("media" if kind is ErrorKind.MEDIA_FAILED else "summary",
                        message or "Invalid value.")

    def add_location(self, account: str, account_id: str, location_id: str) -> None:
        """A verified location the account manages (locations are not created here)."""
        self._locations[(account_id, location_id)] = account

    # -- handlers ---------------------------------------------------------------------

    async def _create(self, request: Request) -> Response:
        refusal = self._location_refusal(request)
        if refusal is not None:
            return refusal
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return google_error(400, "Invalid JSON payload received.", reason="parseError")
        try:
            post = _validated(body)
        except InvalidPost as exc:
            return _invalid(exc.field, exc.message)
        params = request.path_params
        post_id = str(1_000_000_000_000_000_000 + self.world.next_number())
        name = (f"accounts/{params['account_id']}/locations/{params['location_id']}"
                f"/localPosts/{post_id}")
        now = self.world.clock.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        post |= {"name": name, "createTime": now, "updateTime": now, "state": "PROCESSING",
                 "searchUrl": f"https://local.google.com/place?id={params['location_id']}"
                              f"&use=posts&lpsid={post_id}"}
        for index, item in enumerate(post.get("media", [])):
            item["name"] = f"{name}/media/{index}"
            item["googleUrl"] = f"https://lh3.googleusercontent.com/p/{post_id}{index}"
        self._posts[name] = post
        phone = any(9 <= sum(c.isdigit() for c in m) <= 15
                    for m in PHONE_RE.findall(post.get("summary", "")))
        self._reviews[name] = (self.world.clock.now().timestamp(), phone)
        account = self._locations[(str(params["account_id"]), str(params["location_id"]))]
        self.world.record.add(platform=self.key, account=account, kind="post", external_id=name,
                              payload=body, idempotency_marker=None)
        return JSONResponse(post)

    async def _list(self, request: Request) -> Response:
        refusal = self._location_refusal(request)
        if refusal is not None:
            return refusal
        prefix = request.url.path.removeprefix("/v4/") + "/"
        posts = [self._reviewed(name) for name in self._posts if name.startswith(prefix)]
        return JSONResponse({"localPosts": posts} if posts else {})

    async def _get(self, request: Request) -> Response:
        refusal = self._location_refusal(request)
        if refusal is not None:
            return refusal
        name = request.url.path.removeprefix("/v4/")
        return JSONResponse(self._reviewed(name)) if name in self._posts else _not_found()

    async def _delete(self, request: Request) -> Response:
        refusal = self._location_refusal(request)
        if refusal is not None:
            return refusal
        name = request.url.path.removeprefix("/v4/")
        if self._posts.pop(name, None) is None:
            return _not_found()
        del self._reviews[name]
        return JSONResponse({})

    def _reviewed(self, name: str) -> dict[str, Any]:
        """The post with the state its review has reached by now."""
        created, violates = self._reviews[name]
        if self.world.clock.now().timestamp() - created < REVIEW_S:
            return self._posts[name]
        return self._posts[name] | {"state": "REJECTED" if violates else "LIVE"}

    def _location_refusal(self, request: Request) -> Response | None:
        account = self.bearer_account(request)
        if account is None:
            return credentials_error(missing="authorization" not in request.headers)
        owner = self._locations.get((str(request.path_params["account_id"]),
                                     str(request.path_params["location_id"])))
        if owner is None:
            return _not_found()
        if owner != account:
            return google_error(403, "The caller does not have permission",
                                reason="forbidden")
        return None


def _validated(body: dict[str, Any]) -> dict[str, Any]:
    """The LocalPost fields a client may set, checked; raises InvalidPost."""
    topic = body.get("topicType")
    if topic not in TOPICS:
        raise InvalidPost("topic_type", f"Invalid topic type: {topic}")
    post: dict[str, Any] = {"languageCode": body.get("languageCode", "en"), "topicType": topic}
    summary = body.get("summary", "")
    if not isinstance(summary, str) or len(summary) > MAX_SUMMARY:
        raise InvalidPost("summary", f"The summary must be at most {MAX_SUMMARY} characters.")
    if not summary and topic == "STANDARD" and not body.get("media"):
        raise InvalidPost("summary", "A standard post needs a summary or media.")
    if summary:
        post["summary"] = summary
    event = body.get("event")
    if topic in ("EVENT", "OFFER"):
        event = event if isinstance(event, dict) else {}
        schedule = event.get("schedule")
        if not isinstance(schedule, dict) or not {"startDate", "endDate"} <= schedule.keys() \
                or not (topic == "OFFER" or event.get("title")):
            raise InvalidPost("event", f"An {topic.lower()} post needs event.title and "
                                       "event.schedule with startDate and endDate.")
        post["event"] = event
    if topic == "ALERT":
        if body.get("alertType") != "COVID_19":
            raise InvalidPost("alert_type", "Alert posts need alertType COVID_19.")
        post["alertType"] = "COVID_19"
    action = body.get("callToAction")
    if action is not None and topic != "OFFER":
        if not isinstance(action, dict) or action.get("actionType") not in ACTIONS:
            raise InvalidPost("call_to_action.action_type", "Invalid call to action type.")
        if action["actionType"] != "CALL" and not str(action.get("url", "")).startswith(
                ("http://", "https://")):
            raise InvalidPost("call_to_action.url", "The call to action needs a valid URL.")
        post["callToAction"] = action
    if topic == "OFFER" and isinstance(body.get("offer"), dict):
        post["offer"] = body["offer"]
    media = body.get("media", [])
    if not isinstance(media, list) or any(
            not isinstance(m, dict) or m.get("mediaFormat") not in ("PHOTO", "VIDEO")
            or not str(m.get("sourceUrl", "")).startswith("https://") for m in media):
        raise InvalidPost("media", "Each media item needs mediaFormat PHOTO or VIDEO and an "
                                   "https sourceUrl.")
    if media:
        post["media"] = [dict(m) for m in media]
    return post
