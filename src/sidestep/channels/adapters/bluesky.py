"""Bluesky: `app.bsky.feed.post` records written to the account's PDS over XRPC.

Official API (https://docs.bsky.app/docs/advanced-guides/posts, lexicons at
https://github.com/bluesky-social/atproto/tree/main/lexicons):

- `com.atproto.server.createSession` with the handle (or DID) and an app password, once per
  adapter instance; `refreshSession` when the access token expires, and createSession again
  when the refresh token is refused too (the app password is the lasting credential)
  (https://docs.bsky.app/docs/api/com-atproto-server-create-session,
  https://docs.bsky.app/docs/api/com-atproto-server-refresh-session);
- `com.atproto.repo.uploadBlob` for each image (at most 4 of 2,000,000 bytes, with alt text)
  or one MP4 video (https://docs.bsky.app/docs/api/com-atproto-repo-upload-blob);
- `com.atproto.identity.resolveHandle` for @mentions
  (https://docs.bsky.app/docs/api/com-atproto-identity-resolve-handle);
- `com.atproto.repo.getRecord` for the reply target's CID and thread root
  (https://docs.bsky.app/docs/api/com-atproto-repo-get-record);
- `com.atproto.repo.createRecord` with facets for links, mentions and hashtags (UTF-8 byte
  offsets, https://docs.bsky.app/docs/advanced-guides/post-richtext), an external embed for
  the post's link, and reply refs (https://docs.bsky.app/docs/api/com-atproto-repo-create-record);
- `com.atproto.repo.deleteRecord`, `com.atproto.server.getSession`.

Exactly once: the record key is a TID (https://atproto.com/specs/tid; the post lexicon
declares `"key": "tid"`, https://atproto.com/specs/record-key) derived from the idempotency
key, so a repeated publish targets the same `at://` URI. The PDS refuses to create a record
that exists (@atproto/pds 0.4 with a 500, others with 400); the adapter then reads that URI
and returns it. `find` reads it too (`can_find = True`). The TID's time part comes from the
hash (within 2023), not the clock: apps order posts by `createdAt`, the real time.

Text is limited to 300 graphemes and 3,000 UTF-8 bytes (the post lexicon).

Errors are `{"error", "message"}` (https://atproto.com/specs/xrpc#error-responses):

| answer                                                | class                         |
|-------------------------------------------------------|-------------------------------|
| ExpiredToken, InvalidToken                            | renew the session, then AuthExpired |
| AuthenticationRequired, AuthMissing, AccountTakedown, | AuthExpired                   |
| AccountDeactivated, AuthFactorTokenRequired, 401, 403 |                               |
| 429, RateLimitExceeded                                | RateLimited to ratelimit-reset |
| other 400 (InvalidRequest, RecordNotFound...), 413    | Rejected, `message` as reason |
| a 400 to uploadBlob (it checks only the size, 413)    | Transient: the media path fails |
| 502-504, UpstreamFailure, NotEnoughResources, UpstreamTimeout | PlatformOutage        |
| other 5xx                                             | Transient                     |
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, Field, ValidationError

from sidestep.catalogue import Platform
from sidestep.channels.adapters._facets import (
    AtUri,
    facets_for,
    find_spans,
    grapheme_count,
    record_key_for,
)
from sidestep.channels.base import AccountInfo, Adapter, Published
from sidestep.channels.errors import (
    AuthExpired,
    PlatformOutage,
    PublishError,
    RateLimited,
    Rejected,
    Transient,
)
from sidestep.channels.http import generic_status_error, read_model, seconds_until_unix
from sidestep.clock import Clock
from sidestep.domain.content import Content, MediaItem, MediaKind, Problem
from sidestep.logs import redact_text, register_secret
from sidestep.vault import Credentials

DEFAULT_SERVICE = "https://bsky.social"
POST = "app.bsky.feed.post"
MAX_TEXT_BYTES = 3000
_AUTH_ERRORS = {"AuthenticationRequired", "AuthMissing", "AccountTakedown",
                "AccountDeactivated", "AuthFactorTokenRequired", "ExpiredToken", "InvalidToken"}
_RENEWABLE = {"ExpiredToken", "InvalidToken"}
_OUTAGE_ERRORS = {"UpstreamFailure", "NotEnoughResources", "UpstreamTimeout"}
_M = TypeVar("_M", bound=BaseModel)


class _XrpcError(BaseModel):
    error: str = ""
    message: str = ""


class _Identity(BaseModel):
    did: str
    handle: str


class _Session(_Identity):
    access_jwt: str = Field(alias="accessJwt")
    refresh_jwt: str = Field(alias="refreshJwt")


class _Blob(BaseModel):
    blob: dict[str, Any]


class _Created(BaseModel):
    uri: str
    cid: str


class _Record(_Created):
    value: dict[str, Any]


class _Resolved(BaseModel):
    did: str


class BlueskyAdapter(Adapter):
    """Posts to Bluesky (or any atproto PDS named by `service`) with an app password."""

    platform = "bluesky"
    credential_fields = ("identifier", "app_password", "service")
    default_timeout_s = 30.0
    can_find = True

    def __init__(self, *, client: httpx.AsyncClient, clock: Clock | None = None,
                 entry: Platform | None = None, timeout_s: float | None = None,
                 poll_interval_s: float | None = None) -> None:
        super().__init__(client=client, clock=clock, entry=entry, timeout_s=timeout_s,
                         poll_interval_s=poll_interval_s)
        # Sessions by (service, identifier, password digest): createSession is limited to
        # 30 per 5 minutes per account, so one adapter reuses its session across posts.
        self._sessions: dict[tuple[str, str, str], _Session] = {}

    def missing_credentials(self, credentials: Credentials) -> list[str]:
        """The identifier and app password; without `service`, bsky.social is meant."""
        return [f for f in ("identifier", "app_password") if not credentials.get(f)]

    def text_length(self, text: str) -> int:
        """Grapheme clusters, as the post lexicon's `maxGraphemes` counts them."""
        return grapheme_count(text)

    def platform_problems(self, content: Content) -> list[Problem]:
        problems: list[Problem] = []
        text = _post_text(content)
        limit = self.entry.limits.text_max_chars
        if text != content.text and self.text_length(text) > limit >= self.text_length(
                content.text):
            problems.append(Problem(
                "too_long", f"With the link added, the post has {self.text_length(text):,} "
                f"characters; Bluesky allows {limit:,}. Shorten the text."))
        if len(text.encode("utf-8")) > MAX_TEXT_BYTES:
            problems.append(Problem(
                "too_long", f"Bluesky takes at most {MAX_TEXT_BYTES:,} bytes of text; this "
                "text is longer (emoji and non-Latin letters take several bytes each)."))
        videos = [m for m in content.media if m.kind is MediaKind.VIDEO]
        if videos and len(content.media) > 1:
            problems.append(Problem(
                "media_mix", "Bluesky takes either one video or up to four images per post."))
        for video in videos:
            if video.mime_type != "video/mp4":
                problems.append(Problem(
                    "media_kind", f"Bluesky takes videos as MP4 only ({video.filename})."))
        return problems

    # -- publishing ---------------------------------------------------------------------

    async def publish(self, content: Content, credentials: Credentials, *,
                      idempotency_key: str) -> Published:
        """Create the post under the record key derived from `idempotency_key`.

        Returns the post's at:// URI and its bsky.app address. A post that already exists
        under that key (an earlier attempt whose answer was lost) is returned, not made
        again. Raises AuthExpired (missing or refused credentials), Rejected (content the
        PDS refuses, a reply target that is gone), RateLimited, Transient, PlatformOutage,
        or Unknown(maybe_sent=True) when createRecord's answer was lost.
        """
        service, session = await self._session(credentials)
        record: dict[str, Any] = {"$type": POST, "text": _post_text(content),
                                  "createdAt": _iso_z(self.clock.now())}
        if content.reply_to:
            record["reply"] = await self._reply_refs(service, credentials, content.reply_to)
        embed = await self._embed(service, credentials, content)
        if embed is not None:
            record["embed"] = embed
        facets = await self._facets(service, record["text"])
        if facets:
            record["facets"] = facets
        rkey = record_key_for(idempotency_key)
        try:
            created = self._parse(await self._call(
                "POST", service, "com.atproto.repo.createRecord", credentials, changes=True,
                json={"repo": session.did, "collection": POST, "rkey": rkey, "record": record}),
                _Created)
        except (Rejected, Transient):
            # The reference PDS answers a create at an existing key with 500 (0.4.x) or 400.
            earlier = await self._get_post(service, credentials, session.did, rkey)
            if earlier is None:
                raise
            return self._published(session, earlier.uri)
        return self._published(session, created.uri)

    async def find(self, idempotency_key: str, credentials: Credentials) -> Published | None:
        """The post made under `idempotency_key`, or None if there is none."""
        service, session = await self._session(credentials)
        found = await self._get_post(service, credentials, session.did,
                                     record_key_for(idempotency_key))
        return None if found is None else self._published(session, found.uri)

    async def delete(self, external_id: str, credentials: Credentials) -> None:
        """Delete the post at the at:// URI `external_id` (deleting a missing one succeeds).

        Raises Rejected for an id that is not an at:// post URI, and the publish errors.
        """
        uri = AtUri.parse(external_id)
        if uri is None:
            raise Rejected(f"{external_id!r} is not a Bluesky post address (at://...)")
        service, session = await self._session(credentials)
        response = await self._call(
            "POST", service, "com.atproto.repo.deleteRecord", credentials, changes=True,
            json={"repo": session.did, "collection": uri.collection, "rkey": uri.rkey})
        if response.status_code != 200:
            raise self._error(response)

    async def check_credentials(self, credentials: Credentials) -> AccountInfo:
        """The account's DID and handle; AuthExpired if the app password is refused."""
        service, _ = await self._session(credentials)
        identity = self._parse(await self._call(
            "GET", service, "com.atproto.server.getSession", credentials, changes=False),
            _Identity)
        return AccountInfo(account_id=identity.did, name=f"@{identity.handle}")

    # -- record parts -------------------------------------------------------------------

    async def _reply_refs(self, service: str, credentials: Credentials,
                          parent_uri: str) -> dict[str, Any]:
        uri = AtUri.parse(parent_uri)
        if uri is None:
            raise Rejected(f"The post to reply to, {parent_uri!r}, is not a Bluesky post "
                           "address (at://...).")
        parent = await self._get_post(service, credentials, uri.repo, uri.rkey)
        if parent is None:
            raise Rejected("The post this one replies to no longer exists on Bluesky.")
        parent_ref = {"uri": parent.uri, "cid": parent.cid}
        root = parent.value.get("reply", {}).get("root") if isinstance(
            parent.value.get("reply"), dict) else None
        return {"root": root if isinstance(root, dict) else parent_ref, "parent": parent_ref}

    async def _embed(self, service: str, credentials: Credentials,
                     content: Content) -> dict[str, Any] | None:
        if content.media:
            blobs = [await self._upload(service, credentials, item) for item in content.media]
            if content.media[0].kind is MediaKind.VIDEO:
                return {"$type": "app.bsky.embed.video", "video": blobs[0],
                        "alt": content.media[0].alt}
            return {"$type": "app.bsky.embed.images", "images": [
                {"alt": item.alt, "image": blob} for item, blob in zip(
                    content.media, blobs, strict=True)]}
        if content.link:
            return {"$type": "app.bsky.embed.external", "external": {
                "uri": content.link, "title": content.title or content.link, "description": ""}}
        return None

    async def _upload(self, service: str, credentials: Credentials,
                      item: MediaItem) -> dict[str, Any]:
        # An unreferenced blob is never shown and is cleaned up, so a lost answer is Transient.
        response = await self._call(
            "POST", service, "com.atproto.repo.uploadBlob", credentials, changes=False,
            content=item.data, headers={"Content-Type": item.mime_type})
        try:
            return self._parse(response, _Blob).blob
        except Rejected as exc:
            if exc.http_status == 413:
                raise
            # uploadBlob judges no content but size; what a post may embed is checked by
            # createRecord. So another refusal here is the PDS's media path failing.
            raise Transient(f"Bluesky could not take {item.filename}: {exc}",
                            platform_code=exc.platform_code, http_status=exc.http_status) from exc

    async def _facets(self, service: str, text: str) -> list[dict[str, Any]]:
        handles = {span.value for span in find_spans(text) if span.kind == "mention"}
        dids = {handle: await self._resolve_handle(service, handle) for handle in handles}
        return facets_for(text, {h: did for h, did in dids.items() if did is not None})

    async def _resolve_handle(self, service: str, handle: str) -> str | None:
        response = await self._send("GET", f"{service}/xrpc/com.atproto.identity.resolveHandle",
                                    changes=False, params={"handle": handle})
        if response.status_code == 400:
            return None  # HandleNotFound, or an older PDS's InvalidRequest for the same
        return self._parse(response, _Resolved).did

    async def _get_post(self, service: str, credentials: Credentials, repo: str,
                        rkey: str) -> _Record | None:
        try:
            return self._parse(await self._call(
                "GET", service, "com.atproto.repo.getRecord", credentials, changes=False,
                params={"repo": repo, "collection": POST, "rkey": rkey}), _Record)
        except Rejected as exc:
            if exc.platform_code == "RecordNotFound":
                return None
            raise

    def _published(self, session: _Session, uri: str) -> Published:
        rkey = uri.rsplit("/", 1)[-1]
        return Published(external_id=uri,
                         url=f"https://bsky.app/profile/{session.handle}/post/{rkey}")

    # -- sessions and calls -------------------------------------------------------------

    def _open(self, credentials: Credentials) -> tuple[str, tuple[str, str, str]]:
        """The service base URL and the session cache key; AuthExpired if unusable."""
        missing = self.missing_credentials(credentials)
        if missing:
            raise AuthExpired(f"The Bluesky channel lacks {' and '.join(missing)}; reconnect it.")
        password = credentials["app_password"]
        register_secret(password)
        service = (credentials.get("service") or DEFAULT_SERVICE).strip().rstrip("/")
        parts = urlsplit(service)
        if parts.scheme != "https" or not parts.hostname or parts.path or parts.query:
            raise AuthExpired("The Bluesky channel's service is not a server address like "
                              "https://bsky.social; reconnect it.")
        digest = hashlib.sha256(password.encode()).hexdigest()
        return service, (service, credentials["identifier"].strip().lower(), digest)

    async def _session(self, credentials: Credentials) -> tuple[str, _Session]:
        service, key = self._open(credentials)
        session = self._sessions.get(key)
        if session is None:
            session = await self._create_session(service, credentials)
            self._sessions[key] = session
        return service, session

    async def _create_session(self, service: str, credentials: Credentials) -> _Session:
        response = await self._send(
            "POST", f"{service}/xrpc/com.atproto.server.createSession", changes=False,
            json={"identifier": credentials["identifier"].strip(),
                  "password": credentials["app_password"]})
        session = self._parse(response, _Session)
        register_secret(session.access_jwt)
        register_secret(session.refresh_jwt)
        return session

    async def _renew(self, service: str, credentials: Credentials) -> _Session:
        """A working session after the access token was refused: refresh, else log in."""
        _, key = self._open(credentials)
        stale = self._sessions.pop(key, None)
        session: _Session | None = None
        if stale is not None:
            response = await self._send(
                "POST", f"{service}/xrpc/com.atproto.server.refreshSession", changes=False,
                headers={"Authorization": f"Bearer {stale.refresh_jwt}"})
            try:
                session = self._parse(response, _Session)
            except AuthExpired:
                pass  # the refresh token is spent or revoked; the app password may still work
        if session is None:
            session = await self._create_session(service, credentials)
        register_secret(session.access_jwt)
        register_secret(session.refresh_jwt)
        self._sessions[key] = session
        return session

    async def _call(self, method: str, service: str, nsid: str, credentials: Credentials, *,
                    changes: bool, **kwargs: Any) -> httpx.Response:
        """One authenticated XRPC call, sent again once if the access token had to be renewed
        (a refused token means the PDS did nothing, so resending cannot duplicate)."""
        _, session = await self._session(credentials)
        headers = kwargs.pop("headers", {})
        url = f"{service}/xrpc/{nsid}"
        response = await self._send(method, url, changes=changes, **kwargs, headers={
            **headers, "Authorization": f"Bearer {session.access_jwt}"})
        if response.status_code in (400, 401) and _error_code(response) in _RENEWABLE:
            session = await self._renew(service, credentials)
            response = await self._send(method, url, changes=changes, **kwargs, headers={
                **headers, "Authorization": f"Bearer {session.access_jwt}"})
        return response

    async def _send(self, method: str, url: str, *, changes: bool,
                    **kwargs: Any) -> httpx.Response:
        try:
            return await self.http.request(method, url, changes=changes, **kwargs)
        except PublishError as exc:
            exc.args = (redact_text(str(exc)),)  # a transport error may quote the request
            raise

    def _parse(self, response: httpx.Response, model: type[_M]) -> _M:
        if response.status_code != 200:
            raise self._error(response)
        return read_model(model, response, platform=self.entry.name)

    def _error(self, response: httpx.Response) -> PublishError:
        status = response.status_code
        try:
            body = _XrpcError.model_validate_json(response.content)
        except ValidationError:
            body = _XrpcError()
        code = body.error or None
        detail = body.message or body.error or f"HTTP {status}"
        if status == 429 or code == "RateLimitExceeded":
            wait_s = seconds_until_unix(response.headers.get("ratelimit-reset"),
                                        now=self.clock.now())
            return RateLimited(f"Bluesky is rate limiting this account ({detail})",
                               retry_after_s=wait_s or 1.0, platform_code=code,
                               http_status=status)
        if code in _AUTH_ERRORS or status in (401, 403):
            return AuthExpired(f"Bluesky refused the account's credentials ({detail}); "
                               "reconnect the channel with a new app password.",
                               platform_code=code, http_status=status)
        if status in (502, 503, 504) or code in _OUTAGE_ERRORS:
            return PlatformOutage(f"Bluesky is not answering ({detail})", platform_code=code,
                                  http_status=status)
        if status in (400, 413):
            return Rejected(f"Bluesky refused the post: {detail}", platform_code=code,
                            http_status=status)
        if status >= 500:
            return Transient(f"Bluesky failed ({detail})", platform_code=code,
                             http_status=status)
        error = generic_status_error(response, platform=self.platform, now=self.clock.now())
        return error if isinstance(error, PublishError) else Transient(str(error))


def _error_code(response: httpx.Response) -> str:
    try:
        return _XrpcError.model_validate_json(response.content).error
    except ValidationError:
        return ""


def _post_text(content: Content) -> str:
    """The text, plus the link when media take the embed slot and the text lacks the link."""
    if content.link and content.media and content.link not in content.text:
        return f"{content.text}\n\n{content.link}" if content.text.strip() else content.link
    return content.text


def _iso_z(moment: datetime) -> str:
    """`createdAt` as the lexicon's datetime format wants it: UTC, milliseconds, "Z"."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
