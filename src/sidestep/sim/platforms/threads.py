"""Threads API publishing on graph.threads.net (v1.0).

Endpoints (each also without the `/v1.0` prefix):

- `POST /{threads-user-id}/threads` — create a container: `media_type` TEXT, IMAGE (+
  `image_url`), VIDEO (+ `video_url`) or CAROUSEL (+ `children`, 2 to 20 item containers made
  with `is_carousel_item=true`); `text` at most 500 characters, emojis counted as their UTF-8
  bytes. Answers `{"id"}`.
  https://developers.facebook.com/docs/threads/posts and
  https://developers.facebook.com/docs/threads/reference/publishing
- `POST /{threads-user-id}/threads_publish` with `creation_id` — answers `{"id"}` (the
  Threads media id). Same pages.
- `GET /{container-id}?fields=status,error_message` — `IN_PROGRESS`, `FINISHED`, `ERROR`
  (with `error_message` such as `FAILED_DOWNLOADING_VIDEO`, `UNKNOWN`), `EXPIRED` (not
  published within 24 hours), `PUBLISHED`.
  https://developers.facebook.com/docs/threads/troubleshooting
- `GET /{threads-media-id}` (`id`, `media_product_type` THREADS, `media_type` TEXT_POST /
  IMAGE / VIDEO / CAROUSEL_ALBUM, `permalink`, `shortcode`, `text`, `timestamp`, `username`) —
  https://developers.facebook.com/docs/threads/threads-media
- `GET /me` (`id`, `username`) — https://developers.facebook.com/docs/threads/threads-profiles
- `DELETE /{threads-media-id}` — `{"success": true, "deleted_id"}`; a deleted or foreign post
  answers Graph's 100/33. https://developers.facebook.com/docs/threads/posts/delete-posts

Errors are Graph bodies with `type` "THApiException" (what the Threads API answers; token
errors stay "OAuthException"). Publishing a container that is not ready answers code 24 "The
requested resource does not exist" (as the API does before processing ends); an unknown
`media_type` or over-long text answers code 100. What the Threads API answers when throttled
or when a media fetch fails synchronously is not documented: this simulator uses Graph's
(#4) "Application request limit reached" with `X-App-Usage`, and IG's 9004/2207052.

Processing: TEXT and IMAGE containers are `FINISHED` at once; a VIDEO is `IN_PROGRESS` for
`VIDEO_POLLS_TO_FINISH` polls. While a partial "media" fault is on, media containers end in
`ERROR` (`FAILED_DOWNLOADING_VIDEO` for videos, `UNKNOWN` for images). A published container
stays `PUBLISHED`; publishing it again is refused, never duplicated.
"""

from __future__ import annotations

import base64
import hashlib
import unicodedata
from datetime import timedelta
from typing import Any

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

TH = "THApiException"
DIALECT = Dialect(
    platform="threads",
    throttle=Throttle(400, 4, "(#4) Application request limit reached", None),
    media_failure=(9004, 2207052, "Media download has failed.: The media could not be fetched"
                                  " from this uri"),
    error_type=TH,
)
TEXT_MAX = 500
CAROUSEL_MIN, CAROUSEL_MAX = 2, 20
CONTAINER_TTL = timedelta(hours=24)
VIDEO_POLLS_TO_FINISH = 2
ID_BASE = 18_050_000_000_000_000  # 17 digits, like Threads container and media ids
MEDIA_TYPES = {"TEXT": "TEXT_POST", "IMAGE": "IMAGE", "VIDEO": "VIDEO",
               "CAROUSEL": "CAROUSEL_ALBUM"}


def text_length(text: str) -> int:
    """Threads' count: one per character, an emoji (and its joiners) as its UTF-8 bytes."""
    def emoji(ch: str) -> bool:
        cp = ord(ch)
        return (cp >= 0x1F000 or 0x2600 <= cp <= 0x27BF or 0xFE00 <= cp <= 0xFE0F
                or cp == 0x200D or unicodedata.category(ch) == "So")
    return sum(len(ch.encode()) if emoji(ch) else 1 for ch in text)


def _not_ready(container_id: str) -> GraphProblem:
    return GraphProblem(400, 24, "The requested resource does not exist", error_type=TH,
                        user_msg=f"The media container {container_id} is not ready to publish.")


def _children(call: GraphCall, user: str) -> list[str]:
    raw = call.params.get("children") or []
    ids = raw if isinstance(raw, list) else [i for i in str(raw).split(",") if i.strip()]
    if not CAROUSEL_MIN <= len(ids) <= CAROUSEL_MAX:
        raise invalid(f"(#100) Param children must have between {CAROUSEL_MIN} and"
                      f" {CAROUSEL_MAX} items.", error_type=TH)
    for child_id in (str(i).strip() for i in ids):
        child = call.state.find(child_id, "threads", "container")
        if child is None or child.owner != user or not child.fields["is_carousel_item"]:
            raise invalid(f"(#100) Param children[] must be carousel item containers of this"
                          f" user: {child_id}", error_type=TH)
    return [str(i).strip() for i in ids]


async def _create(call: GraphCall) -> Response:
    user = own_node(call, authenticate(call, DIALECT), error_type=TH)
    params = call.params
    media_type = str(params.get("media_type") or "").upper()
    item = str(params.get("is_carousel_item", "false")).lower() == "true"
    if not media_type:
        raise invalid("(#100) The parameter media_type is required.", error_type=TH)
    if media_type not in MEDIA_TYPES or (item and media_type not in ("IMAGE", "VIDEO")):
        raise invalid(f"(#100) Param media_type must be one of {{TEXT, IMAGE, VIDEO, CAROUSEL}}"
                      f"{' (IMAGE or VIDEO for carousel items)' if item else ''}.", error_type=TH)
    text = str(params.get("text") or "")
    if media_type == "TEXT" and not text:
        raise invalid("(#100) The parameter text is required for TEXT posts.", error_type=TH)
    if text_length(text) > TEXT_MAX:
        raise invalid(f"(#100) Param text must be at most {TEXT_MAX} characters long.",
                      error_type=TH)
    children = _children(call, user) if media_type == "CAROUSEL" else []
    status, error_message, needed = "FINISHED", None, 0
    if media_type in ("IMAGE", "VIDEO"):
        field = "image_url" if media_type == "IMAGE" else "video_url"
        if not URL.match(str(params.get(field) or "")):
            raise invalid(f"(#100) The parameter {field} is required and must be a URL.",
                          error_type=TH)
        if media_type == "VIDEO":
            status, needed = "IN_PROGRESS", VIDEO_POLLS_TO_FINISH
        elif partial_fault_hits(call.state.world, "threads", "media"):
            status, error_message = "ERROR", "UNKNOWN"
    container = call.state.add(GraphObject(call.state.new_id(ID_BASE), "threads", user,
                                           "container", {
        "media_type": media_type, "is_carousel_item": item, "text": text, "children": children,
        "payload": public_params(params, {}), "status": status, "error_message": error_message,
        "polls": 0, "needed": needed, "created": call.state.world.clock.now()}))
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
    elif poll and fields["status"] == "IN_PROGRESS":
        if partial_fault_hits(state.world, "threads", "media"):
            fields.update(status="ERROR", error_message="FAILED_DOWNLOADING_VIDEO")
        else:
            fields["polls"] += 1
            if fields["polls"] >= fields["needed"]:
                fields["status"] = "FINISHED"
    return str(fields["status"])


async def _publish(call: GraphCall) -> Response:
    user = own_node(call, authenticate(call, DIALECT), error_type=TH)
    creation_id = str(call.params.get("creation_id") or "")
    if not creation_id:
        raise invalid("(#100) The parameter creation_id is required.", error_type=TH)
    container = call.state.find(creation_id, "threads", "container")
    if container is None or container.owner != user or container.fields["is_carousel_item"]:
        raise _not_ready(creation_id)
    status = _status(call.state, container, poll=False)
    if status == "IN_PROGRESS":
        raise _not_ready(creation_id)
    if status != "FINISHED":
        raise invalid(f"(#100) The media container {creation_id} cannot be published: its"
                      f" status is {status}.", error_type=TH)
    world = call.state.world
    media_id = call.state.new_id(ID_BASE)
    shortcode = base64.urlsafe_b64encode(hashlib.sha256(media_id.encode()).digest()).decode()[:11]
    call.state.add(GraphObject(media_id, "threads", user, "media", {
        "text": container.fields["text"], "timestamp": graph_time(world),
        "media_type": MEDIA_TYPES[container.fields["media_type"]], "shortcode": shortcode}))
    container.fields["status"] = "PUBLISHED"
    payload = dict(container.fields["payload"])
    if container.fields["children"]:
        payload["children"] = [call.state.objects[c].fields["payload"]
                               for c in container.fields["children"]]
    world.record.add(platform="threads", account=user, kind="post", external_id=media_id,
                     payload=payload, idempotency_marker=None)
    return ok({"id": media_id})


def _fields(call: GraphCall, values: dict[str, Any], default: str = "id") -> dict[str, Any]:
    """The requested fields that have a value; a node's `id` always comes back, as on Graph."""
    wanted = [w.strip() for w in str(call.params.get("fields") or default).split(",")]
    if "id" in values and "id" not in wanted:
        wanted.append("id")
    return {w: values[w] for w in wanted if values.get(w) is not None}


async def _read(call: GraphCall) -> Response:
    user = authenticate(call, DIALECT)
    username = user if not user.isdigit() else f"threads_{user}"
    if call.node in ("me", user):
        return ok(_fields(call, {"id": user, "username": username}, "id"))
    obj = call.state.objects.get(call.node)
    if obj is None or obj.deleted or obj.platform != "threads" or obj.owner != user:
        raise unsupported("get", call.node, TH)
    if obj.kind == "container":
        status = _status(call.state, obj, poll=True)
        return ok(_fields(call, {"id": obj.id, "status": status,
                                 "error_message": obj.fields["error_message"]}, "id,status"))
    f = obj.fields
    return ok(_fields(call, {
        "id": obj.id, "media_product_type": "THREADS", "media_type": f["media_type"],
        "permalink": f"https://www.threads.net/@{username}/post/{f['shortcode']}",
        "shortcode": f["shortcode"], "text": f["text"] or None, "timestamp": f["timestamp"],
        "username": username}, "id"))


async def _delete(call: GraphCall) -> Response:
    user = authenticate(call, DIALECT)
    obj = call.state.find(call.node, "threads", "media")
    if obj is None or obj.owner != user:
        raise unsupported("delete", call.node, TH)
    obj.deleted = True
    return ok({"success": True, "deleted_id": obj.id})


def graph_endpoints(state: GraphState) -> list[GraphEndpoint]:
    """The Threads publishing endpoints (graph.threads.net)."""
    return [
        GraphEndpoint(DIALECT, "POST", "/{node}/threads", _create, "text"),
        GraphEndpoint(DIALECT, "POST", "/{node}/threads_publish", _publish, "text"),
        GraphEndpoint(DIALECT, "GET", "/{node}", _read, "read"),
        GraphEndpoint(DIALECT, "DELETE", "/{node}", _delete, "text"),
    ]


class ThreadsProfile(Profile):
    """graph.threads.net and the Threads web hosts."""

    key = "threads"
    hosts = ("graph.threads.net", "www.threads.net", "threads.net", "www.threads.com",
             "threads.com")
    spec = None  # no machine-readable Threads publishing spec exists (specs/SOURCES.md)

    def __init__(self, world: SimWorld) -> None:
        super().__init__(world)
        self.state = graph_state(world)
        self._routes = [web_home_route(self.state, "Threads"),
                        *mount(self.state, graph_endpoints(self.state), served_by=self.key),
                        unknown_path_route(self.state)]

    def routes(self) -> list[BaseRoute]:
        return [*oauth_routes(self.world, "threads", authorize=("/oauth/authorize",), token=(
            "/oauth/access_token", "/access_token", "/refresh_access_token")), *self._routes]

    def feature_of(self, request: Request) -> str:
        endpoint = endpoint_for(self.state, self._routes, request)
        return endpoint.feature if endpoint is not None else "read"

    def error(self, kind: ErrorKind, message: str, *, retry_after_s: float | None = None
              ) -> Response:
        return dialect_error(self.state, DIALECT, kind, message, retry_after_s=retry_after_s)
