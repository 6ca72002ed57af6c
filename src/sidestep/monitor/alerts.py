"""Team alerts through Apprise URLs, only over channels the incident does not touch.

Each committed `platform.state_changed` event (from the `EventBus`, or `catch_up` over the
event table) becomes at most one message per alert target of every workspace:

- Which changes alert: into `down`, `degraded` or `local_outage`, and back to `up` from
  one of those. Changes into or out of `unknown` do not.
- Not affected: a target whose platform (from the URL's scheme, `SCHEME_PLATFORMS`) is the
  platform that changed, or has the same owner company (Meta down: no WhatsApp alert), is
  skipped and recorded as `skipped`.
- Deduplicated: a target that was last told the same platform state is not told again.
- Rate-limited: at most `max_per_window` alerts per target per `window_s`; the rest are
  recorded as `rate_limited`.
- Once only: each (target, event) is claimed in the database before sending, so several
  processes hearing the same event send it once.

A failed send is recorded (`failed` with Apprise's reason); nothing is retried, because a
stale alert is worse than a missing one, and the next state change is sent as usual.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import apprise

from sidestep.clock import Clock
from sidestep.domain.states import PlatformStatus
from sidestep.runtime import Runtime
from sidestep.store.alerting import AlertsSent, AlertTargets, workspaces_with_targets
from sidestep.store.db import Database
from sidestep.store.events import EventNotice
from sidestep.store.tables import Event, Workspace
from sidestep.store.tables_agents import AlertTarget
from sidestep.vault import Vault, VaultError

__all__ = ["AlertFailed", "AlertService", "AppriseSender", "SCHEME_PLATFORMS", "attach_alerts",
           "compose_alert", "platform_of_url"]

log = logging.getLogger(__name__)
STATE_CHANGED = "platform.state_changed"
NO_PLAYBOOK = ("Playbooks: none ran. Sidestep has no playbook engine yet (issue #10), so "
               "nothing was rerouted automatically; act by hand.")
_TROUBLE = frozenset({PlatformStatus.DOWN, PlatformStatus.DEGRADED, PlatformStatus.LOCAL_OUTAGE})

SCHEME_PLATFORMS: dict[str, str] = {
    "tgram": "telegram", "discord": "discord", "mailto": "email", "mailtos": "email",
    "json": "webhook", "jsons": "webhook", "xml": "webhook", "xmls": "webhook",
    "form": "webhook", "forms": "webhook", "matrix": "matrix", "matrixs": "matrix",
    "mastodon": "mastodon", "mastodons": "mastodon", "toot": "mastodon", "toots": "mastodon",
    "bluesky": "bluesky", "twitter": "x", "x": "x", "whatsapp": "whatsapp", "reddit": "reddit",
    "slack": "slack", "msteams": "msteams", "workflow": "msteams", "workflows": "msteams",
    "gchat": "google_chat", "ntfy": "ntfy", "ntfys": "ntfy", "signal": "signal",
    "signals": "signal", "mmost": "mattermost", "mmosts": "mattermost",
    "rocket": "rocketchat", "rockets": "rocketchat", "zulip": "zulip",
}
# Owners of alert services the platform catalogue does not list.
OTHER_OWNERS = {"slack": "Salesforce", "msteams": "Microsoft", "google_chat": "Alphabet"}


class AlertFailed(Exception):
    """Apprise could not deliver: a bad URL, or the service refused or did not answer."""


class AlertSender(Protocol):
    async def send(self, url: str, *, title: str, body: str) -> None:
        """Deliver one message; raise `AlertFailed` when it did not go out."""
        ...


class AppriseSender:
    async def send(self, url: str, *, title: str, body: str) -> None:
        notifier = apprise.Apprise()
        if not notifier.add(url):
            raise AlertFailed("Apprise does not understand this URL")
        if not await notifier.async_notify(body=body, title=title):
            raise AlertFailed("Apprise could not deliver (the service refused or timed out)")


class Catalogue(Protocol):
    def all(self) -> Sequence[Any]: ...


def platform_of_url(url: str) -> str:
    """The platform an Apprise URL goes through (`tgram://` → telegram); raises ValueError
    for a URL Apprise cannot use."""
    if apprise.Apprise.instantiate(url) is None:
        raise ValueError("Apprise does not understand this URL; see "
                         "https://github.com/caronc/apprise/wiki for the forms")
    scheme = urlsplit(url).scheme.lower()
    return SCHEME_PLATFORMS.get(scheme, scheme[:40])


def masked(url: str) -> str:
    """The URL with its secrets hidden (Apprise's privacy mode), without the options."""
    plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        return "(unreadable)"
    return str(plugin.url(privacy=True)).split("?")[0]  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class Change:
    event_id: int
    platform: str
    old: str
    new: str
    features: list[str]
    reason: str
    evidence: list[Any]
    at: datetime

    @property
    def state(self) -> str:
        return f"{self.new}:{','.join(sorted(self.features))}"[:80]

    @classmethod
    def from_event(cls, event_id: int, payload: dict[str, Any], at: datetime) -> Change:
        evidence = payload.get("evidence") or []
        return cls(event_id, str(payload.get("platform", "")), str(payload.get("old", "")),
                   str(payload.get("new", "")), [str(f) for f in payload.get("features", [])],
                   str(payload.get("reason", "")),
                   list(evidence) if isinstance(evidence, list) else [evidence], at)

    @property
    def alerts(self) -> bool:
        new, old = _status(self.new), _status(self.old)
        return new in _TROUBLE or (new is PlatformStatus.UP and old in _TROUBLE)


def _status(value: str) -> PlatformStatus:
    try:
        return PlatformStatus(value)
    except ValueError:
        return PlatformStatus.UNKNOWN


def compose_alert(change: Change, *, name: str, owner: str, via: str,
                  board_url: str) -> tuple[str, str]:
    """The title and body of the alert: what, since when, the evidence, the playbooks."""
    when = change.at.strftime("%Y-%m-%d %H:%M UTC")
    features = f" ({', '.join(change.features)})" if change.features else ""
    if _status(change.new) is PlatformStatus.UP:
        title = f"{name} has recovered"
        lines = [f"What: {name} ({owner}) is up again since {when}; it was {change.old}."]
    else:
        title = f"{name} is {change.new.replace('_', ' ').upper()}{features}"
        lines = [f"What: {name} ({owner}) is {change.new.replace('_', ' ')}{features} "
                 f"since {when} (was {change.old or 'unknown'})."]
    lines.append("Evidence:")
    lines.append(f"- {change.reason or 'no reason recorded'}"[:300])
    for item in change.evidence[:8]:
        if isinstance(item, dict):
            item = ", ".join(f"{k}={v}" for k, v in item.items())
        lines.append(f"- {item}"[:200])
    if len(change.evidence) > 8:
        lines.append(f"- and {len(change.evidence) - 8} more observations")
    lines.append(NO_PLAYBOOK)
    lines.append(f"Sent through {via}, which does not depend on {owner}.")
    lines.append(f"Status board: {board_url}")
    return title, "\n".join(lines)


class AlertService:
    """Turns state changes into alerts (see the module docstring)."""

    def __init__(
        self, *, db: Database, vault: Vault, clock: Clock, catalogue: Catalogue | None,
        public_url: str, sender: AlertSender | None = None, max_per_window: int = 10,
        window_s: float = 3600.0,
    ) -> None:
        self.db, self.vault, self.clock = db, vault, clock
        self.entries = {p.key: p for p in (catalogue.all() if catalogue is not None else [])}
        self.public_url = public_url.rstrip("/")
        self.sender = sender or AppriseSender()
        self.max_per_window, self.window = max_per_window, timedelta(seconds=window_s)

    def owner(self, platform: str) -> str:
        entry = self.entries.get(platform)
        return str(entry.owner) if entry is not None else OTHER_OWNERS.get(platform, platform)

    def name(self, platform: str) -> str:
        entry = self.entries.get(platform)
        return str(entry.name) if entry is not None else platform

    async def on_event(self, notice: EventNotice) -> None:
        if notice.type == STATE_CHANGED:
            await self.handle(Change.from_event(notice.id, notice.payload, notice.created_at))

    async def catch_up(self, events: Sequence[Event]) -> None:
        """Handle events read from the table (a monitor in another process wrote them)."""
        for event in events:
            if event.type == STATE_CHANGED:
                await self.handle(Change.from_event(event.id, event.payload, event.created_at))

    async def handle(self, change: Change) -> dict[str, str]:
        """Alert every workspace's targets about `change`; return outcome by target label."""
        if not change.alerts:
            return {}
        outcomes: dict[str, str] = {}
        async with self.db.session() as session:
            workspaces = await workspaces_with_targets(session)
        for workspace in workspaces:
            async with self.db.session() as session:
                targets = await AlertTargets(session, workspace_id=workspace.id,
                                             vault=self.vault).all()
            for target in targets:
                outcomes[f"{workspace.slug}/{target.label}"] = await self._one(
                    workspace, target, change)
        return outcomes

    async def _one(self, workspace: Workspace, target: AlertTarget, change: Change) -> str:
        now = self.clock.now()
        affected = self._affects(change.platform, target.platform)
        async with self.db.session() as session:
            sent = AlertsSent(session)
            if affected:
                outcome, detail = "skipped", f"{target.platform} is affected by the incident"
            elif await sent.last_state(target_id=target.id,
                                       platform=change.platform) == change.state:
                outcome, detail = "duplicate", "this state was already sent"
            elif await sent.sent_since(target_id=target.id,
                                       since=now - self.window) >= self.max_per_window:
                outcome, detail = "rate_limited", f"{self.max_per_window} alerts in the window"
            else:
                outcome, detail = "sending", ""
            claim = await sent.claim(target=target, event_id=change.event_id,
                                     platform=change.platform, state=change.state,
                                     outcome=outcome, detail=detail, at=now)
            if claim is None:
                return "already_handled"
            try:
                url = AlertTargets(session, workspace_id=workspace.id, vault=self.vault).url(
                    target)
            except VaultError:
                outcome = "failed"
                await sent.finish(claim, outcome=outcome, detail="the URL cannot be decrypted")
        if outcome != "sending":
            return outcome
        owner = self.owner(change.platform)
        title, body = compose_alert(
            change, name=self.name(change.platform), owner=owner,
            via=f"{target.label} ({self.name(target.platform)})",
            board_url=f"{self.public_url}/w/{workspace.slug}/status/{change.platform}")
        try:
            await self.sender.send(url, title=title, body=body)
            outcome, detail = "sent", ""
        except AlertFailed as exc:
            outcome, detail = "failed", str(exc)
            log.warning("alert to %s failed: %s", target.label, exc)
        async with self.db.session() as session:
            await AlertsSent(session).finish(claim, outcome=outcome, detail=detail)
        return outcome

    def _affects(self, platform: str, channel_platform: str) -> bool:
        if channel_platform == platform:
            return True
        owner = self.owner(platform)
        # "self" owns the owned channels (email, site, webhook): they share no company.
        return owner != "self" and owner == self.owner(channel_platform)


def attach_alerts(runtime: Runtime, catalogue: Catalogue | None) -> AlertService:
    """An `AlertService` on the runtime, subscribed to its event bus."""
    service = AlertService(db=runtime.db, vault=runtime.vault, clock=runtime.clock,
                           catalogue=catalogue, public_url=runtime.settings.public_url)
    runtime.db.bus.subscribe(STATE_CHANGED, service.on_event)
    return service
