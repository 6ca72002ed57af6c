"""A small platform profile ("testplat") and a running simulator serving it.

The real profiles (sim/platforms/*.py) have their own tests; the simulator's own tests use
this one so they depend only on the framework: a POST /v1/posts route that records to the
world, a POST /v1/media route that is the "media" feature, and JSON errors
`{"error": {"kind": ..., "message": ...}}`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import ClassVar

import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sidestep.sim.profile import ErrorKind, Profile
from sidestep.sim.server import Simulator
from sidestep.sim.testing import running_simulator

TOKEN = "tok-1"
ACCOUNT = "brand"

_STATUS = {
    ErrorKind.SERVER_ERROR: 500,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.RATE_LIMITED: 429,
    ErrorKind.AUTH_EXPIRED: 401,
    ErrorKind.AUTH_MISSING: 401,
    ErrorKind.INVALID_REQUEST: 400,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.DUPLICATE: 409,
    ErrorKind.MEDIA_FAILED: 422,
}


class TestplatProfile(Profile):
    """A made-up platform with one text and one media endpoint."""

    __test__ = False  # not a test class, despite the name
    key = "testplat"
    hosts: ClassVar[tuple[str, ...]] = ("api.testplat.example", "cdn.testplat.example")

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/posts", self.create_post, methods=["POST"]),
            Route("/v1/media", self.upload_media, methods=["POST"]),
        ]

    def feature_of(self, request: Request) -> str:
        return "media" if request.url.path.startswith("/v1/media") else "text"

    def error(self, kind: ErrorKind, message: str, *,
              retry_after_s: float | None = None) -> Response:
        headers = {} if retry_after_s is None else {"Retry-After": str(int(retry_after_s))}
        return JSONResponse({"error": {"kind": str(kind), "message": message}},
                            status_code=_STATUS[kind], headers=headers)

    async def create_post(self, request: Request) -> Response:
        account = self.bearer_account(request)
        if account is None:
            return self.error(ErrorKind.AUTH_MISSING, "no valid token")
        body = await request.json()
        if not isinstance(body.get("text"), str):
            return self.error(ErrorKind.INVALID_REQUEST, "text is required")
        external_id = f"tp-{self.world.next_number()}"
        self.world.record.add(
            platform=self.key, account=account, kind="post", external_id=external_id,
            payload=body, idempotency_marker=request.headers.get("idempotency-key"),
        )
        return JSONResponse({"id": external_id}, status_code=201)

    async def upload_media(self, request: Request) -> Response:
        if self.bearer_account(request) is None:
            return self.error(ErrorKind.AUTH_MISSING, "no valid token")
        return JSONResponse({"media_id": f"m-{self.world.next_number()}"}, status_code=201)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    """A running simulator serving only testplat, resolving from its host map (no DNS)."""
    async with running_simulator(seed=1, profiles={"testplat": TestplatProfile}, dns=False) as s:
        s.world.grant_token("testplat", TOKEN, ACCOUNT)
        yield s
