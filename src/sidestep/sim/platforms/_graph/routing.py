"""Graph requests (parameters, tokens) and the mounting of products' routes on one host."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.convertors import Convertor, register_url_convertor
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route

from sidestep.sim.platforms._graph.errors import (
    Dialect,
    GraphProblem,
    invalid,
    problem_for,
    render,
    unsupported,
)
from sidestep.sim.platforms._graph.state import GRAPH_VERSION, GraphState, Upload
from sidestep.sim.profile import ErrorKind
from sidestep.sim.world import Fault


class GraphVersionConvertor(Convertor[str]):
    """`v23.0`, `v21.0`...: the optional version segment of every Graph path."""

    regex = r"v\d+\.\d+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("graph_version", GraphVersionConvertor())


@dataclass(slots=True)
class GraphCall:
    """One request, parsed: what a product handler receives."""

    request: Request
    params: dict[str, Any]
    files: dict[str, Upload]
    state: GraphState

    @property
    def node(self) -> str:
        return str(self.request.path_params.get("node", ""))


Handler = Callable[[GraphCall], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class GraphEndpoint:
    """One product's endpoint: `path` without the version prefix, e.g. `/{node}/feed`."""

    dialect: Dialect
    method: str
    path: str
    handler: Handler
    feature: str  # "text" | "media" | "read" | "auth"
    max_upload_bytes: int = 0  # multipart bodies above this are refused before parsing

    @property
    def platform(self) -> str:
        return self.dialect.platform


def _decode(value: str) -> Any:
    text = value.strip()
    if not text or text[0] not in "[{":
        return value
    for candidate in (text, text.replace("'", '"')):
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    return value


async def read_params(request: Request, *, max_upload_bytes: int) -> tuple[
        dict[str, Any], dict[str, Upload]]:
    """Query string and body merged (body wins); files read up to `max_upload_bytes` + 1."""
    params: dict[str, Any] = {k: _decode(v) for k, v in request.query_params.items()}
    files: dict[str, Upload] = {}
    content_type = request.headers.get("content-type", "")
    if request.method in ("GET", "DELETE"):
        return params, files
    if content_type.startswith("application/json"):
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError as exc:
            raise invalid("(#100) The request body is not valid JSON") from exc
        if not isinstance(body, dict):
            raise invalid("(#100) The request body must be a JSON object")
        params.update(body)
        return params, files
    file_cap = max_upload_bytes if max_upload_bytes > 0 else 1024 * 1024
    form = await request.form(max_part_size=1024 * 1024)
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            data = await value.read(file_cap + 1)
            files[key] = Upload(value.filename or "", value.content_type or "", data)
        else:
            params[key] = _decode(value)
    return params, files


def access_token(request: Request, params: dict[str, Any]) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() in ("bearer", "oauth") and token.strip():
        return token.strip()
    value = params.get("access_token")
    return str(value) if value else None


def authenticate(call: GraphCall, dialect: Dialect) -> str:
    """The account behind the request's token for `dialect.platform`, or a Graph 104/190."""
    token = access_token(call.request, call.params)
    if token is None:
        raise GraphProblem(dialect.auth_status, 104,
                           "An access token is required to request this resource.")
    account = call.state.world.account_for(dialect.platform, token)
    if account is None:
        raise problem_for(call.state, dialect, ErrorKind.AUTH_MISSING, "")
    return account


def own_node(call: GraphCall, account: str, verb: str = "post",
             error_type: str = "OAuthException") -> str:
    """The node in the path when it is the token's account (or `me`); else Graph 100/33."""
    if call.node in ("me", account):
        return account
    raise unsupported(verb, call.node, error_type)


def ok(payload: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(payload, status_code=status,
                        headers={"facebook-api-version": GRAPH_VERSION})


# ---- mounting -------------------------------------------------------------------------------


def _owner_platform(state: GraphState, node: str, token: str | None,
                    platforms: Sequence[str]) -> str | None:
    world = state.world
    if node == "me":
        return next((p for p in platforms if token and world.account_for(p, token)), None)
    obj = state.objects.get(node)
    if obj is not None and obj.platform in platforms:
        return obj.platform
    owners = [p for p in platforms if node in world.tokens.get(p, {}).values()]
    if token is not None:
        owners.sort(key=lambda p: world.account_for(p, token) != node)
    return owners[0] if owners else None


def choose(state: GraphState, request: Request, group: Sequence[GraphEndpoint],
           params: dict[str, Any] | None = None) -> GraphEndpoint:
    """The endpoint (product) that answers a request on a path several products share."""
    if len(group) == 1:
        return group[0]
    token = access_token(request, params if params is not None else dict(request.query_params))
    node = str(request.path_params.get("node", ""))
    owner = _owner_platform(state, node, token, [e.platform for e in group])
    return next((e for e in group if e.platform == owner), group[0])


HTTP_FAULTS = (Fault.HTTP_5XX, Fault.RATE_LIMITED, Fault.AUTH_EXPIRED, Fault.PARTIAL)


def product_fault(state: GraphState, endpoint: GraphEndpoint) -> Response | None:
    """The product's own HTTP-level fault for a request another product's host received
    (graph.facebook.com serving Instagram), answered as the simulator's gate would; None
    when none applies. Name and connection faults stay with the host's profile."""
    world, order = state.world, list(Fault)
    for active in sorted(world.faults.active(endpoint.platform),
                         key=lambda f: order.index(f.fault)):
        if active.fault not in HTTP_FAULTS or not active.covers(endpoint.feature):
            continue
        if active.rate < 1.0 and world.rng.random() >= active.rate:
            continue
        retry_after_s = None
        if active.fault is Fault.HTTP_5XX:
            kind = ErrorKind(active.params.get("kind", ErrorKind.SERVER_ERROR))
        elif active.fault is Fault.RATE_LIMITED:
            kind = ErrorKind.RATE_LIMITED
            retry_after_s = float(active.params.get("retry_after_s", 30))
        elif active.fault is Fault.AUTH_EXPIRED:
            kind = ErrorKind.AUTH_EXPIRED
        else:
            kind = ErrorKind(active.params.get("kind", ErrorKind.MEDIA_FAILED))
        message = f"{endpoint.platform} {active.fault.value} (simulated)"
        return render(state, problem_for(state, endpoint.dialect, kind, message,
                                         retry_after_s=retry_after_s))
    return None


def _dispatcher(state: GraphState, group: Sequence[GraphEndpoint], served_by: str
                ) -> Callable[[Request], Awaitable[Response]]:
    limit = max(e.max_upload_bytes for e in group)

    async def endpoint(request: Request) -> Response:
        declared = int(request.headers.get("content-length") or 0)
        if limit and declared > limit + 64 * 1024:
            return render(state, invalid("(#100) The uploaded file is too large"))
        try:
            params, files = await read_params(request, max_upload_bytes=limit)
            chosen = choose(state, request, group, params)
            if chosen.platform != served_by and not state.gate_routes_products:
                refused = product_fault(state, chosen)
                if refused is not None:
                    return refused
            return await chosen.handler(GraphCall(request, params, files, state))
        except GraphProblem as problem:
            return render(state, problem)

    return endpoint


class GraphRoute(Route):
    """A route that remembers the product endpoints it dispatches to."""

    def __init__(self, path: str, state: GraphState, group: Sequence[GraphEndpoint],
                 served_by: str) -> None:
        super().__init__(path, _dispatcher(state, group, served_by), methods=[group[0].method])
        self.graph_endpoints = tuple(group)


def mount(state: GraphState, endpoints: Sequence[GraphEndpoint], *, served_by: str
          ) -> list[BaseRoute]:
    """Routes for `endpoints`, versioned (`/v23.0/...`) and not, shared paths dispatched;
    `served_by` is the key of the profile whose host answers them."""
    groups: dict[tuple[str, str], list[GraphEndpoint]] = {}
    for endpoint in endpoints:
        groups.setdefault((endpoint.method, endpoint.path), []).append(endpoint)
    routes: list[BaseRoute] = []
    for prefix in ("/{version:graph_version}", ""):
        for (_method, path), group in groups.items():
            routes.append(GraphRoute(prefix + path, state, group, served_by))
    return routes


def unknown_path_route(state: GraphState) -> BaseRoute:
    """Graph's answer to a path it does not know (code 2500), instead of a bare 404."""

    async def endpoint(request: Request) -> Response:
        return render(state, invalid(f"Unknown path components: {request.url.path}", code=2500))

    return Route("/{rest:path}", endpoint,
                 methods=["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD"])


def endpoint_for(state: GraphState, routes: Sequence[BaseRoute],
                 request: Request) -> GraphEndpoint | None:
    """The endpoint a request would reach (from the path, query and headers only)."""
    for route in routes:
        if not isinstance(route, GraphRoute):
            continue
        match, child = route.matches(request.scope)
        if match is Match.FULL:
            probe = Request({**request.scope, "path_params": child.get("path_params", {})})
            return choose(state, probe, route.graph_endpoints)
    return None


def web_home_route(state: GraphState, site: str) -> BaseRoute:
    """`GET /`: a small page on the web hosts (what HTTP probes fetch); Graph's 2500 on API
    hosts (`graph.*`), as the real API answers a bare root."""

    async def endpoint(request: Request) -> Response:
        if request.url.hostname and request.url.hostname.startswith("graph."):
            return render(state, invalid("Unknown path components: /", code=2500))
        html = f"<!DOCTYPE html><html><head><title>{site}</title></head><body></body></html>"
        return Response(html, media_type="text/html; charset=utf-8")

    return Route("/", endpoint, methods=["GET", "HEAD"])


def public_params(params: dict[str, Any], files: dict[str, Upload]) -> dict[str, Any]:
    """What a platform was asked to publish, as recorded: parameters without the token, and
    files described by name, type and size."""
    payload = {k: v for k, v in params.items() if k != "access_token"}
    for name, upload in files.items():
        payload[name] = {"filename": upload.filename, "content_type": upload.content_type,
                         "size": len(upload.data)}
    return payload
