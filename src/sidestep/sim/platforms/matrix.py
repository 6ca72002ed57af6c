"""Matrix Client-Server API of matrix.org's homeserver, at matrix-client.matrix.org.

matrix.org delegates its client API to https://matrix-client.matrix.org (its
`/.well-known/matrix/client` names that base URL, https://spec.matrix.org/v1.18/client-server-api/#well-known-uris).
This profile is a small stand-in for the demo and drills; adapter tests use a real Synapse.

Endpoints (spec v1.18, https://spec.matrix.org/v1.18/client-server-api/):

- `PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}` —
  #put_matrixclientv3roomsroomidsendeventtypetxnid (the same txnId from the same access
  token returns the same event_id, no new event)
- `PUT /_matrix/client/v3/rooms/{roomId}/redact/{eventId}/{txnId}` —
  #put_matrixclientv3roomsroomidredacteventidtxnid
- `POST /_matrix/media/v3/upload` — #post_matrixmediav3upload (upload stays at /media/v3; only
  download, thumbnail, config and preview moved to /client/v1/media in v1.11)
- `GET /_matrix/client/v1/media/config` — #get_matrixclientv1mediaconfig
- `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}` —
  #get_matrixclientv1mediadownloadservernamemediaid
- `GET /_matrix/client/v3/account/whoami` — #get_matrixclientv3accountwhoami

Errors are `{"errcode", "error"}` (#standard-error-response): 401 M_MISSING_TOKEN /
M_UNKNOWN_TOKEN with `soft_logout`, 403 M_FORBIDDEN, 413 M_TOO_LARGE, 429 M_LIMIT_EXCEEDED
with `retry_after_ms` and a Retry-After header (#rate-limiting), 404 M_UNRECOGNIZED for unknown
endpoints. Events are limited to 65536 bytes (#size-limits); uploads to 50 MiB (Synapse's
default `max_upload_size`).

For the monitor's probes (catalogue `probes`): `GET /_matrix/client/versions` (no auth, the
spec versions the server supports, #get_matrixclientversions) and `matrix.org/` (the web page).

Conventions: `world.grant_token("matrix", access_token, "@brand:matrix.org")` (an account
without "@" becomes `@<account>:matrix.org`); `restrict_rooms(user_id, room_ids)` limits the
rooms the user has joined (403 M_FORBIDDEN elsewhere); otherwise every room accepts the user.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sidestep.sim.platforms._probe_pages import web_routes
from sidestep.sim.profile import ErrorKind, Profile
from sidestep.sim.world import SimWorld

SERVER_NAME = "matrix.org"
MAX_EVENT_BYTES = 65536
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MEDIA_KEPT_BYTES = 64 * 1024 * 1024


class MatrixError(Exception):
    def __init__(self, status: int, errcode: str, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.status = status
        self.body = {"errcode": errcode, "error": error} | extra


@dataclass(slots=True)
class StoredMedia:
    owner: str
    content_type: str
    content: bytes | None


def event_id_for(*parts: str) -> str:
    """An event id as room versions 4+ make them: "$" and an unpadded URL-safe hash."""
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return "$" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


class MatrixProfile(Profile):
    key = "matrix"
    hosts = ("matrix-client.matrix.org", "matrix.org")
    spec = None  # the Matrix spec publishes OpenAPI per module; none is in ../shared/specs

    def __init__(self, world: SimWorld) -> None:
        super().__init__(world)
        self._txns: dict[tuple[str, str], str] = {}  # (access token, txnId) -> event id
        self._events: dict[str, tuple[str, str]] = {}  # event id -> (room, sender)
        self._media: dict[str, StoredMedia] = {}
        self._kept_bytes = 0
        self._joined: dict[str, set[str]] = {}

    def routes(self) -> list[BaseRoute]:
        client = "/_matrix/client"
        return [
            Route(client + "/v3/rooms/{room_id}/send/{event_type}/{txn_id}", self._send,
                  methods=["PUT"]),
            Route(client + "/v3/rooms/{room_id}/redact/{event_id}/{txn_id}", self._redact,
                  methods=["PUT"]),
            Route("/_matrix/media/v3/upload", self._upload, methods=["POST"]),
            Route(client + "/v1/media/config", self._media_config, methods=["GET"]),
            Route(client + "/v1/media/download/{server_name}/{media_id}", self._download,
                  methods=["GET"]),
            Route(client + "/v3/account/whoami", self._whoami, methods=["GET"]),
            Route(client + "/versions", self._versions, methods=["GET"]),
            *web_routes({"matrix.org": "Matrix.org"}),
        ]

    async def _versions(self, request: Request) -> Response:
        """The spec versions supported (no auth): what the monitor's API probe fetches."""
        return JSONResponse({"versions": [f"v1.{n}" for n in range(1, 13)],
                             "unstable_features": {}})

    def feature_of(self, request: Request) -> str:
        path = request.url.path
        if "/media" in path:
            return "media"
        if path.endswith("/whoami"):
            return "auth"
        return "read" if request.method == "GET" else "text"

    def error(
        self, kind: ErrorKind, message: str, *, retry_after_s: float | None = None
    ) -> Response:
        if kind is ErrorKind.RATE_LIMITED:
            wait = retry_after_s if retry_after_s is not None else 5.0
            body = {"errcode": "M_LIMIT_EXCEEDED", "error": "Too Many Requests",
                    "retry_after_ms": int(wait * 1000)}
            return JSONResponse(body, status_code=429,
                                headers={"Retry-After": str(math.ceil(wait))})
        answers: dict[ErrorKind, tuple[int, dict[str, Any]]] = {
            ErrorKind.SERVER_ERROR: (500, {"errcode": "M_UNKNOWN",
                                           "error": "Internal server error"}),
            ErrorKind.UNAVAILABLE: (503, {"errcode": "M_UNKNOWN",
                                          "error": "Service unavailable"}),
            ErrorKind.AUTH_EXPIRED: (401, {"errcode": "M_UNKNOWN_TOKEN",
                                           "error": "Access token has expired",
                                           "soft_logout": True}),
            ErrorKind.AUTH_MISSING: (401, {"errcode": "M_UNKNOWN_TOKEN",
                                           "error": "Invalid access token passed.",
                                           "soft_logout": False}),
            ErrorKind.INVALID_REQUEST: (400, {"errcode": "M_BAD_JSON",
                                              "error": message or "Bad JSON"}),
            ErrorKind.NOT_FOUND: (404, {"errcode": "M_UNRECOGNIZED",
                                        "error": "Unrecognized request"}),
            # Matrix does not refuse repeated content; a replayed txnId is answered, not refused.
            ErrorKind.DUPLICATE: (400, {"errcode": "M_BAD_JSON",
                                        "error": message or "Duplicate event"}),
            ErrorKind.MEDIA_FAILED: (500, {"errcode": "M_UNKNOWN",
                                           "error": "Failed to store uploaded media"}),
        }
        status, body = answers[kind]
        return JSONResponse(body, status_code=status)

    def restrict_rooms(self, user_id: str, room_ids: list[str]) -> None:
        """The user has joined these rooms only; sending elsewhere is 403 M_FORBIDDEN."""
        self._joined[user_id] = set(room_ids)

    # -- handlers ---------------------------------------------------------------------

    def _auth(self, request: Request) -> tuple[str, str]:
        """(user id, access token) from the Authorization header (or the deprecated query)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        token = token or request.query_params.get("access_token", "")
        if not token:
            raise MatrixError(401, "M_MISSING_TOKEN", "Missing access token")
        account = self.world.account_for(self.key, token)
        if account is None:
            raise MatrixError(401, "M_UNKNOWN_TOKEN", "Invalid access token passed.",
                              soft_logout=False)
        user_id = account if account.startswith("@") else f"@{account}:{SERVER_NAME}"
        return user_id, token

    async def _send(self, request: Request) -> Response:
        try:
            user_id, token = self._auth(request)
            room = str(request.path_params["room_id"])
            txn = str(request.path_params["txn_id"])
            earlier = self._txns.get((token, txn))
            if earlier is not None:
                return JSONResponse({"event_id": earlier})
            self._check_room(user_id, room)
            body = await request.body()
            if len(body) > MAX_EVENT_BYTES:
                raise MatrixError(413, "M_TOO_LARGE", "event too large")
            try:
                content = json.loads(body)
            except ValueError as exc:
                raise MatrixError(400, "M_NOT_JSON", "Content not JSON.") from exc
            if not isinstance(content, dict):
                raise MatrixError(400, "M_BAD_JSON", "Content must be a JSON object.")
            event_type = str(request.path_params["event_type"])
            if event_type == "m.room.message" and not isinstance(content.get("body"), str):
                raise MatrixError(400, "M_BAD_JSON", "'body' not in content")
        except MatrixError as exc:
            return JSONResponse(exc.body, status_code=exc.status)
        event_id = event_id_for(room, user_id, txn, str(self.world.next_number()))
        self._txns[(token, txn)] = event_id
        self._events[event_id] = (room, user_id)
        self.world.record.add(
            platform=self.key, account=user_id, kind="message", external_id=event_id,
            payload={"room_id": room, "type": event_type, "content": content},
            idempotency_marker=txn,
        )
        return JSONResponse({"event_id": event_id})

    async def _redact(self, request: Request) -> Response:
        try:
            user_id, token = self._auth(request)
            room = str(request.path_params["room_id"])
            self._check_room(user_id, room)
            target = self._events.get(str(request.path_params["event_id"]))
            if target is None or target[0] != room:
                raise MatrixError(404, "M_NOT_FOUND", "Event not found")
            if target[1] != user_id:
                raise MatrixError(403, "M_FORBIDDEN", "You don't have permission to redact events")
        except MatrixError as exc:
            return JSONResponse(exc.body, status_code=exc.status)
        txn = str(request.path_params["txn_id"])
        key = (token, f"redact:{txn}")
        if key not in self._txns:
            self._txns[key] = event_id_for(room, user_id, "redact", txn)
        return JSONResponse({"event_id": self._txns[key]})

    async def _upload(self, request: Request) -> Response:
        try:
            user_id, _ = self._auth(request)
            body = await request.body()
            if len(body) > MAX_UPLOAD_BYTES:
                raise MatrixError(413, "M_TOO_LARGE", "Upload request body is too large")
        except MatrixError as exc:
            return JSONResponse(exc.body, status_code=exc.status)
        media_id = base64.b32encode(hashlib.sha256(
            body + str(self.world.next_number()).encode()).digest()).decode()[:24]
        while self._kept_bytes + len(body) > MEDIA_KEPT_BYTES:
            oldest = next((m for m in self._media.values() if m.content is not None), None)
            if oldest is None:
                break
            self._kept_bytes -= len(oldest.content or b"")
            oldest.content = None
        ctype = request.headers.get("content-type", "application/octet-stream")
        self._media[media_id] = StoredMedia(user_id, ctype, body)
        self._kept_bytes += len(body)
        return JSONResponse({"content_uri": f"mxc://{SERVER_NAME}/{media_id}"})

    async def _media_config(self, request: Request) -> Response:
        try:
            self._auth(request)
        except MatrixError as exc:
            return JSONResponse(exc.body, status_code=exc.status)
        return JSONResponse({"m.upload.size": MAX_UPLOAD_BYTES})

    async def _download(self, request: Request) -> Response:
        try:
            self._auth(request)
        except MatrixError as exc:
            return JSONResponse(exc.body, status_code=exc.status)
        media = self._media.get(str(request.path_params["media_id"]))
        if str(request.path_params["server_name"]) != SERVER_NAME or media is None or (
                media.content is None):
            return JSONResponse({"errcode": "M_NOT_FOUND", "error": "Not found"}, status_code=404)
        return Response(media.content, media_type=media.content_type)

    async def _whoami(self, request: Request) -> Response:
        try:
            user_id, token = self._auth(request)
        except MatrixError as exc:
            return JSONResponse(exc.body, status_code=exc.status)
        device = hashlib.sha256(token.encode()).hexdigest()[:10].upper()
        return JSONResponse({"user_id": user_id, "device_id": device, "is_guest": False})

    def _check_room(self, user_id: str, room: str) -> None:
        if not room.startswith("!") or ":" not in room:
            raise MatrixError(400, "M_INVALID_PARAM", f"{room} is not a valid room ID")
        joined = self._joined.get(user_id)
        if joined is not None and room not in joined:
            raise MatrixError(403, "M_FORBIDDEN", f"User {user_id} not in room {room}")
