"""Tables for the dispatch capability (see docs/ARCHITECTURE.md). Changes need a migration.

    dispatch_pause   one row per pause: a whole workspace (channel_id NULL) or one channel
    channel_breaker  each channel's circuit breaker, shared by every worker process
    quota_lock       one row per quota key; locked (PostgreSQL) while tokens are counted
    send_slot        one row per send admitted under a quota: the sliding window's log
    deliverable      a sponsored post promised to a partner by a deadline (issue 10 extends it)
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from sidestep.store.tables import Base, BigId


class DispatchPause(Base):
    """An emergency stop. `key` is `ws:<id>` or `ch:<id>`, so each scope is paused once."""

    __tablename__ = "dispatch_pause"
    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspace.id", ondelete="CASCADE"), index=True)
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channel.id", ondelete="CASCADE"))
    paused_by: Mapped[str] = mapped_column(String(320), default="")
    paused_at: Mapped[datetime]


class ChannelBreaker(Base):
    __tablename__ = "channel_breaker"
    channel_id: Mapped[int] = mapped_column(
        ForeignKey("channel.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    failures: Mapped[int] = mapped_column(default=0)  # consecutive outage-class failures
    opened_at: Mapped[datetime | None]
    probe_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class QuotaLock(Base):
    __tablename__ = "quota_lock"
    key: Mapped[str] = mapped_column(String(120), primary_key=True)


class SendSlot(Base):
    __tablename__ = "send_slot"
    __table_args__ = (Index("ix_send_slot_key_at", "key", "at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(120))
    at: Mapped[datetime] = mapped_column(index=True)


class Deliverable(Base):
    __tablename__ = "deliverable"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspace.id", ondelete="CASCADE"), index=True)
    partner_name: Mapped[str] = mapped_column(String(200))
    partner_email: Mapped[str] = mapped_column(String(320), default="")
    title: Mapped[str] = mapped_column(String(300))
    due_at: Mapped[datetime]
    post_id: Mapped[int | None] = mapped_column(
        ForeignKey("post.id", ondelete="SET NULL"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
