"""What the monitor probes for each platform: the catalogue's names, URLs and status feed.

`targets_for` picks platforms from the catalogue and, when `served_hosts` is given (the
simulator's host map), keeps only the names and URLs that are really played there, so a
name nobody serves is not mistaken for an outage.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

from sidestep.catalogue.loader import Catalogue, Platform, Probe, StatusFeed

__all__ = ["Target", "targets_for"]


@dataclass(frozen=True, slots=True)
class Target:
    platform: Platform  # with hostnames and probes narrowed to what is probed
    probes: tuple[Probe, ...]
    feed: StatusFeed | None

    @property
    def key(self) -> str:
        return self.platform.key


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def targets_for(catalogue: Catalogue, *, platforms: Collection[str] | None = None,
                served_hosts: Collection[str] | None = None) -> list[Target]:
    """One target per catalogue platform with something to probe, in key order.

    Raises KeyError (from the catalogue) for an unknown platform in `platforms`.
    """
    chosen = [catalogue.get(key) for key in platforms] if platforms else catalogue.all()
    served = None if served_hosts is None else {h.lower() for h in served_hosts}
    targets = []
    for platform in sorted(chosen, key=lambda p: p.key):
        hostnames = [h for h in platform.hostnames if served is None or h.lower() in served]
        probes = tuple(p for p in platform.probes if served is None or _host(p.url) in served)
        feed = platform.status_feed
        if feed is not None and served is not None and _host(feed.url) not in served:
            feed = None
        if not hostnames and not probes:
            continue
        narrowed = platform.model_copy(update={"hostnames": hostnames, "probes": list(probes)})
        targets.append(Target(narrowed, probes, feed))
    return targets
