"""Readers of the platforms' own analytics exports, declared as data: which time column,
which column (or sum of columns) gives each metric, and whether rows are posts.

Per-post exports (Meta's content export, X's post activity) give each post's lifetime totals
at its publishing time; they are summed per UTC day of publishing, so a day's point is "what
that day's posts earned". The column names come from the platforms' documentation and common
samples of their exports (docs/METRICS.md); a layout is chosen by its time column, and the
first alternative whose columns are all present gives a metric. Columns no layout maps are
listed in `Parsed.ignored_columns`, so the summary shows what was left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sidestep.analytics.formats import (
    MalformedFile,
    Parsed,
    ParsedPoint,
    Rejected,
    Row,
    data_rows,
    find_header,
    norm,
    parse_time,
    parse_value,
    rows_of,
)

Alternatives = tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Layout:
    name: str
    time_column: str
    metrics: dict[str, Alternatives]
    per_post: bool = False
    search_rows: int = 6


META = (
    Layout("content export (one row per post)", "Publish time", {
        "reach": (("Reach",),),
        "impressions": (("Impressions",), ("Views",)),
        "engagement": (("Reactions, comments and shares",), ("Reactions", "Comments", "Shares"),
                       ("Likes", "Comments", "Shares"), ("Interactions",)),
        "clicks": (("Total clicks",), ("Link clicks",)),
    }, per_post=True),
    Layout("insights export (one row per day)", "Date", {
        "reach": (("Reach",), ("Facebook Page reach",), ("Instagram reach",),
                  ("Daily Total Reach",), ("Daily Page Reach",)),
        "impressions": (("Impressions",), ("Views",), ("Daily Total Impressions",)),
        "engagement": (("Content interactions",), ("Engagement",),
                       ("Daily Page Engaged Users",)),
        "clicks": (("Link clicks",),),
        "followers": (("Followers",), ("Total followers",), ("Lifetime Total Likes",)),
    }),
)
X = (
    Layout("post activity export (one row per post)", "time", {
        "impressions": (("impressions",),),
        "engagement": (("engagements",),),
        "clicks": (("url clicks",),),
    }, per_post=True),
    Layout("account overview export (one row per day)", "Date", {
        "impressions": (("Impressions",),),
        "engagement": (("Engagements",),),
    }),
)
LINKEDIN = (
    Layout("content metrics (one row per day)", "Date", {
        "impressions": (("Impressions (total)",), ("Impressions (organic)",)),
        "reach": (("Unique impressions (organic)",), ("Unique impressions (total)",)),
        "clicks": (("Clicks (total)",), ("Clicks (organic)",)),
        "engagement": (("Reactions (total)", "Comments (total)", "Reposts (total)"),
                       ("Reactions (total)", "Comments (total)", "Shares (total)"),
                       ("Reactions (organic)", "Comments (organic)", "Reposts (organic)"),
                       ("Reactions (organic)", "Comments (organic)", "Shares (organic)")),
    }),
)
YOUTUBE = (
    Layout("advanced-mode table or chart data (one row per day)", "Date", {
        "reach": (("Unique viewers",), ("Views",)),
        "impressions": (("Impressions",),),
        "engagement": (("Likes", "Comments", "Shares"), ("Likes", "Comments"), ("Likes",)),
        "revenue": (("Estimated revenue (USD)",), ("Your estimated revenue (USD)",)),
    }),
)

# Meta's single-metric insights export: a title line names the metric, then "Date","Primary".
_META_TITLES = (("reach", "reach"), ("impressions", "impressions"), ("views", "impressions"),
                ("interactions", "engagement"), ("engagement", "engagement"),
                ("link clicks", "clicks"))


def _choose(layouts: tuple[Layout, ...], rows: list[Row]) -> tuple[Layout, int, int]:
    problems = []
    for layout in layouts:
        try:
            header_at, time_col = find_header(rows, (layout.time_column,), layout.search_rows)
        except MalformedFile:
            problems.append(f"{layout.time_column!r}")
            continue
        return layout, header_at, time_col
    raise MalformedFile(f"no header with a time column ({' or '.join(problems)}) in the first "
                        "lines; is this the right export and format?")


def _read(layouts: tuple[Layout, ...], data: bytes, channel: str | None, label: str) -> Parsed:
    if not channel:
        raise MalformedFile(f"{label} exports hold one account; name its channel (--channel)")
    rows = rows_of(data)
    layout, header_at, time_col = _choose(layouts, rows)
    names = [norm(c) for c in rows[header_at].cells]
    chosen: dict[str, list[int]] = {}
    for metric, alternatives in layout.metrics.items():
        for columns in alternatives:
            wanted = [norm(c) for c in columns]
            if all(w in names for w in wanted):
                chosen[metric] = [names.index(w) for w in wanted]
                break
    if not chosen:
        raise MalformedFile(f"the {label} {layout.name} has none of the metric columns "
                            "Sidestep reads (see docs/METRICS.md)")
    used = {time_col, *(i for cols in chosen.values() for i in cols)}
    out = Parsed(ignored_columns=[rows[header_at].cells[i].strip() for i in range(len(names))
                                  if i not in used and names[i]])
    sums: dict[tuple[str, datetime], float] = {}
    for row in data_rows(rows, header_at):
        out.rows += 1
        first = norm(row.cells[0]) if row.cells else ""
        if first in ("total", "totals", "grand total"):
            out.rejected.append(Rejected(row.line, "a totals row, not a point in time"))
            continue
        _add_row(row, time_col, chosen, layout.per_post, sums, out)
    out.points = [ParsedPoint(channel, metric, at, value)
                  for (metric, at), value in sorted(sums.items(), key=lambda kv: kv[0][1])]
    return out


def _add_row(row: Row, time_col: int, chosen: dict[str, list[int]], per_post: bool,
             sums: dict[tuple[str, datetime], float], out: Parsed) -> None:
    cells = row.cells
    try:
        at = parse_time(cells[time_col] if time_col < len(cells) else "")
    except ValueError as exc:
        out.rejected.append(Rejected(row.line, str(exc)))
        return
    if per_post:
        at = at.replace(hour=0, minute=0, second=0, microsecond=0)
    values: dict[str, float] = {}
    problems = []
    for metric, columns in chosen.items():
        parts = []
        for i in columns:
            try:
                parts.append(parse_value(cells[i] if i < len(cells) else ""))
            except ValueError as exc:
                problems.append(f"{metric}: {exc}")
        known = [p for p in parts if p is not None]
        if len(known) < len(parts):
            out.blank_cells += len(parts) - len(known)
        if known:
            values[metric] = sum(known)
    if problems:  # the whole row, so a post is never counted in some metrics and not others
        out.rejected.append(Rejected(row.line, "; ".join(problems)))
        return
    for metric, value in values.items():
        sums[(metric, at)] = sums.get((metric, at), 0.0) + value


def read_meta(data: bytes, channel: str | None) -> Parsed:
    rows = rows_of(data)
    for i, row in enumerate(rows[:4]):
        if [norm(c) for c in row.cells[:2]] == ["date", "primary"] and i > 0:
            title = norm(" ".join(rows[i - 1].cells))
            metric = next((m for key, m in _META_TITLES if key in title), None)
            if metric is None:
                raise MalformedFile(f"this Meta export holds {title!r}, which is not a metric "
                                    "Sidestep reads (reach, impressions/views, interactions, "
                                    "link clicks)")
            single = Layout("single-metric export", "Date", {metric: (("Primary",),)})
            return _read((single,), data, channel, "Meta")
    return _read(META, data, channel, "Meta")


def read_x(data: bytes, channel: str | None) -> Parsed:
    return _read(X, data, channel, "X")


def read_linkedin(data: bytes, channel: str | None) -> Parsed:
    return _read(LINKEDIN, data, channel, "LinkedIn")


def read_youtube(data: bytes, channel: str | None) -> Parsed:
    return _read(YOUTUBE, data, channel, "YouTube")
