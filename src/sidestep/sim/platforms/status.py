"""Status pages as the platforms publish them, lagging behind the faults as real ones do.

What is served comes from the catalogue (`status_feed` of each platform), so the monitor's
probes find exactly the pages the catalogue names:

- `kind = "statuspage"`: an Atlassian Statuspage v2 on the feed URL's host, answering
  `/api/v2/summary.json`, `status.json`, `components.json`, `incidents.json` and
  `incidents/unresolved.json` in Statuspage's shapes (today: Discord, Reddit, LinkedIn,
  Pinterest, Matrix). Twitch uses Statuspage too but is not in the catalogue. Component names
  are a representative few per page (`COMPONENTS`), not each page's real list.
- `kind = "rss"` on metastatus.com: Meta's per-product feed `/outage-events-feed-<org>.rss`
  (RSS 2.0, titled "<Product> Status", a self `atom:link`, an item only while an outage event
  is open), telling about every platform whose catalogue entry points at it (graph-api:
  Facebook, Instagram, Messenger; whatsapp-business-api: WhatsApp). Item wording is not
  documented by Meta; ours ("<Product>: <Low|Medium|High> disruptions", the levels
  metastatus.com shows) is an assumption.
- Nothing for platforms without a feed (TikTok, YouTube, X, Threads, Telegram, ...). Other
  RSS or Atom feeds would be skipped; the catalogue has none today.

How a fault becomes what the page says. The page tells the world's fault history as it was
`lag` seconds ago: a fault set at T shows from T+lag and clears at C+lag, so a fault shorter
than its lag never appears (short blips are not incidents). Faults with
`params={"status_page": "silent"}`, with `rate` below `MIN_RATE_SHOWN`, and per-account
faults (`rate_limited`, `auth_expired`) never appear. `dns_*`, `refused`, `timeout`,
`http_5xx` -> `major_outage` (`partial_outage` when rate < 1); `partial`, `garbage` ->
`partial_outage`; `slow` -> `degraded_performance`; a fault on one feature marks only the
components serving it. Overlapping visible faults on a page form one incident.

The lag, in order of precedence: the fault's `params["status_lag_s"]`; the world attribute
`status_lag_s` (a number, or a dict platform -> seconds), read with getattr because
`SimWorld` does not declare it; `StatusProfile.LAG_S[platform]`; `DEFAULT_LAG_S` (300 s).
`FaultBoard.history` does not keep a fault's rate and params, so this profile remembers
every fault it sees in force (each request looks, and so does `observe()`). A fault that was
set and cleared while nobody asked any page is never told: its silence is unknown, and a page
that could not be reached (local-network-down refuses the status hosts too) would otherwise
report, after the fact, an outage that never was.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from sidestep.catalogue.loader import Catalogue, default_catalogue
from sidestep.sim.profile import ErrorKind, Profile
from sidestep.sim.world import ActiveFault, Fault, SimWorld

DEFAULT_LAG_S = 300.0
MIN_RATE_SHOWN = 0.05
SEVERITY = ("operational", "degraded_performance", "partial_outage", "major_outage")
IMPACT = {"degraded_performance": "minor", "partial_outage": "major", "major_outage": "critical"}
DESCRIPTION = {"none": "All Systems Operational", "minor": "Minor Service Outage",
               "major": "Partial System Outage", "critical": "Major Service Outage"}
META_HOST = "metastatus.com"
META_LEVEL = {"degraded_performance": "Low", "partial_outage": "Medium", "major_outage": "High"}
# Channel titles verified on the live feeds: "Graph API Status", "WhatsApp Business Platform
# Status". Other orgs fall back to their id.
META_PRODUCTS = {"graph-api": "Graph API", "whatsapp-business-api": "WhatsApp Business Platform"}
_META_PATH = re.compile(r"/outage-events-feed-([a-z0-9-]+)\.rss")
_OUTAGE = frozenset({Fault.DNS_SERVFAIL, Fault.DNS_NXDOMAIN, Fault.REFUSED, Fault.TIMEOUT,
                     Fault.HTTP_5XX})
_NOT_SHOWN = frozenset({Fault.RATE_LIMITED, Fault.AUTH_EXPIRED})
_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)  # when every simulated component was "created"


@dataclass(frozen=True, slots=True)
class Component:
    name: str
    features: frozenset[str]  # the features this component serves (partial faults)


@dataclass(frozen=True, slots=True)
class StatusPage:
    """One Atlassian Statuspage, served on `host`, telling about `platforms`."""

    host: str
    platforms: tuple[str, ...]
    name: str
    components: tuple[Component, ...]

    @property
    def page_id(self) -> str:
        return _ident("page", self.host)


@dataclass(frozen=True, slots=True)
class MetaFeed:
    """One metastatus.com product feed, telling about faults on `platforms`."""

    org: str
    product: str
    platforms: tuple[str, ...]


def _c(name: str, *features: str) -> Component:
    return Component(name, frozenset(features))


DEFAULT_COMPONENTS = (_c("API", "text", "auth", "read"), _c("Website", "read"),
                      _c("Media", "media"))
COMPONENTS: dict[str, tuple[Component, ...]] = {
    "discord": (_c("API", "text", "auth"), _c("Gateway", "read"), _c("Media Proxy", "media"),
                _c("Push Notifications")),
    "reddit": (_c("Desktop Web", "read"), _c("Native Mobile Apps", "read"),
               _c("API", "text", "auth", "read"), _c("Media", "media")),
    "linkedin": (_c("LinkedIn.com", "read", "text"), _c("Messaging", "text"),
                 _c("Media", "media")),
    "pinterest": (_c("The Pinterest API", "text", "read", "auth"),
                  _c("Media Upload", "media"), _c("Website", "read")),
    "matrix": (_c("matrix.org homeserver", "text", "read", "auth"), _c("Federation", "read"),
               _c("Media Repository", "media")),
}


def pages_from(catalogue: Catalogue) -> tuple[tuple[StatusPage, ...], tuple[MetaFeed, ...]]:
    """The Statuspage pages and Meta feeds the catalogue's `status_feed` entries name."""
    pages: dict[str, StatusPage] = {}
    feeds: dict[str, tuple[str, ...]] = {}
    for platform in catalogue.all():
        if platform.status_feed is None:
            continue
        url = urlsplit(platform.status_feed.url)
        host = (url.hostname or "").lower()
        meta = _META_PATH.fullmatch(url.path)
        if platform.status_feed.kind == "statuspage":
            known = pages.get(host)
            pages[host] = StatusPage(
                host, (*known.platforms, platform.key) if known else (platform.key,),
                known.name if known else platform.name,
                COMPONENTS.get(platform.key, DEFAULT_COMPONENTS))
        elif platform.status_feed.kind == "rss" and host == META_HOST and meta:
            feeds[meta.group(1)] = (*feeds.get(meta.group(1), ()), platform.key)
    meta_feeds = tuple(MetaFeed(org, META_PRODUCTS.get(org, org), platforms)
                       for org, platforms in feeds.items())
    return tuple(pages.values()), meta_feeds


PAGES, META_FEEDS = pages_from(default_catalogue())


@dataclass(frozen=True, slots=True)
class Shown:
    """One version of one fault as the status page tells it: visible over [start, end)."""

    platform: str
    fault: Fault
    feature: str | None
    status: str  # a component status from SEVERITY
    start: datetime
    end: datetime | None


@dataclass(frozen=True, slots=True)
class Episode:
    """Overlapping visible faults on one page: one incident."""

    start: datetime
    end: datetime | None  # None while unresolved
    shown: tuple[Shown, ...]


def _ident(*parts: str) -> str:
    """A stable 12-character id in Statuspage's lowercase base-36 style."""
    number = int.from_bytes(hashlib.sha256("/".join(parts).encode()).digest()[:8], "big")
    chars = ""
    while len(chars) < 12:
        number, digit = divmod(number, 36)
        chars += "0123456789abcdefghijklmnopqrstuvwxyz"[digit]
    return chars


def _ts(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def component_status(fault: Fault, rate: float) -> str:
    """The Statuspage component status a fault of this kind and rate shows as."""
    if fault in _OUTAGE:
        return "major_outage" if rate >= 1.0 else "partial_outage"
    if fault is Fault.SLOW:
        return "degraded_performance"
    return "partial_outage"  # partial, garbage


class StatusProfile(Profile):
    """Serves every platform's status page and Meta's product feeds, by Host header."""

    key = "status"
    hosts = (*(page.host for page in PAGES), *((META_HOST,) if META_FEEDS else ()))
    LAG_S: ClassVar[dict[str, float]] = {}

    def __init__(self, world: SimWorld) -> None:
        super().__init__(world)
        self._seen: dict[tuple[str, Fault, str | None, datetime], ActiveFault] = {}
        self._pages = {page.host: page for page in PAGES}
        self._feeds = {feed.org: feed for feed in META_FEEDS}

    def routes(self) -> list[BaseRoute]:
        statuspage = [Route(f"/api/v2/{which}.json", self._endpoint(which))
                      for which in ("summary", "status", "components", "incidents")]
        return [*statuspage,
                Route("/api/v2/incidents/unresolved.json", self._endpoint("unresolved")),
                Route("/outage-events-feed-{org}.rss", self._meta_feed)]

    def feature_of(self, request: Request) -> str:
        return "read"

    def error(
        self, kind: ErrorKind, message: str, *, retry_after_s: float | None = None
    ) -> Response:
        """A CDN's plain HTML error page: 503, 429 or 404 where they fit, else 500."""
        status = {ErrorKind.RATE_LIMITED: 429, ErrorKind.NOT_FOUND: 404,
                  ErrorKind.UNAVAILABLE: 503}.get(kind, 500)
        headers = {"Retry-After": str(int(retry_after_s))} if retry_after_s is not None else {}
        body = f"<html><head><title>{status} Error</title></head><body><h1>{status} Error</h1>" \
               f"<p>{escape(message)}</p></body></html>"
        return HTMLResponse(body, status_code=status, headers=headers)

    # -- what the pages know -----------------------------------------------------------------

    def lag_for(self, platform: str, params: dict[str, Any]) -> timedelta:
        """How far behind the world this platform's page runs (see the module docstring)."""
        configured: Any = getattr(self.world, "status_lag_s", None)
        if "status_lag_s" in params:
            seconds = float(params["status_lag_s"])
        elif isinstance(configured, int | float):
            seconds = float(configured)
        elif isinstance(configured, dict) and platform in configured:
            seconds = float(configured[platform])
        else:
            seconds = self.LAG_S.get(platform, DEFAULT_LAG_S)
        return timedelta(seconds=seconds)

    def observe(self) -> None:
        """Remember the parameters of the faults in force, for when they are cleared."""
        for active in self.world.faults.active():
            self._seen[(active.platform, active.fault, active.feature, active.since)] = active

    def shown(self, platforms: tuple[str, ...]) -> list[Shown]:
        """Every fault version on `platforms` that the pages will ever tell, from history."""
        self.observe()
        # (platform, fault, feature, chain start, version start, version end)
        versions: list[tuple[str, Fault, str | None, datetime, datetime, datetime | None]] = []
        chains: dict[tuple[str, Fault, str | None], tuple[datetime, datetime]] = {}
        for change in self.world.faults.history:
            if change.platform not in platforms:
                continue
            key = (change.platform, change.fault, change.feature)
            first = None
            if key in chains:  # a re-set replaces the version in force, or a clear ends it
                first, begun = chains.pop(key)
                versions.append((*key, first, begun, change.at))
            if change.on:
                chains[key] = (first or change.at, change.at)
        versions.extend((*key, first, begun, None) for key, (first, begun) in chains.items())
        chain_end: dict[tuple[str, Fault, str | None, datetime], datetime | None] = {}
        for platform, fault, feature, first, _, end in versions:
            chain_end[(platform, fault, feature, first)] = end  # the last version's end wins
        result = []
        for platform, fault, feature, first, start, end in versions:
            seen = self._seen.get((platform, fault, feature, start))
            if seen is None:
                continue  # never on while anyone looked: its parameters are unknown
            silent = seen.params.get("status_page") == "silent"
            if fault in _NOT_SHOWN or seen.rate < MIN_RATE_SHOWN or silent:
                continue
            lag = self.lag_for(platform, seen.params)
            over = chain_end[(platform, fault, feature, first)]
            if over is not None and over - first <= lag:
                continue  # over before anyone updated the page
            result.append(Shown(platform, fault, feature, component_status(fault, seen.rate),
                                start + lag, None if end is None else end + lag))
        return sorted(result, key=lambda s: s.start)

    def episodes(self, platforms: tuple[str, ...], now: datetime,
                 shown: list[Shown] | None = None) -> list[Episode]:
        """Visible faults merged into incidents, oldest first, as of `now`."""
        episodes: list[Episode] = []
        for item in shown if shown is not None else self.shown(platforms):
            if item.start > now:
                continue
            end = item.end if item.end is not None and item.end <= now else None
            last = episodes[-1] if episodes else None
            if last is not None and (last.end is None or item.start <= last.end):
                later = None if end is None or last.end is None else max(end, last.end)
                episodes[-1] = Episode(last.start, later, (*last.shown, item))
            else:
                episodes.append(Episode(item.start, end, (item,)))
        return episodes

    def component_statuses(self, page: StatusPage, now: datetime) -> dict[str, str]:
        """Each component's status on `page` as of `now`."""
        return {name: status for name, (status, _) in
                self._components_at(page, now, self.shown(page.platforms)).items()}

    def _components_at(self, page: StatusPage, now: datetime,
                       shown: list[Shown]) -> dict[str, tuple[str, datetime]]:
        """Component name -> (status, when it last changed) as of `now`."""
        result = {c.name: ("operational", _EPOCH) for c in page.components}
        for item in shown:
            for name in self._hit(page, item.feature):
                status, changed = result[name]
                changed = max([changed] + [t for t in (item.start, item.end)
                                           if t is not None and t <= now])
                if item.start <= now and (item.end is None or now < item.end) \
                        and SEVERITY.index(item.status) > SEVERITY.index(status):
                    status = item.status
                result[name] = (status, changed)
        return result

    @staticmethod
    def _hit(page: StatusPage, feature: str | None) -> list[str]:
        """The components a fault on `feature` marks (all of them for a whole-platform one)."""
        if feature is None:
            return [c.name for c in page.components]
        return [c.name for c in page.components if feature in c.features] \
            or [page.components[0].name]

    # -- Atlassian Statuspage v2 -------------------------------------------------------------

    def _page_json(self, page: StatusPage, now: datetime, shown: list[Shown]) -> dict[str, Any]:
        changes = [t for s in shown for t in (s.start, s.end) if t is not None and t <= now]
        return {"id": page.page_id, "name": page.name, "url": f"https://{page.host}",
                "time_zone": "Etc/UTC", "updated_at": _ts(max(changes, default=_EPOCH))}

    def _components_json(self, page: StatusPage, now: datetime,
                         shown: list[Shown]) -> list[dict[str, Any]]:
        statuses = self._components_at(page, now, shown)
        return [{
            "id": _ident(page.host, c.name), "name": c.name, "status": statuses[c.name][0],
            "created_at": _ts(_EPOCH), "updated_at": _ts(statuses[c.name][1]),
            "position": position, "description": None, "showcase": False, "start_date": None,
            "group_id": None, "page_id": page.page_id, "group": False,
            "only_show_if_degraded": False,
        } for position, c in enumerate(page.components, start=1)]

    def _status_json(self, page: StatusPage, now: datetime, shown: list[Shown]) -> dict[str, str]:
        worst = max((s for s, _ in self._components_at(page, now, shown).values()),
                    key=SEVERITY.index)
        indicator = IMPACT.get(worst, "none")
        return {"indicator": indicator, "description": DESCRIPTION[indicator]}

    def _incident_json(self, page: StatusPage, episode: Episode, now: datetime,
                       shown: list[Shown]) -> dict[str, Any]:
        incident_id = _ident(page.host, "incident", episode.start.isoformat())
        hit: dict[str, str] = {}
        for item in episode.shown:
            for name in self._hit(page, item.feature):
                if SEVERITY.index(item.status) > SEVERITY.index(hit.get(name, "operational")):
                    hit[name] = item.status
        worst = max(hit.values(), key=SEVERITY.index)
        names = [c.name for c in page.components if c.name in hit]
        title = {"major_outage": "Outage", "partial_outage": "Partial outage",
                 "degraded_performance": "Degraded performance"}[worst]

        def update(status: str, body: str, at: datetime, first: bool) -> dict[str, Any]:
            affected = [{"code": _ident(page.host, n), "name": n, "old_status": "operational",
                         "new_status": hit[n]} for n in names] if first else None
            return {"id": _ident(incident_id, status), "status": status, "body": body,
                    "incident_id": incident_id, "created_at": _ts(at), "updated_at": _ts(at),
                    "display_at": _ts(at), "affected_components": affected,
                    "deliver_notifications": True, "custom_tweet": None, "tweet_id": None}

        updates = [update("investigating", f"We are investigating issues with {', '.join(names)}.",
                          episode.start, True)]
        if episode.end is not None:
            updates.insert(0, update("resolved", "This incident has been resolved.", episode.end,
                                     False))
        return {
            "id": incident_id, "name": f"{title}: {', '.join(names)}",
            "status": "investigating" if episode.end is None else "resolved",
            "created_at": _ts(episode.start), "updated_at": _ts(episode.end or episode.start),
            "monitoring_at": None, "resolved_at": _ts(episode.end), "impact": IMPACT[worst],
            "shortlink": f"https://stspg.io/{incident_id[:7]}", "started_at": _ts(episode.start),
            "page_id": page.page_id, "incident_updates": updates,
            "components": [c for c in self._components_json(page, now, shown) if c["name"] in hit],
        }

    def _endpoint(self, which: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return self._statuspage(request, which)

        return endpoint

    def _statuspage(self, request: Request, which: str) -> Response:
        page = self._pages.get((request.url.hostname or "").lower())
        if page is None:
            return self.error(ErrorKind.NOT_FOUND, "No status page is served on this host.")
        now = self.world.clock.now()
        shown = self.shown(page.platforms)
        body: dict[str, Any] = {"page": self._page_json(page, now, shown)}
        if which in ("summary", "components"):
            body["components"] = self._components_json(page, now, shown)
        if which in ("summary", "incidents", "unresolved"):
            episodes = self.episodes(page.platforms, now, shown)
            if which != "incidents":
                episodes = [e for e in episodes if e.end is None]
            body["incidents"] = [self._incident_json(page, e, now, shown)
                                 for e in reversed(episodes[-50:])]
        if which == "summary":
            body["scheduled_maintenances"] = []
        if which in ("summary", "status"):
            body["status"] = self._status_json(page, now, shown)
        return JSONResponse(body)

    # -- metastatus.com ----------------------------------------------------------------------

    async def _meta_feed(self, request: Request) -> Response:
        feed = self._feeds.get(request.path_params["org"])
        if (request.url.hostname or "").lower() != META_HOST or feed is None:
            return self.error(ErrorKind.NOT_FOUND, "No such feed.")
        now = self.world.clock.now()
        link = f"https://{META_HOST}/{feed.org}"
        items = []
        for episode in reversed(self.episodes(feed.platforms, now)):
            if episode.end is not None:
                continue  # the feed carries open events only
            worst = max((s.status for s in episode.shown), key=SEVERITY.index)
            guid = f"{link}#{_ident(feed.org, episode.start.isoformat())}"
            items.append(
                f"<item><title>{escape(feed.product)}: {META_LEVEL[worst]} disruptions</title>"
                f"<link>{link}</link><description>{escape(feed.product)} is experiencing "
                f"{META_LEVEL[worst].lower()} disruptions. We are working on a fix.</description>"
                f"<pubDate>{format_datetime(episode.start.astimezone(UTC), usegmt=True)}</pubDate>"
                f'<guid isPermaLink="false">{escape(guid)}</guid></item>')
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>'
            f"<title>{escape(feed.product)} Status</title><link>{link}</link>"
            f"<description>Outage events for {escape(feed.product)}</description>"
            f'<atom:link href="https://{META_HOST}/outage-events-feed-{feed.org}.rss" '
            'rel="self" type="application/rss+xml"/>'
            f"<lastBuildDate>{format_datetime(now.astimezone(UTC), usegmt=True)}</lastBuildDate>"
            f"{''.join(items)}</channel></rss>"
        )
        return Response(xml, media_type="text/xml; charset=utf-8")
