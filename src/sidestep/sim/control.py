"""The simulator's control API: faults on and off, the record of accepted posts, tokens, hosts.

A small Starlette app served on 127.0.0.1:<control_port>, JSON in and out. Tests, the CLI
(`sidestep sim fault ...`) and scenario replay drive the simulator through it.

| method and path             | does                                                         |
|-----------------------------|--------------------------------------------------------------|
| GET /health                 | `{"status": "ok", "platforms": [...]}`                       |
| GET /faults                 | the faults in force                                          |
| POST /faults                | `{platform, fault, feature?, rate?, params?}` -> 201 + fault |
| DELETE /faults              | clear every fault -> `{"cleared": n}`                        |
| DELETE /faults/{platform}   | clear one platform's faults (`?fault=F`: only F) -> cleared  |
| GET /record?platform=P      | every accepted post, in order (optionally one platform's)    |
| DELETE /record              | forget the record -> `{"cleared": n}`                        |
| POST /tokens                | `{platform, token, account}` -> 201: the token is accepted   |
| GET /hosts                  | `{"hosts": {hostname: ip}, "http_port": p, "dns": [ip, port]}`|

Errors are `{"error": "<one line>"}` with 400 (unknown platform or fault, a bad body) or 404.
"""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sidestep.sim.transport import INTERNET
from sidestep.sim.world import ActiveFault, Fault, RecordedPost, SimWorld

__all__ = ["ControlTarget", "build_control_app", "fault_to_json", "post_to_json"]


class ControlTarget(Protocol):
    """What the control API needs from the simulator (`Simulator` is one)."""

    @property
    def world(self) -> SimWorld: ...

    @property
    def platforms(self) -> list[str]: ...

    @property
    def http_port(self) -> int: ...

    @property
    def dns_address(self) -> tuple[str, int] | None: ...

    def host_map(self) -> dict[str, str]: ...

    async def set_fault(self, platform: str, fault: Fault | str, *, feature: str | None = None,
                        rate: float = 1.0, **params: Any) -> ActiveFault: ...

    async def clear_faults(self, platform: str | None = None,
                           fault: Fault | None = None) -> int: ...


class _FaultIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    platform: str
    fault: str
    feature: str | None = None
    rate: float = 1.0
    params: dict[str, Any] = Field(default_factory=dict)


class _TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    platform: str
    token: str = Field(min_length=1)
    account: str = Field(min_length=1)


def fault_to_json(active: ActiveFault) -> dict[str, Any]:
    return {
        "platform": active.platform,
        "fault": str(active.fault),
        "feature": active.feature,
        "rate": active.rate,
        "params": active.params,
        "since": active.since.isoformat(),
    }


def post_to_json(post: RecordedPost) -> dict[str, Any]:
    return {
        "seq": post.seq,
        "platform": post.platform,
        "account": post.account,
        "kind": post.kind,
        "external_id": post.external_id,
        "payload": post.payload,
        "idempotency_marker": post.idempotency_marker,
        "at": post.at.isoformat(),
    }


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _body(request: Request, model: type[BaseModel]) -> Any:
    """The request body parsed into `model`; HTTPException(400) with one line otherwise."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise HTTPException(400, f"{where}: {first['msg']}") from exc


def build_control_app(sim: ControlTarget) -> Starlette:
    """The control API over `sim` (see the module docstring for the endpoints)."""

    def known(platform: str) -> str:
        if platform not in sim.platforms and platform != INTERNET:
            raise HTTPException(
                400, f"unknown platform {platform!r}; known: {', '.join(sim.platforms)}"
            )
        return platform

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "platforms": sim.platforms})

    async def list_faults(request: Request) -> Response:
        return JSONResponse({"faults": [fault_to_json(f) for f in sim.world.faults.active()]})

    async def add_fault(request: Request) -> Response:
        body: _FaultIn = await _body(request, _FaultIn)
        try:
            active = await sim.set_fault(known(body.platform), body.fault, feature=body.feature,
                                         rate=body.rate, **body.params)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from exc
        return JSONResponse(fault_to_json(active), status_code=201)

    async def clear_all(request: Request) -> Response:
        return JSONResponse({"cleared": await sim.clear_faults()})

    async def clear_platform(request: Request) -> Response:
        platform = known(request.path_params["platform"])
        name = request.query_params.get("fault")
        try:
            fault = None if name is None else Fault(name)
        except ValueError:
            raise HTTPException(400, f"unknown fault {name!r}; known: {', '.join(Fault)}") \
                from None
        return JSONResponse({"cleared": await sim.clear_faults(platform, fault)})

    async def record(request: Request) -> Response:
        platform = request.query_params.get("platform")
        posts = sim.world.record.all(known(platform) if platform else None)
        return JSONResponse({"posts": [post_to_json(p) for p in posts]})

    async def clear_record(request: Request) -> Response:
        count = len(sim.world.record.all())
        sim.world.record.clear()
        return JSONResponse({"cleared": count})

    async def grant_token(request: Request) -> Response:
        body: _TokenIn = await _body(request, _TokenIn)
        sim.world.grant_token(known(body.platform), body.token, body.account)
        return JSONResponse({"platform": body.platform, "account": body.account},
                            status_code=201)

    async def hosts(request: Request) -> Response:
        dns = sim.dns_address
        return JSONResponse({"hosts": sim.host_map(), "http_port": sim.http_port,
                             "dns": list(dns) if dns else None})

    async def http_error(request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            return _error(exc.status_code, str(exc.detail))
        return _error(500, "internal error")

    return Starlette(
        routes=[
            Route("/health", health, methods=["GET"]),
            Route("/faults", list_faults, methods=["GET"]),
            Route("/faults", add_fault, methods=["POST"]),
            Route("/faults", clear_all, methods=["DELETE"]),
            Route("/faults/{platform}", clear_platform, methods=["DELETE"]),
            Route("/record", record, methods=["GET"]),
            Route("/record", clear_record, methods=["DELETE"]),
            Route("/tokens", grant_token, methods=["POST"]),
            Route("/hosts", hosts, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error},
    )
