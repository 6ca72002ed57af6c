"""Which archived files the site shows inline, under which name and content type.

A file is served as its recorded type only when that type is on `INLINE_TYPES` and the
file's first bytes agree (a "jpeg" that starts like HTML is not a jpeg). Anything else goes
out as `application/octet-stream` with `Content-Disposition: attachment`, so no stored file
can become a page of the site's origin. SVG is never inline: it can carry script.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# type -> (file extension, what its first bytes must look like)
INLINE_TYPES: dict[str, str] = {
    "image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp",
    "video/mp4": "mp4", "video/webm": "webm", "video/quicktime": "mov",
    "audio/mpeg": "mp3", "audio/mp4": "m4a", "audio/x-m4a": "m4a", "audio/aac": "aac",
    "audio/ogg": "ogg", "audio/opus": "opus", "audio/wav": "wav", "audio/x-wav": "wav",
}
FALLBACK_TYPE = "application/octet-stream"
FALLBACK_EXTENSION = "bin"
SNIFF_BYTES = 16
_NAME = re.compile(r"([0-9a-f]{64})\.([a-z0-9]{1,5})")


@dataclass(frozen=True, slots=True)
class Served:
    content_type: str
    inline: bool


def extension_of(mime_type: str) -> str:
    return INLINE_TYPES.get(mime_type.lower(), FALLBACK_EXTENSION)


def file_name(sha256: str, mime_type: str) -> str:
    return f"{sha256}.{extension_of(mime_type)}"


def parse_name(name: str) -> tuple[str, str] | None:
    """(sha256, extension) of a media file name, or None for anything else."""
    match = _NAME.fullmatch(name)
    return (match.group(1), match.group(2)) if match else None


def _looks_like(mime_type: str, head: bytes) -> bool:
    if mime_type == "image/jpeg":
        return head.startswith(b"\xff\xd8\xff")
    if mime_type == "image/png":
        return head.startswith(b"\x89PNG\r\n\x1a\n")
    if mime_type == "image/gif":
        return head[:6] in (b"GIF87a", b"GIF89a")
    if mime_type == "image/webp":
        return head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    if mime_type in ("audio/wav", "audio/x-wav"):
        return head[:4] == b"RIFF" and head[8:12] == b"WAVE"
    if mime_type in ("video/mp4", "video/quicktime", "audio/mp4", "audio/x-m4a"):
        return head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free")
    if mime_type == "video/webm":
        return head.startswith(b"\x1a\x45\xdf\xa3")
    if mime_type in ("audio/ogg", "audio/opus"):
        return head.startswith(b"OggS")
    if mime_type == "audio/mpeg":
        return head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF
                                           and head[1] & 0xE0 == 0xE0)
    if mime_type == "audio/aac":
        return len(head) > 1 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0
    return False


def how_to_serve(mime_type: str, head: bytes) -> Served:
    """The type to send a file as, given its recorded type and its first `SNIFF_BYTES`."""
    recorded = mime_type.lower()
    if recorded in INLINE_TYPES and _looks_like(recorded, head):
        return Served(recorded, inline=True)
    return Served(FALLBACK_TYPE, inline=False)
