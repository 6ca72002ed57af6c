"""CSV import and export of subscribers.

Import streams the file in chunks (one transaction per chunk, so a huge file never sits in
memory and an interrupted import can simply be run again: rows merge). Columns: `email`
(required; `e-mail` and `email address` also recognised), optional `name`, `tags` (split on
`;` or `|`), `source` (the consent source of that row, else the one given), `consent_text`;
every other column becomes a custom field. Every row that is not imported is reported with
its line and reason: invalid or internationalised-but-broken addresses, bytes that are not
UTF-8, rows with more fields than the header, suppressed addresses (only the person can
re-subscribe, by confirming), people who left the list. Duplicates are merged.

Export writes one row per subscriber with the same columns, so an export imports back.
Cells that a spreadsheet would run as a formula are prefixed with `'` on export, and that
prefix is removed again on import.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.clock import Clock
from sidestep.email.addresses import InvalidAddress, normalise
from sidestep.store.db import Database
from sidestep.store.subscribers import (
    ConsentAction,
    MembershipStatus,
    Subscribers,
    SubscriberStatus,
    Suppressions,
    merge_into,
)
from sidestep.store.tables_email import ListMembership, MailingList, Subscriber

CHUNK_ROWS = 500
EMAIL_HEADERS = ("email", "e-mail", "email address", "email_address")
# `status` is written by export but never read: an import must not re-subscribe anyone.
SPECIAL = {"name", "tags", "source", "consent_text", "status"}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_STOPPED = {SubscriberStatus.UNSUBSCRIBED.value, SubscriberStatus.BOUNCED.value,
            SubscriberStatus.COMPLAINED.value}
Progress = Callable[[int, int], None]


class ImportFailed(ValueError):
    """The file as a whole cannot be imported (no email column, duplicate headers...)."""


@dataclass(frozen=True, slots=True)
class RowProblem:
    line: int
    email: str
    reason: str


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    duplicates_merged: int = 0
    added_to_list: int = 0
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def imported(self) -> int:
        return self.created + self.updated


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    email: str
    name: str
    tags: tuple[str, ...]
    source: str
    consent_text: str
    fields: dict[str, str]


class _CountingReader(io.RawIOBase):
    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(len(buffer))
        buffer[:len(data)] = data
        self.count += len(data)
        return len(data)


def _unformula(value: str) -> str:
    return value[1:] if value.startswith("'") and value[1:2] in _FORMULA_START else value


def _has_bad_bytes(values: Sequence[str]) -> bool:
    return any("\udc80" <= ch <= "\udcff" for value in values for ch in value)


def _parse(
    stream: io.RawIOBase, *, default_source: str, report: ImportReport
) -> Iterator[_Row]:
    text = io.TextIOWrapper(io.BufferedReader(stream), encoding="utf-8-sig",
                            errors="surrogateescape", newline="")
    reader = csv.reader(text, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFailed("the file is empty") from None
    except csv.Error as exc:
        raise ImportFailed(f"the header line is not valid CSV: {exc}") from exc
    names = [h.strip().lower() for h in header]
    if _has_bad_bytes(names):
        raise ImportFailed("the header is not UTF-8; save the file as UTF-8 CSV")
    duplicated = sorted({n for n in names if n and names.count(n) > 1})
    if duplicated:
        raise ImportFailed(f"the header names these columns twice: {', '.join(duplicated)}")
    email_col = next((i for i, n in enumerate(names) if n in EMAIL_HEADERS), None)
    if email_col is None:
        raise ImportFailed(f"no email column; the header has: {', '.join(names) or 'nothing'}")
    line = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            report.rows += 1
            report.problems.append(RowProblem(line, "", f"not valid CSV: {exc}"))
            line = reader.line_num + 1
            continue
        start, line = line, reader.line_num + 1
        if not cells or all(not c.strip() for c in cells):
            continue
        report.rows += 1
        raw_email = cells[email_col] if email_col < len(cells) else ""
        if len(cells) > len(names):
            reason = f"{len(cells)} fields but the header has {len(names)}; check the quoting"
            report.problems.append(RowProblem(start, raw_email.strip()[:320], reason))
            continue
        if _has_bad_bytes(cells):
            report.problems.append(RowProblem(start, raw_email.encode(
                "utf-8", "replace").decode()[:320], "contains bytes that are not UTF-8"))
            continue
        if line - start > 1 and "\n" in raw_email:
            report.problems.append(RowProblem(start, raw_email.split("\n")[0][:320], (
                f"a quote opened here is closed only on line {line - 1}; check the quoting")))
            continue
        values = {names[i]: _unformula(v.strip()) for i, v in enumerate(cells) if names[i]}
        tags = tuple(t.strip() for t in values.get("tags", "").replace("|", ";").split(";")
                     if t.strip())
        custom = {k: v for k, v in values.items()
                  if v and k not in SPECIAL and k not in EMAIL_HEADERS}
        yield _Row(start, raw_email.strip(), values.get("name", ""), tags,
                   values.get("source") or default_source, values.get("consent_text", ""),
                   custom)


def _batches(rows: Iterator[_Row], size: int) -> Iterator[list[_Row]]:
    batch: list[_Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


async def import_csv(
    db: Database, stream: BinaryIO, *, workspace_id: int, mailing_list: MailingList,
    source: str, clock: Clock, total_bytes: int = 0, progress: Progress | None = None,
) -> ImportReport:
    """Import subscribers from `stream` into `mailing_list`; raise `ImportFailed` when the file
    cannot be read at all, and report every skipped row otherwise."""
    if mailing_list.workspace_id != workspace_id:
        raise ImportFailed("the list belongs to another workspace")
    report = ImportReport()
    seen: dict[str, set[tuple[str, str]]] = {}
    counting = _CountingReader(stream)
    for batch in _batches(_parse(counting, default_source=source, report=report), CHUNK_ROWS):
        async with db.session() as session:
            await _import_batch(session, batch, workspace_id=workspace_id,
                                mailing_list=mailing_list, report=report, seen=seen,
                                clock=clock)
        if progress is not None:
            progress(counting.count, total_bytes)
    if progress is not None:
        progress(counting.count, total_bytes)
    return report


async def _import_batch(
    session: AsyncSession, batch: list[_Row], *, workspace_id: int,
    mailing_list: MailingList, report: ImportReport, seen: dict[str, set[tuple[str, str]]],
    clock: Clock,
) -> None:
    now = clock.now()
    subscribers = Subscribers(session, workspace_id)
    valid: list[tuple[_Row, str]] = []
    for row in batch:
        try:
            valid.append((row, normalise(row.email)))
        except InvalidAddress as exc:
            report.problems.append(RowProblem(row.line, row.email[:320], str(exc)))
    addresses = [address for _, address in valid]
    existing = await subscribers.by_emails(addresses)
    suppressed = await Suppressions(session, workspace_id).suppressed_among(addresses)
    before = dict((await session.execute(
        select(ListMembership.subscriber_id, ListMembership.status).where(
            ListMembership.list_id == mailing_list.id,
            ListMembership.subscriber_id.in_([s.id for s in existing.values()])))).all())
    for row, address in valid:
        known = existing.get(address)
        reason = _refusal(address in suppressed, known, before)
        if reason:
            report.problems.append(RowProblem(row.line, address, reason))
            continue
        if address in seen:
            report.duplicates_merged += 1
        elif known is not None:
            report.updated += 1
        if known is None:
            known = await subscribers.add(address, name=row.name, fields=row.fields,
                                          tags=row.tags, status=SubscriberStatus.SUBSCRIBED,
                                          at=now)
            existing[address] = known
            report.created += 1
        else:
            merge_into(known, name=row.name, fields=row.fields, tags=row.tags, at=now)
            known.status = SubscriberStatus.SUBSCRIBED.value
        evidence = (row.source, row.consent_text)
        if address not in seen:
            seen[address] = set()
            if before.get(known.id) != MembershipStatus.SUBSCRIBED.value:
                report.added_to_list += 1
            await subscribers.set_membership(known, mailing_list, MembershipStatus.SUBSCRIBED,
                                             at=now)
        elif evidence in seen[address]:
            continue
        # A duplicate row with its own source is more evidence of consent: keep it too.
        seen[address].add(evidence)
        await subscribers.record_consent(
            known, action=ConsentAction.IMPORT, source=row.source, list_id=mailing_list.id,
            text_shown=row.consent_text, at=now)


def _refusal(suppressed: bool, known: Subscriber | None, before: dict[int, str]) -> str:
    """Why a valid row must not be imported, or ''. Imports never override a person's no."""
    if suppressed:
        return ("suppressed (unsubscribed, bounced or complained): only the person can "
                "subscribe again, through the confirmation mail")
    if known is not None and known.status in _STOPPED:
        return (f"this subscriber is {known.status}: only the person can subscribe again, "
                "through the confirmation mail")
    if known is not None and before.get(known.id) == MembershipStatus.UNSUBSCRIBED.value:
        return "this person left the list; only they can rejoin, through the subscribe form"
    return ""


def _formula_safe(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


async def export_csv(
    db: Database, out: IO[str], *, workspace_id: int, list_id: int | None = None,
    batch: int = 1000,
) -> int:
    """Write the workspace's subscribers (or one list's members) as CSV; return the count."""
    async with db.session() as session:
        conditions: list[Any] = [Subscriber.workspace_id == workspace_id]
        if list_id is not None:
            conditions.append(Subscriber.id.in_(select(ListMembership.subscriber_id).where(
                ListMembership.list_id == list_id)))
        keys: set[str] = set()
        for fields in await session.scalars(select(Subscriber.fields).where(*conditions)):
            keys.update(fields or {})
        columns = ["email", "name", "status", "tags", *sorted(keys - SPECIAL)]
        writer = csv.writer(out)
        writer.writerow(columns)
        count, after = 0, 0
        while True:
            rows = list(await session.scalars(select(Subscriber).where(
                *conditions, Subscriber.id > after).order_by(Subscriber.id).limit(batch)))
            for sub in rows:
                fields = sub.fields or {}
                writer.writerow([_formula_safe(str(v)) for v in (
                    sub.email, sub.name, sub.status, ";".join(sub.tags or ()),
                    *(fields.get(k, "") for k in columns[4:]))])
            count += len(rows)
            if len(rows) < batch:
                return count
            after = rows[-1].id
