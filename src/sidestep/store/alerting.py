"""Team alert targets (Apprise URLs, sealed by the vault) and the record of alerts sent."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.store.tables import Workspace
from sidestep.store.tables_agents import AlertSent, AlertTarget
from sidestep.vault import Vault

__all__ = ["AlertTargets", "AlertsSent"]


class AlertTargets:
    """One workspace's alert URLs; the URLs are encrypted at rest and never listed in clear."""

    def __init__(self, session: AsyncSession, *, workspace_id: int, vault: Vault) -> None:
        self.session, self.workspace_id, self.vault = session, workspace_id, vault

    async def add(self, *, label: str, url: str, platform: str, at: datetime) -> AlertTarget:
        row = AlertTarget(workspace_id=self.workspace_id, label=label, platform=platform,
                          url_encrypted=self.vault.encrypt({"url": url}), created_at=at)
        self.session.add(row)
        await self.session.flush()
        return row

    async def by_label(self, label: str) -> AlertTarget | None:
        return await self.session.scalar(select(AlertTarget).where(
            AlertTarget.workspace_id == self.workspace_id, AlertTarget.label == label))

    async def all(self) -> list[AlertTarget]:
        query = (select(AlertTarget).where(AlertTarget.workspace_id == self.workspace_id)
                 .order_by(AlertTarget.label))
        return list((await self.session.scalars(query)).all())

    def url(self, target: AlertTarget) -> str:
        """The URL in clear, for the one place that sends; raises `VaultError`."""
        return self.vault.decrypt(target.url_encrypted)["url"]

    async def remove(self, label: str) -> bool:
        target = await self.by_label(label)
        if target is None:
            return False
        await self.session.delete(target)
        await self.session.flush()
        return True


async def workspaces_with_targets(session: AsyncSession) -> list[Workspace]:
    query = select(Workspace).where(
        Workspace.id.in_(select(AlertTarget.workspace_id).distinct())).order_by(Workspace.id)
    return list((await session.scalars(query)).all())


class AlertsSent:
    """What was sent to each target, claimed before sending so no event goes out twice."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, *, target: AlertTarget, event_id: int, platform: str, state: str,
                    outcome: str, at: datetime, detail: str = "") -> int | None:
        """Record that `target` is handled for `event_id`; None when someone already did.

        INSERT ... ON CONFLICT DO NOTHING on (target, event): two processes hearing the
        same event cannot both send it.
        """
        dialect = self.session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        statement = insert(AlertSent).values(
            workspace_id=target.workspace_id, target_id=target.id, event_id=event_id,
            platform=platform, state=state, outcome=outcome, detail=detail[:300], at=at,
        ).on_conflict_do_nothing(index_elements=["target_id", "event_id"]).returning(AlertSent.id)
        claimed: int | None = (await self.session.execute(statement)).scalar()
        return claimed

    async def finish(self, claim_id: int, *, outcome: str, detail: str = "") -> None:
        await self.session.execute(update(AlertSent).where(AlertSent.id == claim_id)
                                   .values(outcome=outcome, detail=detail[:300]))

    async def last_state(self, *, target_id: int, platform: str) -> str | None:
        """The state of the last alert actually sent (or being sent) to the target."""
        state: str | None = await self.session.scalar(
            select(AlertSent.state).where(
                AlertSent.target_id == target_id, AlertSent.platform == platform,
                AlertSent.outcome.in_(("sent", "sending")))
            .order_by(AlertSent.id.desc()).limit(1))
        return state

    async def sent_since(self, *, target_id: int, since: datetime) -> int:
        return int(await self.session.scalar(
            select(func.count()).select_from(AlertSent).where(
                AlertSent.target_id == target_id, AlertSent.at >= since,
                AlertSent.outcome.in_(("sent", "sending")))) or 0)

    async def for_workspace(self, workspace_id: int, *, limit: int = 50) -> list[AlertSent]:
        query = (select(AlertSent).where(AlertSent.workspace_id == workspace_id)
                 .order_by(AlertSent.id.desc()).limit(limit))
        return list((await self.session.scalars(query)).all())
