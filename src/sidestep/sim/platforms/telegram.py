"""Telegram Bot API, as api.telegram.org answers a bot.

Endpoints (any of GET/POST; method names are case-insensitive, as on the real server):

- `/bot<token>/getMe` — https://core.telegram.org/bots/api#getme
- `/bot<token>/sendMessage` — https://core.telegram.org/bots/api#sendmessage
- `/bot<token>/sendPhoto` — https://core.telegram.org/bots/api#sendphoto
- `/bot<token>/sendVideo` — https://core.telegram.org/bots/api#sendvideo
- `/bot<token>/sendMediaGroup` — https://core.telegram.org/bots/api#sendmediagroup
- `/bot<token>/deleteMessage` — https://core.telegram.org/bots/api#deletemessage

Parameters come as a query string, `application/x-www-form-urlencoded`, `application/json` or
`multipart/form-data` (https://core.telegram.org/bots/api#making-requests); files are uploaded
as multipart parts, named directly (`photo`) or through `attach://<name>` in InputMedia
(https://core.telegram.org/bots/api#sending-files: 10 MB for photos, 50 MB for other uploads).
Every answer is `{"ok": true, "result": ...}` or `{"ok": false, "error_code", "description",
"parameters"?}` (https://core.telegram.org/bots/api#making-requests, #responseparameters).

Conventions of the simulator: the bot token is in the path and maps to an account through
`world.grant_token("telegram", token, account)`. `restrict_chats(account, chats)` limits where
the bot is a member; elsewhere it is answered 403 "Forbidden: bot is not a member of the
channel chat". Message ids count per chat, as Telegram's do. Text length is counted in UTF-16
code units after entity parsing; HTML is parsed for its supported tags, Markdown approximately.

For the monitor's probes (catalogue `probes`), besides `/bot<token>/getMe` (404 without a
token, 401 with a bad one): telegram.org/ (the web page) and cdn4.cdn-telegram.org (a CDN
without the object asked for: 403), from `_probe_pages`.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sidestep.sim.platforms._probe_pages import cdn_routes, web_routes
from sidestep.sim.profile import ErrorKind, Profile, SpecRef
from sidestep.sim.world import SimWorld

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_PHOTO_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MEDIA_KEPT_BYTES = 64 * 1024 * 1024  # bytes kept in memory; older uploads keep only metadata
HTML_TAGS = frozenset({
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a",
    "tg-emoji", "code", "pre", "blockquote",
})
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are"
    " exactly the same as a current content and reply markup of the message"
)
PARSE_MODES = {"html": "HTML", "markdown": "Markdown", "markdownv2": "MarkdownV2"}


class TelegramError(Exception):
    """A refusal in Telegram's words: HTTP status and `description`."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


@dataclass(slots=True)
class StoredFile:
    file_id: str
    unique_id: str
    kind: str  # "photo" | "video"
    size: int
    content: bytes | None


class _HtmlText(HTMLParser):
    """Collects the visible text of Telegram HTML and the first unsupported tag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.problem: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in HTML_TAGS and self.problem is None:
            self.problem = f'Unsupported start tag "{tag}"'

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def visible_text(text: str, parse_mode: str | None) -> str:
    """The text as Telegram shows it once entities are parsed out; raises on bad markup."""
    if parse_mode is None:
        return text
    mode = PARSE_MODES.get(parse_mode.lower())
    if mode is None:
        raise TelegramError(400, "Bad Request: unsupported parse_mode")
    if mode == "HTML":
        parser = _HtmlText()
        parser.feed(text)
        parser.close()
        if parser.problem:
            raise TelegramError(400, f"Bad Request: can't parse entities: {parser.problem}")
        return "".join(parser.parts)
    out: list[str] = []
    escaped = False
    for char in text:  # Markdown: drop formatting characters, keep escaped ones
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\" and mode == "MarkdownV2":
            escaped = True
        elif char not in "*_~|`[]":
            out.append(char)
    return "".join(out)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


WEB_HOST, CDN_HOST = "telegram.org", "cdn4.cdn-telegram.org"  # for the monitor's probes


class TelegramProfile(Profile):
    key = "telegram"
    hosts = ("api.telegram.org", WEB_HOST, CDN_HOST)
    # openapi-core matches the templated server (`bot{token}` as a server variable).
    spec = SpecRef(file="telegram/openapi.yml", server="https://api.telegram.org/bot{token}")

    def __init__(self, world: SimWorld) -> None:
        super().__init__(world)
        self._chat_ids: dict[str, int] = {}  # "@username" -> numeric id
        self._next_message: dict[int, int] = {}
        self._messages: dict[tuple[int, int], str] = {}  # (chat, message_id) -> external id
        self._files: dict[str, StoredFile] = {}
        self._kept_bytes = 0
        self._allowed: dict[str, set[int]] = {}

    # -- declared surface -------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [*cdn_routes({CDN_HOST: {}}),
                *web_routes({WEB_HOST: "Telegram Messenger"}),
                Route("/bot{token}/{method}", self._dispatch, methods=["GET", "POST"])]

    def feature_of(self, request: Request) -> str:
        if request.url.hostname in (WEB_HOST, CDN_HOST):
            return "read"  # the web page and the CDN (which the gate calls media)
        method = str(request.path_params.get("method", request.url.path.rsplit("/", 1)[-1]))
        method = method.lower()
        if method in ("sendphoto", "sendvideo", "sendmediagroup"):
            return "media"
        if method == "getme":
            return "auth"
        return "text"

    def error(
        self, kind: ErrorKind, message: str, *, retry_after_s: float | None = None
    ) -> Response:
        if kind is ErrorKind.RATE_LIMITED:
            wait = max(1, math.ceil(retry_after_s if retry_after_s is not None else 5))
            return _fail(429, f"Too Many Requests: retry after {wait}", {"retry_after": wait})
        status, description = {
            ErrorKind.SERVER_ERROR: (500, "Internal Server Error"),
            ErrorKind.UNAVAILABLE: (502, "Bad Gateway"),
            ErrorKind.AUTH_EXPIRED: (401, "Unauthorized"),
            ErrorKind.AUTH_MISSING: (401, "Unauthorized"),
            ErrorKind.INVALID_REQUEST: (400, f"Bad Request: {message or 'invalid request'}"),
            ErrorKind.NOT_FOUND: (404, "Not Found"),
            ErrorKind.DUPLICATE: (400, NOT_MODIFIED),
            ErrorKind.MEDIA_FAILED: (400, "Bad Request: wrong file identifier/HTTP URL specified"),
        }[kind]
        return _fail(status, description)

    def restrict_chats(self, account: str, chats: list[int | str]) -> None:
        """Make the account's bot a member of these chats only (403 elsewhere)."""
        self._allowed[account] = {self._chat_number(chat) for chat in chats}

    # -- dispatch ---------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        account = self.world.account_for(self.key, str(request.path_params["token"]))
        if account is None:
            return self.error(ErrorKind.AUTH_MISSING, "")
        handlers = {
            "getme": self._get_me, "sendmessage": self._send_message,
            "sendphoto": self._send_photo, "sendvideo": self._send_video,
            "sendmediagroup": self._send_media_group, "deletemessage": self._delete_message,
        }
        handler = handlers.get(str(request.path_params["method"]).lower())
        if handler is None:
            return _fail(404, "Not Found")
        try:
            params = await _params(request)
            result = await handler(account, str(request.path_params["token"]), params)
        except TelegramError as exc:
            return _fail(exc.status, exc.description)
        return JSONResponse({"ok": True, "result": result})

    async def _get_me(self, account: str, token: str, params: dict[str, Any]) -> Any:
        return self._bot_user(account, token) | {
            "can_join_groups": True, "can_read_all_group_messages": False,
            "supports_inline_queries": False, "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _send_message(self, account: str, token: str, params: dict[str, Any]) -> Any:
        chat = self._target_chat(account, params)
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise TelegramError(400, "Bad Request: message text is empty")
        shown = visible_text(text, _opt_str(params, "parse_mode"))
        if not shown.strip():
            raise TelegramError(400, "Bad Request: message text is empty")
        if utf16_len(shown) > MAX_TEXT:
            raise TelegramError(400, "Bad Request: message is too long")
        message = self._message(account, token, chat) | {"text": shown}
        preview = _json_field(params, "link_preview_options")
        if isinstance(preview, dict):
            message["link_preview_options"] = preview
        self._record(account, message, kind="message", payload={"text": text,
                     "parse_mode": params.get("parse_mode"), "chat_id": chat})
        return message

    async def _send_photo(self, account: str, token: str, params: dict[str, Any]) -> Any:
        return await self._send_file(account, token, params, kind="photo")

    async def _send_video(self, account: str, token: str, params: dict[str, Any]) -> Any:
        return await self._send_file(account, token, params, kind="video")

    async def _send_file(self, account: str, token: str, params: dict[str, Any], *,
                         kind: str) -> Any:
        chat = self._target_chat(account, params)
        caption = self._caption(params.get("caption"), _opt_str(params, "parse_mode"))
        stored = await self._media(params.get(kind), params, kind=kind)
        message = self._message(account, token, chat) | _media_fields(stored)
        if caption:
            message["caption"] = caption
        self._record(account, message, kind=kind, payload={"caption": caption,
                     "chat_id": chat, "file_id": stored.file_id, "size": stored.size})
        return message

    async def _send_media_group(self, account: str, token: str, params: dict[str, Any]) -> Any:
        chat = self._target_chat(account, params)
        media = _json_field(params, "media")
        if not isinstance(media, list) or not media:
            raise TelegramError(400, "Bad Request: parameter \"media\" is required")
        if len(media) > 10:
            raise TelegramError(400, "Bad Request: too much messages to send as an album")
        if len(media) < 2:
            raise TelegramError(400, "Bad Request: wrong number of media items in the album")
        items: list[tuple[StoredFile, str]] = []
        for item in media:
            if not isinstance(item, dict) or item.get("type") not in ("photo", "video"):
                raise TelegramError(400, "Bad Request: unsupported media type in the album")
            caption = self._caption(item.get("caption"), _opt_str(item, "parse_mode"))
            stored = await self._media(item.get("media"), params, kind=str(item["type"]))
            items.append((stored, caption))
        group_id = str(10_000_000_000_000_000 + self.world.next_number())
        messages = []
        for stored, caption in items:
            message = self._message(account, token, chat) | _media_fields(stored)
            message["media_group_id"] = group_id
            if caption:
                message["caption"] = caption
            messages.append(message)
        ids = [m["message_id"] for m in messages]
        self._record(account, messages[0], kind="media_group", payload={
            "chat_id": chat, "message_ids": ids, "media_group_id": group_id,
            "file_ids": [s.file_id for s, _ in items], "captions": [c for _, c in items]})
        return messages

    async def _delete_message(self, account: str, token: str, params: dict[str, Any]) -> Any:
        chat = self._target_chat(account, params)
        message_id = _int_or_none(params.get("message_id"))
        if message_id is None:
            raise TelegramError(400, "Bad Request: message identifier is not specified")
        if self._messages.pop((chat, message_id), None) is None:
            raise TelegramError(400, "Bad Request: message to delete not found")
        return True

    # -- helpers ----------------------------------------------------------------------

    def _chat_number(self, chat: int | str) -> int:
        if isinstance(chat, int):
            return chat
        if chat.lstrip("-").isdigit():
            return int(chat)
        if chat not in self._chat_ids:
            self._chat_ids[chat] = -1_001_000_000_000 - self.world.next_number()
        return self._chat_ids[chat]

    def _target_chat(self, account: str, params: dict[str, Any]) -> int:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise TelegramError(400, "Bad Request: chat_id is empty")
        if not isinstance(raw, (int, str)) or isinstance(raw, bool) or (
            isinstance(raw, str) and not raw.startswith("@") and not raw.lstrip("-").isdigit()
        ):
            raise TelegramError(400, "Bad Request: chat not found")
        chat = self._chat_number(raw)
        allowed = self._allowed.get(account)
        if allowed is not None and chat not in allowed:
            raise TelegramError(403, "Forbidden: bot is not a member of the channel chat")
        return chat

    def _caption(self, caption: Any, parse_mode: str | None) -> str:
        if caption is None or caption == "":
            return ""
        if not isinstance(caption, str):
            raise TelegramError(400, "Bad Request: can't parse caption")
        shown = visible_text(caption, parse_mode)
        if utf16_len(shown) > MAX_CAPTION:
            raise TelegramError(400, "Bad Request: message caption is too long")
        return shown

    async def _media(self, value: Any, params: dict[str, Any], *, kind: str) -> StoredFile:
        """Resolve an uploaded part, `attach://name`, an earlier file_id or an HTTP URL."""
        if isinstance(value, str) and value.startswith("attach://"):
            value = params.get(value.removeprefix("attach://"))
        if isinstance(value, UploadFile):
            content = await value.read()
            limit = MAX_PHOTO_BYTES if kind == "photo" else MAX_UPLOAD_BYTES
            if len(content) > MAX_UPLOAD_BYTES:
                raise TelegramError(413, "Request Entity Too Large")
            if len(content) > limit:
                raise TelegramError(400, "Bad Request: file is too big")
            if not content:
                raise TelegramError(400, "Bad Request: file must be non-empty")
            return self._store(kind, len(content), content)
        if isinstance(value, str) and value in self._files:
            return self._files[value]
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return self._store(kind, 0, None)  # Telegram fetches it; nothing to keep here
        if value is None or value == "":
            raise TelegramError(400, f"Bad Request: there is no {kind} in the request")
        raise TelegramError(400, "Bad Request: wrong file identifier/HTTP URL specified")

    def _store(self, kind: str, size: int, content: bytes | None) -> StoredFile:
        number = self.world.next_number()
        prefix = "AgACAgIAAxkBAAI" if kind == "photo" else "BAACAgIAAxkBAAI"
        tail = base64.urlsafe_b64encode(number.to_bytes(8, "big")).decode().rstrip("=")
        while content is not None and self._kept_bytes + len(content) > MEDIA_KEPT_BYTES:
            oldest = next((f for f in self._files.values() if f.content is not None), None)
            if oldest is None:
                break
            self._kept_bytes -= len(oldest.content or b"")
            oldest.content = None
        stored = StoredFile(prefix + tail, "AQAD" + tail, kind, size, content)
        self._kept_bytes += len(content or b"")
        self._files[stored.file_id] = stored
        return stored

    def _bot_user(self, account: str, token: str) -> dict[str, Any]:
        head = token.split(":", 1)[0]
        bot_id = int(head) if head.isdigit() else 7_000_000_000 + sum(map(ord, account))
        return {"id": bot_id, "is_bot": True, "first_name": account,
                "username": f"{account.replace(' ', '_')}_bot"}

    def _message(self, account: str, token: str, chat: int) -> dict[str, Any]:
        self._next_message[chat] = self._next_message.get(chat, 0) + 1
        message_id = self._next_message[chat]
        username = next((name for name, n in self._chat_ids.items() if n == chat), None)
        message: dict[str, Any] = {
            "message_id": message_id,
            "date": int(self.world.clock.now().timestamp()),
        }
        if chat < 0:  # a channel post: the channel is both sender and chat
            chat_obj: dict[str, Any] = {"id": chat, "title": (username or str(chat)).lstrip("@"),
                                        "type": "channel"}
            if username:
                chat_obj["username"] = username.lstrip("@")
            message |= {"sender_chat": chat_obj, "chat": chat_obj}
        else:
            message |= {"from": self._bot_user(account, token),
                        "chat": {"id": chat, "first_name": "Subscriber", "type": "private"}}
        self._messages[(chat, message_id)] = f"{chat}:{message_id}"
        return message

    def _record(self, account: str, message: dict[str, Any], *, kind: str,
                payload: dict[str, Any]) -> None:
        self.world.record.add(
            platform=self.key, account=account, kind=kind,
            external_id=f"{message['chat']['id']}:{message['message_id']}",
            payload=payload, idempotency_marker=None,
        )


def _media_fields(stored: StoredFile) -> dict[str, Any]:
    if stored.kind == "photo":
        sizes = [(90, 67), (320, 240), (1280, 960)]
        return {"photo": [
            {"file_id": f"{stored.file_id}{i}", "file_unique_id": f"{stored.unique_id}{i}",
             "width": w, "height": h, "file_size": max(1, stored.size * (i + 1) // 3)}
            for i, (w, h) in enumerate(sizes)
        ]}
    return {"video": {"file_id": stored.file_id, "file_unique_id": stored.unique_id,
                      "width": 1280, "height": 720, "duration": 10, "mime_type": "video/mp4",
                      "file_size": stored.size}}


async def _params(request: Request) -> dict[str, Any]:
    """Every parameter, from the query string and whichever body the bot sent."""
    params: dict[str, Any] = dict(request.query_params)
    ctype = request.headers.get("content-type", "").lower()
    if ctype.startswith("application/json"):
        body = await request.body()
        if body:
            try:
                data = json.loads(body)
            except ValueError as exc:
                raise TelegramError(400, "Bad Request: can't parse JSON object") from exc
            if not isinstance(data, dict):
                raise TelegramError(400, "Bad Request: JSON object expected")
            params.update(data)
    elif ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        form = await request.form(max_part_size=MAX_UPLOAD_BYTES)
        for name, value in form.multi_items():
            params[name] = value
    return params


def _json_field(params: dict[str, Any], name: str) -> Any:
    """A JSON-serialized parameter: already decoded in a JSON body, a string otherwise."""
    value = params.get(name)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise TelegramError(400, f"Bad Request: can't parse {name} JSON object") from exc
    return value


def _opt_str(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    return value if isinstance(value, str) and value else None


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None


def _fail(status: int, description: str, parameters: dict[str, Any] | None = None) -> Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return JSONResponse(body, status_code=status)
