"""Graph API mechanics shared by the Meta profiles (facebook, instagram, threads, whatsapp,
messenger): error bodies, ids, access tokens, request parameters, a per-world registry of
graph objects, and the mounting of several products' routes on one host.

Facts followed (Graph API v23.0):

- Error body `{"error": {"message", "type", "code", "error_subcode"?, "is_transient"?,
  "error_user_title"?, "error_user_msg"?, "fbtrace_id"}}` and the code table (1 unknown,
  2 service, 4 app limit, 17 user limit, 190 token with subcodes 463 expired / 467 invalid,
  368 policy block, 506 duplicate post):
  https://developers.facebook.com/docs/graph-api/guides/error-handling
- Throttling is answered with an error code, not HTTP 429 (Graph); usage comes in the
  `X-App-Usage` / `X-Business-Use-Case-Usage` headers, the latter with
  `estimated_time_to_regain_access` in minutes. Graph sends no `Retry-After`:
  https://developers.facebook.com/docs/graph-api/overview/rate-limiting
- Business-use-case throttle codes as the node references list them: 80001 Page,
  80002 Instagram account, 80006 Messenger:
  https://developers.facebook.com/docs/graph-api/reference/page/
- Missing token (code 104 "An access token is required to request this resource.") and an
  object that is not there or not yours (code 100, subcode 33, "Unsupported post request.
  Object with ID ... does not exist, cannot be loaded due to missing permissions, or does not
  support this operation"), unknown path (code 2500): same error-handling page.

Parameters may come in the query string, a form body, a multipart body or a JSON body; the
token as `access_token` or an `Authorization: Bearer|OAuth` header. JSON-valued form fields
(`recipient={'id':'1'}`, as in Meta's own curl examples with single quotes) are decoded.

One host, several products: graph.facebook.com serves Pages, Instagram, WhatsApp and
Messenger. Each product module declares `GraphEndpoint`s; `mount` turns them into Starlette
routes (each with and without a `/vNN.N` prefix) and, where two products share a path
(`POST /{id}/media`: Instagram containers and WhatsApp uploads), picks the product that owns
the node in the path: an account the product granted a token for, an object it created, or
for `me` the product whose token was sent. Such a request belongs to its product: recorded
under its key, refused in its words (`Dialect`), and hit by its faults. The simulator's gate
(`sim/gate.py`) asks `FacebookProfile.platform_of` and applies the product's HTTP-level faults
(5xx, rate limit, expired token, partial feature) with one draw per request, so the mounted
routes do not (`GraphState.gate_routes_products`, True by default). Routes driven without the
gate can set it to False to have them apply those faults themselves (`product_fault`). Name
and connection faults (DNS, refused, timeout) stay with the host: graph.facebook.com falls
with the facebook profile.
"""

from __future__ import annotations

from sidestep.sim.platforms._graph.errors import (
    Dialect,
    GraphProblem,
    Throttle,
    dialect_error,
    invalid,
    problem_for,
    render,
    unsupported,
)
from sidestep.sim.platforms._graph.routing import (
    HTTP_FAULTS,
    GraphCall,
    GraphEndpoint,
    GraphRoute,
    authenticate,
    endpoint_for,
    mount,
    ok,
    own_node,
    product_fault,
    public_params,
    unknown_path_route,
    web_home_route,
)
from sidestep.sim.platforms._graph.state import (
    GRAPH_VERSION,
    RATE_LIMIT_DOC,
    URL,
    GraphObject,
    GraphState,
    Upload,
    graph_state,
    graph_time,
    media_kind,
    partial_fault_hits,
)

__all__ = [
    "GRAPH_VERSION", "HTTP_FAULTS", "RATE_LIMIT_DOC", "URL", "Dialect", "GraphCall",
    "GraphEndpoint", "GraphObject", "GraphProblem", "GraphRoute", "GraphState", "Throttle",
    "Upload", "authenticate", "dialect_error", "endpoint_for", "graph_state", "graph_time",
    "invalid", "media_kind", "mount", "ok", "own_node", "partial_fault_hits", "problem_for",
    "product_fault", "public_params", "render", "unknown_path_route", "unsupported",
    "web_home_route",
]
