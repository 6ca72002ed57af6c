"""A generic webhook receiver for Sidestep's owned "webhook" channel, at hooks.example.net.

There is no third-party documentation: this is the contract Sidestep's webhook channel keeps,
written after the common practice of signed webhooks (GitHub's `X-Hub-Signature-256`,
https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries, and Stripe's
signatures, https://docs.stripe.com/webhooks#verify-events).

- `POST /in/{hook_id}` with a JSON body and two headers:
  - `X-Sidestep-Signature: sha256=<hex>`: HMAC-SHA256 of the raw body bytes, keyed with the
    hook's secret (see `sign`); compared in constant time;
  - `X-Sidestep-Delivery: <id>`: the delivery's idempotency key; a repeated id for the same
    hook answers 200 with `"duplicate": true` and records nothing new.
- Answers are JSON: 200 `{"received": true, "delivery": id, "duplicate": bool}`; errors
  `{"error": code, "message": text}` with 400 (invalid_json, missing_delivery), 401
  (missing_signature, invalid_signature), 404 (unknown_hook), 413 (payload_too_large, over
  1 MiB), 415 (unsupported_media_type), 429 (rate_limited, with Retry-After), 5xx.

Convention: a hook and its secret are registered with `world.grant_token("webhook", secret,
hook_id)` (the token is the secret, the account is the hook id).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sidestep.sim.profile import ErrorKind, Profile
from sidestep.sim.world import SimWorld

MAX_BODY_BYTES = 1024 * 1024
SIGNATURE_HEADER = "X-Sidestep-Signature"
DELIVERY_HEADER = "X-Sidestep-Delivery"


def sign(secret: str, body: bytes) -> str:
    """The `X-Sidestep-Signature` value for `body` under `secret`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _fail(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


class WebhookProfile(Profile):
    key = "webhook"
    hosts = ("hooks.example.net",)
    spec = None  # our own contract, described above

    def __init__(self, world: SimWorld) -> None:
        super().__init__(world)
        self._deliveries: set[tuple[str, str]] = set()

    def routes(self) -> list[BaseRoute]:
        return [Route("/in/{hook_id}", self._receive, methods=["POST"])]

    def feature_of(self, request: Request) -> str:
        return "text" if request.method == "POST" else "read"

    def error(
        self, kind: ErrorKind, message: str, *, retry_after_s: float | None = None
    ) -> Response:
        if kind is ErrorKind.RATE_LIMITED:
            wait = math.ceil(retry_after_s if retry_after_s is not None else 30)
            return _fail(429, "rate_limited", f"Too many deliveries; retry after {wait} s",
                         {"Retry-After": str(wait)})
        status, code, text = {
            ErrorKind.SERVER_ERROR: (500, "internal_error", "The receiver failed"),
            ErrorKind.UNAVAILABLE: (503, "unavailable", "The receiver is unavailable"),
            ErrorKind.AUTH_EXPIRED: (401, "invalid_signature", "The hook secret was rotated"),
            ErrorKind.AUTH_MISSING: (401, "missing_signature", "No X-Sidestep-Signature"),
            ErrorKind.INVALID_REQUEST: (400, "invalid_request", message or "Invalid request"),
            ErrorKind.NOT_FOUND: (404, "unknown_hook", "No such hook"),
            ErrorKind.DUPLICATE: (409, "duplicate_delivery", "Delivery already received"),
            ErrorKind.MEDIA_FAILED: (413, "payload_too_large", "The body is over 1 MiB"),
        }[kind]
        return _fail(status, code, text)

    def _secrets(self, hook_id: str) -> list[str]:
        return [secret for secret, hook in self.world.tokens.get(self.key, {}).items()
                if hook == hook_id]

    async def _receive(self, request: Request) -> Response:
        hook_id = str(request.path_params["hook_id"])
        secrets = self._secrets(hook_id)
        if not secrets:
            return _fail(404, "unknown_hook", "No such hook")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return _fail(413, "payload_too_large", "The body is over 1 MiB")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return _fail(413, "payload_too_large", "The body is over 1 MiB")
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not signature:
            return _fail(401, "missing_signature", f"No {SIGNATURE_HEADER} header")
        if not any(hmac.compare_digest(signature, sign(s, body)) for s in secrets):
            return _fail(401, "invalid_signature", "The signature does not match the body")
        if not request.headers.get("content-type", "").lower().startswith("application/json"):
            return _fail(415, "unsupported_media_type", "Send application/json")
        delivery = request.headers.get(DELIVERY_HEADER, "").strip()
        if not delivery:
            return _fail(400, "missing_delivery", f"No {DELIVERY_HEADER} header")
        try:
            payload: Any = json.loads(body)
        except ValueError:
            return _fail(400, "invalid_json", "The body is not JSON")
        if (hook_id, delivery) in self._deliveries:
            return JSONResponse({"received": True, "delivery": delivery, "duplicate": True})
        self._deliveries.add((hook_id, delivery))
        self.world.record.add(
            platform=self.key, account=hook_id, kind="webhook",
            external_id=f"{hook_id}:{delivery}",
            payload=payload if isinstance(payload, dict) else {"body": payload},
            idempotency_marker=delivery,
        )
        return JSONResponse({"received": True, "delivery": delivery, "duplicate": False})
