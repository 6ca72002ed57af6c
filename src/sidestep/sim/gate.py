"""The gate in front of every simulated platform: faults, then the spec check, then the routes.

`PlatformGate` is the ASGI app each platform listener serves. For every request it applies the
fault in force for the request's feature, then checks the request against the platform's
published spec (a malformed one gets the profile's INVALID_REQUEST error), then runs the
profile's route.

| fault          | what a client sees                                                       |
|----------------|--------------------------------------------------------------------------|
| refused        | connection refused: the platform's listener is closed until it clears    |
| timeout        | the request is accepted and never answered (until the client gives up)   |
| slow           | the normal answer after `delay_s` (default 5) seconds                    |
| http_5xx       | the profile's SERVER_ERROR (or `kind: unavailable`) error response       |
| rate_limited   | the profile's RATE_LIMITED error with `retry_after_s` (default 30)       |
| auth_expired   | the profile's AUTH_EXPIRED error                                         |
| partial        | the profile's `kind` error (default media_failed), for that feature only |
| garbage        | `variant` json (invalid JSON), html (a CDN's 502 page) or truncated body |
| dns_*          | nothing here: the DNS server (or `MapResolver`) fails the lookup         |

`refused` and the DNS faults act on connections and names, so their `feature` and `rate` do not
apply to the listener (the server closes it; a request that slips in is dropped unanswered).
On a host several products share (graph.facebook.com), `refused` and `timeout` are the host
profile's; the other faults are those of the product a request belongs to
(`Profile.platform_of`), drawn once per request and answered in its words
(`Profile.error_for`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from sidestep.sim.profile import ErrorKind, Profile, SpecRef
from sidestep.sim.specs import check_request
from sidestep.sim.world import ActiveFault, Fault

__all__ = ["GARBAGE_VARIANTS", "PlatformGate", "QuietDeliberateCuts", "check_fault_params"]

GARBAGE_VARIANTS = ("json", "html", "truncated")
_CDN_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
_BROKEN_JSON = b'{"id": "17841400000000001", "created_at": "2026-11-23T12:00:00Z", "data": [{'
_TRUNCATED_JSON = b'{"id": "17841400000000002", "status": "published", "permalink": "https://x/p/2"}'

# Set while the gate cuts a response short on purpose, so uvicorn's complaint about it
# ("returned without completing response") is not logged as if it were a bug.
_cut_on_purpose: contextvars.ContextVar[bool] = contextvars.ContextVar("cut", default=False)


class QuietDeliberateCuts(logging.Filter):
    """Drops uvicorn's complaint about a response the gate cut short on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _cut_on_purpose.get()


_HOST_FAULTS = (Fault.REFUSED, Fault.TIMEOUT)  # a shared host falls with its own profile
_FAULT_ORDER = {fault: n for n, fault in enumerate(Fault)}  # as FaultBoard.applicable


def _acts_on_names(active: ActiveFault) -> bool:
    """DNS faults (and a timeout that drops DNS queries) never reach an HTTP exchange."""
    return active.fault.is_dns or (active.fault is Fault.TIMEOUT and bool(active.params.get("dns")))


def check_fault_params(fault: Fault, params: dict[str, Any]) -> None:
    """Raise ValueError for fault params the gate could not honour."""
    if fault is Fault.HTTP_5XX and params.get("kind", "server_error") not in (
        ErrorKind.SERVER_ERROR, ErrorKind.UNAVAILABLE
    ):
        raise ValueError("http_5xx takes kind 'server_error' or 'unavailable'")
    if fault is Fault.PARTIAL and params.get("kind", "media_failed") not in set(ErrorKind):
        raise ValueError(f"partial takes kind one of {', '.join(ErrorKind)}")
    if fault is Fault.GARBAGE and params.get("variant", "json") not in GARBAGE_VARIANTS:
        raise ValueError(f"garbage takes variant one of {', '.join(GARBAGE_VARIANTS)}")
    for name in ("delay_s", "retry_after_s"):
        if name in params and not isinstance(params[name], int | float):
            raise ValueError(f"{name} must be a number of seconds")


class PlatformGate:
    """ASGI app in front of one profile: faults, then spec validation, then the routes."""

    def __init__(self, profile: Profile, *, stopping: asyncio.Event,
                 drop_connections: Callable[[], None]) -> None:
        self.profile = profile
        self.world = profile.world
        self._stopping = stopping
        self._drop_connections = drop_connections
        self._app = Starlette(routes=profile.routes(), exception_handlers={404: self._not_found})

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        detail = exc.detail if isinstance(exc, HTTPException) else "Not Found"
        return self.profile.error_for(request, ErrorKind.NOT_FOUND,
                                      f"{request.url.path}: {detail}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off and websockets are not served
        request = Request(scope)
        fault = self._fault_for(request)
        if fault is not None:
            if fault.fault is Fault.SLOW:
                if not await self._sleep(float(fault.params.get("delay_s", 5.0))):
                    return await self._hold(receive)
            else:
                return await self._apply(fault, request, receive, send)
        spec = self.profile.spec_for(request)
        if spec is not None:
            body = await _read_body(receive)
            if body is None:
                return  # the client went away
            problems = await self._spec_problems(scope, body, spec)
            if problems:
                more = f"; and {len(problems) - 5} more" if len(problems) > 5 else ""
                message = "; ".join(problems[:5]) + more
                response = self.profile.error_for(request, ErrorKind.INVALID_REQUEST, message)
                return await response(scope, receive, send)
            receive = _replay(body, receive)
        await self._app(scope, receive, send)

    def _fault_for(self, request: Request) -> ActiveFault | None:
        """The fault this exchange meets, as `FaultBoard.applicable` would pick it, except:

        - DNS faults are skipped: a request that reached us by address has resolved already;
        - on a host several products share (graph.facebook.com), `refused` and `timeout` are
          the host profile's, the others those of the product the request belongs to
          (`Profile.platform_of`), answered in that product's words (`Profile.error_for`).
        """
        feature = ("media" if request.url.hostname in media_hosts()
                   else self.profile.feature_of(request))
        host, product = self.profile.key, self.profile.platform_of(request)
        candidates = [f for f in self.world.faults.active(host)
                      if f.fault in _HOST_FAULTS or product == host]
        if product != host:
            candidates += [f for f in self.world.faults.active(product)
                           if f.fault not in _HOST_FAULTS]
        for active in sorted(candidates, key=lambda f: _FAULT_ORDER[f.fault]):
            if _acts_on_names(active) or not active.covers(feature):
                continue
            if active.rate >= 1.0 or self.world.rng.random() < active.rate:
                return active
        return None

    async def _apply(self, active: ActiveFault, request: Request, receive: Receive,
                     send: Send) -> None:
        params, profile = active.params, self.profile
        match active.fault:
            case Fault.REFUSED:  # the listener should be closed; this request slipped in
                self._drop_connections()  # this one too: no answer, as from a dead server
                return await self._hold(receive)
            case Fault.TIMEOUT:
                return await self._hold(receive)
            case Fault.GARBAGE:
                variant = params.get("variant") or self.world.rng.choice(GARBAGE_VARIANTS)
                return await self._garbage(str(variant), send)
            case Fault.HTTP_5XX:
                kind = ErrorKind(params.get("kind", ErrorKind.SERVER_ERROR))
                response = profile.error_for(request, kind, "simulated server error")
            case Fault.RATE_LIMITED:
                response = profile.error_for(
                    request, ErrorKind.RATE_LIMITED, "rate limit exceeded (simulated)",
                    retry_after_s=float(params.get("retry_after_s", 30)),
                )
            case Fault.AUTH_EXPIRED:
                response = profile.error_for(request, ErrorKind.AUTH_EXPIRED,
                                             "access token has expired")
            case Fault.PARTIAL:
                # A failing CDN answers 5xx; an API's media step answers in the API's words.
                default = (ErrorKind.UNAVAILABLE if request.url.hostname in media_hosts()
                           else ErrorKind.MEDIA_FAILED)
                kind = ErrorKind(params.get("kind", default))
                response = profile.error_for(request, kind,
                                             f"{active.feature} is failing (simulated)")
            case _:
                raise AssertionError(f"fault {active.fault} does not reach the gate")
        await response(request.scope, receive, send)

    async def _sleep(self, delay_s: float) -> bool:
        """Wait `delay_s`; False if the simulator began stopping meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=delay_s)
        return not self._stopping.is_set()

    @staticmethod
    async def _hold(receive: Receive) -> None:
        """Never answer: wait until the client (or the stopping server) drops the connection."""
        while (await receive())["type"] != "http.disconnect":
            pass

    @staticmethod
    async def _garbage(variant: str, send: Send) -> None:
        status, ctype, body, length = 200, b"application/json", _BROKEN_JSON, len(_BROKEN_JSON)
        if variant == "html":
            status, ctype, body, length = 502, b"text/html", _CDN_502, len(_CDN_502)
        elif variant == "truncated":
            body, length = _TRUNCATED_JSON[:40], len(_TRUNCATED_JSON)
        headers = [(b"content-type", ctype), (b"content-length", str(length).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        cut = length > len(body)
        await send({"type": "http.response.body", "body": body, "more_body": cut})
        if cut:
            _cut_on_purpose.set(True)  # returning now makes uvicorn close the connection

    async def _spec_problems(self, scope: Scope, body: bytes, spec: SpecRef) -> list[str]:
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        server = urlsplit(spec.server)
        host = headers.get("host", "").split(":")[0].lower()
        netloc = host if host in self.profile.hosts else server.netloc
        query = scope.get("query_string", b"").decode("latin-1")
        url = f"{server.scheme}://{netloc}{scope['path']}" + (f"?{query}" if query else "")
        check = await asyncio.to_thread(
            check_request, spec, method=scope["method"], url=url, headers=headers, body=body
        )
        return check.problems


@functools.cache
def media_hosts() -> frozenset[str]:
    """Hosts the catalogue probes as a platform's media (CDN) feature: every request to them
    is a media request, so a partial media fault reaches the monitor's CDN probes too."""
    from sidestep.catalogue import default_catalogue

    return frozenset(
        host for platform in default_catalogue().all() for probe in platform.probes
        if probe.feature == "media" and (host := urlsplit(probe.url).hostname)
    )


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
