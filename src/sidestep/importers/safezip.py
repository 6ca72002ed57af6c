"""Reading an export the user hands us, which may be hostile, without trusting any of it.

An export is a zip (read member by member, never extracted) or a single file (a Bluesky
CAR, a TikTok JSON, a LinkedIn CSV). Before any member is read the whole zip directory is
checked: too many entries, a path that is absolute or climbs out (`..`, drive letters,
backslashes), a symlink entry, an encrypted entry, a name twice, a member whose declared
size is too big for its kind or that expands more than `max_ratio` times (a bomb by ratio),
or declared sizes that add up past `max_total_bytes` (a bomb by size). Each refusal is an
`ExportRejected` whose message names the member and the limit. While a member is read the
bytes are counted again, so a directory that lies about sizes is caught too.

Nothing here writes a file: members are streamed to the parser or to the media store,
which names files by their hash under the data directory.
"""

from __future__ import annotations

import io
import re
import stat
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO, Protocol, cast

_DRIVE = re.compile(r"^[A-Za-z]:")


class ExportRejected(ValueError):
    """The export cannot be read safely or at all; nothing from it was kept."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_entries: int = 500_000
    max_total_bytes: int = 64 << 30  # declared uncompressed size of all members
    max_ratio: float = 200.0  # uncompressed / compressed, for members above ratio_floor_bytes
    ratio_floor_bytes: int = 1 << 20
    max_document_bytes: int = 512 << 20  # a JSON/CSV member read as data
    max_media_bytes: int = 8 << 30  # one media file


class ExportSource(Protocol):
    """What importers read from; `open` streams one member, capped at `max_bytes`."""

    label: str
    limits: Limits

    def names(self) -> list[str]: ...
    def size(self, name: str) -> int: ...
    def open(self, name: str, *, max_bytes: int) -> BinaryIO: ...
    def close(self) -> None: ...


class CappedReader(io.RawIOBase):
    """A stream that raises ExportRejected once more than `max_bytes` came out of it."""

    def __init__(self, raw: IO[bytes], *, name: str, max_bytes: int) -> None:
        self._raw = raw
        self._name = name
        self._left = max_bytes
        self._max = max_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self._left + 1)
        try:
            data = self._raw.read(want)
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise ExportRejected(f"{self._name} is damaged: {exc}") from exc
        if len(data) > self._left:
            raise ExportRejected(f"{self._name} is larger than {self._max:,} bytes")
        self._left -= len(data)
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


def check_member_name(name: str) -> str:
    """The member's path with `/` separators; ExportRejected if it could leave a folder."""
    if "\x00" in name:
        raise ExportRejected(f"member name with a NUL byte: {name!r}")
    path = name.replace("\\", "/")
    if path.startswith("/") or _DRIVE.match(path):
        raise ExportRejected(f"absolute path in the archive: {name!r}")
    if ".." in PurePosixPath(path).parts:
        raise ExportRejected(f"path climbing out of the archive: {name!r}")
    return path


class SafeZip:
    """A zip export checked as a whole on opening; members are streamed, never extracted."""

    def __init__(self, path: Path, *, limits: Limits | None = None) -> None:
        self.label = path.name
        self.limits = limits or Limits()
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ExportRejected(f"{path.name} is not a readable zip file ({exc})") from exc
        try:
            self._members = self._check(self._zip.infolist())
        except ExportRejected:
            self._zip.close()
            raise

    def _check(self, infos: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
        limits = self.limits
        if len(infos) > limits.max_entries:
            raise ExportRejected(
                f"{len(infos):,} entries in the archive; at most {limits.max_entries:,}")
        members: dict[str, zipfile.ZipInfo] = {}
        total = 0
        for info in infos:
            name = check_member_name(info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise ExportRejected(f"symbolic link in the archive: {info.filename!r}")
            if info.flag_bits & 0x1:
                raise ExportRejected(f"encrypted member: {info.filename!r}")
            if info.is_dir():
                continue
            if name in members:
                raise ExportRejected(f"the name {name!r} appears twice in the archive")
            if info.file_size > limits.ratio_floor_bytes and (
                info.compress_size == 0
                or info.file_size / info.compress_size > limits.max_ratio
            ):
                raise ExportRejected(
                    f"{name} expands {info.file_size:,} bytes from "
                    f"{info.compress_size:,} (more than {limits.max_ratio:g}×): a zip bomb?")
            total += info.file_size
            if total > limits.max_total_bytes:
                raise ExportRejected(
                    f"the archive expands past {limits.max_total_bytes:,} bytes: a zip bomb?")
            members[name] = info
        return members

    def names(self) -> list[str]:
        return list(self._members)

    def size(self, name: str) -> int:
        return self._members[name].file_size

    def open(self, name: str, *, max_bytes: int) -> BinaryIO:
        info = self._members[name]
        if info.file_size > max_bytes:
            raise ExportRejected(f"{name} is {info.file_size:,} bytes; at most {max_bytes:,}")
        raw = self._zip.open(info)
        return cast(BinaryIO, io.BufferedReader(CappedReader(raw, name=name, max_bytes=max_bytes)))

    def close(self) -> None:
        self._zip.close()


class SingleFile:
    """One file given directly (a .car, a .json, a .csv): the only member, named by itself."""

    def __init__(self, path: Path, *, limits: Limits | None = None) -> None:
        self.label = path.name
        self.limits = limits or Limits()
        self._path = path
        if not path.is_file():
            raise ExportRejected(f"{path} is not a file")

    def names(self) -> list[str]:
        return [self._path.name]

    def size(self, name: str) -> int:
        return self._path.stat().st_size

    def open(self, name: str, *, max_bytes: int) -> BinaryIO:
        if name != self._path.name:
            raise KeyError(name)
        if self.size(name) > max_bytes:
            raise ExportRejected(f"{name} is {self.size(name):,} bytes; at most {max_bytes:,}")
        return cast(BinaryIO, io.BufferedReader(
            CappedReader(self._path.open("rb"), name=name, max_bytes=max_bytes)))

    def close(self) -> None:
        pass


def open_export(path: Path, *, limits: Limits | None = None) -> SafeZip | SingleFile:
    """A zip as `SafeZip`, anything else as `SingleFile`. Raises ExportRejected."""
    if not path.exists():
        raise ExportRejected(f"no such file: {path}")
    if path.is_file() and zipfile.is_zipfile(path):
        return SafeZip(path, limits=limits)
    return SingleFile(path, limits=limits)


def find(source: ExportSource, *, suffix: str) -> list[str]:
    """Members whose path ends with `suffix` (case-insensitive), in archive order."""
    wanted = suffix.lower()
    return [name for name in source.names() if name.lower().endswith(wanted)]


def members_under(source: ExportSource, folder: str) -> Iterator[str]:
    prefix = folder.rstrip("/") + "/"
    for name in source.names():
        if name.startswith(prefix) or f"/{prefix}" in name:
            yield name
