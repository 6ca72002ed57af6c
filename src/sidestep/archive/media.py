"""The content-addressed media store: each file once, named by its sha256, under the data dir.

Names are the hex digest only (`archive/media/ab/cd/abcd…`), so nothing an export says
can choose a path.
A file is written to a temporary name in the store, hashed as it streams, then renamed into
place, so a crash leaves no half file under a valid name.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_SHA256 = re.compile(r"[0-9a-f]{64}")
CHUNK_BYTES = 1 << 20


class MediaTooLarge(ValueError):
    """A file grew past the cap while it was being stored; nothing was kept."""


@dataclass(frozen=True, slots=True)
class StoredFile:
    sha256: str
    size_bytes: int


class MediaStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def under(cls, data_dir: Path) -> MediaStore:
        # Not data_dir/media: the composer keeps uploads there, one folder per workspace id.
        return cls(data_dir / "archive" / "media")

    def path(self, sha256: str) -> Path:
        """Where the file with this digest lives; ValueError unless `sha256` is 64 hex digits."""
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a sha256 digest: {sha256[:80]!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def open(self, sha256: str) -> BinaryIO:
        """The stored file for reading; FileNotFoundError when it is not in the store."""
        return self.path(sha256).open("rb")

    def put_stream(self, source: BinaryIO, *, max_bytes: int) -> StoredFile:
        return self.put_chunks(iter(lambda: source.read(CHUNK_BYTES), b""), max_bytes=max_bytes)

    def put_bytes(self, data: bytes) -> StoredFile:
        return self.put_chunks([data], max_bytes=len(data))

    def put_chunks(self, chunks: Iterable[bytes], *, max_bytes: int) -> StoredFile:
        """Store the bytes; the same bytes stored twice are one file. Raises MediaTooLarge."""
        staging = self.root / "tmp"
        staging.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        handle, temp_name = tempfile.mkstemp(dir=staging)
        try:
            with os.fdopen(handle, "wb") as out:
                for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise MediaTooLarge(f"file larger than {max_bytes} bytes")
                    digest.update(chunk)
                    out.write(chunk)
            sha256 = digest.hexdigest()
            final = self.path(sha256)
            if final.is_file():
                os.unlink(temp_name)
            else:
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(temp_name, final)
        except BaseException:
            if os.path.exists(temp_name):
                os.unlink(temp_name)
            raise
        return StoredFile(sha256=sha256, size_bytes=size)
