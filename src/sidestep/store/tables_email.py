"""Tables for the email audience: subscribers, lists, consent and suppression.

Changes need a migration (0004_email.py). Emails are stored normalised (domain lower-cased
and IDNA-encoded, local part as given); see `sidestep.email.addresses`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from sidestep.store.tables import Base, BigId


class Subscriber(Base):
    __tablename__ = "subscriber"
    __table_args__ = (UniqueConstraint("workspace_id", "email"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    # unconfirmed, subscribed, unsubscribed, bounced, complained
    status: Mapped[str] = mapped_column(String(16))
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    soft_bounces: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class MailingList(Base):
    __tablename__ = "mailing_list"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    double_opt_in: Mapped[bool] = mapped_column(Boolean, default=True)
    # Shown beside the public subscribe form and kept in each consent record.
    consent_text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]


class ListMembership(Base):
    __tablename__ = "list_membership"
    __table_args__ = (Index("ix_list_membership_subscriber", "subscriber_id"),)
    list_id: Mapped[int] = mapped_column(
        ForeignKey("mailing_list.id", ondelete="CASCADE"), primary_key=True
    )
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscriber.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16))  # unconfirmed, subscribed, unsubscribed
    changed_at: Mapped[datetime]


class Suppression(Base):
    """An address no send may reach, whether or not a subscriber row exists for it."""

    __tablename__ = "suppression"
    __table_args__ = (UniqueConstraint("workspace_id", "email"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(16))  # unsubscribed, hard_bounce, complaint, manual
    detail: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[datetime]


class ConsentRecord(Base):
    """Evidence of one consent change: when, how, from where, and the words the person saw."""

    __tablename__ = "consent_record"
    __table_args__ = (Index("ix_consent_record_subscriber", "workspace_id", "subscriber_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id", ondelete="CASCADE"))
    list_id: Mapped[int | None] = mapped_column(
        ForeignKey("mailing_list.id", ondelete="SET NULL")
    )
    action: Mapped[str] = mapped_column(String(16))  # subscribe, confirm, unsubscribe, import
    source: Mapped[str] = mapped_column(String(200))  # form, csv:<file>, api, link, cli
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    text_shown: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
