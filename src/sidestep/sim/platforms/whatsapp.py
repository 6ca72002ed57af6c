"""WhatsApp Business Cloud API (Graph v23.0 on graph.facebook.com).

Endpoints (mounted on graph.facebook.com by the facebook profile; also on this profile's
hosts; each with and without the version prefix):

- `POST /{Version}/{Phone-Number-ID}/messages` — `messaging_product: "whatsapp"`, `to`,
  `type` `text` (`text.body` at most 4,096 characters), `template` (`name`,
  `language.code`, `components`), `image`/`video`/`audio`/`document`/`sticker` (`id` of an
  uploaded file or `link`, caption at most 1,024). Answers `{"messaging_product", "contacts":
  [{"input", "wa_id"}], "messages": [{"id": "wamid..."}]}` (`message_status: "accepted"` for
  templates). https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages and
  spec `whatsapp/business-messaging-api_v23.0.yaml` (operation `sendMessage`).
- `POST /{Version}/{Phone-Number-ID}/media` — multipart `file`, `type` (MIME),
  `messaging_product`; answers `{"id"}`. Limits: image JPEG/PNG 5 MB, video MP4/3GPP 16 MB,
  audio 16 MB, document 100 MB, sticker WebP 500 KB.
  https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media (spec
  `uploadImage`).
- `GET /{Version}/{Phone-Number-ID}` — the number's `id`, `display_phone_number`,
  `verified_name`, `quality_rating` (the default fields; `fields` picks others). Spec
  `getPhoneNumberById`;
  https://developers.facebook.com/docs/whatsapp/cloud-api/reference/phone-numbers

Rules the simulator keeps (https://developers.facebook.com/docs/whatsapp/pricing and
.../cloud-api/guides/send-message-templates): a business may send free-form messages (text,
media) only within 24 hours of the customer's last message (`whatsapp_state(world).
customer_messaged(...)`); outside it only approved templates go out. Meta reports a free-form
message outside the window asynchronously: the send is answered 200 with a wamid and the
`messages` webhook later carries status `failed` with error 131047 "Re-engagement message".
The simulator does the same: the message is recorded with kind "undeliverable" (not
"message") and a webhook-shaped status lands in `whatsapp_state(world).statuses`. Templates
must exist (`hello_world`/`en_US`, every account's sample, is there; add others with
`add_template`): unknown → HTTP 404, 132001; wrong parameter count → 132000. The API checks no
opt-in: collecting it before a broadcast is the business's duty, and Sidestep's.

Errors (https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes): Graph's
body plus `error_data: {messaging_product, details}`; token errors are HTTP 401 (code 190,
or 104 with no token); throttling is HTTP 429 code 4 with `x-business-use-case-usage`, as the
spec's `TooManyRequests` response says (its example message "Rate limit exceeded"); media
failure 131053 "Media upload error" (also a media message while a partial "media" fault is
on); invalid parameters code 100 with the detail in `error_data.details`.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
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
    media_kind,
    mount,
    ok,
    own_node,
    partial_fault_hits,
    problem_for,
    public_params,
    unknown_path_route,
    web_home_route,
)
from sidestep.sim.profile import ErrorKind, Profile, SpecRef
from sidestep.sim.world import SimWorld

DIALECT = Dialect(
    platform="whatsapp",
    throttle=Throttle(429, 4, "Rate limit exceeded", "whatsapp"),
    media_failure=(131053, None, "(#131053) Media upload error"),
    auth_status=401,
    whatsapp_error_data=True,
)
TEXT_MAX, CAPTION_MAX = 4096, 1024
WINDOW = timedelta(hours=24)
MB = 1024 * 1024
MEDIA_LIMITS = {  # MIME type -> max bytes (Cloud API media reference)
    "image/jpeg": 5 * MB, "image/png": 5 * MB, "video/mp4": 16 * MB, "video/3gpp": 16 * MB,
    "audio/aac": 16 * MB, "audio/amr": 16 * MB, "audio/mpeg": 16 * MB, "audio/mp4": 16 * MB,
    "audio/ogg": 16 * MB, "application/pdf": 100 * MB, "text/plain": 100 * MB,
    "image/webp": 512 * 1024,
}
MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
FREE_FORM_TYPES = (*MEDIA_TYPES, "text", "location", "contacts", "interactive", "reaction")
MEDIA_ID_BASE = 4_490_000_000_000_000  # 16 digits, like Cloud API media ids
ERROR_CODES_URL = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"
RE_ENGAGEMENT = ("Message failed to send because more than 24 hours have passed since the"
                 " customer last replied to this number.")


@dataclass(slots=True)
class WhatsAppState:
    """Templates, customer-service windows and delivery statuses, per world."""

    templates: dict[tuple[str, str], int] = field(
        default_factory=lambda: {("hello_world", "en_US"): 0})
    last_inbound: dict[tuple[str, str], datetime] = field(default_factory=dict)
    statuses: list[dict[str, Any]] = field(default_factory=list)

    def add_template(self, name: str, language: str, *, body_params: int = 0) -> None:
        """An approved template with `body_params` body variables ({{1}}, {{2}}...)."""
        self.templates[(name, language)] = body_params

    def customer_messaged(self, phone_number_id: str, wa_id: str, at: datetime) -> None:
        """The customer `wa_id` wrote to the business at `at`: its 24-hour window opens."""
        self.last_inbound[(phone_number_id, wa_id)] = at


def whatsapp_state(world: SimWorld) -> WhatsAppState:
    return graph_state(world).extension("whatsapp", WhatsAppState)


def _bad(details: str, message: str = "(#100) Invalid parameter", code: int = 100,
         status: int = 400) -> GraphProblem:
    return GraphProblem(status, code, message,
                        error_data={"messaging_product": "whatsapp", "details": details})


def _wamid(state: GraphState, phone: str, wa_id: str) -> str:
    """A wamid shaped like Meta's: base64 of the recipient and an 18-hex-digit message key."""
    key = hashlib.sha256(f"{phone}:{state.world.next_number()}".encode()).hexdigest()[:18]
    raw = (b"\x1c\x18" + bytes([len(wa_id)]) + wa_id.encode() + b"\x15\x02\x00\x11\x18\x12"
           + key.upper().encode() + b"\x00")
    return "wamid." + base64.b64encode(raw).decode()


def _check_template(template: Any, wa: WhatsAppState) -> None:
    if not isinstance(template, dict) or not template.get("name"):
        raise _bad("Param template['name'] is required", "(#131008) Required parameter is"
                   " missing", 131008)
    language = template.get("language")
    code = language.get("code") if isinstance(language, dict) else None
    if not code:
        raise _bad("Param template['language']['code'] is required",
                   "(#131008) Required parameter is missing", 131008)
    expected = wa.templates.get((str(template["name"]), str(code)))
    if expected is None:
        raise _bad(f"template name ({template['name']}) does not exist in {code}",
                   "(#132001) Template name does not exist in the translation", 132001, 404)
    given = sum(len(c.get("parameters") or []) for c in template.get("components") or []
                if isinstance(c, dict) and c.get("type") == "body")
    if given != expected:
        raise _bad(f"body: number of localizable_params ({given}) does not match the expected"
                   f" number of params ({expected})", "(#132000) Number of parameters does not"
                   " match the expected number of params", 132000)


def _check_media(call: GraphCall, phone: str, kind: str, media: Any) -> None:
    if not isinstance(media, dict) or bool(media.get("id")) == bool(media.get("link")):
        raise _bad(f"Param {kind} must have exactly one of id or link")
    if media.get("id"):
        obj = call.state.find(str(media["id"]), "whatsapp", "media")
        if obj is None or obj.owner != phone:
            raise _bad(f"Param {kind}['id'] is not a valid media id for this phone number")
    elif not URL.match(str(media["link"])):
        raise _bad(f"Param {kind}['link'] must be an http(s) URL")
    if len(str(media.get("caption") or "")) > CAPTION_MAX:
        raise _bad(f"Param {kind}['caption'] must be at most {CAPTION_MAX} characters long")
    if partial_fault_hits(call.state.world, "whatsapp", "media"):
        raise problem_for(call.state, DIALECT, ErrorKind.MEDIA_FAILED,
                          "Message failed to send because the media could not be processed")


async def _messages(call: GraphCall) -> Response:
    phone = own_node(call, authenticate(call, DIALECT))
    params, wa = call.params, whatsapp_state(call.state.world)
    if params.get("messaging_product") != "whatsapp":
        raise _bad("The parameter messaging_product is required and must be whatsapp",
                   "(#100) The parameter messaging_product is required.")
    to = str(params.get("to") or "")
    wa_id = re.sub(r"[\s\-()+]", "", to)
    if not to:
        raise _bad("The parameter to is required", "(#100) The parameter to is required.")
    if not wa_id.isdigit() or not 8 <= len(wa_id) <= 15:
        raise _bad(f"Param to is not a valid phone number: {to}",
                   "(#131009) Parameter value is not valid", 131009)
    kind = str(params.get("type") or "text")
    if kind not in (*FREE_FORM_TYPES, "template"):
        raise _bad(f"Unsupported message type: {kind}", "(#131051) Unsupported message type",
                   131051)
    if kind == "text":
        body = params.get("text", {}).get("body") if isinstance(params.get("text"), dict) else None
        if not body:
            raise _bad("Param text['body'] is required", "(#131008) Required parameter is"
                       " missing", 131008)
        if len(str(body)) > TEXT_MAX:
            raise _bad(f"Param text['body'] must be at most {TEXT_MAX} characters long")
    elif kind == "template":
        _check_template(params.get("template"), wa)
    elif kind in MEDIA_TYPES:
        _check_media(call, phone, kind, params.get(kind))
    world = call.state.world
    now = world.clock.now()
    wamid = _wamid(call.state, phone, wa_id)
    opened = wa.last_inbound.get((phone, wa_id))
    deliverable = kind == "template" or (opened is not None and now - opened <= WINDOW)
    status: dict[str, Any] = {"id": wamid, "status": "sent" if deliverable else "failed",
                              "timestamp": str(int(now.timestamp())), "recipient_id": wa_id}
    if not deliverable:
        status["errors"] = [{"code": 131047, "title": "Re-engagement message",
                             "message": "Re-engagement message",
                             "error_data": {"details": RE_ENGAGEMENT}, "href": ERROR_CODES_URL}]
    wa.statuses.append(status)
    world.record.add(platform="whatsapp", account=phone,
                     kind="message" if deliverable else "undeliverable", external_id=wamid,
                     payload=public_params(params, {}), idempotency_marker=None)
    message: dict[str, Any] = {"id": wamid}
    if kind == "template":
        message["message_status"] = "accepted"
    return ok({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": wa_id}],
               "messages": [message]})


async def _media(call: GraphCall) -> Response:
    phone = own_node(call, authenticate(call, DIALECT))
    upload = call.files.get("file")
    if call.params.get("messaging_product") != "whatsapp":
        raise _bad("The parameter messaging_product is required and must be whatsapp",
                   "(#100) The parameter messaging_product is required.")
    if upload is None:
        raise _bad("The parameter file is required", "(#100) The parameter file is required.")
    declared = str(call.params.get("type") or upload.content_type or "")
    limit = MEDIA_LIMITS.get(declared)
    if limit is None:
        raise _bad(f"Param type must be a supported MIME type, got {declared!r}")
    if len(upload.data) > limit:
        raise problem_for(call.state, DIALECT, ErrorKind.MEDIA_FAILED,
                          f"The file is {len(upload.data)} bytes; {declared} is limited to"
                          f" {limit} bytes")
    sniffed = media_kind(upload.data)
    if sniffed is not None and sniffed.split("/")[0] != declared.split("/")[0]:
        raise problem_for(call.state, DIALECT, ErrorKind.MEDIA_FAILED,
                          f"The file is {sniffed}, not the declared {declared}")
    media = call.state.add(GraphObject(call.state.new_id(MEDIA_ID_BASE), "whatsapp", phone,
                                       "media", {"mime_type": declared,
                                                 "file_size": len(upload.data)}))
    call.state.keep_blob(media, upload.data)
    return ok({"id": media.id})


async def _phone_number(call: GraphCall) -> Response:
    phone = own_node(call, authenticate(call, DIALECT), "get")
    values = {"id": phone, "display_phone_number": f"+1 555-{phone[-4:]:0>4}",
              "verified_name": f"Business {phone}", "quality_rating": "GREEN",
              "code_verification_status": "VERIFIED", "name_status": "APPROVED"}
    wanted = str(call.params.get("fields") or "id,display_phone_number,verified_name,"
                 "quality_rating").split(",")
    return ok({k: values[k] for k in ["id", *(w.strip() for w in wanted)] if k in values})


def graph_endpoints(state: GraphState) -> list[GraphEndpoint]:
    """The Cloud API endpoints, to be mounted on graph.facebook.com."""
    return [
        GraphEndpoint(DIALECT, "POST", "/{node}/messages", _messages, "text"),
        GraphEndpoint(DIALECT, "POST", "/{node}/media", _media, "media",
                      max_upload_bytes=max(MEDIA_LIMITS.values())),
        GraphEndpoint(DIALECT, "GET", "/{node}", _phone_number, "read"),
    ]


class WhatsAppProfile(Profile):
    """WhatsApp's own hosts; its API lives on graph.facebook.com (the facebook profile)."""

    key = "whatsapp"
    hosts = ("www.whatsapp.com", "whatsapp.com", "web.whatsapp.com", "api.whatsapp.com",
             "wa.me", "whatsapp.net", "mmg.whatsapp.net")
    spec = SpecRef(file="whatsapp/business-messaging-api_v23.0.yaml",
                   server="https://graph.facebook.com")

    def __init__(self, world: SimWorld) -> None:
        super().__init__(world)
        self.state = graph_state(world)
        self._routes = [web_home_route(self.state, "WhatsApp"),
                        *mount(self.state, graph_endpoints(self.state), served_by=self.key),
                        unknown_path_route(self.state)]

    def routes(self) -> list[BaseRoute]:
        return list(self._routes)

    def feature_of(self, request: Request) -> str:
        endpoint = endpoint_for(self.state, self._routes, request)
        return endpoint.feature if endpoint is not None else "read"

    def error(self, kind: ErrorKind, message: str, *, retry_after_s: float | None = None
              ) -> Response:
        return dialect_error(self.state, DIALECT, kind, message, retry_after_s=retry_after_s)
