"""Images uploaded in the composer: kept on disk per workspace, named by their SHA-256.

An upload is checked before it is kept: at most `MAX_UPLOAD_BYTES`, and an image Pillow can
read in one of the formats platforms take (JPEG, PNG, GIF, WebP). Files live under
`<data_dir>/media/<workspace id>/<sha256>.<ext>`; a post's `media` entries name them by
`ref` (that file name), so a preview's upload survives the round trip without sending the
file again, and a workspace can only ever name its own files. The per-platform versions the
preview makes (resized, re-encoded) are kept the same way so the page can show them: the
CSP allows no `data:` images.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from sidestep.channels.images import UnreadableImage, human_bytes
from sidestep.config import Settings
from sidestep.domain.content import MediaItem, MediaKind
from sidestep.vault import Vault

__all__ = ["MAX_UPLOAD_BYTES", "MediaError", "MediaHost", "MediaStore", "StoredImage"]

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
_EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp"}
MIME_OF_EXTENSION = {"jpg": "image/jpeg", "png": "image/png", "gif": "image/gif",
                     "webp": "image/webp", "mp4": "video/mp4"}
EXTENSION_OF_MIME = {mime: ext for ext, mime in MIME_OF_EXTENSION.items()} | {"image/jpg": "jpg"}
_REF = re.compile(r"^[0-9a-f]{64}\.(jpg|png|gif|webp|mp4)$")


class MediaError(ValueError):
    """An upload that cannot be kept; the message is for the person who sent it."""


@dataclass(frozen=True, slots=True)
class StoredImage:
    ref: str
    filename: str
    mime_type: str
    size_bytes: int
    alt: str = ""

    def as_post_media(self) -> dict[str, Any]:
        """The entry for `Post.media`."""
        return {"kind": MediaKind.IMAGE.value, "ref": self.ref, "filename": self.filename,
                "mime_type": self.mime_type, "size_bytes": self.size_bytes, "alt": self.alt}


class MediaStore:
    """One workspace's uploaded images."""

    def __init__(self, data_dir: Path, *, workspace_id: int) -> None:
        self.root = data_dir / "media" / str(workspace_id)

    async def keep_upload(self, data: bytes, *, filename: str, alt: str = "") -> StoredImage:
        """Check and keep an uploaded image. Raises MediaError saying what is wrong with it."""
        if len(data) > MAX_UPLOAD_BYTES:
            raise MediaError(f"the image is {human_bytes(len(data))}; upload at most "
                             f"{human_bytes(MAX_UPLOAD_BYTES)}")
        if not data:
            raise MediaError("the uploaded file is empty")
        extension = await asyncio.to_thread(_image_extension, data)
        ref = await self.keep(data, extension)
        return StoredImage(ref=ref, filename=_clean_name(filename, extension),
                           mime_type=MIME_OF_EXTENSION[extension], size_bytes=len(data), alt=alt)

    async def keep(self, data: bytes, extension: str) -> str:
        """Write `data` (already checked) under its hash; return its ref."""
        ref = f"{hashlib.sha256(data).hexdigest()}.{extension}"
        path = self.root / ref
        if not path.exists():
            await asyncio.to_thread(_write, path, data)
        return ref

    def path(self, ref: str) -> Path | None:
        """The file of `ref` in this workspace, or None when `ref` is malformed or absent."""
        if not _REF.fullmatch(ref):
            return None
        path = self.root / ref
        return path if path.is_file() else None

    async def load(self, entry: dict[str, Any]) -> MediaItem | None:
        """The `MediaItem` of a `Post.media` entry, or None when its file is gone."""
        path = self.path(str(entry.get("ref", "")))
        if path is None:
            return None
        data = await asyncio.to_thread(path.read_bytes)
        return MediaItem(kind=MediaKind(entry.get("kind", "image")),
                         mime_type=str(entry.get("mime_type", "image/jpeg")), data=data,
                         alt=str(entry.get("alt", "")),
                         filename=str(entry.get("filename", path.name)))


def _image_extension(data: bytes) -> str:
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format or ""
            image.verify()
    except (UnreadableImage, Image.DecompressionBombError) as exc:
        raise MediaError("the image is too large to open safely") from exc
    except Exception as exc:  # Pillow raises many types on hostile bytes
        raise MediaError("the file is not an image Sidestep can read") from exc
    if fmt not in _EXTENSIONS:
        raise MediaError(f"{fmt or 'this'} images are not taken; upload JPEG, PNG, GIF or WebP")
    return _EXTENSIONS[fmt]


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".part")
    partial.write_bytes(data)
    partial.replace(path)  # readers never see half a file


def _clean_name(filename: str, extension: str) -> str:
    stem = Path(filename or "image").name.rsplit(".", 1)[0]
    stem = re.sub(r"[^\w.-]+", "-", stem).strip("-.")[:80] or "image"
    return f"{stem}.{extension}"


class MediaHost:
    """Public, signed addresses of a workspace's files, for platforms that fetch media from a
    URL themselves (Instagram, Threads, Pinterest). A file is reachable only through a URL
    this installation signed; the signature binds the workspace and the file's hash."""

    def __init__(self, data_dir: Path, *, base_url: str, secret: bytes) -> None:
        self.data_dir = data_dir
        self.base_url = base_url.rstrip("/")
        self._secret = secret

    @classmethod
    def from_settings(cls, settings: Settings) -> MediaHost:
        secret_key = settings.secret_key.get_secret_value() if settings.secret_key else None
        secret = Vault.derived_key(secret_key=secret_key, data_dir=settings.data_dir,
                                   label=b"sidestep public media v1")
        return cls(settings.data_dir, base_url=settings.public_url, secret=secret)

    def url_for(self, workspace_id: int, item: MediaItem) -> str:
        """Keep `item`'s bytes in the workspace's store (a small synchronous write, called
        from adaptation) and return their signed public URL."""
        extension = EXTENSION_OF_MIME.get(item.mime_type)
        if extension is None:
            raise MediaError(f"{item.mime_type} files cannot be given a public address")
        ref = f"{hashlib.sha256(item.data).hexdigest()}.{extension}"
        path = MediaStore(self.data_dir, workspace_id=workspace_id).root / ref
        if not path.exists():
            _write(path, item.data)
        return f"{self.base_url}/media/{workspace_id}/{ref}?sig={self.signature(workspace_id, ref)}"

    def signature(self, workspace_id: int, ref: str) -> str:
        mac = hmac.new(self._secret, f"{workspace_id}/{ref}".encode(), hashlib.sha256)
        return mac.hexdigest()[:32]

    def verify(self, workspace_id: int, ref: str, signature: str) -> bool:
        return hmac.compare_digest(self.signature(workspace_id, ref), signature)
