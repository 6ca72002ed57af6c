"""The generic layouts: long (`channel,metric,time,value`) and wide (`time,<channel>:<metric>`)."""

from __future__ import annotations

from sidestep.analytics.formats import (
    MalformedFile,
    Parsed,
    ParsedPoint,
    Rejected,
    data_rows,
    find_header,
    norm,
    parse_time,
    parse_value,
    rows_of,
)
from sidestep.store.metrics import METRICS

TIME_NAMES = ("time", "date", "timestamp")


def read_long(data: bytes, channel: str | None) -> Parsed:
    """One point a row. The `channel` column may be left out when `channel` is given."""
    rows = rows_of(data)
    header_at, time_col = find_header(rows, TIME_NAMES, search=1)
    names = [norm(c) for c in rows[header_at].cells]
    missing = [n for n in ("metric", "value") if n not in names]
    if "channel" not in names and channel is None:
        missing.insert(0, "channel")
    if missing:
        raise MalformedFile(f"the header lacks {', '.join(missing)} "
                            "(expected channel,metric,time,value)")
    metric_col, value_col = names.index("metric"), names.index("value")
    channel_col = names.index("channel") if "channel" in names else None
    out = Parsed()
    for row in data_rows(rows, header_at):
        out.rows += 1
        cells = row.cells
        if len(cells) < len(names):
            out.rejected.append(Rejected(row.line, f"{len(cells)} cells, the header has "
                                                   f"{len(names)}"))
            continue
        name = cells[channel_col].strip() if channel_col is not None else channel or ""
        metric = norm(cells[metric_col])
        if not name:
            out.rejected.append(Rejected(row.line, "the channel is empty"))
            continue
        if metric not in METRICS:
            out.rejected.append(Rejected(row.line, f"unknown metric {metric!r}"))
            continue
        try:
            when = parse_time(cells[time_col])
            value = parse_value(cells[value_col])
        except ValueError as exc:
            out.rejected.append(Rejected(row.line, str(exc)))
            continue
        if value is None:
            out.blank_cells += 1
            continue
        out.points.append(ParsedPoint(name, metric, when, value))
    return out


def read_wide(data: bytes, channel: str | None) -> Parsed:
    """One time a row; every other column is `<channel>:<metric>` (or just `<metric>` when
    `channel` is given)."""
    rows = rows_of(data)
    header_at, time_col = find_header(rows, TIME_NAMES, search=1)
    columns: dict[int, tuple[str, str]] = {}
    for i, raw in enumerate(rows[header_at].cells):
        if i == time_col or not raw.strip():
            continue
        name, sep, metric = raw.strip().rpartition(":")
        if not sep:
            name, metric = channel or "", raw.strip()
        if not name:
            raise MalformedFile(f"column {raw.strip()!r} names no channel; write "
                                "<channel>:<metric> or give --channel")
        if norm(metric) not in METRICS:
            raise MalformedFile(f"column {raw.strip()!r}: unknown metric {metric.strip()!r}; "
                                f"use one of {', '.join(METRICS)}")
        columns[i] = (name.strip(), norm(metric))
    if not columns:
        raise MalformedFile("the header has no <channel>:<metric> columns")
    out = Parsed()
    for row in data_rows(rows, header_at):
        out.rows += 1
        try:
            when = parse_time(row.cells[time_col] if time_col < len(row.cells) else "")
        except ValueError as exc:
            out.rejected.append(Rejected(row.line, str(exc)))
            continue
        for i, (name, metric) in columns.items():
            try:
                value = parse_value(row.cells[i] if i < len(row.cells) else "")
            except ValueError as exc:
                out.rejected.append(Rejected(row.line, f"{name}:{metric}: {exc}"))
                continue
            if value is None:
                out.blank_cells += 1
            else:
                out.points.append(ParsedPoint(name, metric, when, value))
    return out
