"""The content of Matrix `m.room.message` events, built from a post (no I/O here).

Text is `m.text`; a link also goes as `org.matrix.custom.html` in `formatted_body`, where
clients keep only some URI schemes in `href`
(https://spec.matrix.org/v1.18/client-server-api/#mroommessage-msgtypes). Media is one
`m.image`, `m.video`, `m.audio` or `m.file` event whose `body` is the caption when `filename`
is set beside it (v1.10, #mimage): the post's text, else the item's alt text, else the file
name. A reply names the event it answers in `m.relates_to.m.in_reply_to` (#rich-replies).
"""

from __future__ import annotations

import html
import json
import struct
from typing import Any
from urllib.parse import urlsplit

from sidestep.domain.content import Content, MediaItem, MediaKind

__all__ = ["MAX_EVENT_BYTES", "event_content", "event_size_bytes", "image_size"]

HTML_FORMAT = "org.matrix.custom.html"
# An event may be 65,536 bytes of canonical JSON, envelope included (room, sender, hashes,
# signatures, auth and prev events; #size-limits): the content must leave room for it.
MAX_EVENT_BYTES = 65_536
ENVELOPE_BYTES = 2_048
_PLACEHOLDER_MXC = "mxc://example.org/" + "x" * 24
_MSGTYPE = {MediaKind.IMAGE: "m.image", MediaKind.VIDEO: "m.video",
            MediaKind.AUDIO: "m.audio", MediaKind.DOCUMENT: "m.file"}
_LINK_SCHEMES = ("http", "https", "mailto")


def event_size_bytes(content: Content) -> int:
    """About how many bytes the whole event of `content` takes, envelope included."""
    body = json.dumps(event_content(content, _PLACEHOLDER_MXC), ensure_ascii=False)
    return len(body.encode()) + ENVELOPE_BYTES


def event_content(content: Content, mxc: str | None) -> dict[str, Any]:
    """The `m.room.message` content: text (with the link as HTML), or media captioned by it."""
    body = _plain_text(content)
    event: dict[str, Any] = {"msgtype": "m.text", "body": body}
    formatted = _formatted_text(content)
    if mxc is not None and content.media:
        item = content.media[0]
        caption = body or item.alt
        event = {"msgtype": _MSGTYPE[item.kind], "body": caption or item.filename,
                 "filename": item.filename, "url": mxc, "info": _media_info(item)}
        if not body:
            formatted = None
    if formatted is not None:
        event |= {"format": HTML_FORMAT, "formatted_body": formatted}
    if content.reply_to:
        event["m.relates_to"] = {"m.in_reply_to": {"event_id": content.reply_to}}
    return event


def _plain_text(content: Content) -> str:
    """The post's text, with its link appended unless the text already has it."""
    if content.link and content.link not in content.text:
        return f"{content.text}\n\n{content.link}" if content.text.strip() else content.link
    return content.text


def _formatted_text(content: Content) -> str | None:
    """HTML with the post's link as an anchor; None without a link clients would keep."""
    link = content.link
    if not link or urlsplit(link).scheme.lower() not in _LINK_SCHEMES:
        return None
    shown = html.escape(link, quote=False)
    anchor = f'<a href="{html.escape(link, quote=True)}">{shown}</a>'
    text = html.escape(content.text, quote=False)
    if link in content.text:
        text = text.replace(shown, anchor)
    else:
        text = f"{text}<br><br>{anchor}" if content.text.strip() else anchor
    return text.replace("\n", "<br>")


def _media_info(item: MediaItem) -> dict[str, Any]:
    info: dict[str, Any] = {"mimetype": item.mime_type, "size": item.size_bytes}
    if item.kind is MediaKind.IMAGE:
        size = image_size(item.data)
        if size is not None:
            info["w"], info["h"] = size
    return info


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) in pixels of a PNG, GIF or JPEG file; None for anything else."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 9 <= len(data):  # walk the JPEG segments up to a start-of-frame marker
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE,
                      0xCF):
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return int(width), int(height)
        pos += 2 + length
    return None
