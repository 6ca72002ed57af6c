"""Running an importer into a workspace's archive: media stored, posts merged, a report.

Posts go to the database `BATCH` at a time, each batch in its own transaction, so memory
stays flat whatever the export's size and an interrupted import keeps what it finished;
running it again skips what is there (each source id is recorded once per workspace).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from sidestep.archive.media import MediaStore, MediaTooLarge
from sidestep.archive.model import ImportedPost, MediaRef
from sidestep.clock import Clock
from sidestep.importers.base import ImporterSpec, RecordProblem, Skipped
from sidestep.importers.safezip import ExportRejected, ExportSource
from sidestep.store.archive import Archive, MediaRow, Outcome
from sidestep.store.db import Database

BATCH = 500
ERRORS_KEPT = 200  # reasons listed in the report; the count is always complete


@dataclass(slots=True)
class ImportReport:
    imported: int = 0
    merged: int = 0
    duplicates: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    errors: list[RecordProblem] = field(default_factory=list)
    error_count: int = 0
    media_stored: int = 0
    media_missing: int = 0

    @property
    def seen(self) -> int:
        return (self.imported + self.merged + self.duplicates + sum(self.skipped.values())
                + self.error_count)

    def problem(self, problem: RecordProblem) -> None:
        self.error_count += 1
        if len(self.errors) < ERRORS_KEPT:
            self.errors.append(problem)


async def run_import(
    db: Database, *, workspace_id: int, importer: ImporterSpec, source: ExportSource,
    media: MediaStore, clock: Clock, on_progress: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Read `source` with `importer` into the archive. Raises ExportRejected for the export
    as a whole (posts of batches already written stay, and a rerun skips them)."""
    report = ImportReport()
    batch: list[ImportedPost] = []
    rows: dict[str, MediaRow] = {}
    names = frozenset(source.names())

    async def flush() -> None:
        async with db.session() as session:
            outcomes = await Archive(session, workspace_id=workspace_id).add_many(
                batch, media=list(rows.values()), at=clock.now())
        for outcome in outcomes:
            if outcome is Outcome.IMPORTED:
                report.imported += 1
            elif outcome is Outcome.MERGED:
                report.merged += 1
            else:
                report.duplicates += 1
        batch.clear()
        rows.clear()
        if on_progress:
            on_progress(report)

    for item in importer.read(source):
        if isinstance(item, RecordProblem):
            report.problem(item)
        elif isinstance(item, Skipped):
            report.skipped[item.reason] += 1
        else:
            try:
                stored = tuple(_store(m, source, names, media, rows, report)
                               for m in item.media)
            except (MediaTooLarge, ExportRejected) as exc:
                report.problem(RecordProblem(item.sources[0].source_id, str(exc)))
                continue
            batch.append(dataclasses.replace(item, media=stored))
            if len(batch) >= BATCH:
                await flush()
    if batch:
        await flush()
    elif on_progress:
        on_progress(report)
    return report


def _store(ref: MediaRef, source: ExportSource, names: frozenset[str], media: MediaStore,
           rows: dict[str, MediaRow], report: ImportReport) -> MediaRef:
    """Stream the member into the store; a file the export does not hold is kept as a
    reference (sha256 None) so the post still says what it had."""
    if ref.member is None or ref.member not in names:
        report.media_missing += 1
        return dataclasses.replace(ref, member=None, sha256=None)
    limit = source.limits.max_media_bytes
    with source.open(ref.member, max_bytes=limit) as stream:
        stored = media.put_stream(stream, max_bytes=limit)
    if ref.sha256 is not None and ref.sha256 != stored.sha256:
        raise ExportRejected(f"{ref.member} does not match its sha256 {ref.sha256}")
    report.media_stored += 1
    rows[stored.sha256] = MediaRow(stored.sha256, ref.mime_type, stored.size_bytes)
    return dataclasses.replace(ref, member=None, sha256=stored.sha256)
