"""Messenger Platform Send API (Graph v23.0 on graph.facebook.com).

Endpoint (mounted on graph.facebook.com by the facebook profile; each with and without the
version prefix):

- `POST /{page-id}/messages` (and `/me/messages`) with a Page token: `recipient: {"id":
  PSID}`, `messaging_type` RESPONSE, UPDATE or MESSAGE_TAG (+ `tag`), `message: {"text"}`
  (at most 2,000 characters) or `message: {"attachment": {"type", "payload"}}`. Answers
  `{"recipient_id", "message_id"}`.
  https://developers.facebook.com/docs/messenger-platform/reference/send-api/

What Messenger does not allow, and the simulator enforces
(https://developers.facebook.com/docs/messenger-platform/policy/policy-overview and
.../send-messages/message-tags):

- There is no broadcast: one request reaches one person who has written to the Page (a PSID).
  A Page cannot message all its followers, so Messenger cannot announce an outage to an
  audience; Sidestep can only answer people who wrote recently.
- Standard messaging (RESPONSE, UPDATE) only within 24 hours of the person's last message;
  after that (#10) subcode 2018278 "This message is sent outside of allowed window".
- After 24 hours only MESSAGE_TAG with CONFIRMED_EVENT_UPDATE, POST_PURCHASE_UPDATE or
  ACCOUNT_UPDATE (never promotional content), or HUMAN_AGENT within 7 days. Marketing needs a
  separate opt-in per person (Marketing Messages / notification messages tokens), which this
  simulator does not model.
- An unknown PSID → (#100) subcode 2018001 "No matching user found".

People "write" to a Page in the simulator through `messenger_state(world).user_messaged(page,
psid, at)`. Errors: Graph's bodies (see `_graph`); throttling 400 code 80006 with
`X-Business-Use-Case-Usage` type `messenger`; media failure (#100) subcode 2018047 "Upload
attachment failure" (also for an attachment while a partial "media" fault is on).
"""

from __future__ import annotations

import base64
import hashlib
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
    GraphProblem,
    GraphState,
    Throttle,
    authenticate,
    dialect_error,
    endpoint_for,
    graph_state,
    invalid,
    mount,
    ok,
    own_node,
    partial_fault_hits,
    problem_for,
    public_params,
    unknown_path_route,
    web_home_route,
)
from sidestep.sim.profile import ErrorKind, Profile
from sidestep.sim.world import SimWorld

DIALECT = Dialect(
    platform="messenger",
    throttle=Throttle(400, 80006, "(#80006) There have been too many messenger api calls to"
                      " this Page account. Wait a bit and try again. For more info, please"
                      " refer to https://developers.facebook.com/docs/graph-api/overview/"
                      "rate-limiting.", "messenger"),
    media_failure=(100, 2018047, "(#100) Upload attachment failure."),
)
TEXT_MAX = 2000
WINDOW = timedelta(hours=24)
HUMAN_AGENT_WINDOW = timedelta(days=7)
ANYTIME_TAGS = ("CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE")
ATTACHMENT_TYPES = ("image", "video", "audio", "file", "template")


@dataclass(slots=True)
class MessengerState:
    """When each person last wrote to each Page, per world."""

    last_inbound: dict[tuple[str, str], datetime] = field(default_factory=dict)

    def user_messaged(self, page_id: str, psid: str, at: datetime) -> None:
        """The person `psid` wrote to `page_id` at `at`: their 24-hour window opens."""
        self.last_inbound[(page_id, psid)] = at


def messenger_state(world: SimWorld) -> MessengerState:
    return graph_state(world).extension("messenger", MessengerState)


def _outside_window() -> GraphProblem:
    return GraphProblem(400, 10, "(#10) This message is sent outside of allowed window. Learn"
                        " more about the new policy here: https://developers.facebook.com/docs/"
                        "messenger-platform/policy-overview", subcode=2018278)


def _message_id(state: GraphState, page: str) -> str:
    digest = hashlib.sha512(f"{page}:{state.world.next_number()}".encode()).digest()
    return "m_" + base64.urlsafe_b64encode(digest).decode().rstrip("=")[:86]


def _check_message(call: GraphCall, message: Any) -> None:
    if not isinstance(message, dict) or bool(message.get("text")) == bool(
            message.get("attachment")):
        raise invalid("(#100) param message must have exactly one of text or attachment")
    if message.get("text") is not None and len(str(message["text"])) > TEXT_MAX:
        raise invalid(f"(#100) Length of param message[text] must be less than or equal to"
                      f" {TEXT_MAX}")
    attachment = message.get("attachment")
    if attachment is None:
        return
    if not isinstance(attachment, dict) or attachment.get("type") not in ATTACHMENT_TYPES:
        raise invalid(f"(#100) param message[attachment][type] must be one of"
                      f" {{{', '.join(ATTACHMENT_TYPES)}}}")
    payload = attachment.get("payload")
    if attachment["type"] != "template":
        url = payload.get("url") if isinstance(payload, dict) else None
        if not (url and URL.match(str(url))) and not (
                isinstance(payload, dict) and payload.get("attachment_id")):
            raise invalid("(#100) param message[attachment][payload] needs a url or an"
                          " attachment_id")
        if partial_fault_hits(call.state.world, "messenger", "media"):
            raise problem_for(call.state, DIALECT, ErrorKind.MEDIA_FAILED, "")


async def _send(call: GraphCall) -> Response:
    page = own_node(call, authenticate(call, DIALECT))
    params = call.params
    recipient = params.get("recipient")
    psid = str(recipient.get("id") or "") if isinstance(recipient, dict) else ""
    if not psid:
        raise invalid("(#100) The parameter recipient is required")
    messaging_type = str(params.get("messaging_type") or "")
    if messaging_type not in ("RESPONSE", "UPDATE", "MESSAGE_TAG"):
        raise invalid("(#100) param messaging_type must be one of {RESPONSE, UPDATE,"
                      " MESSAGE_TAG}")
    tag = str(params.get("tag") or "")
    if messaging_type == "MESSAGE_TAG" and tag not in (*ANYTIME_TAGS, "HUMAN_AGENT"):
        raise invalid("(#100) param tag must be one of {CONFIRMED_EVENT_UPDATE,"
                      " POST_PURCHASE_UPDATE, ACCOUNT_UPDATE, HUMAN_AGENT}")
    _check_message(call, params.get("message"))
    state = messenger_state(call.state.world)
    last = state.last_inbound.get((page, psid))
    if last is None:
        raise invalid("(#100) No matching user found", subcode=2018001)
    age = call.state.world.clock.now() - last
    allowed = age <= WINDOW or (messaging_type == "MESSAGE_TAG" and (
        tag in ANYTIME_TAGS or (tag == "HUMAN_AGENT" and age <= HUMAN_AGENT_WINDOW)))
    if not allowed:
        raise _outside_window()
    message_id = _message_id(call.state, page)
    call.state.world.record.add(platform="messenger", account=page, kind="message",
                                external_id=message_id, payload=public_params(params, {}),
                                idempotency_marker=None)
    return ok({"recipient_id": psid, "message_id": message_id})


def graph_endpoints(state: GraphState) -> list[GraphEndpoint]:
    """The Send API, to be mounted on graph.facebook.com."""
    return [GraphEndpoint(DIALECT, "POST", "/{node}/messages", _send, "text")]


class MessengerProfile(Profile):
    """Messenger's own hosts; its API lives on graph.facebook.com (the facebook profile)."""

    key = "messenger"
    hosts = ("www.messenger.com", "messenger.com", "m.me")
    spec = None

    def __init__(self, world: SimWorld) -> None:
        super().__init__(world)
        self.state = graph_state(world)
        self._routes = [web_home_route(self.state, "Messenger"),
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
