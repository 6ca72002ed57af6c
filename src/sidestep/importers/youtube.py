"""YouTube in Google Takeout: `video metadata/videos.csv` (the channel's own videos).

Columns `Video ID, Approx Duration (ms), Video Audio Language, Video Category, Channel ID,
Video Title (Original), Privacy, Video State, Video Create Timestamp, Video Publish
Timestamp`; timestamps are ISO 8601 with an offset, sometimes with nanoseconds; the CSV
ends with blank lines. The video files themselves are only in Takeout when asked for
(`videos/`); a file whose name is the video's title is attached when present.
"""

from __future__ import annotations

from collections.abc import Iterator

from sidestep.archive.model import ImportedPost, MediaRef, SourceRef, Visibility
from sidestep.importers.base import ImporterSpec, Item, RecordProblem, csv_rows, from_iso
from sidestep.importers.safezip import ExportRejected, ExportSource

_VISIBILITY = {"public": Visibility.PUBLIC, "unlisted": Visibility.UNLISTED,
               "private": Visibility.PRIVATE}


def read(source: ExportSource) -> Iterator[Item]:
    files = [n for n in source.names() if n.endswith("video metadata/videos.csv")]
    if not files:
        raise ExportRejected(f"{source.label} has no 'video metadata/videos.csv': is it a "
                             "Google Takeout of YouTube?")
    videos = {n.rsplit("/", 1)[-1].rsplit(".", 1)[0]: n for n in source.names()
              if "/videos/" in n and n.lower().endswith((".mp4", ".mov", ".webm", ".mkv"))}
    for name in files:
        for line, row in enumerate(csv_rows(source, name), start=2):
            if not any(value.strip() for value in row.values()):
                continue  # Takeout pads its CSVs with blank lines
            video_id = row.get("Video ID", "").strip()
            stamp = (row.get("Video Publish Timestamp") or row.get("Video Create Timestamp")
                     or "").strip()
            if not video_id or not stamp:
                yield RecordProblem(f"{name} line {line}", "no Video ID or timestamp")
                continue
            try:
                created = from_iso(stamp)
            except ValueError as exc:
                yield RecordProblem(f"{name} line {line}", f"unreadable timestamp: {exc}")
                continue
            title = row.get("Video Title (Original)", "").strip()
            extra = {"duration_ms": row.get("Approx Duration (ms)", "").strip(),
                     "category": row.get("Video Category", "").strip(),
                     "language": row.get("Video Audio Language", "").strip()}
            url = f"https://www.youtube.com/watch?v={video_id}"
            yield ImportedPost(
                sources=(SourceRef("youtube", video_id, url,
                                   {k: v for k, v in extra.items() if v}),),
                text=title, created_at=created,
                visibility=_VISIBILITY.get(row.get("Privacy", "").strip().lower(),
                                           Visibility.PUBLIC),
                media=(MediaRef(kind="video", mime_type="video/mp4", source_uri=url,
                                member=videos.get(title)),),
            )


IMPORTER = ImporterSpec(
    kind="youtube", platform="youtube", read=read,
    description="the Google Takeout zip with YouTube's 'video metadata'",
)
