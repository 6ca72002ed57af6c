"""Readers of metric exports: each turns a CSV file into points, and every row it cannot use
into a `Rejected` with the line number and the reason. Nothing is dropped silently.

A reader raises `MalformedFile` when the file as a whole cannot be read (not text, no header
it recognises, no time column). Readers are registered in `READERS` by format name:

    long      channel,metric,time,value (one point a row)
    wide      time,<channel>:<metric>,... (one time a row)
    meta      Meta Business Suite (Facebook and Instagram) insights and content exports
    x         X (Twitter) analytics: post activity and account overview exports
    linkedin  LinkedIn page analytics (a sheet of the .xls saved as CSV)
    youtube   YouTube Studio advanced-mode "Table data.csv" / "Chart data.csv"

docs/METRICS.md lists the columns each one recognises.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

MAX_BYTES = 50 * 1024 * 1024


class MalformedFile(ValueError):
    """The file cannot be read as this format at all; the message says why."""


@dataclass(frozen=True, slots=True)
class ParsedPoint:
    channel: str  # the channel's name as the file (or --channel) gives it
    metric: str
    at: datetime
    value: float


@dataclass(frozen=True, slots=True)
class Rejected:
    line: int
    reason: str


@dataclass
class Parsed:
    points: list[ParsedPoint] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    rows: int = 0
    blank_cells: int = 0  # empty cells or dashes: no value given, so none imported


Reader = Callable[[bytes, str | None], Parsed]

_TIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%d %H:%M %z", "%Y-%m-%d %H:%M", "%Y-%m-%d",
    "%m/%d/%Y %H:%M", "%m/%d/%Y %I:%M %p", "%m/%d/%Y", "%a, %b %d, %Y", "%b %d, %Y",
    "%d %b %Y",
)


def decode(data: bytes) -> str:
    if len(data) > MAX_BYTES:
        raise MalformedFile(f"the file is larger than {MAX_BYTES // 2**20} MB")
    if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise MalformedFile("this is not a text file (an .xls or .zip? save it as CSV first)")
    for encoding in ("utf-8-sig", "utf-16"):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if encoding == "utf-16" or "\x00" not in text:
            return text
    raise MalformedFile("the file is neither UTF-8 nor UTF-16 text")


@dataclass(frozen=True, slots=True)
class Row:
    line: int  # where the row starts in the file, from 1
    cells: list[str]


def rows_of(data: bytes) -> list[Row]:
    """The CSV rows of `data` with their line numbers (cells may span lines); Excel's `sep=`
    first line is honoured and skipped."""
    text = decode(data)
    delimiter, skipped = ",", 0
    first, _, rest = text.partition("\n")
    if first.strip().lower().startswith("sep=") and len(first.strip()) == 5:
        delimiter, text, skipped = first.strip()[4], rest, 1
    elif first.count(";") > first.count(",") and first.count(";") > 0:
        delimiter = ";"
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    out: list[Row] = []
    line = 1
    try:
        for cells in reader:
            out.append(Row(line + skipped, cells))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise MalformedFile(f"line {line + skipped}: the CSV cannot be read: {exc}") from None
    return out


def norm(name: str) -> str:
    """A header name compared loosely: lower case, single spaces, no surrounding quotes."""
    return re.sub(r"\s+", " ", name.strip().strip('"').lower())


def find_header(rows: Sequence[Row], time_names: Sequence[str],
                search: int = 6) -> tuple[int, int]:
    """(row index, column index) of the first header row, among the first `search` rows,
    that has one of `time_names`; raises `MalformedFile` when there is none."""
    wanted = [norm(n) for n in time_names]
    for r, row in enumerate(rows[:search]):
        names = [norm(c) for c in row.cells]
        for name in wanted:
            if name in names:
                return r, names.index(name)
    raise MalformedFile(f"no header with a time column ({', '.join(time_names)}) "
                        f"in the first {search} lines")


def parse_time(text: str) -> datetime:
    """An aware UTC time; times without an offset are taken as UTC. Raises ValueError."""
    text = text.strip()
    if not text:
        raise ValueError("the time is empty")
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        for fmt in _TIME_FORMATS:
            try:
                when = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
        else:
            raise ValueError(f"cannot read the time {text!r}") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def parse_value(text: str) -> float | None:
    """A number from a cell ('1,234', '$12.50', '7%'); None for an empty cell or a dash.
    Raises ValueError for anything else, or a negative or non-finite number."""
    cleaned = text.strip().replace("\u00a0", "").replace(" ", "")
    if cleaned in ("", "-", "—", "–"):
        return None
    cleaned = cleaned.lstrip("$€£¥").rstrip("%")
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", cleaned):
        cleaned = cleaned.replace(",", "")
    try:
        value = float(cleaned)
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{text.strip()!r} is not a finite number")
    if value < 0:
        raise ValueError(f"{text.strip()!r} is negative")
    return value


def data_rows(rows: Sequence[Row], header_at: int) -> Iterator[Row]:
    """Each non-blank row after the header."""
    for row in rows[header_at + 1:]:
        if any(cell.strip() for cell in row.cells):
            yield row
