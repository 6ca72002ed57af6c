"""The status board's rows: the platform catalogue joined with the monitor's platform states.

Every rented platform of the catalogue gets a row, `unknown` until the monitor has written a
state for it; a state for a platform the catalogue does not list still gets a row (named by
its key), so nothing the monitor concluded is hidden. Rows with trouble come first.

The catalogue is found through `sidestep.catalogue.default_catalogue` when that package is
importable; the web layer depends only on the small `PlatformCatalogue` protocol below.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sidestep.domain.states import PlatformStatus
from sidestep.store.tables import PlatformState


class CataloguePlatform(Protocol):
    """What the board needs to know of one catalogue entry."""

    @property
    def key(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def owner(self) -> str: ...
    @property
    def kind(self) -> str: ...


class PlatformCatalogue(Protocol):
    def all(self) -> Sequence[CataloguePlatform]: ...


@dataclass(frozen=True, slots=True)
class BoardRow:
    """One platform on the board; `since`/`updated_at` are None while its state is unknown."""

    key: str
    name: str
    owner: str
    status: PlatformStatus
    features: list[str] = field(default_factory=list)
    reason: str = ""
    since: datetime | None = None
    updated_at: datetime | None = None


# Worst first: what needs attention is at the top of the table.
_ORDER = {PlatformStatus.DOWN: 0, PlatformStatus.LOCAL_OUTAGE: 1, PlatformStatus.DEGRADED: 2,
          PlatformStatus.UNKNOWN: 3, PlatformStatus.UP: 4}


def load_default_catalogue() -> PlatformCatalogue | None:
    """Return `sidestep.catalogue.default_catalogue()`, or None while that package is absent.

    Errors inside an existing catalogue (a broken platforms.toml) are raised, not hidden.
    """
    try:
        module = importlib.import_module("sidestep.catalogue")
    except ImportError:
        return None
    factory = getattr(module, "default_catalogue", None)
    if factory is None:
        return None
    catalogue: PlatformCatalogue = factory()
    return catalogue


def _status(value: str) -> PlatformStatus:
    try:
        return PlatformStatus(value)
    except ValueError:
        return PlatformStatus.UNKNOWN


def board_rows(
    catalogue: PlatformCatalogue | None, states: Mapping[str, PlatformState]
) -> list[BoardRow]:
    """Return a row per rented catalogue platform and per platform with a state, worst first."""
    entries = {p.key: p for p in (catalogue.all() if catalogue is not None else [])}
    keys = {key for key, p in entries.items() if p.kind == "rented"} | set(states)
    rows = []
    for key in keys:
        entry, state = entries.get(key), states.get(key)
        rows.append(
            BoardRow(
                key=key,
                name=entry.name if entry is not None else key,
                owner=entry.owner if entry is not None else "",
                status=_status(state.status) if state is not None else PlatformStatus.UNKNOWN,
                features=[str(f) for f in state.features] if state is not None else [],
                reason=state.reason if state is not None else "",
                since=state.since if state is not None else None,
                updated_at=state.updated_at if state is not None else None,
            )
        )
    return sorted(rows, key=lambda row: (_ORDER.get(row.status, 3), row.name.lower()))


def status_counts(rows: Sequence[BoardRow]) -> dict[str, int]:
    """Return how many rows are in each status, for the summary line (zero counts omitted)."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status.value] = counts.get(row.status.value, 0) + 1
    return {status.value: counts[status.value] for status in _ORDER if status.value in counts}


@dataclass(frozen=True, slots=True)
class Uptime:
    """How a platform fared over one window, from its incidents.

    `measured` is the part of the window the monitor knew the platform (it starts at the
    first observation when that is later); `up_fraction` is None when nothing was measured.
    Time in an incident whose worst state was `down` counts as down, any other incident as
    degraded.
    """

    label: str
    measured: timedelta
    down: timedelta
    degraded: timedelta

    @property
    def up_fraction(self) -> float | None:
        if self.measured <= timedelta(0):
            return None
        return max(0.0, 1.0 - (self.down + self.degraded) / self.measured)


class IncidentLike(Protocol):
    @property
    def worst_status(self) -> str: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def ended_at(self) -> datetime | None: ...


UPTIME_WINDOWS = (("24 h", timedelta(hours=24)), ("7 d", timedelta(days=7)),
                  ("30 d", timedelta(days=30)))


def uptime(
    incidents: Sequence[IncidentLike], *, label: str, window: timedelta, now: datetime,
    known_since: datetime | None,
) -> Uptime:
    """The platform's uptime over the `window` before `now` (see `Uptime`)."""
    start = now - window
    if known_since is None:
        return Uptime(label, timedelta(0), timedelta(0), timedelta(0))
    start = max(start, known_since)
    down = degraded = timedelta(0)
    for incident in incidents:
        begin = max(incident.started_at, start)
        end = min(incident.ended_at or now, now)
        if end <= begin:
            continue
        if incident.worst_status == PlatformStatus.DOWN.value:
            down += end - begin
        else:
            degraded += end - begin
    return Uptime(label, max(now - start, timedelta(0)), down, degraded)
