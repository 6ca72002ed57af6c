"""What every importer shares: its declaration, what it yields, and readers for its members.

An importer is a module with `IMPORTER = ImporterSpec(...)`; its `read(source)` yields, in
order, an `ImportedPost` per post, a `Skipped` per record that is not the brand's own post
(a repost, a like), and a `RecordProblem` per record it cannot read, so one bad record costs
that record only. A problem with the export as a whole raises `ExportRejected`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import ijson  # type: ignore[import-untyped]

from sidestep.archive.model import ImportedPost
from sidestep.importers.safezip import ExportRejected, ExportSource


@dataclass(frozen=True, slots=True)
class RecordProblem:
    where: str  # member and position, e.g. "data/tweets.js #17"
    reason: str


@dataclass(frozen=True, slots=True)
class Skipped:
    reason: str  # short and countable: "repost", "not yours"


Item = ImportedPost | RecordProblem | Skipped


@dataclass(frozen=True, slots=True)
class ImporterSpec:
    kind: str  # the word after `sidestep import`
    platform: str  # catalogue key the sources are recorded under
    description: str  # what file to give, for --help and errors
    read: Callable[[ExportSource], Iterator[Item]]


def fix_mojibake(text: str) -> str:
    """Undo UTF-8 read as latin-1 (Meta's exports: `tilf\\u00c3\\u00b8jet` → `tilføjet`).

    Text that is not such mojibake (a real `ø`, or characters past U+00FF) is returned as is.
    """
    if text.isascii():
        return text
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def fix_all(value: Any) -> Any:
    """`fix_mojibake` applied to every string inside a JSON value."""
    if isinstance(value, str):
        return fix_mojibake(value)
    if isinstance(value, list):
        return [fix_all(v) for v in value]
    if isinstance(value, dict):
        return {fix_mojibake(k): fix_all(v) for k, v in value.items()}
    return value


class _AfterEquals(io.RawIOBase):
    """The bytes after the first `=`: X's `window.YTD.tweets.part0 = [...]` made plain JSON."""

    def __init__(self, raw: IO[bytes], name: str) -> None:
        self._raw = raw
        head = raw.read(4096)
        cut = head.find(b"=")
        if cut < 0 or not head[:cut].strip().startswith(b"window."):
            raise ExportRejected(f"{name} does not start with `window.YTD.<name> = `")
        self._pending = head[cut + 1:]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._pending or self._raw.read(len(buffer))
        self._pending = b""
        data, self._pending = data[: len(buffer)], data[len(buffer):]
        buffer[: len(data)] = data
        return len(data)


def json_items(source: ExportSource, name: str, prefix: str = "item", *,
               javascript: bool = False, streamed: bool = True) -> Iterator[Any]:
    """The values at ijson `prefix` in member `name`, parsed as a stream.

    Members read whole-at-once by the format still go through the parser as a stream; the
    cap is `max_media_bytes` (as large as a file may be) for streamed arrays and
    `max_document_bytes` otherwise. Raises ExportRejected for invalid JSON or bad UTF-8.
    """
    limits = source.limits
    cap = limits.max_media_bytes if streamed else limits.max_document_bytes
    with source.open(name, max_bytes=cap) as raw:
        stream: IO[bytes] = raw
        if javascript:
            stream = io.BufferedReader(_AfterEquals(raw, name))
        try:
            yield from ijson.items(stream, prefix, use_float=True)
        except ijson.common.IncompleteJSONError as exc:
            raise ExportRejected(f"{name} is not valid UTF-8 JSON: {_first_line(exc)}") from exc
        except UnicodeDecodeError as exc:
            raise ExportRejected(f"{name} is not UTF-8 (byte {exc.start}): {exc.reason}") from exc


def csv_rows(source: ExportSource, name: str) -> Iterator[dict[str, str]]:
    """The rows of a CSV member as dicts; ExportRejected when it is not UTF-8."""
    with source.open(name, max_bytes=source.limits.max_document_bytes) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="strict", newline="")
        try:
            for row in csv.DictReader(text):
                yield {(k or "").strip(): (v or "") for k, v in row.items() if k is not None}
        except UnicodeDecodeError as exc:
            raise ExportRejected(f"{name} is not UTF-8 text: {exc.reason}") from exc
        except csv.Error as exc:
            raise ExportRejected(f"{name} is not a readable CSV file: {exc}") from exc


def member_for(names: frozenset[str], uri: str, *prefixes: str) -> str | None:
    """The member a relative `uri` names: as written, or under one of `prefixes` (exports
    write paths relative to the archive root or to the JSON file's folder). None for URLs."""
    if not uri or uri.startswith(("http://", "https://")):
        return None
    for candidate in (uri.lstrip("/"), *(p + uri.lstrip("/") for p in prefixes)):
        if candidate in names:
            return candidate
    return uri.lstrip("/")


def from_unix(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value), tz=UTC)


def from_iso(value: str) -> datetime:
    """ISO 8601 with `Z` or an offset, nanoseconds cut to microseconds; naive means UTC."""
    text = value.strip().replace("Z", "+00:00")
    if "." in text:
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:min(digits, 6)]}{rest[digits:]}"
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
