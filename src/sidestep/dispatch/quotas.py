"""Publishing quotas as sliding windows counted in the database, shared by every worker.

Each quota is a window (`limit` sends per `window_s`) on a key: one channel
(`instagram:ch12:86400`) or the whole platform for this installation (`youtube:app:86400`).
Admitting a send writes a `send_slot` row in the claim's transaction; a window is full when
it holds `limit` slots newer than `now - window_s`, and a token frees when its oldest slot
ages out. Why a log and not a token bucket: a bucket refilled at limit/window lets up to twice
the limit through in one window after a burst, and Instagram counts a moving 24 h exactly.

Across processes: on SQLite the claim transaction already holds the single write lock when
it counts; on PostgreSQL the `quota_lock` rows of the keys are locked (`FOR UPDATE`, in key
order so two workers cannot deadlock) before counting, so a second worker counts after the
first has committed its slots.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.catalogue import Catalogue, default_catalogue
from sidestep.store.tables_dispatch import QuotaLock, SendSlot

__all__ = ["QuotaBook", "Window", "admit", "prune_slots"]

APP_QUOTAS = Path(__file__).with_name("quotas.toml")
_FIELDS = {"posts_per_day": 86_400, "posts_per_hour": 3_600, "requests_per_minute": 60}


@dataclass(frozen=True, slots=True)
class Window:
    limit: int
    window_s: int
    scope: str  # "channel" or "app"

    def key(self, platform: str, channel_id: int) -> str:
        who = f"ch{channel_id}" if self.scope == "channel" else "app"
        return f"{platform}:{who}:{self.window_s}"


class QuotaBook:
    """The windows of each platform: the catalogue's quotas plus `quotas.toml`."""

    def __init__(self, windows: dict[str, tuple[Window, ...]]) -> None:
        self._windows = windows

    @classmethod
    def from_catalogue(cls, catalogue: Catalogue, *, extra: Path = APP_QUOTAS) -> QuotaBook:
        data = tomllib.loads(extra.read_text(encoding="utf-8"))
        windows: dict[str, tuple[Window, ...]] = {}
        for platform in catalogue:
            own = data.get(platform.key, {})
            app_scoped = set(own.get("app_scoped", []))
            found = [Window(limit, _FIELDS[name], "app" if name in app_scoped else "channel")
                     for name in _FIELDS
                     if (limit := getattr(platform.quotas, name)) is not None]
            found += [Window(int(w["limit"]), int(w["window_s"]), str(w["scope"]))
                      for w in own.get("windows", [])]
            if found:
                windows[platform.key] = tuple(found)
        return cls(windows)

    @classmethod
    @functools.cache
    def default(cls) -> QuotaBook:
        return cls.from_catalogue(default_catalogue())

    def windows(self, platform: str) -> tuple[Window, ...]:
        return self._windows.get(platform, ())

    @property
    def longest_s(self) -> int:
        return max((w.window_s for ws in self._windows.values() for w in ws), default=0)


@dataclass(frozen=True, slots=True)
class Candidate:
    delivery_id: int
    channel_id: int
    platform: str


async def admit(session: AsyncSession, candidates: Sequence[Candidate], *, book: QuotaBook,
                now: datetime) -> tuple[list[int], dict[int, datetime]]:
    """Which candidates may be sent now, in order, and when the others' next token frees.

    Writes one `send_slot` per window of each admitted candidate. Candidates on platforms
    without quotas are admitted without touching the database.
    """
    keyed = {c.delivery_id: [(w, w.key(c.platform, c.channel_id))
                             for w in book.windows(c.platform)] for c in candidates}
    keys = sorted({key for pairs in keyed.values() for _, key in pairs})
    if not keys:
        return [c.delivery_id for c in candidates], {}
    await _lock(session, keys)
    windows = {key: w for pairs in keyed.values() for w, key in pairs}
    used: dict[str, list[datetime]] = {}
    for key in keys:
        cutoff = now - timedelta(seconds=windows[key].window_s)
        used[key] = list((await session.scalars(
            select(SendSlot.at).where(SendSlot.key == key, SendSlot.at > cutoff)
            .order_by(SendSlot.at))).all())
    admitted: list[int] = []
    postponed: dict[int, datetime] = {}
    for candidate in candidates:
        pairs = keyed[candidate.delivery_id]
        full = [(w, key) for w, key in pairs if len(used[key]) >= w.limit]
        if full:
            postponed[candidate.delivery_id] = max(
                _frees_at(used[key], w, now) for w, key in full)
            continue
        admitted.append(candidate.delivery_id)
        for _, key in pairs:
            used[key].append(now)
            session.add(SendSlot(key=key, at=now))
    await session.flush()
    return admitted, postponed


def _frees_at(slots: list[datetime], window: Window, now: datetime) -> datetime:
    """When the window next has room: its `len - limit + 1`-th oldest slot ages out."""
    oldest_needed = slots[len(slots) - window.limit]
    return max(now, oldest_needed + timedelta(seconds=window.window_s))


async def _lock(session: AsyncSession, keys: Iterable[str]) -> None:
    rows = [{"key": key} for key in keys]
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(pg_insert(QuotaLock).values(rows).on_conflict_do_nothing())
        await session.execute(select(QuotaLock.key).where(QuotaLock.key.in_(list(keys)))
                              .order_by(QuotaLock.key).with_for_update())
    else:
        await session.execute(sqlite_insert(QuotaLock).values(rows).on_conflict_do_nothing())


async def prune_slots(session: AsyncSession, *, book: QuotaBook, now: datetime) -> int:
    """Delete slots older than the longest window; they can no longer count. Returns how many."""
    cutoff = now - timedelta(seconds=max(book.longest_s, 60))
    result = await session.execute(delete(SendSlot).where(SendSlot.at < cutoff))
    return int(result.rowcount)  # type: ignore[attr-defined]

