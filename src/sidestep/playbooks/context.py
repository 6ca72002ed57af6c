"""What an action sees (`RunContext`), what it returns (`Result`) and what the engine is given
(`Deps`: the effects at the edge, so tests and drills plug in real local peers)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.catalogue.loader import Catalogue
from sidestep.clock import Clock
from sidestep.email.campaign import Mailer, SendSettings
from sidestep.playbooks.model import Playbook
from sidestep.store.db import Database
from sidestep.store.tables import Channel, PlatformState, Workspace
from sidestep.vault import Vault

__all__ = ["ActionFailed", "AlertSender", "Deps", "MailSetup", "Result", "RunContext"]


class ActionFailed(Exception):
    """An action that could not be carried out; the message is recorded on the timeline."""


class AlertSender(Protocol):
    async def send(self, url: str, *, title: str, body: str) -> None: ...


@dataclass(frozen=True, slots=True)
class MailSetup:
    """How a workspace's email goes out: a mailer, the sending settings, and its closer."""

    mailer: Mailer
    settings: SendSettings
    from_email: str
    close: Callable[[], Awaitable[None]]


@dataclass
class Deps:
    db: Database
    clock: Clock
    vault: Vault
    catalogue: Catalogue
    # The workspace's mail setup, or None when it has no SMTP server.
    mail_for: Callable[[int], Awaitable[MailSetup | None]]
    alert_sender: AlertSender
    http: httpx.AsyncClient | None = None  # for webhooks; a fresh client when None
    public_url: str = "http://localhost:8000"


@dataclass(frozen=True, slots=True)
class Result:
    outcome: str  # done, skipped, failed
    detail: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunContext:
    deps: Deps
    workspace_id: int
    run_id: int
    playbook: Playbook
    platforms: Sequence[str]   # the affected platforms (catalogue keys)
    status: str                # down, degraded, local_outage, at_risk, manual
    since: datetime
    chain: Sequence[str]

    def owner(self, platform: str) -> str:
        cat = self.deps.catalogue
        return cat.get(platform).owner if platform in cat else platform

    def name(self, platform: str) -> str:
        cat = self.deps.catalogue
        return cat.get(platform).name if platform in cat else platform

    def owned(self, platform: str) -> bool:
        cat = self.deps.catalogue
        return platform in cat and cat.get(platform).kind == "owned"

    def touched(self, platform: str) -> bool:
        """Is `platform` affected: one of the fallen, or owned by the same company?"""
        if platform in self.platforms:
            return True
        owners = {self.owner(p) for p in self.platforms} - {"self"}
        return self.owner(platform) in owners

    async def message_context(self, session: AsyncSession) -> dict[str, Any]:
        """The data a prepared message may use (see `templates.py`)."""
        workspace = await session.get_one(Workspace, self.workspace_id)
        names = [self.name(p) for p in self.platforms]
        owners = sorted({self.owner(p) for p in self.platforms} - {"self"})
        up = await up_channels(session, self.workspace_id)
        return {
            "platform": " and ".join(names) if len(names) < 3 else ", ".join(names),
            "platforms": names, "owner": ", ".join(owners), "status": self.status,
            "since": self.since.strftime("%H:%M UTC"),
            "now": self.deps.clock.now().strftime("%H:%M UTC"),
            "brand": workspace.name,
            "alternatives": [{"name": c.name, "platform": self.name(c.platform),
                              "handle": c.handle} for c in up if not self.touched(c.platform)],
        }


async def channel_states(session: AsyncSession, workspace_id: int
                         ) -> list[tuple[Channel, str | None]]:
    """The workspace's active channels with their platform's monitor status (None: none)."""
    rows = await session.execute(
        select(Channel, PlatformState.status)
        .outerjoin(PlatformState, PlatformState.platform == Channel.platform)
        .where(Channel.workspace_id == workspace_id, Channel.status == "active")
        .order_by(Channel.id))
    return [(channel, status) for channel, status in rows.all()]


async def up_channels(session: AsyncSession, workspace_id: int) -> list[Channel]:
    """Active channels whose platform is up, or has no monitor state (owned channels)."""
    return [c for c, status in await channel_states(session, workspace_id)
            if status in (None, "up")]
