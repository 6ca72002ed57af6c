"""Channels: a workspace's accounts on platforms, with credentials encrypted at rest."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.domain.states import ChannelStatus
from sidestep.store.events import record_event
from sidestep.store.tables import Channel
from sidestep.vault import Credentials, Vault


class ChannelError(ValueError):
    """A channel request that cannot be carried out, with the reason for a person."""


class Channels:
    """Every query is scoped to one workspace: no method can reach another's channels."""

    def __init__(self, session: AsyncSession, *, workspace_id: int, vault: Vault) -> None:
        self.session = session
        self.workspace_id = workspace_id
        self.vault = vault

    async def add(
        self,
        *,
        platform: str,
        name: str,
        handle: str = "",
        credentials: Mapping[str, str] | None = None,
        audience_size: int = 0,
        settings: dict[str, Any] | None = None,
        at: datetime,
    ) -> Channel:
        if not name.strip():
            raise ChannelError("a channel needs a name")
        if audience_size < 0:
            raise ChannelError("audience size cannot be negative")
        if await self.by_name(name) is not None:
            raise ChannelError(f"this workspace has a channel named {name!r} already")
        channel = Channel(
            workspace_id=self.workspace_id, platform=platform, name=name.strip(), handle=handle,
            status=ChannelStatus.ACTIVE.value,
            credentials_encrypted=self.vault.encrypt(credentials) if credentials else None,
            audience_size=audience_size, settings=settings or {}, created_at=at,
        )
        self.session.add(channel)
        await self.session.flush()
        await record_event(
            self.session, type="channel.added", workspace_id=self.workspace_id,
            payload={"channel_id": channel.id, "platform": platform, "name": channel.name}, at=at,
        )
        return channel

    async def get(self, channel_id: int) -> Channel | None:
        return await self.session.scalar(
            select(Channel).where(Channel.id == channel_id,
                                  Channel.workspace_id == self.workspace_id)
        )

    async def by_name(self, name: str) -> Channel | None:
        return await self.session.scalar(
            select(Channel).where(Channel.name == name.strip(),
                                  Channel.workspace_id == self.workspace_id)
        )

    async def find(self, ref: str) -> Channel | None:
        """A channel by id (digits) or by name."""
        return await self.get(int(ref)) if ref.isdigit() else await self.by_name(ref)

    async def all(self) -> list[Channel]:
        query = select(Channel).where(Channel.workspace_id == self.workspace_id).order_by(
            Channel.id
        )
        return list((await self.session.scalars(query)).all())

    def credentials(self, channel: Channel) -> Credentials:
        if channel.workspace_id != self.workspace_id:
            raise ChannelError("channel belongs to another workspace")
        if channel.credentials_encrypted is None:
            return Credentials({})
        return self.vault.decrypt(channel.credentials_encrypted)

    async def set_credentials(
        self, channel: Channel, credentials: Mapping[str, str], *, at: datetime
    ) -> None:
        channel.credentials_encrypted = self.vault.encrypt(credentials)
        await record_event(
            self.session, type="channel.credentials_changed", workspace_id=self.workspace_id,
            payload={"channel_id": channel.id}, at=at,
        )

    async def set_status(self, channel: Channel, status: ChannelStatus, *, at: datetime) -> None:
        if channel.status == status.value:
            return
        old = channel.status
        channel.status = status.value
        await record_event(
            self.session, type="channel.status_changed", workspace_id=self.workspace_id,
            payload={"channel_id": channel.id, "old": old, "new": status.value}, at=at,
        )

    async def remove(self, channel: Channel, *, at: datetime) -> None:
        await self.session.delete(channel)
        await record_event(
            self.session, type="channel.removed", workspace_id=self.workspace_id,
            payload={"channel_id": channel.id, "name": channel.name}, at=at,
        )
