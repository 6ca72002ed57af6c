"""LinkedIn data export: `Shares.csv` (the member's posts).

Header `Date,ShareLink,ShareCommentary,SharedUrl,MediaUrl,Visibility` (some exports spell
`SharedURL,MediaURL`); `Date` is `YYYY-MM-DD HH:MM:SS` in UTC with no zone. LinkedIn wraps
every line of a multi-line commentary in quotes of its own, so after normal CSV parsing the
text has a stray `"` ending the first line, one opening the last, both around each line
between, and `""` for an empty line; `unwrap_lines` takes exactly those off. Shares with no
commentary and no media are reshares of someone else's post and are skipped.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from datetime import UTC, datetime

from sidestep.archive.model import ImportedPost, MediaRef, SourceRef, Visibility
from sidestep.importers.base import ImporterSpec, Item, RecordProblem, Skipped, csv_rows
from sidestep.importers.safezip import ExportRejected, ExportSource

_SHARES = re.compile(r"(^|/)shares\.csv$", re.IGNORECASE)
_VISIBILITY = {"MEMBER_NETWORK": Visibility.PUBLIC, "PUBLIC": Visibility.PUBLIC,
               "CONNECTIONS": Visibility.FOLLOWERS, "LOGGED_IN": Visibility.PUBLIC}


def unwrap_lines(text: str) -> str:
    """Undo LinkedIn's per-line quoting; text not quoted that way is returned as is."""
    lines = text.replace("\r\n", "\n").split("\n")
    if len(lines) < 2:
        return text
    middle = lines[1:-1]
    wrapped = (lines[0].endswith('"') and lines[-1].startswith('"')
               and all(len(m) >= 2 and m.startswith('"') and m.endswith('"') for m in middle))
    if not wrapped:
        return text
    return "\n".join([lines[0][:-1], *(m[1:-1] for m in middle), lines[-1][1:]])


def read(source: ExportSource) -> Iterator[Item]:
    files = [n for n in source.names() if _SHARES.search(n)]
    if not files:
        raise ExportRejected(f"{source.label} has no Shares.csv: is it a LinkedIn export?")
    for name in files:
        # A share with several media is several rows in a row, one MediaUrl each.
        pending: ImportedPost | None = None
        for item in _rows(source, name):
            if (isinstance(item, ImportedPost) and pending is not None
                    and item.sources[0].source_id == pending.sources[0].source_id):
                pending = dataclasses.replace(pending, media=pending.media + item.media)
                continue
            if pending is not None:
                yield pending
                pending = None
            if isinstance(item, ImportedPost):
                pending = item
            else:
                yield item
        if pending is not None:
            yield pending


def _rows(source: ExportSource, name: str) -> Iterator[Item]:
    for position, row in enumerate(csv_rows(source, name), start=2):
        row = {key.lower(): value for key, value in row.items()}
        try:
            created = datetime.strptime(row["date"].strip(), "%Y-%m-%d %H:%M:%S")
        except (KeyError, ValueError) as exc:
            yield RecordProblem(f"{name} line {position}", f"no readable Date: {exc}")
            continue
        text = unwrap_lines(row.get("sharecommentary", "")).strip()
        media_url = row.get("mediaurl", "").strip()
        shared = row.get("sharedurl", "").strip() or None
        if not text and not media_url:
            yield Skipped("repost")
            continue
        link = row.get("sharelink", "").strip()
        media = (MediaRef(kind="image", mime_type="image/jpeg", source_uri=media_url),
                 ) if media_url else ()
        yield ImportedPost(
            sources=(SourceRef("linkedin", _share_id(link) or f"{created:%Y%m%d%H%M%S}",
                               link or None),),
            text=text, created_at=created.replace(tzinfo=UTC), link=shared, media=media,
            visibility=_VISIBILITY.get(row.get("visibility", "").strip(), Visibility.PUBLIC),
        )


def _share_id(link: str) -> str | None:
    """The urn in the share link (`urn:li:share:7345…`), decoded."""
    found = re.search(r"urn(?:%3A|:)li(?:%3A|:)(\w+)(?:%3A|:)(\d+)", link)
    return f"urn:li:{found.group(1)}:{found.group(2)}" if found else None


IMPORTER = ImporterSpec(
    kind="linkedin", platform="linkedin", read=read,
    description="the LinkedIn data export zip, or its Shares.csv",
)
