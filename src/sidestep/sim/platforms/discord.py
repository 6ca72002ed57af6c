"""Discord HTTP API v10: webhooks and the bot's create-message endpoint.

Endpoints (under `/api/v10`; the unversioned `/api/webhooks/...` URLs Discord hands out for
webhooks are answered too):

- `POST /webhooks/{webhook.id}/{webhook.token}` (`?wait=true` returns the message, else 204)
  — https://discord.com/developers/docs/resources/webhook#execute-webhook
- `GET /webhooks/{webhook.id}/{webhook.token}`
  — https://discord.com/developers/docs/resources/webhook#get-webhook-with-token
- `GET|DELETE /webhooks/{webhook.id}/{webhook.token}/messages/{message.id}`
  — https://discord.com/developers/docs/resources/webhook#get-webhook-message,
  https://discord.com/developers/docs/resources/webhook#delete-webhook-message
- `POST /channels/{channel.id}/messages` with `Authorization: Bot <token>` (`nonce` with
  `enforce_nonce` is idempotent for a few minutes)
  — https://discord.com/developers/docs/resources/message#create-message
- `GET /attachments/{channel}/{attachment}/{filename}` on cdn.discordapp.com — the stored file.
- For the monitor's probes (catalogue `probes`): `GET /gateway` (no auth,
  `{"url": "wss://gateway.discord.gg"}`,
  https://discord.com/developers/docs/events/gateway#get-gateway), `GET discord.com/` (the
  web page) and `GET cdn.discordapp.com/embed/avatars/{0-5}.png` (the default avatars).

Bodies: JSON, form, or multipart with `payload_json` and `files[n]`
(https://discord.com/developers/docs/reference#uploading-files). Limits: content 2000
characters, 10 embeds, 10 files, 10 MiB per file (the default upload limit since January 2025:
https://discord.com/developers/docs/change-log#default-file-upload-limit-change); a larger
file is 413 code 40005. Errors are `{"code", "message", "errors"?}` with the JSON error codes
of https://discord.com/developers/docs/topics/opcodes-and-status-codes#json; every response
carries `X-RateLimit-*` headers and a 429 adds `Retry-After` and `X-RateLimit-Scope`
(https://discord.com/developers/docs/topics/rate-limits). Ids are snowflakes
(https://discord.com/developers/docs/reference#snowflakes).

Conventions: a webhook is registered with `world.grant_token("discord", "<id>/<token>",
account)`; a bot with `world.grant_token("discord", bot_token, account)`.
`restrict_channels(account, ids)` limits where the bot may post (403 code 50001 elsewhere).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sidestep.sim.platforms._probe_pages import PNG, web_routes
from sidestep.sim.profile import ErrorKind, Profile, SpecRef
from sidestep.sim.world import SimWorld

DISCORD_EPOCH_MS = 1_420_070_400_000
MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_FILES = 10
MAX_FILE_BYTES = 10 * 1024 * 1024
MEDIA_KEPT_BYTES = 64 * 1024 * 1024
NONCE_WINDOW_S = 300.0
RATE_LIMIT = 5  # webhook executions per window, as Discord's per-webhook bucket reports
RATE_WINDOW_S = 2.0


class DiscordError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message", ""))
        self.status = status
        self.body = body


def form_error(field: str, code: str, message: str) -> DiscordError:
    """Discord's 50035 "Invalid Form Body" with one field error."""
    return DiscordError(400, {"code": 50035, "errors": {field: {"_errors": [
        {"code": code, "message": message}]}}, "message": "Invalid Form Body"})


@dataclass(slots=True)
class StoredAttachment:
    content_type: str
    content: bytes | None


class DiscordProfile(Profile):
    key = "discord"
    hosts = ("discord.com", "cdn.discordapp.com", "media.discordapp.net")
    spec = SpecRef(file="discord/openapi.json", server="https://discord.com/api/v10")

    def __init__(self, world: SimWorld) -> None:
        super().__init__(world)
        self._channels: dict[str, str] = {}  # webhook id -> channel id
        self._messages: dict[str, dict[str, Any]] = {}  # message id -> message object
        self._nonces: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._files: dict[str, StoredAttachment] = {}
        self._kept_bytes = 0
        self._buckets: dict[str, tuple[float, int]] = {}  # bucket -> (window start, used)
        self._allowed: dict[str, set[str]] = {}

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = []
        for prefix in ("/api/v10", "/api"):
            hook = prefix + "/webhooks/{webhook_id}/{webhook_token}"
            routes += [
                Route(hook, self._execute, methods=["POST"]),
                Route(hook, self._get_webhook, methods=["GET"]),
                Route(hook + "/messages/{message_id}", self._webhook_message,
                      methods=["GET", "DELETE"]),
            ]
        routes += [
            Route("/api/v10/channels/{channel_id}/messages", self._create_message,
                  methods=["POST"]),
            Route("/attachments/{channel_id}/{attachment_id}/{filename}", self._cdn,
                  methods=["GET"]),
            *(Route(f"{prefix}/gateway", self._gateway, methods=["GET"])
              for prefix in ("/api/v10", "/api")),
            Route("/embed/avatars/{index:int}.png", self._default_avatar, methods=["GET"]),
            *web_routes({"discord.com": "Discord"}),
        ]
        return routes

    async def _gateway(self, request: Request) -> Response:
        """Where bots connect (no auth needed): what a healthy API answers anyone."""
        return JSONResponse({"url": "wss://gateway.discord.gg"})

    async def _default_avatar(self, request: Request) -> Response:
        if request.url.hostname != "cdn.discordapp.com" or request.path_params["index"] > 5:
            return self.error(ErrorKind.NOT_FOUND, "404: Not Found")
        media_type, body = PNG
        return Response(body, media_type=media_type)

    def feature_of(self, request: Request) -> str:
        if request.method == "GET":
            return "read"
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            return "media"
        return "text"

    def error(
        self, kind: ErrorKind, message: str, *, retry_after_s: float | None = None
    ) -> Response:
        if kind is ErrorKind.RATE_LIMITED:
            wait = retry_after_s if retry_after_s is not None else 1.5
            body = {"message": "You are being rate limited.", "retry_after": wait,
                    "global": False}
            headers = self._rate_headers("webhook", exhausted_for_s=wait) | {
                "Retry-After": str(math.ceil(wait)), "X-RateLimit-Scope": "user"}
            return JSONResponse(body, status_code=429, headers=headers)
        status, body = {
            ErrorKind.SERVER_ERROR: (500, {"message": "500: Internal Server Error", "code": 0}),
            ErrorKind.UNAVAILABLE: (503, {"message": "503: Service Unavailable", "code": 0}),
            ErrorKind.AUTH_EXPIRED: (401, {"message": "401: Unauthorized", "code": 0}),
            ErrorKind.AUTH_MISSING: (401, {"message": "401: Unauthorized", "code": 0}),
            ErrorKind.INVALID_REQUEST: (400, form_error(
                "content", "BASE_TYPE_INVALID", message or "Invalid value.").body),
            ErrorKind.NOT_FOUND: (404, {"message": "404: Not Found", "code": 0}),
            # Discord does not refuse repeated content; its nearest refusal is a form error.
            ErrorKind.DUPLICATE: (400, form_error(
                "nonce", "BASE_TYPE_INVALID", message or "Nonce already used.").body),
            # A failing media path is Discord's fault, a 5xx ("the server had an error
            # processing your request"); 413 code 40005 is for files over the limit (`_build`).
            ErrorKind.MEDIA_FAILED: (500, {"message": "500: Internal Server Error",
                                           "code": 0}),
        }[kind]
        return JSONResponse(body, status_code=status, headers=self._rate_headers("webhook"))

    def restrict_channels(self, account: str, channel_ids: list[str]) -> None:
        """Let the account's bot post only in these channels (403 Missing Access elsewhere)."""
        self._allowed[account] = set(channel_ids)

    # -- webhooks ---------------------------------------------------------------------

    def _webhook_account(self, request: Request) -> str:
        hook_id = str(request.path_params["webhook_id"])
        token = str(request.path_params["webhook_token"])
        account = self.world.account_for(self.key, f"{hook_id}/{token}")
        if account is not None:
            return account
        known = any(k.startswith(hook_id + "/") for k in self.world.tokens.get(self.key, {}))
        if known:
            raise DiscordError(401, {"message": "Invalid Webhook Token", "code": 50027})
        raise DiscordError(404, {"message": "Unknown Webhook", "code": 10015})

    def _webhook_channel(self, hook_id: str) -> str:
        if hook_id not in self._channels:
            self._channels[hook_id] = self._snowflake()
        return self._channels[hook_id]

    async def _execute(self, request: Request) -> Response:
        try:
            account = self._webhook_account(request)
            hook_id = str(request.path_params["webhook_id"])
            payload, files = await self._payload(request)
            message = self._build(payload, files, channel_id=self._webhook_channel(hook_id),
                                  author=self._webhook_user(hook_id, payload, account))
            message["webhook_id"] = hook_id
        except DiscordError as exc:
            return self._fail(exc)
        self._keep(account, message, payload, marker=None)
        headers = self._rate_headers(f"webhook:{hook_id}", count=True)
        if request.query_params.get("wait", "false").lower() in ("true", "1"):
            return JSONResponse(message, headers=headers)
        return Response(status_code=204, headers=headers)

    async def _get_webhook(self, request: Request) -> Response:
        try:
            account = self._webhook_account(request)
        except DiscordError as exc:
            return self._fail(exc)
        hook_id = str(request.path_params["webhook_id"])
        body = {"application_id": None, "avatar": None,
                "channel_id": self._webhook_channel(hook_id), "guild_id": self._guild(account),
                "id": hook_id, "name": account, "type": 1,
                "token": str(request.path_params["webhook_token"])}
        return JSONResponse(body, headers=self._rate_headers(f"webhook:{hook_id}"))

    async def _webhook_message(self, request: Request) -> Response:
        try:
            self._webhook_account(request)
        except DiscordError as exc:
            return self._fail(exc)
        hook_id = str(request.path_params["webhook_id"])
        message = self._messages.get(str(request.path_params["message_id"]))
        headers = self._rate_headers(f"webhook:{hook_id}")
        if message is None or message.get("webhook_id") != hook_id:
            return JSONResponse({"message": "Unknown Message", "code": 10008},
                                status_code=404, headers=headers)
        if request.method == "DELETE":
            del self._messages[message["id"]]
            return Response(status_code=204, headers=headers)
        return JSONResponse(message, headers=headers)

    # -- bot --------------------------------------------------------------------------

    async def _create_message(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        account = self.world.account_for(self.key, token.strip()) if scheme == "Bot" else None
        if account is None:
            return self.error(ErrorKind.AUTH_MISSING, "")
        channel_id = str(request.path_params["channel_id"])
        allowed = self._allowed.get(account)
        try:
            if allowed is not None and channel_id not in allowed:
                raise DiscordError(403, {"message": "Missing Access", "code": 50001})
            payload, files = await self._payload(request)
            nonce = payload.get("nonce")
            key = (account, str(nonce))
            now = self.world.clock.now().timestamp()
            if nonce is not None and payload.get("enforce_nonce") and key in self._nonces:
                at, earlier = self._nonces[key]
                if now - at <= NONCE_WINDOW_S:
                    return JSONResponse(earlier, headers=self._rate_headers(channel_id))
            message = self._build(payload, files, channel_id=channel_id,
                                  author=self._bot_user(account))
        except DiscordError as exc:
            return self._fail(exc)
        marker = str(nonce) if nonce is not None and payload.get("enforce_nonce") else None
        if marker is not None:
            self._nonces[key] = (now, message)
            message["nonce"] = nonce
        self._keep(account, message, payload, marker=marker)
        return JSONResponse(message, headers=self._rate_headers(channel_id, count=True))

    async def _cdn(self, request: Request) -> Response:
        stored = self._files.get(str(request.path_params["attachment_id"]))
        if stored is None or stored.content is None:
            return Response("This content is no longer available.", status_code=404)
        return Response(stored.content, media_type=stored.content_type)

    # -- shared mechanics -------------------------------------------------------------

    async def _payload(self, request: Request) -> tuple[dict[str, Any], list[UploadFile]]:
        ctype = request.headers.get("content-type", "").lower()
        files: list[UploadFile] = []
        if ctype.startswith("multipart/form-data") or ctype.startswith(
                "application/x-www-form-urlencoded"):
            form = await request.form(max_files=MAX_FILES + 1, max_part_size=MAX_FILE_BYTES)
            payload: dict[str, Any] = {}
            for name, value in form.multi_items():
                if isinstance(value, UploadFile):
                    files.append(value)
                elif name == "payload_json":
                    payload.update(_json_object(value))
                else:
                    payload[name] = value
            return payload, files
        return _json_object((await request.body()).decode("utf-8", errors="replace")), files

    def _build(self, payload: dict[str, Any], files: list[UploadFile], *, channel_id: str,
               author: dict[str, Any]) -> dict[str, Any]:
        """Validate like Discord and return the new message object (not yet kept)."""
        content = payload.get("content")
        if content is not None and not isinstance(content, str):
            raise form_error("content", "BASE_TYPE_STRING", "Could not interpret value as string.")
        if content is not None and len(content) > MAX_CONTENT:
            raise form_error("content", "BASE_TYPE_MAX_LENGTH",
                             f"Must be {MAX_CONTENT} or fewer in length.")
        embeds = payload.get("embeds") or []
        if not isinstance(embeds, list):
            raise form_error("embeds", "LIST_TYPE_CONVERT",
                             "Only iterables may be used in a ListType")
        if len(embeds) > MAX_EMBEDS:
            raise form_error("embeds", "BASE_TYPE_MAX_LENGTH",
                             f"Must be {MAX_EMBEDS} or fewer in length.")
        if len(files) > MAX_FILES:
            raise form_error("files", "BASE_TYPE_MAX_LENGTH",
                             f"Must be {MAX_FILES} or fewer in length.")
        attachments = []
        for upload in files:
            size = upload.size if upload.size is not None else 0
            if size > MAX_FILE_BYTES:
                raise DiscordError(413, {"message": "Request entity too large", "code": 40005})
            attachments.append((upload, size))
        if not content and not embeds and not attachments and not payload.get("poll"):
            raise DiscordError(400, {"message": "Cannot send an empty message", "code": 50006})
        message_id = self._snowflake()
        return {
            "type": 0, "content": content or "", "mentions": [], "mention_roles": [],
            "attachments": [self._attachment(channel_id, u, s) for u, s in attachments],
            "embeds": embeds, "timestamp": self._iso_now(), "edited_timestamp": None,
            "flags": 0, "components": [], "id": message_id, "channel_id": channel_id,
            "author": author, "pinned": False, "mention_everyone": False,
            "tts": bool(payload.get("tts", False) in (True, "true")),
        }

    def _attachment(self, channel_id: str, upload: UploadFile, size: int) -> dict[str, Any]:
        attachment_id = self._snowflake()
        content = upload.file.read()
        self._store(attachment_id, upload.content_type or "application/octet-stream", content)
        name = upload.filename or "file"
        path = f"attachments/{channel_id}/{attachment_id}/{name}"
        return {"id": attachment_id, "filename": name, "size": len(content),
                "url": f"https://cdn.discordapp.com/{path}",
                "proxy_url": f"https://media.discordapp.net/{path}",
                "content_type": upload.content_type or "application/octet-stream"}

    def _store(self, attachment_id: str, content_type: str, content: bytes) -> None:
        for earlier in self._files.values():
            if self._kept_bytes + len(content) <= MEDIA_KEPT_BYTES:
                break
            if earlier.content is not None:
                self._kept_bytes -= len(earlier.content)
                earlier.content = None
        self._files[attachment_id] = StoredAttachment(content_type, content)
        self._kept_bytes += len(content)

    def _keep(self, account: str, message: dict[str, Any], payload: dict[str, Any],
              *, marker: str | None) -> None:
        self._messages[message["id"]] = message
        kind = "media" if message["attachments"] else "message"
        self.world.record.add(
            platform=self.key, account=account, kind=kind, external_id=message["id"],
            payload={"content": message["content"], "embeds": message["embeds"],
                     "channel_id": message["channel_id"],
                     "attachments": [a["filename"] for a in message["attachments"]],
                     "username": payload.get("username")},
            idempotency_marker=marker,
        )

    def _snowflake(self) -> str:
        ms = int(self.world.clock.now().timestamp() * 1000) - DISCORD_EPOCH_MS
        increment = self.world.next_number() % 4096
        return str((ms << 22) | (1 << 17) | increment)

    def _iso_now(self) -> str:
        return self.world.clock.now().isoformat(timespec="microseconds")

    def _guild(self, account: str) -> str:
        digest = int(hashlib.sha256(account.encode()).hexdigest()[:8], 16)
        return str(1_000_000_000_000_000_000 + digest)

    def _webhook_user(self, hook_id: str, payload: dict[str, Any], account: str) -> dict[str, Any]:
        name = payload.get("username") if isinstance(payload.get("username"), str) else account
        return {"id": hook_id, "username": name, "avatar": None, "discriminator": "0000",
                "public_flags": 0, "flags": 0, "bot": True, "global_name": None,
                "primary_guild": None}

    def _bot_user(self, account: str) -> dict[str, Any]:
        user_id = str(int(self._guild(account)) + 1)
        return {"id": user_id, "username": account, "avatar": None, "discriminator": "0",
                "public_flags": 0, "flags": 0, "bot": True, "global_name": None,
                "primary_guild": None}

    def _rate_headers(self, bucket: str, *, count: bool = False,
                      exhausted_for_s: float | None = None) -> dict[str, str]:
        """The X-RateLimit-* headers Discord puts on every response, from a fixed window."""
        now = self.world.clock.now().timestamp()
        start, used = self._buckets.get(bucket, (now, 0))
        if now - start >= RATE_WINDOW_S:
            start, used = now, 0
        if count:
            used += 1
            self._buckets[bucket] = (start, used)
        reset_after = exhausted_for_s if exhausted_for_s is not None else (
            start + RATE_WINDOW_S - now)
        remaining = 0 if exhausted_for_s is not None else max(0, RATE_LIMIT - used)
        return {
            "X-RateLimit-Limit": str(RATE_LIMIT),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": f"{now + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": hashlib.sha1(bucket.encode()).hexdigest()[:32],  # noqa: S324
        }

    def _fail(self, exc: DiscordError) -> Response:
        return JSONResponse(exc.body, status_code=exc.status, headers=self._rate_headers("webhook"))


def _json_object(text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise DiscordError(
            400, {"message": "The request body contains invalid JSON.", "code": 50109}
        ) from exc
    if not isinstance(value, dict):
        raise form_error("_errors", "DICT_TYPE_CONVERT",
                         "Only dictionaries may be used in a DictType")
    return value
