"""Tables at the monitor's edges: probe agents (and the nonces they used) and team alerts.

Changes need a migration. Secrets are never stored in the clear: an agent's signing key and
an alert URL (which carries a bot token or a webhook secret) are Fernet tokens from the vault.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from sidestep.store.tables import Base, BigId


class ProbeAgent(Base):
    """A probe agent on another network; `name` is the vantage its observations carry."""

    __tablename__ = "probe_agent"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    # Fernet token (sidestep.vault) of the HMAC-SHA256 key derived from the agent's token.
    key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class AgentNonce(Base):
    """A nonce an agent's batch carried; a second batch with it is a replay."""

    __tablename__ = "agent_nonce"
    __table_args__ = (
        UniqueConstraint("agent_id", "nonce"),
        Index("ix_agent_nonce_seen_at", "seen_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("probe_agent.id", ondelete="CASCADE"))
    nonce: Mapped[str] = mapped_column(String(64))
    seen_at: Mapped[datetime]


class AlertTarget(Base):
    """One Apprise URL a workspace's team is alerted through."""

    __tablename__ = "alert_target"
    __table_args__ = (UniqueConstraint("workspace_id", "label"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(100))
    # Which platform carries it (from the URL's scheme), so an outage can skip it.
    platform: Mapped[str] = mapped_column(String(40))
    url_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class AlertSent(Base):
    """One alert about one state change to one target: sent, failed, or skipped and why."""

    __tablename__ = "alert_sent"
    __table_args__ = (
        UniqueConstraint("target_id", "event_id"),
        Index("ix_alert_sent_target_time", "target_id", "at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    target_id: Mapped[int] = mapped_column(ForeignKey("alert_target.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(ForeignKey("event.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(40))
    state: Mapped[str] = mapped_column(String(80))
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(String(300), default="")
    at: Mapped[datetime]
