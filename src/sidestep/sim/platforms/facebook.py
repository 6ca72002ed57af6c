"""Facebook Pages through the Graph API (v23.0), and the graph.facebook.com host itself.

Endpoints (each also without the `/v23.0` prefix; docs of the Pages API and Graph reference):

- `POST /{page-id}/feed` (`message`, `link`, `attached_media`) —
  https://developers.facebook.com/docs/pages-api/posts and
  https://developers.facebook.com/docs/graph-api/reference/page/feed/ ; answers
  `{"id": "{page-id}_{post-id}"}`.
- `POST /{page-id}/photos` (`url` or a multipart `source`, `message`, `published`) —
  https://developers.facebook.com/docs/graph-api/reference/page/photos/ ; answers
  `{"id": "{photo-id}", "post_id": "{page-id}_{post-id}"}`, or `{"id"}` when
  `published=false` (a photo to attach to a feed post through `attached_media`).
- `GET /{post-id}` (default fields `created_time`, `message`, `id`; also `permalink_url`,
  `is_published`, `full_picture`) and `DELETE /{post-id}` (`{"success": true}`) —
  https://developers.facebook.com/docs/graph-api/reference/post/
- `GET /me` and `GET /{page-id}` with a Page token (`{"name", "id"}`) —
  https://developers.facebook.com/docs/graph-api/reference/page/

Validation as Graph answers it: no message, link or attachment → (#100) "Missing message or
attachment"; a malformed link → (#100) "link URL is not properly formatted"; the same post
twice in a row on a Page → (#506) "Duplicate status message" (error-handling guide:
"You can't publish the same post twice in a row"). Photos follow the Pages API photo rules
("less than 4 MB, JPG, PNG, GIF, TIFF, HEIF or WebP"), checked by magic bytes; a file that is
not one of those → (#324) "Missing or invalid image file". The exact wording Graph uses for
over-long text and over-size photos is not documented; ours says what is wrong with code 100.
A Page post's text is capped at 63,206 characters (Facebook's post limit).

Errors for each `ErrorKind` (see `_graph`): throttling is HTTP 400, code 80001 with
`X-Business-Use-Case-Usage` type `pages` — Page tokens are under business-use-case limits and
80001 is the Page node's listed throttle code (the older Platform code 32 "Page request limit
reached" is not used); media failure is (#324).

This profile owns graph.facebook.com, so it also mounts the Graph routes of Instagram (with
Facebook Login), WhatsApp Cloud API and Messenger, defined in their modules; each records
under its own platform key and answers in its own words. `platform_of(request)` tells the
server which product a request belongs to, and `product_error(platform, ...)` answers a fault
in that product's words; until the server uses them, those routes apply their product's HTTP
faults themselves (see `_graph`).
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from sidestep.sim.platforms import instagram, messenger, whatsapp
from sidestep.sim.platforms._graph import (
    URL,
    Dialect,
    GraphCall,
    GraphEndpoint,
    GraphObject,
    GraphState,
    Throttle,
    authenticate,
    dialect_error,
    endpoint_for,
    graph_state,
    graph_time,
    invalid,
    media_kind,
    mount,
    ok,
    own_node,
    partial_fault_hits,
    problem_for,
    public_params,
    unknown_path_route,
    unsupported,
    web_home_route,
)
from sidestep.sim.platforms._oauth import oauth_routes
from sidestep.sim.profile import ErrorKind, Profile, SpecRef
from sidestep.sim.world import SimWorld

DIALECT = Dialect(
    platform="facebook",
    throttle=Throttle(400, 80001, "(#80001) There have been too many calls to this Page account."
                      " Wait a bit and try again. For more info, please refer to"
                      " https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
                      "pages"),
    media_failure=(324, None, "(#324) Missing or invalid image file"),
)
MAX_MESSAGE_CHARS = 63_206
MAX_PHOTO_BYTES = 4 * 1024 * 1024
PHOTO_KINDS = frozenset({"image/jpeg", "image/png", "image/gif", "image/tiff", "image/heif",
                         "image/webp"})
POST_ID_BASE = 122_100_000_000_000_000  # 18 digits, like new Pages' post ids
PHOTO_ID_BASE = 122_500_000_000_000_000
ATTACHED = re.compile(r"^attached_media\[\d+\]$")


def _attached_ids(params: dict[str, Any]) -> list[str]:
    """`attached_media` as a JSON list or as `attached_media[0]={...}` form fields."""
    items: list[Any] = []
    value = params.get("attached_media")
    if isinstance(value, list):
        items.extend(value)
    items.extend(params[k] for k in sorted(params) if ATTACHED.match(k))
    ids = []
    for item in items:
        if not isinstance(item, dict) or not item.get("media_fbid"):
            raise invalid("(#100) param attached_media must be an array of {media_fbid}")
        ids.append(str(item["media_fbid"]))
    return ids


def _last_posts(state: GraphState) -> dict[str, str]:
    """Each Page's latest post id (for Graph's "same post twice in a row" refusal)."""
    return state.extension("facebook.last_post", dict[str, str])


def _publish(call: GraphCall, page: str, fields: dict[str, Any], payload: dict[str, Any]) -> str:
    """Create the Page post, remember it as the Page's last, record it; return its id."""
    world = call.state.world
    post_id = f"{page}_{call.state.new_id(POST_ID_BASE)}"
    call.state.add(GraphObject(post_id, "facebook", page, "post",
                               {**fields, "created_time": graph_time(world)}))
    _last_posts(call.state)[page] = post_id
    world.record.add(platform="facebook", account=page, kind="post", external_id=post_id,
                     payload=payload, idempotency_marker=None)
    return post_id


async def _feed(call: GraphCall) -> Response:
    page = own_node(call, authenticate(call, DIALECT))
    message = str(call.params.get("message") or "")
    link = str(call.params.get("link") or "")
    attached = _attached_ids(call.params)
    if not (message or link or attached):
        raise invalid("(#100) Missing message or attachment")
    if len(message) > MAX_MESSAGE_CHARS:
        raise invalid(f"(#100) The message is longer than {MAX_MESSAGE_CHARS} characters")
    if link and not URL.match(link):
        raise invalid("(#100) link URL is not properly formatted")
    for photo_id in attached:
        photo = call.state.find(photo_id, "facebook", "photo")
        if photo is None or photo.owner != page or photo.fields["published"]:
            raise invalid(f"(#100) attached_media: {photo_id} is not an unpublished photo of"
                          " this Page")
    if attached and partial_fault_hits(call.state.world, "facebook", "media"):
        raise problem_for(call.state, DIALECT, ErrorKind.MEDIA_FAILED, "")
    last = call.state.objects.get(_last_posts(call.state).get(page, ""))
    content = {"message": message, "link": link, "attached_media": attached}
    if last is not None and not last.deleted and all(
            last.fields.get(k) == v for k, v in content.items()):
        raise problem_for(call.state, DIALECT, ErrorKind.DUPLICATE, "")
    post_id = _publish(call, page, content, public_params(call.params, {}))
    return ok({"id": post_id})


async def _photos(call: GraphCall) -> Response:
    page = own_node(call, authenticate(call, DIALECT))
    url = str(call.params.get("url") or "")
    upload = call.files.get("source")
    if upload is None and not url:
        raise invalid("(#324) Requires upload file", code=324)
    if url and not URL.match(url):
        raise invalid("(#100) url should represent a valid URL")
    if upload is not None:
        if len(upload.data) > MAX_PHOTO_BYTES:
            raise invalid("(#100) The photo is larger than 4 MB")
        if media_kind(upload.data) not in PHOTO_KINDS:
            raise invalid("(#324) Missing or invalid image file", code=324)
    published = str(call.params.get("published", "true")).lower() not in ("false", "0")
    message = str(call.params.get("message") or call.params.get("caption") or "")
    if len(message) > MAX_MESSAGE_CHARS:
        raise invalid(f"(#100) The message is longer than {MAX_MESSAGE_CHARS} characters")
    photo_id = call.state.new_id(PHOTO_ID_BASE)
    photo = call.state.add(GraphObject(photo_id, "facebook", page, "photo", {
        "url": url, "message": message, "published": published,
        "created_time": graph_time(call.state.world)}))
    if upload is not None:
        call.state.keep_blob(photo, upload.data)
    if not published:
        return ok({"id": photo_id})
    post_id = _publish(call, page, {"message": message, "link": "", "attached_media": [photo_id]},
                       public_params(call.params, call.files))
    photo.fields["post_id"] = post_id
    return ok({"id": photo_id, "post_id": post_id})


def _field_values(call: GraphCall, obj: GraphObject, default: str) -> dict[str, Any]:
    wanted = [w.strip() for w in str(call.params.get("fields") or default).split(",")]
    wanted += [] if "id" in wanted else ["id"]  # a node's id always comes back
    page, _, number = obj.id.partition("_")
    values: dict[str, Any] = {
        "id": obj.id, "message": obj.fields.get("message") or None,
        "created_time": obj.fields.get("created_time"), "is_published": True,
        "permalink_url": f"https://www.facebook.com/{page}/posts/{number or obj.id}",
        "full_picture": (f"https://scontent.xx.fbcdn.net/v/t39.30808-6/{obj.id}_n.jpg"
                         if obj.fields.get("attached_media") or obj.kind == "photo" else None),
    }
    return {k: values[k] for k in wanted if values.get(k) is not None}


async def _read(call: GraphCall) -> Response:
    account = authenticate(call, DIALECT)
    if call.node in ("me", account):
        return ok({"name": f"Page {account}", "id": account})
    obj = call.state.objects.get(call.node)
    if obj is None or obj.deleted or obj.platform != "facebook" or obj.owner != account:
        raise unsupported("get", call.node)
    return ok(_field_values(call, obj, "created_time,message,id"))


async def _delete(call: GraphCall) -> Response:
    account = authenticate(call, DIALECT)
    obj = call.state.objects.get(call.node)
    if obj is None or obj.deleted or obj.platform != "facebook" or obj.owner != account:
        raise unsupported("delete", call.node)
    obj.deleted = True
    return ok({"success": True})


def graph_endpoints(state: GraphState) -> list[GraphEndpoint]:
    """The Pages endpoints, to be mounted on graph.facebook.com."""
    return [
        GraphEndpoint(DIALECT, "POST", "/{node}/feed", _feed, "text"),
        GraphEndpoint(DIALECT, "POST", "/{node}/photos", _photos, "media",
                      max_upload_bytes=MAX_PHOTO_BYTES),
        GraphEndpoint(DIALECT, "GET", "/{node}", _read, "read"),
        GraphEndpoint(DIALECT, "DELETE", "/{node}", _delete, "text"),
    ]


class FacebookProfile(Profile):
    """graph.facebook.com (Pages, plus Instagram, WhatsApp and Messenger) and facebook.com."""

    key = "facebook"
    hosts = ("graph.facebook.com", "www.facebook.com", "facebook.com", "scontent.xx.fbcdn.net",
             "static.xx.fbcdn.net")
    spec = None

    def __init__(self, world: SimWorld) -> None:
        super().__init__(world)
        self.state = graph_state(world)
        endpoints = [
            *graph_endpoints(self.state), *instagram.graph_endpoints(self.state),
            *whatsapp.graph_endpoints(self.state), *messenger.graph_endpoints(self.state),
        ]
        self._routes = [web_home_route(self.state, "Facebook"),
                        *mount(self.state, endpoints, served_by=self.key),
                        unknown_path_route(self.state)]
        self._dialects = {"facebook": DIALECT, "instagram": instagram.DIALECT,
                          "whatsapp": whatsapp.DIALECT, "messenger": messenger.DIALECT}

    def routes(self) -> list[BaseRoute]:
        return [*oauth_routes(self.world, "facebook", authorize=("/{version}/dialog/oauth",),
                              token=("/{version}/oauth/access_token",)), *self._routes]

    def feature_of(self, request: Request) -> str:
        endpoint = endpoint_for(self.state, self._routes, request)
        if endpoint is not None:
            return endpoint.feature
        return "read" if request.method in ("GET", "HEAD") else "text"

    def platform_of(self, request: Request) -> str:
        """The Meta product a request to this host belongs to (its faults, its record key)."""
        endpoint = endpoint_for(self.state, self._routes, request)
        return endpoint.platform if endpoint is not None else self.key

    def error(self, kind: ErrorKind, message: str, *, retry_after_s: float | None = None
              ) -> Response:
        return dialect_error(self.state, DIALECT, kind, message, retry_after_s=retry_after_s)

    def spec_for(self, request: Request) -> SpecRef | None:
        """WhatsApp's published spec for WhatsApp's paths here; Meta publishes none for the
        Page, Instagram and Messenger endpoints."""
        if self.platform_of(request) == whatsapp.WhatsAppProfile.key:
            return whatsapp.WhatsAppProfile.spec
        return self.spec

    def error_for(self, request: Request, kind: ErrorKind, message: str, *,
                  retry_after_s: float | None = None) -> Response:
        return self.product_error(self.platform_of(request), kind, message,
                                  retry_after_s=retry_after_s)

    def product_error(self, platform: str, kind: ErrorKind, message: str, *,
                      retry_after_s: float | None = None) -> Response:
        """`error()` in the words of another product served here (see `platform_of`)."""
        dialect = self._dialects.get(platform, DIALECT)
        return dialect_error(self.state, dialect, kind, message, retry_after_s=retry_after_s)


__all__ = ["DIALECT", "FacebookProfile", "graph_endpoints"]
