"""Instagram content publishing (Instagram API with Facebook Login on graph.facebook.com, and
with Instagram Login on graph.instagram.com: same paths, same behaviour).

Endpoints (each also under `/v23.0`):

- `POST /{ig-user-id}/media` — create a container: `image_url` (image), `media_type=REELS` +
  `video_url`, `is_carousel_item=true` items (`media_type=VIDEO` for videos), or
  `media_type=CAROUSEL` + `children` (2 to 10 item containers); `caption`. Answers `{"id"}`.
  https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/ig-user/media
- `GET /{container-id}?fields=status_code,status` — `IN_PROGRESS`, `FINISHED`, `ERROR`,
  `EXPIRED` (not published within 24 hours), `PUBLISHED`.
  https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/ig-container
- `POST /{ig-user-id}/media_publish` with `creation_id` — answers `{"id": "<IG media id>"}`.
  https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/ig-user/media_publish
- `GET /{ig-user-id}/content_publishing_limit?fields=quota_usage,config` — `{"data":
  [{"quota_usage", "config": {"quota_total", "quota_duration"}}]}`; 100 API-published posts per
  moving 24 hours, a carousel counting as one, enforced on `media_publish`.
  https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/ig-user/content_publishing_limit
  and https://developers.facebook.com/docs/instagram-platform/content-publishing
- `GET /{ig-media-id}` (`id`, `caption`, `media_type`, `media_product_type`, `permalink`,
  `shortcode`, `timestamp`, `username`), `GET /{ig-user-id}` (`id`, `username`),
  `GET /{ig-user-id}/media` (the account's media, newest first; for reconciliation), and on
  graph.instagram.com `GET /me` (`id`, `user_id`, `username`).
  https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/ig-media

Errors (HTTP 400, from the error-code table,
https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/error-codes):
unknown media type 100/2207023; carousel size 100/2207028; caption over 2,200 characters,
30 hashtags or 20 @-mentions 36004/2207010; image not JPEG 36001/2207005 and video not MP4/MOV
352/2207026 (the simulator cannot fetch, so it judges by the URL's extension and accepts a URL
without one); a URL it cannot fetch 9004/2207052 (also the partial "media" fault); not ready
9007/2207027; expired -2/2207020; daily limit 9/2207042. Throttling: 400, code 80002, with
`X-Business-Use-Case-Usage` type `instagram`.

Processing: an image container is `FINISHED` at once; a video (reel or carousel video) is
`IN_PROGRESS` for `VIDEO_POLLS_TO_FINISH` status polls, then `FINISHED`; while a partial
"media" fault is on, a poll of an `IN_PROGRESS` container turns it `ERROR`. Publishing a
container twice is refused (100, "already been published"; Meta's exact answer is not
documented) and its status stays `PUBLISHED`, so a retry never duplicates the post.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from sidestep.sim.platforms._graph import (
    URL,
    Dialect,
    GraphCall,
    GraphEndpoint,
    GraphObject,
    GraphProblem,
    GraphState,
    Throttle,
    authenticate,
    dialect_error,
    endpoint_for,
    graph_state,
    graph_time,
    invalid,
    mount,
    ok,
    own_node,
    partial_fault_hits,
    public_params,
    unknown_path_route,
    unsupported,
    web_home_route,
)
from sidestep.sim.platforms._oauth import oauth_routes
from sidestep.sim.profile import ErrorKind, Profile
from sidestep.sim.world import SimWorld

DIALECT = Dialect(
    platform="instagram",
    throttle=Throttle(400, 80002, "(#80002) There have been too many calls to this Instagram"
                      " account. Wait a bit and try again. For more info, please refer to"
                      " https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
                      "instagram"),
    media_failure=(9004, 2207052, "Media download has failed.: The media could not be fetched"
                                  " from this uri"),
)
CAPTION_MAX_CHARS, HASHTAGS_MAX, MENTIONS_MAX = 2200, 30, 20
CAROUSEL_MIN, CAROUSEL_MAX = 2, 10
QUOTA_TOTAL, QUOTA_DURATION_S = 100, 86_400
CONTAINER_TTL = timedelta(hours=24)
VIDEO_POLLS_TO_FINISH = 2
ID_BASE = 17_890_000_000_000_000  # 17 digits, like IG container and media ids
STATUS_TEXT = {
    "FINISHED": "Finished: Media has been uploaded and it is ready to be published.",
    "IN_PROGRESS": "In Progress: Media is still being processed.",
    "ERROR": "Error: Media upload has failed with error code 2207052",
    "EXPIRED": "Expired: Media was not published within 24 hours.",
    "PUBLISHED": "Published: Media has been successfully published.",
}
IMAGE_EXTENSIONS, VIDEO_EXTENSIONS = (".jpg", ".jpeg"), (".mp4", ".mov")


def _media_problem(code: int, subcode: int, message: str) -> GraphProblem:
    return GraphProblem(400, code, message, subcode=subcode, is_transient=False)


def _check_url(url: str, *, video: bool) -> None:
    if not URL.match(url):
        raise _media_problem(9004, 2207052, DIALECT.media_failure[2])
    path = urlsplit(url).path.lower()
    extension = path[path.rfind("."):] if "." in path.rsplit("/", 1)[-1] else ""
    if video and extension and extension not in VIDEO_EXTENSIONS:
        raise _media_problem(352, 2207026, "The video format is not supported. Please check"
                                           " spec for supported videos format")
    if not video and extension and extension not in IMAGE_EXTENSIONS:
        raise _media_problem(36001, 2207005, "The image format is not supported.")


def _check_caption(caption: str) -> None:
    if (len(caption) > CAPTION_MAX_CHARS or caption.count("#") > HASHTAGS_MAX
            or caption.count("@") > MENTIONS_MAX):
        raise _media_problem(36004, 2207010, "The caption is too long: at most 2,200 characters,"
                                             " 30 hashtags and 20 @ tags.")


def _children(call: GraphCall, user: str) -> list[GraphObject]:
    raw = call.params.get("children") or []
    ids = raw if isinstance(raw, list) else [i for i in str(raw).split(",") if i.strip()]
    if not CAROUSEL_MIN <= len(ids) <= CAROUSEL_MAX:
        raise invalid("Carousels need at least 2 photos/videos and no more than 10"
                      " photos/videos.", subcode=2207028)
    found = []
    for child_id in (str(i).strip() for i in ids):
        child = call.state.find(child_id, "instagram", "container")
        if child is None or child.owner != user or not child.fields["is_carousel_item"]:
            raise invalid(f"(#100) Param children[] must be carousel item containers of this"
                          f" user: {child_id}")
        found.append(child)
    return found


async def _create(call: GraphCall) -> Response:
    user = own_node(call, authenticate(call, DIALECT))
    params = call.params
    media_type = str(params.get("media_type") or "IMAGE").upper()
    item = str(params.get("is_carousel_item", "false")).lower() == "true"
    caption = str(params.get("caption") or "")
    _check_caption(caption)
    allowed = ("IMAGE", "VIDEO") if item else ("IMAGE", "REELS", "STORIES", "CAROUSEL")
    if media_type not in allowed:
        raise invalid("The media type is unknown.", subcode=2207023)
    children: list[GraphObject] = []
    if media_type == "CAROUSEL":
        children = _children(call, user)
    else:
        video = media_type in ("VIDEO", "REELS") or (media_type == "STORIES"
                                                      and "video_url" in params)
        field = "video_url" if video else "image_url"
        if not params.get(field):
            raise invalid(f"(#100) The parameter {field} is required.")
        _check_url(str(params[field]), video=video)
    needed = VIDEO_POLLS_TO_FINISH if "video_url" in params else 0
    container = call.state.add(GraphObject(call.state.new_id(ID_BASE), "instagram", user,
                                           "container", {
        "media_type": media_type, "is_carousel_item": item, "caption": caption,
        "children": [c.id for c in children], "payload": public_params(params, {}),
        "status": "IN_PROGRESS" if needed else "FINISHED", "polls": 0, "needed": needed,
        "created": call.state.world.clock.now(), "media_id": None}))
    return ok({"id": container.id})


def _status(state: GraphState, container: GraphObject, *, poll: bool) -> str:
    """The container's status now; a poll advances processing (and meets partial faults)."""
    fields = container.fields
    if fields["status"] in ("PUBLISHED", "ERROR", "EXPIRED"):
        return str(fields["status"])
    if state.world.clock.now() - fields["created"] > CONTAINER_TTL:
        fields["status"] = "EXPIRED"
    elif fields["children"]:
        statuses = [_status(state, state.objects[c], poll=poll) for c in fields["children"]]
        for status in ("ERROR", "EXPIRED", "IN_PROGRESS"):
            if status in statuses:
                return status
        fields["status"] = "FINISHED"
    elif poll and fields["status"] == "IN_PROGRESS":
        if partial_fault_hits(state.world, "instagram", "media"):
            fields["status"] = "ERROR"
        else:
            fields["polls"] += 1
            if fields["polls"] >= fields["needed"]:
                fields["status"] = "FINISHED"
    return str(fields["status"])


def _published_times(state: GraphState, user: str) -> list[datetime]:
    log: dict[str, list[datetime]] = state.extension("instagram.published", dict)
    cutoff = state.world.clock.now() - timedelta(seconds=QUOTA_DURATION_S)
    log[user] = [t for t in log.get(user, []) if t > cutoff]
    return log[user]


async def _publish(call: GraphCall) -> Response:
    user = own_node(call, authenticate(call, DIALECT))
    creation_id = str(call.params.get("creation_id") or "")
    if not creation_id:
        raise invalid("(#100) The parameter creation_id is required.")
    container = call.state.find(creation_id, "instagram", "container")
    if container is None or container.owner != user or container.fields["is_carousel_item"]:
        raise GraphProblem(400, 24, f"The media with {creation_id} cannot be found.",
                           subcode=2207006)
    status = _status(call.state, container, poll=False)
    if status == "PUBLISHED":
        raise invalid(f"(#100) The media container {creation_id} has already been published.")
    if status == "EXPIRED":
        raise GraphProblem(400, -2, "The media you are trying to access has expired. Please try"
                           " to upload again.", subcode=2207020)
    if status != "FINISHED":
        raise GraphProblem(400, 9007, "Media ID is not available", subcode=2207027,
                           user_msg="The media is not ready for publishing, please wait for a"
                           " moment")
    times = _published_times(call.state, user)
    if len(times) >= QUOTA_TOTAL:
        raise GraphProblem(400, 9, "Application request limit reached", subcode=2207042,
                           user_msg="You reached maximum number of posts that is allowed to be"
                           " published by Content Publishing API.")
    world = call.state.world
    media_id = call.state.new_id(ID_BASE)
    shortcode = base64.urlsafe_b64encode(hashlib.sha256(media_id.encode()).digest()).decode()[:11]
    kind = container.fields["media_type"]
    call.state.add(GraphObject(media_id, "instagram", user, "media", {
        "caption": container.fields["caption"], "timestamp": graph_time(world),
        "media_type": {"CAROUSEL": "CAROUSEL_ALBUM", "REELS": "VIDEO"}.get(kind, kind),
        "media_product_type": {"REELS": "REELS", "STORIES": "STORY"}.get(kind, "FEED"),
        "shortcode": shortcode, "container": container.id}))
    container.fields.update(status="PUBLISHED", media_id=media_id)
    times.append(world.clock.now())
    payload = dict(container.fields["payload"])
    if container.fields["children"]:
        payload["children"] = [call.state.objects[c].fields["payload"]
                               for c in container.fields["children"]]
    world.record.add(platform="instagram", account=user, kind="post", external_id=media_id,
                     payload=payload, idempotency_marker=None)
    return ok({"id": media_id})


def _fields(call: GraphCall, values: dict[str, Any], default: str = "id") -> dict[str, Any]:
    """The requested fields that have a value; a node's `id` always comes back, as on Graph."""
    wanted = [w.strip() for w in str(call.params.get("fields") or default).split(",")]
    if "id" in values and "id" not in wanted:
        wanted.append("id")
    return {w: values[w] for w in wanted if values.get(w) is not None}


def _username(user: str) -> str:
    return user if not user.isdigit() else f"ig_{user}"


async def _read(call: GraphCall) -> Response:
    user = authenticate(call, DIALECT)
    if call.node in ("me", user):
        return ok(_fields(call, {"id": user, "user_id": user, "username": _username(user)}))
    obj = call.state.objects.get(call.node)
    if obj is None or obj.platform != "instagram" or obj.owner != user:
        raise unsupported("get", call.node)
    if obj.kind == "container":
        status = _status(call.state, obj, poll=True)
        return ok(_fields(call, {"id": obj.id, "status_code": status,
                                 "status": STATUS_TEXT[status]}))
    f = obj.fields
    path = "reel" if f["media_product_type"] == "REELS" else "p"
    return ok(_fields(call, {
        "id": obj.id, "caption": f["caption"] or None, "media_type": f["media_type"],
        "media_product_type": f["media_product_type"], "shortcode": f["shortcode"],
        "permalink": f"https://www.instagram.com/{path}/{f['shortcode']}/",
        "timestamp": f["timestamp"], "username": _username(user)}))


async def _list_media(call: GraphCall) -> Response:
    user = own_node(call, authenticate(call, DIALECT), "get")
    media = [o for o in call.state.objects.values()
             if o.platform == "instagram" and o.kind == "media" and o.owner == user]
    return ok({"data": [{"id": o.id} for o in reversed(media)]})


async def _limit(call: GraphCall) -> Response:
    user = own_node(call, authenticate(call, DIALECT), "get")
    times = _published_times(call.state, user)
    since = call.params.get("since")
    if since is not None and str(since).isdigit():
        times = [t for t in times if t.timestamp() >= int(str(since))]
    values = {"quota_usage": len(times),
              "config": {"quota_total": QUOTA_TOTAL, "quota_duration": QUOTA_DURATION_S}}
    return ok({"data": [_fields(call, values, "quota_usage")]})


def graph_endpoints(state: GraphState) -> list[GraphEndpoint]:
    """Instagram's publishing endpoints, for graph.facebook.com and graph.instagram.com."""
    return [
        GraphEndpoint(DIALECT, "POST", "/{node}/media", _create, "media"),
        GraphEndpoint(DIALECT, "POST", "/{node}/media_publish", _publish, "media"),
        GraphEndpoint(DIALECT, "GET", "/{node}/media", _list_media, "read"),
        GraphEndpoint(DIALECT, "GET", "/{node}/content_publishing_limit", _limit, "read"),
        GraphEndpoint(DIALECT, "GET", "/{node}", _read, "read"),
    ]


def graph_routes(world: SimWorld) -> list[BaseRoute]:
    """The endpoints as routes of Instagram's own API host (graph.instagram.com)."""
    state = graph_state(world)
    return mount(state, graph_endpoints(state), served_by="instagram")


class InstagramProfile(Profile):
    """graph.instagram.com (Instagram Login) and Instagram's web and CDN hosts."""

    key = "instagram"
    hosts = ("graph.instagram.com", "i.instagram.com", "www.instagram.com", "instagram.com",
             "scontent.cdninstagram.com", "static.cdninstagram.com")
    spec = None  # Meta publishes SDK codegen specs for IGUser/IGMedia, not OpenAPI

    def __init__(self, world: SimWorld) -> None:
        super().__init__(world)
        self.state = graph_state(world)
        self._routes = [web_home_route(self.state, "Instagram"), *graph_routes(world),
                        unknown_path_route(self.state)]

    def routes(self) -> list[BaseRoute]:
        return [*oauth_routes(self.world, "instagram", authorize=("/oauth/authorize",), token=(
            "/access_token", "/refresh_access_token")), *self._routes]

    def feature_of(self, request: Request) -> str:
        endpoint = endpoint_for(self.state, self._routes, request)
        return endpoint.feature if endpoint is not None else "read"

    def error(self, kind: ErrorKind, message: str, *, retry_after_s: float | None = None
              ) -> Response:
        return dialect_error(self.state, DIALECT, kind, message, retry_after_s=retry_after_s)
