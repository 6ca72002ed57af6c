"""Probe agents and the nonces their batches used (see `sidestep.monitor.signing`)."""

from __future__ import annotations

import base64
import re
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.monitor.signing import new_agent_token
from sidestep.store.tables_agents import AgentNonce, ProbeAgent
from sidestep.vault import Vault

__all__ = ["AgentError", "Agents", "RESERVED_VANTAGES"]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
# The hub's own probes report as "local"; an agent may not pass for them.
RESERVED_VANTAGES = frozenset({"local", "hub"})


class AgentError(ValueError):
    """A bad agent name, a name already taken, or no such agent."""


class Agents:
    def __init__(self, session: AsyncSession, *, vault: Vault) -> None:
        self.session = session
        self.vault = vault

    async def issue(self, *, name: str, at: datetime) -> str:
        """Register an agent reporting as vantage `name`; return its token (shown once)."""
        if not _NAME.match(name) or name in RESERVED_VANTAGES:
            raise AgentError(f"{name!r} cannot name an agent: use lower-case letters, digits, "
                             "'.', '-' or '_' (up to 63), and not 'local' or 'hub'")
        old = await self.by_name(name)
        if old is not None and old.revoked_at is None:
            raise AgentError(f"an agent named {name!r} exists; revoke it first or pick another")
        if old is not None:  # a revoked agent's name may be issued again, with a new key
            await self.session.delete(old)
            await self.session.flush()
        token = new_agent_token()
        sealed = self.vault.encrypt({"key": base64.b64encode(token.signing_key).decode()})
        self.session.add(ProbeAgent(name=name, key_id=token.key_id, key_encrypted=sealed,
                                    created_at=at, last_seen_at=None, revoked_at=None))
        await self.session.flush()
        return token.text

    async def by_name(self, name: str) -> ProbeAgent | None:
        return await self.session.scalar(select(ProbeAgent).where(ProbeAgent.name == name))

    async def active_by_key_id(self, key_id: str) -> ProbeAgent | None:
        return await self.session.scalar(select(ProbeAgent).where(
            ProbeAgent.key_id == key_id, ProbeAgent.revoked_at.is_(None)))

    def signing_key(self, agent: ProbeAgent) -> bytes:
        """The agent's HMAC key; raises `VaultError` if the vault's key changed."""
        return base64.b64decode(self.vault.decrypt(agent.key_encrypted)["key"])

    async def all(self) -> list[ProbeAgent]:
        return list((await self.session.scalars(select(ProbeAgent).order_by(ProbeAgent.name)))
                    .all())

    async def revoke(self, *, name: str, at: datetime) -> None:
        """Refuse the agent's token from now on; raises `AgentError` if there is no such
        active agent."""
        agent = await self.by_name(name)
        if agent is None or agent.revoked_at is not None:
            raise AgentError(f"no active agent named {name!r}")
        agent.revoked_at = at
        await self.session.flush()

    async def remember_nonce(self, *, agent_id: int, nonce: str, at: datetime) -> bool:
        """Record a batch's nonce; False when this agent used it before (a replay).

        One INSERT ... ON CONFLICT DO NOTHING, so two copies of a batch racing on two hub
        processes cannot both be accepted.
        """
        dialect = self.session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        statement = insert(AgentNonce).values(agent_id=agent_id, nonce=nonce, seen_at=at)
        inserted = await self.session.execute(
            statement.on_conflict_do_nothing(index_elements=["agent_id", "nonce"])
            .returning(AgentNonce.id))
        return inserted.scalar() is not None

    async def forget_nonces(self, *, before: datetime) -> int:
        """Drop nonces older than `before` (batches that old are refused as stale anyway)."""
        result = await self.session.execute(delete(AgentNonce).where(AgentNonce.seen_at < before))
        return int(result.rowcount)  # type: ignore[attr-defined]
