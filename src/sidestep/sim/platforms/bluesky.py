"""Bluesky: the bsky.social PDS (entryway) XRPC endpoints a publisher uses.

Endpoints (https://docs.bsky.app/docs/api/at-protocol-xrpc-api):

- `POST /xrpc/com.atproto.server.createSession` (identifier + app password) —
  https://docs.bsky.app/docs/api/com-atproto-server-create-session
- `POST /xrpc/com.atproto.server.refreshSession` (Bearer refreshJwt) —
  https://docs.bsky.app/docs/api/com-atproto-server-refresh-session
- `GET /xrpc/com.atproto.server.getSession` —
  https://docs.bsky.app/docs/api/com-atproto-server-get-session
- `POST /xrpc/com.atproto.repo.createRecord` —
  https://docs.bsky.app/docs/api/com-atproto-repo-create-record
- `POST /xrpc/com.atproto.repo.uploadBlob` (raw bytes) —
  https://docs.bsky.app/docs/api/com-atproto-repo-upload-blob
- `POST /xrpc/com.atproto.repo.deleteRecord` —
  https://docs.bsky.app/docs/api/com-atproto-repo-delete-record
- `GET /xrpc/com.atproto.repo.getRecord` — https://docs.bsky.app/docs/api/com-atproto-repo-get-record
- `GET /xrpc/com.atproto.identity.resolveHandle` (no auth; 400 HandleNotFound for a handle no
  account has) — https://docs.bsky.app/docs/api/com-atproto-identity-resolve-handle, lexicon
  https://github.com/bluesky-social/atproto/blob/main/lexicons/com/atproto/identity/resolveHandle.json

Records are checked against the published lexicons (`_lexicon`, https://atproto.com/specs/lexicon):
text at most 300 graphemes and 3000 UTF-8 bytes, at most 4 images of at most 2,000,000 bytes
each, required `createdAt`. Beyond the PDS, facet byte ranges must lie inside the UTF-8 text
on character boundaries (https://docs.bsky.app/docs/advanced-guides/post-richtext), to catch
adapter bugs a real PDS would store silently. Errors are `{"error", "message"}`
(https://atproto.com/specs/xrpc#error-responses): ExpiredToken (400), InvalidToken,
AuthMissing/AuthenticationRequired (401), RateLimitExceeded (429 with RateLimit-Limit,
-Remaining, -Reset in epoch seconds and -Policy, https://docs.bsky.app/docs/advanced-guides/rate-limits).
Record keys are TIDs (https://atproto.com/specs/tid); a client's own `rkey` must have the
record-key syntax (https://atproto.com/specs/record-key#record-key-syntax) and, for posts,
be a TID (the lexicon's `"key": "tid"`); CIDs are CIDv1
base32, dag-cbor ("bafyrei...") for records and raw ("bafkrei...") for blobs (https://atproto.com/specs/data-model).

Monitor probes (catalogue `probes`): `GET bsky.social/xrpc/_health` answers the PDS's
`{"version": ...}` (200), and `bsky.app/` is the web app's page (`_probe_pages`).

Convention: an app password is granted with `world.grant_token("bluesky", app_password,
handle)`; createSession accepts the handle (or the DID derived from it) with that password.
Access tokens live 2 hours and refresh tokens 90 days on the world clock. Video upload through
video.bsky.app is not simulated; a video blob uploaded with uploadBlob can be embedded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sidestep.sim.platforms._lexicon import LexiconError, validate_record
from sidestep.sim.platforms._probe_pages import web_routes
from sidestep.sim.profile import ErrorKind, Profile
from sidestep.sim.world import SimWorld

ACCESS_TTL = timedelta(hours=2)
REFRESH_TTL = timedelta(days=90)
BLOB_LIMIT = 100 * 1024 * 1024  # the PDS's own upload cap; embeds enforce their lexicon limits
MEDIA_KEPT_BYTES = 64 * 1024 * 1024
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
RKEY_RE = re.compile(r"^[a-zA-Z0-9_~.:-]{1,512}$")
TID_RE = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
RATE_POLICY = (5000, 3600)  # points per window, as bsky.social announces for record writes


class XrpcError(Exception):
    def __init__(self, status: int, error: str, message: str | None = None) -> None:
        super().__init__(message or error)
        self.status = status
        self.error = error
        self.message = message


@dataclass(slots=True)
class Session:
    handle: str
    scope: str  # "access" | "refresh"
    expires: datetime


@dataclass(slots=True)
class Blob:
    owner: str
    mime: str
    size: int
    content: bytes | None


def cid_for(data: bytes, *, codec: int) -> str:
    """A CIDv1 (sha2-256) in base32: codec 0x71 dag-cbor for records, 0x55 raw for blobs."""
    raw = bytes([0x01, codec, 0x12, 0x20]) + hashlib.sha256(data).digest()
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")


def did_for(handle: str) -> str:
    digest = base64.b32encode(hashlib.sha256(handle.encode()).digest()).decode().lower()
    return f"did:plc:{digest[:24]}"


PDS_VERSION = "0.4.158"  # what `_health` reports


class BlueskyProfile(Profile):
    key = "bluesky"
    hosts = ("bsky.social", "public.api.bsky.app", "cdn.bsky.app", "video.bsky.app", "bsky.app")
    spec = None  # lexicons, not OpenAPI: records are checked by `_lexicon` instead

    def __init__(self, world: SimWorld) -> None:
        super().__init__(world)
        self._sessions: dict[str, Session] = {}
        self._records: dict[str, tuple[str, dict[str, Any]]] = {}  # uri -> (cid, value)
        self._blobs: dict[str, Blob] = {}
        self._kept_bytes = 0
        self._secret = hashlib.sha256(b"sidestep-sim-bluesky").digest()

    def routes(self) -> list[BaseRoute]:
        return [*web_routes({"bsky.app": "Bluesky"}),
                Route("/xrpc/_health", self._health, methods=["GET"]),
                Route("/xrpc/{nsid}", self._dispatch, methods=["GET", "POST"])]

    async def _health(self, request: Request) -> Response:
        """The PDS's health check (no auth), as bsky.social answers it."""
        return JSONResponse({"version": PDS_VERSION})

    def feature_of(self, request: Request) -> str:
        nsid = request.url.path.rsplit("/", 1)[-1]
        if nsid == "com.atproto.repo.uploadBlob":
            return "media"
        if nsid.startswith("com.atproto.server."):
            return "auth"
        return "read" if request.method == "GET" else "text"

    def error(
        self, kind: ErrorKind, message: str, *, retry_after_s: float | None = None
    ) -> Response:
        if kind is ErrorKind.RATE_LIMITED:
            now = self.world.clock.now().timestamp()
            reset = int(now + (retry_after_s if retry_after_s is not None else 60))
            limit, window = RATE_POLICY
            headers = {"RateLimit-Limit": str(limit), "RateLimit-Remaining": "0",
                       "RateLimit-Reset": str(reset), "RateLimit-Policy": f"{limit};w={window}"}
            return JSONResponse({"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
                                status_code=429, headers=headers)
        status, error, text = {
            ErrorKind.SERVER_ERROR: (500, "InternalServerError", "Internal Server Error"),
            ErrorKind.UNAVAILABLE: (503, "NotEnoughResources", "Service Unavailable"),
            ErrorKind.AUTH_EXPIRED: (400, "ExpiredToken", "Token has expired"),
            ErrorKind.AUTH_MISSING: (401, "AuthMissing", "Authentication Required"),
            ErrorKind.INVALID_REQUEST: (400, "InvalidRequest", message or "Invalid request"),
            ErrorKind.NOT_FOUND: (400, "RecordNotFound", message or "Could not locate record"),
            ErrorKind.DUPLICATE: (400, "InvalidRequest", message or "Record already exists"),
            ErrorKind.MEDIA_FAILED: (400, "InvalidRequest", message or "Could not process blob"),
        }[kind]
        return JSONResponse({"error": error, "message": text}, status_code=status)

    async def _dispatch(self, request: Request) -> Response:
        nsid = str(request.path_params["nsid"])
        handlers = {
            ("POST", "com.atproto.server.createSession"): self._create_session,
            ("POST", "com.atproto.server.refreshSession"): self._refresh_session,
            ("GET", "com.atproto.server.getSession"): self._get_session,
            ("POST", "com.atproto.repo.createRecord"): self._create_record,
            ("POST", "com.atproto.repo.uploadBlob"): self._upload_blob,
            ("POST", "com.atproto.repo.deleteRecord"): self._delete_record,
            ("GET", "com.atproto.repo.getRecord"): self._get_record,
            ("GET", "com.atproto.identity.resolveHandle"): self._resolve_handle,
        }
        handler = handlers.get((request.method, nsid))
        if handler is None:
            return JSONResponse({"error": "MethodNotImplemented",
                                 "message": "Method Not Implemented"}, status_code=501)
        try:
            return JSONResponse(await handler(request))
        except XrpcError as exc:
            body = {"error": exc.error} | ({"message": exc.message} if exc.message else {})
            return JSONResponse(body, status_code=exc.status)

    # -- sessions ---------------------------------------------------------------------

    async def _create_session(self, request: Request) -> dict[str, Any]:
        body = await _json_body(request)
        identifier, password = body.get("identifier"), body.get("password")
        for name, value in (("identifier", identifier), ("password", password)):
            if not isinstance(value, str):
                raise XrpcError(400, "InvalidRequest", f'Input must have the property "{name}"')
        handle = self.world.account_for(self.key, str(password))
        if handle is None or str(identifier).lower() not in (handle.lower(), did_for(handle)):
            raise XrpcError(401, "AuthenticationRequired", "Invalid identifier or password")
        return self._issue(handle) | {"email": f"{handle}@example.org", "emailConfirmed": True,
                                      "active": True}

    async def _refresh_session(self, request: Request) -> dict[str, Any]:
        token = _bearer(request)
        session = self._sessions.get(token or "")
        if session is None:
            raise XrpcError(400, "InvalidToken", "Token has been revoked")
        if session.scope != "refresh":
            raise XrpcError(400, "InvalidToken", "Invalid token type")
        if self.world.clock.now() >= session.expires:
            raise XrpcError(400, "ExpiredToken", "Token has expired")
        del self._sessions[token or ""]  # a refresh token is used once
        return self._issue(session.handle) | {"active": True}

    async def _get_session(self, request: Request) -> dict[str, Any]:
        handle = self._authed(request)
        return {"handle": handle, "did": did_for(handle), "active": True}

    def _issue(self, handle: str) -> dict[str, Any]:
        now = self.world.clock.now()
        tokens = {}
        for scope, ttl in (("access", ACCESS_TTL), ("refresh", REFRESH_TTL)):
            claims = {"scope": "com.atproto.appPass" if scope == "access" else
                      "com.atproto.refresh", "sub": did_for(handle), "aud": "did:web:bsky.social",
                      "iat": int(now.timestamp()), "exp": int((now + ttl).timestamp()),
                      "jti": str(self.world.next_number())}
            token = self._jwt(claims)
            self._sessions[token] = Session(handle, scope, now + ttl)
            tokens[f"{scope}Jwt"] = token
        return {"accessJwt": tokens["accessJwt"], "refreshJwt": tokens["refreshJwt"],
                "handle": handle, "did": did_for(handle)}

    def _jwt(self, claims: dict[str, Any]) -> str:
        def part(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).decode().rstrip("=")
        head = part(json.dumps({"typ": "at+jwt", "alg": "HS256"}).encode())
        body = part(json.dumps(claims, separators=(",", ":")).encode())
        signature = hmac.new(self._secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{part(signature)}"

    def _authed(self, request: Request) -> str:
        token = _bearer(request)
        if token is None:
            raise XrpcError(401, "AuthMissing", "Authentication Required")
        session = self._sessions.get(token)
        if session is None or session.scope != "access":
            raise XrpcError(400, "InvalidToken", "Token could not be verified")
        if self.world.clock.now() >= session.expires:
            raise XrpcError(400, "ExpiredToken", "Token has expired")
        return session.handle

    # -- repository -------------------------------------------------------------------

    async def _create_record(self, request: Request) -> dict[str, Any]:
        handle = self._authed(request)
        body = await _json_body(request)
        did = self._own_repo(handle, body.get("repo"))
        collection, record = body.get("collection"), body.get("record")
        if not isinstance(collection, str) or not isinstance(record, dict):
            raise XrpcError(400, "InvalidRequest", 'Input must have the property "record"')
        record.setdefault("$type", collection)
        if collection == "app.bsky.feed.post":
            self._check_post(handle, record)
        given = body.get("rkey")
        rkey = given if isinstance(given, str) else self._tid()
        if not RKEY_RE.match(rkey) or rkey in (".", ".."):
            raise XrpcError(400, "InvalidRequest", f"Invalid record key: {rkey!r}")
        if collection == "app.bsky.feed.post" and not TID_RE.match(rkey):
            # The post lexicon declares "key": "tid"; @atproto/pds 0.4 enforces it so.
            raise XrpcError(400, "InvalidRequest", f"Invalid record key for {collection}: "
                            f'Invalid TID string (got "{rkey}") at $')
        uri = f"at://{did}/{collection}/{rkey}"
        if uri in self._records:
            raise XrpcError(400, "InvalidRequest", f"Record already exists at {uri}")
        cid = cid_for(json.dumps(record, sort_keys=True).encode(), codec=0x71)
        self._records[uri] = (cid, record)
        self.world.record.add(
            platform=self.key, account=handle, kind="post", external_id=uri,
            payload={"collection": collection, "record": record, "cid": cid},
            idempotency_marker=body.get("rkey") if isinstance(body.get("rkey"), str) else None,
        )
        commit = cid_for(f"commit:{uri}".encode(), codec=0x71)
        return {"uri": uri, "cid": cid, "commit": {"cid": commit, "rev": self._tid()},
                "validationStatus": "valid"}

    def _check_post(self, handle: str, record: dict[str, Any]) -> None:
        sizes = {cid: blob.size for cid, blob in self._blobs.items()}
        try:
            validate_record("app.bsky.feed.post", record, blob_sizes=sizes)
        except LexiconError as exc:
            raise XrpcError(400, "InvalidRequest",
                            f"Invalid app.bsky.feed.post record: {exc}") from exc
        text = record["text"].encode("utf-8")
        for n, facet in enumerate(record.get("facets") or []):
            start, end = facet["index"]["byteStart"], facet["index"]["byteEnd"]
            try:
                inside = 0 <= start < end <= len(text) and bool(text[start:end].decode())
            except UnicodeDecodeError:
                inside = False
            if not inside:
                raise XrpcError(400, "InvalidRequest", "Invalid app.bsky.feed.post record: "
                                f"Record/facets/{n}/index is not a character range of the text")
        for link in _blob_links(record):
            blob = self._blobs.get(link)
            if blob is None or blob.owner != handle:
                raise XrpcError(400, "InvalidRequest", f"Could not find blob: {link}")

    async def _upload_blob(self, request: Request) -> dict[str, Any]:
        handle = self._authed(request)
        mime = request.headers.get("content-type", "").split(";")[0].strip().lower()
        data = await request.body()
        if len(data) > BLOB_LIMIT:
            raise XrpcError(413, "PayloadTooLarge", "request entity too large")
        if not mime or mime == "*/*":
            raise XrpcError(400, "InvalidRequest", "Request encoding (Content-Type) required")
        cid = cid_for(data, codec=0x55)
        while self._kept_bytes + len(data) > MEDIA_KEPT_BYTES:
            oldest = next((b for b in self._blobs.values() if b.content is not None), None)
            if oldest is None:
                break
            self._kept_bytes -= len(oldest.content or b"")
            oldest.content = None
        self._blobs[cid] = Blob(handle, mime, len(data), data)
        self._kept_bytes += len(data)
        return {"blob": {"$type": "blob", "ref": {"$link": cid}, "mimeType": mime,
                         "size": len(data)}}

    async def _delete_record(self, request: Request) -> dict[str, Any]:
        handle = self._authed(request)
        body = await _json_body(request)
        did = self._own_repo(handle, body.get("repo"))
        uri = f"at://{did}/{body.get('collection')}/{body.get('rkey')}"
        self._records.pop(uri, None)  # deleting a missing record succeeds, as on the PDS
        return {"commit": {"cid": cid_for(f"delete:{uri}".encode(), codec=0x71),
                           "rev": self._tid()}}

    async def _get_record(self, request: Request) -> dict[str, Any]:
        query = request.query_params
        repo = query.get("repo", "")
        did = repo if repo.startswith("did:") else did_for(repo)
        uri = f"at://{did}/{query.get('collection')}/{query.get('rkey')}"
        found = self._records.get(uri)
        if found is None:
            raise XrpcError(400, "RecordNotFound", f"Could not locate record: {uri}")
        return {"uri": uri, "cid": found[0], "value": found[1]}

    async def _resolve_handle(self, request: Request) -> dict[str, Any]:
        wanted = request.query_params.get("handle", "").strip().lower()
        if not wanted:
            raise XrpcError(400, "InvalidRequest", 'Error: Params must have the property "handle"')
        for handle in self.world.tokens.get(self.key, {}).values():
            if handle.lower() == wanted:
                return {"did": did_for(handle)}
        raise XrpcError(400, "HandleNotFound", "Unable to resolve handle")

    def _own_repo(self, handle: str, repo: Any) -> str:
        if not isinstance(repo, str):
            raise XrpcError(400, "InvalidRequest", 'Input must have the property "repo"')
        did = did_for(handle)
        if repo not in (did, handle):
            raise XrpcError(401, "AuthenticationRequired", "Authentication Required")
        return did

    def _tid(self) -> str:
        micros = int(self.world.clock.now().timestamp() * 1_000_000) + self.world.next_number()
        value = (micros << 10) | (self.world.next_number() % 1024)
        chars = []
        for _ in range(13):
            chars.append(TID_ALPHABET[value & 31])
            value >>= 5
        return "".join(reversed(chars))


def _blob_links(node: Any) -> list[str]:
    if isinstance(node, dict):
        if node.get("$type") == "blob" and isinstance(node.get("ref"), dict):
            return [str(node["ref"].get("$link"))]
        return [link for value in node.values() for link in _blob_links(value)]
    if isinstance(node, list):
        return [link for value in node for link in _blob_links(value)]
    return []


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        data = await request.json()
    except ValueError as exc:
        raise XrpcError(400, "InvalidRequest", "Request body must be JSON") from exc
    if not isinstance(data, dict):
        raise XrpcError(400, "InvalidRequest", "Request body must be a JSON object")
    return data
