"""Tables for email campaigns and their per-recipient results. Changes need a migration
(0007_campaign.py).

A campaign's recipients are snapshotted into `campaign_recipient` when sending starts; that
row is the unit of work (claimed, sent, deferred...) and the record of what happened to each
address. DKIM keys and SMTP passwords are stored sealed by the vault, never in plain text.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from sidestep.store.tables import Base, BigId


class Campaign(Base):
    __tablename__ = "campaign"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspace.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    list_id: Mapped[int | None] = mapped_column(
        ForeignKey("mailing_list.id", ondelete="SET NULL")
    )
    tags: Mapped[list[Any]] = mapped_column(default=list)
    # Extra template variables fixed at creation (the crisis email's list of channels).
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    subject_tpl: Mapped[str] = mapped_column(Text)
    html_tpl: Mapped[str] = mapped_column(Text, default="")
    text_tpl: Mapped[str] = mapped_column(Text, default="")
    from_name: Mapped[str] = mapped_column(String(200))
    from_email: Mapped[str] = mapped_column(String(320))
    reply_to: Mapped[str | None] = mapped_column(String(320))
    # draft, sending, paused, cancelled, done, failed (sidestep.email.campaign.CampaignState)
    state: Mapped[str] = mapped_column(String(16))
    state_reason: Mapped[str] = mapped_column(String(500), default="")
    # Permanent failures (and unknown outcomes) tolerated in one run before it pauses itself.
    error_budget: Mapped[int] = mapped_column(default=50)
    failures_in_run: Mapped[int] = mapped_column(default=0)
    # The process sending it; another may take over only after the lease expires.
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class CampaignRecipient(Base):
    __tablename__ = "campaign_recipient"
    __table_args__ = (
        UniqueConstraint("campaign_id", "email"),
        Index("ix_campaign_recipient_work", "campaign_id", "state", "next_at"),
        Index("ix_campaign_recipient_message_id", "message_id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscriber.id", ondelete="SET NULL")
    )
    email: Mapped[str] = mapped_column(String(320))
    # pending, sending, sent, deferred, failed, unknown, skipped_suppressed, cancelled
    state: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(default=0)
    next_at: Mapped[datetime]
    last_code: Mapped[int | None]
    last_reply: Mapped[str | None] = mapped_column(String(500))
    message_id: Mapped[str | None] = mapped_column(String(200))
    sent_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class DkimKeyRow(Base):
    __tablename__ = "dkim_key"
    __table_args__ = (UniqueConstraint("workspace_id", "domain", "selector"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    domain: Mapped[str] = mapped_column(String(253))
    selector: Mapped[str] = mapped_column(String(63))
    algorithm: Mapped[str] = mapped_column(String(20))
    # Vault-sealed PKCS#8 PEM; see sidestep.vault.
    private_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class SmtpServerRow(Base):
    __tablename__ = "smtp_server"
    __table_args__ = (UniqueConstraint("workspace_id", "host", "port"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    priority: Mapped[int] = mapped_column(default=0)
    host: Mapped[str] = mapped_column(String(253))
    port: Mapped[int]
    tls: Mapped[str] = mapped_column(String(10))  # starttls, implicit, none
    username: Mapped[str | None] = mapped_column(String(320))
    # Vault-sealed {"password": ...}; None when the server needs no login.
    password_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
