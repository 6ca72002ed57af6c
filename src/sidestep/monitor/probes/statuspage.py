"""Status-page probe: what the platform says about itself, component by component.

Two kinds, as the catalogue's `status_feed.kind` names them:

- `statuspage`: Atlassian Statuspage v2 `summary.json`. One observation per component
  (its target is `<url>#<component name>`):
  operational -> `ok`, degraded_performance -> `degraded`, partial_outage -> `partial_outage`,
  major_outage -> `major_outage`, under_maintenance -> `degraded`; any other status is `error`.
  A page without components is judged by `status.indicator` (none/minor/major/critical).
- `rss` / `atom`: an outage feed (Meta's carries an item only while an event is open). One
  observation: when an item was published within `window_s` of now, the level its title
  gives (`item_level`: High -> `major_outage`, Medium -> `partial_outage`, Low ->
  `degraded`, other wording -> `major_outage`), else `ok`.

Bad input never crashes and never costs more than `max_body_bytes`: a body over the cap, one
that is not JSON or XML, XML with a DOCTYPE or entity declarations (the billion-laughs bomb is
refused before parsing; no defusedxml is installed, so `xml.etree` only ever sees documents
without a DTD), or JSON of the wrong shape is one observation with outcome `error`.
A non-200 answer is `bad_status`; network failures are classified as in `_fetch`.
"""

from __future__ import annotations

import asyncio
import json
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from sidestep.catalogue.loader import Platform
from sidestep.clock import Clock, utc
from sidestep.monitor.outcomes import Outcome, Signal
from sidestep.monitor.probes._fetch import FetchFailed, fetch_capped
from sidestep.store.health import NewObservation

__all__ = ["BadFeed", "StatusPageProbe", "component_outcomes", "item_level", "newest_entry",
           "newest_item"]

COMPONENT_OUTCOMES = {
    "operational": Outcome.OK,
    "degraded_performance": Outcome.DEGRADED,
    "partial_outage": Outcome.PARTIAL_OUTAGE,
    "major_outage": Outcome.MAJOR_OUTAGE,
    "under_maintenance": Outcome.DEGRADED,
}
INDICATOR_OUTCOMES = {
    "none": Outcome.OK, "minor": Outcome.DEGRADED, "major": Outcome.PARTIAL_OUTAGE,
    "critical": Outcome.MAJOR_OUTAGE, "maintenance": Outcome.DEGRADED,
}
_ATOM = "{http://www.w3.org/2005/Atom}"
_DTD = re.compile(r"<!(DOCTYPE|ENTITY)", re.IGNORECASE)
MAX_COMPONENTS = 200  # a page listing more is cut here: observations stay bounded too


class BadFeed(ValueError):
    """A status page answered something we cannot read (the detail says what)."""


def component_outcomes(body: bytes) -> list[tuple[str, Outcome, str]]:
    """(component name, outcome, raw status) per component of a Statuspage v2 summary.

    Raises BadFeed for a body that is not a Statuspage summary.
    """
    try:
        document: Any = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BadFeed("not JSON") from exc
    if not isinstance(document, dict):
        raise BadFeed("not a JSON object")
    components = document.get("components")
    if components is None or components == []:
        status = document.get("status")
        indicator = status.get("indicator") if isinstance(status, dict) else None
        if not isinstance(indicator, str):
            raise BadFeed("neither components nor status.indicator")
        return [("page", INDICATOR_OUTCOMES.get(indicator, Outcome.ERROR), indicator[:50])]
    if not isinstance(components, list):
        raise BadFeed("components is not a list")
    result = []
    for item in components[:MAX_COMPONENTS]:
        if not isinstance(item, dict) or item.get("group") is True:
            continue  # groups repeat their children's worst status
        name, status = item.get("name"), item.get("status")
        if not isinstance(name, str) or not isinstance(status, str):
            raise BadFeed("a component without a name or status")
        result.append((name[:100], COMPONENT_OUTCOMES.get(status, Outcome.ERROR), status[:50]))
    return result


def newest_item(body: bytes) -> datetime | None:
    """When the newest item of an RSS 2.0 or Atom feed was published (None: no dated item).

    Raises BadFeed for a DTD (entity bombs), XML that does not parse, or no RSS/Atom root.
    """
    newest = newest_entry(body)
    return newest[0] if newest else None


def item_level(title: str) -> Outcome:
    """How bad an outage item says things are, from its title (metastatus.com's levels).

    "High" (or "major", "outage") is a major outage, "Medium" (or "partial") a partial one,
    "Low" (or "degraded", "minor") degraded; any other wording counts as a major outage.
    """
    words = set(re.findall(r"[a-z]+", title.lower()))
    if words & {"medium", "partial"}:
        return Outcome.PARTIAL_OUTAGE
    if words & {"low", "degraded", "minor"} and not words & {"high", "major"}:
        return Outcome.DEGRADED
    return Outcome.MAJOR_OUTAGE


def newest_entry(body: bytes) -> tuple[datetime, str] | None:
    """(published, title) of the newest item of an RSS 2.0 or Atom feed; None: no item.

    Raises BadFeed as `newest_item` does.
    """
    try:
        # Decoded here, so an exotic declared encoding (UTF-16, EBCDIC) cannot hide a DTD
        # from the check below; expat parses a str as UTF-8 whatever the declaration says.
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadFeed("feed is not UTF-8") from exc
    if _DTD.search(text):
        raise BadFeed("XML with a DOCTYPE or entity declaration is refused")
    try:
        root = ET.fromstring(text)  # noqa: S314 -- no DTD can reach the parser (checked above)
    except (ET.ParseError, ValueError) as exc:
        raise BadFeed(f"not XML: {exc}"[:200]) from exc
    if root.tag == "rss":
        items = [(_rfc822(item.findtext("pubDate")), item.findtext("title") or "")
                 for item in root.iterfind("channel/item")]
    elif root.tag == f"{_ATOM}feed":
        items = [(_iso(entry.findtext(f"{_ATOM}updated") or entry.findtext(f"{_ATOM}published")),
                  entry.findtext(f"{_ATOM}title") or "")
                 for entry in root.iterfind(f"{_ATOM}entry")]
    else:
        raise BadFeed(f"not an RSS or Atom feed (root {root.tag[:60]!r})")
    known = [(d, title) for d, title in items if d is not None]
    if len(known) < len(items):
        raise BadFeed("an item without a readable date")
    return max(known, key=lambda item: item[0], default=None)


def _rfc822(text: str | None) -> datetime | None:
    try:
        return utc(parsedate_to_datetime(text or ""))
    except (TypeError, ValueError):
        return None


def _iso(text: str | None) -> datetime | None:
    try:
        return utc(datetime.fromisoformat((text or "").strip()))
    except ValueError:
        return None


class StatusPageProbe:
    """Reads each platform's catalogue status feed through one injected client."""

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        clock: Clock,
        vantage: str = "local",
        timeout_s: float = 5.0,
        concurrency: int = 16,
        max_body_bytes: int = 1024 * 1024,
        window_s: float = 6 * 3600.0,
    ) -> None:
        if timeout_s <= 0 or concurrency < 1 or max_body_bytes < 1 or window_s <= 0:
            raise ValueError("timeout_s, concurrency, max_body_bytes, window_s must be positive")
        self.client = client
        self.clock = clock
        self.vantage = vantage
        self.timeout_s = timeout_s
        self.max_body_bytes = max_body_bytes
        self.window = timedelta(seconds=window_s)
        self._slots = asyncio.Semaphore(concurrency)

    async def probe_platform(self, platform: Platform) -> list[NewObservation]:
        """Observations from `platform`'s status feed; none when the catalogue names none."""
        feed = platform.status_feed
        if feed is None:
            return []
        return await self.probe_feed(platform.key, feed.kind, feed.url)

    async def probe_feed(self, platform: str, kind: str, url: str) -> list[NewObservation]:
        """Fetch and judge one feed of `kind` ("statuspage", "rss" or "atom")."""
        async with self._slots:
            try:
                fetched = await fetch_capped(self.client, url, timeout_s=self.timeout_s,
                                             max_bytes=self.max_body_bytes)
            except FetchFailed as failed:
                return [self._obs(platform, url, failed.outcome, None, failed.detail)]
        latency = fetched.latency_ms
        if fetched.status != 200:
            return [self._obs(platform, url, Outcome.BAD_STATUS, latency,
                              f"HTTP {fetched.status}")]
        if fetched.truncated:
            return [self._obs(platform, url, Outcome.ERROR, latency,
                              f"body over {self.max_body_bytes} bytes")]
        try:
            if kind == "statuspage":
                return [self._obs(platform, url, outcome, latency, raw, component=name)
                        for name, outcome, raw in component_outcomes(fetched.body)]
            return [self._feed_obs(platform, url, newest_entry(fetched.body), latency)]
        except BadFeed as exc:
            return [self._obs(platform, url, Outcome.ERROR, latency, str(exc))]

    def _feed_obs(
        self, platform: str, url: str, newest: tuple[datetime, str] | None, latency_ms: float
    ) -> NewObservation:
        if newest is not None and newest[0] >= self.clock.now() - self.window:
            published, title = newest
            return self._obs(platform, url, item_level(title), latency_ms,
                             f"item published {published.isoformat()}: {title[:200]}")
        return self._obs(platform, url, Outcome.OK, latency_ms, "no recent item")

    def _obs(
        self, platform: str, url: str, outcome: Outcome, latency_ms: float | None, detail: str,
        *, component: str = "",
    ) -> NewObservation:
        return NewObservation(
            platform=platform, signal=Signal.STATUSPAGE.value, vantage=self.vantage,
            observed_at=self.clock.now(), outcome=outcome.value, latency_ms=latency_ms,
            target=f"{url}#{component}" if component else url, detail=detail[:500],
        )
