"""Matrix: one message event per post, in one room, through the channel's own homeserver.

Client-Server API, https://spec.matrix.org/v1.18/client-server-api/ and the anchors below:

- send: `PUT /_matrix/client/v3/rooms/{roomId}/send/m.room.message/{txnId}`
  (#put_matrixclientv3roomsroomidsendeventtypetxnid). The txnId comes from our idempotency
  key and the room; a repeated txnId from the same token (device) is answered with the event
  already made, so a retry cannot post twice (#transaction-identifiers; Synapse keeps them
  for 24 hours). Links go as `formatted_body` HTML (#mroommessage-msgtypes); replies as
  `m.relates_to.m.in_reply_to`, without the fallback quote v1.13 dropped (#rich-replies).
- media: `POST /_matrix/media/v3/upload` (#post_matrixmediav3upload), then one `m.image`,
  `m.video`, `m.audio` or `m.file` event with the `mxc://` URI and `info` {mimetype, size, w,
  h} (#mimage); the text (else the alt text) is the caption: `body` beside `filename` (v1.10).
- delete: `PUT .../rooms/{roomId}/redact/{eventId}/{txnId}`
  (#put_matrixclientv3roomsroomidredacteventidtxnid).
- find: `GET .../rooms/{roomId}/messages`; the sending device sees `unsigned.transaction_id`
  (#get_matrixclientv3roomsroomidmessages).
- check: `GET /_matrix/client/v3/account/whoami` (#get_matrixclientv3accountwhoami).

Credentials: `access_token` (secret), `room_id` (`!opaque:server`) and `homeserver`, the
client API base URL (default: the catalogue's, https://matrix-client.matrix.org). Plain http
is accepted only for a loopback homeserver (a test server): the token goes with every request.

Errors are `{errcode, error, retry_after_ms}` (#standard-error-response). 429 and 5xx decide
by status; otherwise a known errcode decides, and the status only when the errcode is unknown:

| answer                                                  | class                          |
|---------------------------------------------------------|--------------------------------|
| 429, M_LIMIT_EXCEEDED                                   | RateLimited (2)                |
| 502, 503, 504 / other 5xx                               | PlatformOutage / Transient     |
| M_UNRECOGNIZED                                          | AuthExpired: wrong homeserver URL |
| M_RESOURCE_LIMIT_EXCEEDED                               | PlatformOutage                 |
| M_UNKNOWN_TOKEN, M_MISSING_TOKEN; else 401              | AuthExpired: log in again      |
| M_FORBIDDEN, M_USER_DEACTIVATED, M_CONSENT_NOT_GIVEN; else 403 | AuthExpired (1)         |
| M_TOO_LARGE, M_BAD_JSON, M_NOT_JSON, M_INVALID_PARAM, M_NOT_FOUND; else 400, 413 | Rejected |
| any other errcode or status                             | Unknown(maybe_sent=False)      |
| the send's 200 without a readable event_id              | Unknown(maybe_sent=True)       |
| another 200 that is not the expected JSON               | Transient                      |

(1) The user has not joined the room, was removed, or lacks the power level to post: a
person must invite, join or grant; no retry can fix it, so it is not Rejected nor Transient.
(2) After `retry_after_ms` (deprecated by MSC4041, more precise, still sent by Synapse), else the
Retry-After header (#rate-limiting).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from typing import Any, ClassVar, TypeVar
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, Field, ValidationError

from sidestep.channels.adapters._matrix_events import (
    MAX_EVENT_BYTES,
    event_content,
    event_size_bytes,
)
from sidestep.channels.base import AccountInfo, Adapter, Published
from sidestep.channels.errors import (
    AuthExpired,
    PlatformOutage,
    PublishError,
    RateLimited,
    Rejected,
    Transient,
    Unknown,
)
from sidestep.channels.http import generic_status_error, read_model, retry_after_s
from sidestep.domain.content import Content, MediaItem, Problem
from sidestep.logs import redact_text, register_secret
from sidestep.vault import Credentials

CLIENT_API = "/_matrix/client/v3"
UPLOAD_PATH = "/_matrix/media/v3/upload"
MIN_UPLOAD_BYTES_PER_S = 256 * 1024  # the upload timeout grows with the file at this rate
_FORBIDDEN_CODES = {"M_FORBIDDEN", "M_USER_DEACTIVATED", "M_CONSENT_NOT_GIVEN",
                    "M_GUEST_ACCESS_FORBIDDEN"}
_REJECT_CODES = {"M_TOO_LARGE", "M_BAD_JSON", "M_NOT_JSON", "M_INVALID_PARAM", "M_NOT_FOUND"}
_TOKEN_CODES = {"M_UNKNOWN_TOKEN", "M_MISSING_TOKEN"}
_KNOWN_CODES = _FORBIDDEN_CODES | _REJECT_CODES | _TOKEN_CODES
_M = TypeVar("_M", bound=BaseModel)


class _ErrorBody(BaseModel):
    """The standard error response; `retry_after_ms` comes with M_LIMIT_EXCEEDED."""

    errcode: str = ""
    error: str = ""
    retry_after_ms: int | None = None


class _EventId(BaseModel):
    event_id: str = Field(pattern=r"^\$")


class _Upload(BaseModel):
    content_uri: str = Field(pattern=r"^mxc://")


class _WhoAmI(BaseModel):
    user_id: str = Field(pattern=r"^@")
    device_id: str | None = None


class _Unsigned(BaseModel):
    transaction_id: str | None = None


class _RoomEvent(BaseModel):
    event_id: str
    unsigned: _Unsigned = _Unsigned()


class _Messages(BaseModel):
    chunk: list[_RoomEvent] = []
    end: str | None = None


class MatrixAdapter(Adapter):
    """Sends posts as `m.room.message` events to the room named by the channel's `room_id`."""

    platform = "matrix"
    credential_fields = ("homeserver", "access_token", "room_id")
    default_timeout_s = 30.0
    can_find = True
    # How far back `find` looks for our txnId: pages of events of the room, newest first.
    find_page_size: ClassVar[int] = 100
    find_max_pages: ClassVar[int] = 5

    def missing_credentials(self, credentials: Credentials) -> list[str]:
        """The token and the room are required; without `homeserver`, matrix.org's is meant."""
        return [f for f in ("access_token", "room_id") if not credentials.get(f)]

    def platform_problems(self, content: Content) -> list[Problem]:
        """The event, text and formatting included, must fit Matrix's 65,536-byte limit."""
        size = event_size_bytes(content)
        if size > MAX_EVENT_BYTES:
            return [Problem("too_long", f"Matrix events are limited to {MAX_EVENT_BYTES:,} "
                            f"bytes; this post needs about {size:,}.")]
        return []

    # -- publishing ---------------------------------------------------------------------

    async def publish(self, content: Content, credentials: Credentials, *,
                      idempotency_key: str) -> Published:
        """Upload the media item if there is one, then send one message event.

        Returns the event id and its matrix.to permalink. Sending again with the same
        `idempotency_key` returns the same event. Raises AuthExpired (token refused, user not
        in the room), Rejected, RateLimited, Transient, PlatformOutage, or
        Unknown(maybe_sent=True) when the send's answer was lost or unreadable.
        """
        base, token, room = self._open(credentials)
        if len(content.media) > 1:  # one event holds one file; never drop the others silently
            raise Rejected(f"a Matrix message holds one media item; this post has "
                           f"{len(content.media)}")
        mxc = await self._upload(base, token, content.media[0]) if content.media else None
        txn = _txn_id("send", room, idempotency_key)
        response = await self._request(
            "PUT", f"{base}{CLIENT_API}/rooms/{_seg(room)}/send/m.room.message/{txn}", token,
            changes=True, json=event_content(content, mxc))
        if response.status_code != 200:
            raise self._error(response)
        event = read_model(_EventId, response, platform="the homeserver", changes=True)
        return Published(external_id=event.event_id, url=_permalink(room, event.event_id))

    async def _upload(self, base: str, token: str, item: MediaItem) -> str:
        """The `mxc://` URI of the uploaded file. An upload no event names harms nothing,
        so a lost answer is only Transient."""
        timeout_s = max(self.timeout_s, item.size_bytes / MIN_UPLOAD_BYTES_PER_S)
        response = await self._request(
            "POST", f"{base}{UPLOAD_PATH}", token, changes=False, content=item.data,
            params={"filename": item.filename}, headers={"Content-Type": item.mime_type},
            timeout=httpx.Timeout(timeout_s, connect=min(5.0, timeout_s)))
        return self._parse(response, _Upload).content_uri

    async def find(self, idempotency_key: str, credentials: Credentials) -> Published | None:
        """The event sent with our txnId, from the room's latest `find_page_size *
        find_max_pages` message events; None if it is not among them.

        Only the sending device sees `unsigned.transaction_id`, so this works with the token
        the post was sent with. Raises as `check_credentials` does.
        """
        base, token, room = self._open(credentials)
        txn = _txn_id("send", room, idempotency_key)
        page_from: str | None = None
        room_filter = json.dumps({"types": ["m.room.message"]}, separators=(",", ":"))
        for _ in range(self.find_max_pages):
            params = {"dir": "b", "limit": str(self.find_page_size), "filter": room_filter}
            if page_from:
                params["from"] = page_from
            response = await self._request(
                "GET", f"{base}{CLIENT_API}/rooms/{_seg(room)}/messages", token,
                changes=False, params=params)
            page = self._parse(response, _Messages)
            for event in page.chunk:
                if event.unsigned.transaction_id == txn:
                    return Published(external_id=event.event_id,
                                     url=_permalink(room, event.event_id))
            if not page.chunk or not page.end or page.end == page_from:
                return None
            page_from = page.end
        return None

    async def delete(self, external_id: str, credentials: Credentials) -> None:
        """Redact the event; one the homeserver no longer knows counts as deleted.

        The txnId comes from the event id, so a repeated delete is one redaction. Raises
        AuthExpired, RateLimited, Transient, PlatformOutage, or Unknown(maybe_sent=True).
        """
        base, token, room = self._open(credentials)
        txn = _txn_id("redact", room, external_id)
        response = await self._request(
            "PUT", f"{base}{CLIENT_API}/rooms/{_seg(room)}/redact/{_seg(external_id)}/{txn}",
            token, changes=True, json={})
        if response.status_code == 404 and _error_body(response).errcode == "M_NOT_FOUND":
            return
        self._parse(response, _EventId)

    async def check_credentials(self, credentials: Credentials) -> AccountInfo:
        """The Matrix user the token belongs to (`@user:server`); AuthExpired if refused.

        Membership of the room is not checked here: a send to a room the user has not joined
        fails with M_FORBIDDEN, read as AuthExpired.
        """
        base, token, _ = self._open(credentials)
        response = await self._request("GET", f"{base}{CLIENT_API}/account/whoami", token,
                                       changes=False)
        who = self._parse(response, _WhoAmI)
        return AccountInfo(account_id=who.user_id, name=who.user_id)

    # -- mechanics ----------------------------------------------------------------------

    def _open(self, credentials: Credentials) -> tuple[str, str, str]:
        """The homeserver base URL, the access token and the room id; AuthExpired if any of
        them cannot be used, since only reconnecting the channel fixes that."""
        token = credentials.get("access_token", "").strip()
        if not token:
            raise AuthExpired("The Matrix channel has no access_token; reconnect it.")
        register_secret(token)
        room = credentials.get("room_id", "").strip()
        if not room.startswith("!"):
            raise AuthExpired("The Matrix channel's room_id is not a room ID like "
                              "!abc123:example.org; reconnect it.")
        return self._homeserver(credentials), token, room

    def _homeserver(self, credentials: Credentials) -> str:
        """The client API base URL: credentials first, then the catalogue's; any
        `/_matrix/...` suffix is dropped, a path prefix before it is kept."""
        raw = (credentials.get("homeserver") or self.entry.api_base_urls[0]).strip()
        parts = urlsplit(raw)
        path = parts.path.split("/_matrix", 1)[0].rstrip("/")
        secure = parts.scheme == "https" or (parts.scheme == "http" and _loopback(parts.hostname))
        if not secure or not parts.hostname or parts.query or parts.fragment:
            raise AuthExpired("The Matrix channel's homeserver is not an https address like "
                              "https://matrix-client.matrix.org; reconnect it.")
        return f"{parts.scheme}://{parts.netloc}{path}"

    async def _request(self, method: str, url: str, token: str, *, changes: bool,
                       headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        try:
            return await self.http.request(
                method, url, changes=changes,
                headers={"Authorization": f"Bearer {token}", **(headers or {})}, **kwargs)
        except PublishError as exc:
            exc.args = (redact_text(str(exc)),)  # a transport error may quote the request
            raise

    def _parse(self, response: httpx.Response, model: type[_M]) -> _M:
        """The 200 answer as `model`, or the taxonomy error its status and body stand for."""
        if response.status_code != 200:
            raise self._error(response)
        return read_model(model, response, platform="the homeserver")

    def _error(self, response: httpx.Response) -> Exception:
        """The error table of the module docstring."""
        status, body = response.status_code, _error_body(response)
        code = body.errcode
        said = f"{code}: {body.error}" if code else f"HTTP {status}"
        kw: dict[str, Any] = {"http_status": status, "platform_code": code or None}
        if status == 429 or code == "M_LIMIT_EXCEEDED":
            wait_s = (body.retry_after_ms / 1000 if body.retry_after_ms is not None
                      else retry_after_s(response, now=self.clock.now()))
            return RateLimited(f"the homeserver is rate limiting this user ({said})",
                               retry_after_s=wait_s, **kw)
        if status >= 500:
            if status in (502, 503, 504):
                return PlatformOutage(f"the homeserver is unavailable ({said})", **kw)
            return Transient(f"the homeserver failed ({said})", **kw)
        # The errcode decides where it is one we know; the status only where it is not.
        if code == "M_UNRECOGNIZED":
            return AuthExpired(f"the homeserver URL does not serve the Matrix client API "
                               f"({said}); reconnect the channel", **kw)
        if code == "M_RESOURCE_LIMIT_EXCEEDED":
            return PlatformOutage(f"the homeserver is over a limit its admin set ({said})", **kw)
        if code in _TOKEN_CODES or (status == 401 and code not in _KNOWN_CODES):
            return AuthExpired(f"the homeserver does not accept the access token ({said}); "
                               "log in again and reconnect the channel", **kw)
        if code in _FORBIDDEN_CODES or (status == 403 and code not in _KNOWN_CODES):
            return AuthExpired(f"the homeserver forbids this ({said}); the user must have "
                               "joined the room and be allowed to post in it", **kw)
        if code in _REJECT_CODES or (status in (400, 413) and code not in _KNOWN_CODES):
            return Rejected(f"the homeserver refused the message ({said})", **kw)
        if code:
            return Unknown(f"the homeserver answered HTTP {status} ({said})", maybe_sent=False,
                           **kw)
        return generic_status_error(response, platform=self.platform, now=self.clock.now())


def _error_body(response: httpx.Response) -> _ErrorBody:
    try:
        return _ErrorBody.model_validate_json(response.content)
    except ValidationError:
        return _ErrorBody()


def _txn_id(purpose: str, room: str, key: str) -> str:
    """A txnId that is the same for the same purpose, room and key, and safe in a path."""
    digest = hashlib.sha256(f"{purpose}\x00{room}\x00{key}".encode()).hexdigest()
    return f"sidestep.{purpose}.{digest[:40]}"


def _seg(value: str) -> str:
    """A room or event id as one path segment (event ids of old rooms hold `/` and `+`)."""
    return quote(value, safe="")


def _permalink(room: str, event_id: str) -> str:
    """The event's matrix.to link (spec appendix, #matrixto-navigation)."""
    link = f"https://matrix.to/#/{quote(room, safe='!')}/{quote(event_id, safe='')}"
    _, _, server = room.partition(":")
    return f"{link}?via={quote(server, safe='')}" if server else link


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
