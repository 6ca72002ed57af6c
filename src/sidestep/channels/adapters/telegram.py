"""Telegram: posts to a channel (or group) through a bot, with the Bot API.

Methods (every call `POST https://api.telegram.org/bot<token>/<method>`,
https://core.telegram.org/bots/api#making-requests):

- `sendMessage` — text up to 4,096 characters, a preview of the post's link
  (https://core.telegram.org/bots/api#sendmessage, #linkpreviewoptions);
- `sendPhoto` / `sendVideo` — one photo or video, uploaded as multipart bytes or given as an
  HTTP URL, caption up to 1,024 characters (https://core.telegram.org/bots/api#sendphoto,
  #sendvideo, #sending-files);
- `sendMediaGroup` — an album of 2 to 10 photos and videos, uploads named `attach://<name>`
  (https://core.telegram.org/bots/api#sendmediagroup, #inputmediaphoto);
- `getMe` (check_credentials), `deleteMessage` (https://core.telegram.org/bots/api#getme,
  #deletemessage).

Every answer is `{"ok": true, "result": ...}` or `{"ok": false, "error_code", "description",
"parameters": {"retry_after", "migrate_to_chat_id"}}`
(https://core.telegram.org/bots/api#making-requests, #responseparameters). Telegram names its
errors only by their description, so `DESCRIPTIONS` maps the documented texts and the rest is
read by status: 429 and `retry_after` wait, 401/404 and every 403 ("bot is not a member of the
channel chat", "bot was kicked...") need a person — reconnect the bot or make it an
administrator of the channel again, so they read as AuthExpired — and other 400s are
Rejected (`migrate_to_chat_id` with the new id in the reason).

The bot token is part of every URL. It is registered with `sidestep.logs` (so log lines,
httpx's included, mask it) and scrubbed from every error this module raises, and from the
exceptions chained to it. The Bot API has no idempotency key and a bot cannot read a channel's
history, so `can_find` is False.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ValidationError

from sidestep.channels.base import AccountInfo, Adapter, Published
from sidestep.channels.errors import (
    AuthExpired,
    PublishError,
    RateLimited,
    Rejected,
    Transient,
    Unknown,
    capped,
)
from sidestep.channels.http import generic_status_error, retry_after_s
from sidestep.domain.content import Content, MediaItem, MediaKind, Problem
from sidestep.logs import MASK, register_secret
from sidestep.vault import Credentials

TEXT_MAX = 4096
CAPTION_MAX = 1024
ALBUM_KINDS = {MediaKind.IMAGE: "photo", MediaKind.VIDEO: "video"}

# The part after "Bad Request: " of 400s that are not the post's fault: we send bytes or
# public URLs, never file ids, so these say Telegram could not get the file this time.
TRANSIENT_DESCRIPTIONS = frozenset({
    "wrong file identifier/HTTP URL specified",
    "failed to get HTTP URL content",
})
# Documented descriptions worth a plainer sentence; any other 400 is Rejected in its own words.
DESCRIPTIONS: dict[str, str] = {
    "chat not found": "Telegram does not know the channel's chat id; check the chat id or "
                      "@username and that the bot was added to the channel.",
    "message is too long": "The text is longer than Telegram's 4,096 characters.",
    "message caption is too long": "The caption is longer than Telegram's 1,024 characters.",
    "message to delete not found": "The message is no longer in the channel.",
    "message can't be deleted": "Telegram no longer lets the bot delete this message (bots "
                                "can delete their own posts for 48 hours).",
}


class _Parameters(BaseModel):
    retry_after: int | None = None
    migrate_to_chat_id: int | None = None


class _Failure(BaseModel):
    ok: Literal[False]
    error_code: int
    description: str = ""
    parameters: _Parameters | None = None


class _Success(BaseModel):
    ok: Literal[True]
    result: Any = None


class _Chat(BaseModel):
    id: int
    username: str | None = None


class _Message(BaseModel):
    message_id: int
    chat: _Chat


class _Bot(BaseModel):
    id: int
    first_name: str = ""
    username: str | None = None


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _message_text(content: Content) -> str:
    """The text, with the post's link after it when the text does not carry it already."""
    if content.link and content.link not in content.text:
        return f"{content.text}\n\n{content.link}" if content.text.strip() else content.link
    return content.text


def _chat_ref(chat_id: str) -> int | str:
    """A numeric chat id as a number, "@username" as it is."""
    return int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id


def _post_url(message: _Message) -> str | None:
    """t.me link: public channels by username, private supergroups/channels by internal id."""
    if message.chat.username:
        return f"https://t.me/{message.chat.username}/{message.message_id}"
    chat = str(message.chat.id)
    if chat.startswith("-100"):
        return f"https://t.me/c/{chat[4:]}/{message.message_id}"
    return None


def _scrub(exc: BaseException, secret: str) -> None:
    """Remove `secret` from the messages of `exc` and of every exception chained to it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = tuple(a.replace(secret, MASK) if isinstance(a, str) else a
                             for a in current.args)
        current = current.__cause__ or current.__context__


class TelegramAdapter(Adapter):
    """Posts of text, one photo or video, or an album, to one chat through a bot."""

    platform = "telegram"
    credential_fields = ("bot_token", "chat_id")
    default_timeout_s = 60.0  # uploads of up to 50 MB
    can_find = False

    # -- content checks ---------------------------------------------------------------

    def text_length(self, text: str) -> int:
        """Telegram counts UTF-16 code units (an emoji outside the BMP counts two)."""
        return _utf16_len(text)

    def validate(self, content: Content) -> list[Problem]:
        """The base checks, on the text as sent (with the link) and the caption limit."""
        problems = [p for p in super().validate(content) if p.code != "too_long"]
        length = _utf16_len(_message_text(content))
        if content.media and length > CAPTION_MAX:
            problems.append(Problem("too_long", f"Telegram captions on photos and videos hold "
                                    f"at most {CAPTION_MAX:,} characters; this one has "
                                    f"{length:,}. Shorten it or post the text on its own."))
        elif length > TEXT_MAX:
            problems.append(Problem("too_long", f"Telegram messages hold at most {TEXT_MAX:,} "
                                    f"characters; this one has {length:,}."))
        return problems

    def platform_problems(self, content: Content) -> list[Problem]:
        return [Problem("media_kind", f"Sidestep sends photos and videos to Telegram, not "
                        f"{item.kind.value} files ({item.filename}).")
                for item in content.media if item.kind not in ALBUM_KINDS]

    # -- publishing -------------------------------------------------------------------

    async def publish(self, content: Content, credentials: Credentials, *,
                      idempotency_key: str) -> Published:
        """Send the post as one message or one album; the id is "<chat id>:<message ids>".

        `idempotency_key` is not sent: the Bot API has none. Raises AuthExpired (credentials
        missing or refused, the bot no longer a member or administrator of the chat), Rejected
        (content Telegram will not take, a wrong chat id, a migrated group), RateLimited,
        Transient, PlatformOutage, or Unknown(maybe_sent=True) when Telegram's answer to the
        send was lost or unreadable. No message contains the bot token.
        """
        self._check(credentials)
        problems = self.validate(content)
        if problems:
            raise Rejected(" ".join(p.message for p in problems))
        chat, text = _chat_ref(credentials["chat_id"]), _message_text(content)
        if not content.media:
            body: dict[str, Any] = {"chat_id": chat, "text": text}
            if content.link:
                body["link_preview_options"] = {"url": content.link}
            result = await self._call(credentials, "sendMessage", changes=True, json=body)
        elif len(content.media) == 1:
            item = content.media[0]
            field = ALBUM_KINDS[item.kind]
            method = "sendPhoto" if field == "photo" else "sendVideo"
            fields: dict[str, Any] = {"chat_id": chat} | ({"caption": text} if text else {})
            result = await self._call(credentials, method, changes=True,
                                      **_with_file(fields, field, item))
        else:
            result = await self._call(credentials, "sendMediaGroup", changes=True,
                                      **_album(chat, text, content.media))
        messages = self._messages(result)
        first = messages[0]
        ids = ",".join(str(m.message_id) for m in messages)
        return Published(f"{first.chat.id}:{ids}", _post_url(first))

    def _messages(self, result: Any) -> list[_Message]:
        try:
            items = result if isinstance(result, list) else [result]
            messages = [_Message.model_validate(item) for item in items]
        except ValidationError as exc:
            raise Unknown("Telegram took the post but answered without the message it made.",
                          maybe_sent=True) from exc
        if not messages:
            raise Unknown("Telegram answered a send with no message.", maybe_sent=True)
        return messages

    # -- account and delete -----------------------------------------------------------

    async def check_credentials(self, credentials: Credentials) -> AccountInfo:
        """The bot the token opens (getMe); AuthExpired if Telegram refuses the token."""
        self._check(credentials)
        result = await self._call(credentials, "getMe", changes=False)
        try:
            bot = _Bot.model_validate(result)
        except ValidationError as exc:
            raise Transient("Telegram's answer to getMe is not a bot.") from exc
        name = f"@{bot.username}" if bot.username else bot.first_name
        return AccountInfo(account_id=str(bot.id), name=name or str(bot.id))

    async def delete(self, external_id: str, credentials: Credentials) -> None:
        """Delete every message of the post; Rejected if one is gone or too old to delete."""
        self._check(credentials)
        chat, _, ids = external_id.partition(":")
        if not ids:
            raise Rejected(f"{external_id!r} is not a Telegram post id (chat:message).")
        for message_id in ids.split(","):
            await self._call(credentials, "deleteMessage", changes=True,
                             json={"chat_id": _chat_ref(chat), "message_id": int(message_id)})

    # -- HTTP and the error table -----------------------------------------------------

    def _check(self, credentials: Credentials) -> None:
        missing = self.missing_credentials(credentials)
        if missing:
            raise AuthExpired(f"The Telegram connection lacks {', '.join(missing)}; "
                              "reconnect it.")
        register_secret(credentials["bot_token"])

    async def _call(self, credentials: Credentials, method: str, *, changes: bool,
                    **kwargs: Any) -> Any:
        """One Bot API call; its `result`, or the taxonomy with the token scrubbed out."""
        token = credentials["bot_token"]
        url = f"{self.entry.api_base_urls[0]}/bot{token}/{method}"
        try:
            response = await self.http.request("POST", url, changes=changes, **kwargs)
            return self._result(response, changes=changes)
        except PublishError as exc:
            _scrub(exc, token)
            raise

    def _result(self, response: httpx.Response, *, changes: bool) -> Any:
        try:
            return _Success.model_validate_json(response.content).result
        except ValidationError:
            pass
        try:
            failure = _Failure.model_validate_json(response.content)
        except ValidationError as exc:
            raise self._unreadable(response, changes=changes) from exc
        raise self._failure(failure, response)

    def _failure(self, failure: _Failure, response: httpx.Response) -> Exception:
        code, description = failure.error_code, failure.description
        params = failure.parameters or _Parameters()
        detail = description.partition(": ")[2] or description
        kw: dict[str, Any] = {"platform_code": description, "http_status": code}
        if code == 429 or params.retry_after is not None:
            wait = (float(params.retry_after) if params.retry_after is not None
                    else retry_after_s(response, now=self.clock.now(), default_s=30.0))
            return RateLimited(f"Telegram asks to wait {wait:.0f} s ({description}).",
                               retry_after_s=wait, **kw)
        if params.migrate_to_chat_id is not None:
            new = params.migrate_to_chat_id
            return Rejected(f"The Telegram group became a supergroup with chat id {new}; set "
                            f"the channel's chat id to {new}.", **kw)
        if code in (401, 404):
            return AuthExpired("Telegram refused the bot token (revoked, or not a token); "
                               "reconnect the bot.", **kw)
        if code == 403:
            return AuthExpired(f"Telegram does not let the bot post there ({description}); "
                               "add the bot to the channel as an administrator allowed to "
                               "post.", **kw)
        if code == 400 and detail in TRANSIENT_DESCRIPTIONS:
            return Transient(f"Telegram could not get the media this time ({description}).",
                             **kw)
        if code == 400:
            return Rejected(DESCRIPTIONS.get(detail, f"Telegram refused the post: "
                                                     f"{description}."), **kw)
        if code == 413:
            return Rejected("The file is larger than Telegram lets bots upload (50 MB).", **kw)
        return generic_status_error(response, platform=self.platform, now=self.clock.now())

    def _unreadable(self, response: httpx.Response, *, changes: bool) -> Exception:
        status = response.status_code
        if status == 429 or status >= 500:
            return generic_status_error(response, platform=self.platform, now=self.clock.now())
        snippet = capped(response.content[:200].decode("utf-8", "replace"), 120)
        message = f"Telegram answered HTTP {status} with something unreadable: {snippet!r}"
        if changes and response.is_success:
            return Unknown(message, maybe_sent=True, http_status=status)
        return Transient(message, http_status=status)


def _multipart(fields: dict[str, Any], uploads: dict[str, tuple[str, bytes, str]]
               ) -> dict[str, Any]:
    """Request arguments for a multipart/form-data body, the only one the published spec
    describes for the media methods; without uploads every field goes as a plain part."""
    text = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
    if uploads:
        return {"data": text, "files": uploads}
    return {"files": {k: (None, v) for k, v in text.items()}}


def _with_file(fields: dict[str, Any], name: str, item: MediaItem) -> dict[str, Any]:
    """sendPhoto/sendVideo arguments: the item's public URL, or its bytes as an upload."""
    if item.url:
        return _multipart(fields | {name: item.url}, {})
    return _multipart(fields, {name: (item.filename, item.data, item.mime_type)})


def _album(chat: int | str, caption: str, media: tuple[MediaItem, ...]) -> dict[str, Any]:
    """sendMediaGroup arguments; the caption goes on the first item, as Telegram shows it."""
    entries: list[dict[str, Any]] = []
    uploads: dict[str, tuple[str, bytes, str]] = {}
    for n, item in enumerate(media):
        entry: dict[str, Any] = {"type": ALBUM_KINDS[item.kind]}
        if item.url:
            entry["media"] = item.url
        else:
            entry["media"] = f"attach://file{n}"
            uploads[f"file{n}"] = (item.filename, item.data, item.mime_type)
        if n == 0 and caption:
            entry["caption"] = caption
        entries.append(entry)
    return _multipart({"chat_id": chat, "media": entries}, uploads)
