"""The tables behind Sidestep's nouns (see docs/ARCHITECTURE.md). Changes need a migration."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite ignores BIGINT autoincrement unless the column is INTEGER; this keeps ids 64-bit on
# PostgreSQL and rowid-backed on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every engine; SQLite would otherwise hand back naive values."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class Workspace(Base):
    __tablename__ = "workspace"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]


class User(Base):
    __tablename__ = "user_account"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class Member(Base):
    __tablename__ = "member"
    __table_args__ = (UniqueConstraint("workspace_id", "user_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class ApiToken(Base):
    """A per-user API token; only its SHA-256 is stored, the prefix is for recognising it."""

    __tablename__ = "api_token"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class WebSession(Base):
    """A logged-in browser; the cookie holds a random token whose SHA-256 is stored here."""

    __tablename__ = "web_session"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class Channel(Base):
    __tablename__ = "channel"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(100))
    handle: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(20))
    # Fernet token of the JSON credentials; see sidestep.vault. Never plaintext.
    credentials_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    audience_size: Mapped[int] = mapped_column(BigInteger, default=0)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]


class Post(Base):
    __tablename__ = "post"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspace.id", ondelete="CASCADE"), index=True
    )
    body: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(2048))
    media: Mapped[list[Any]] = mapped_column(default=list)
    variants: Mapped[dict[str, Any]] = mapped_column(default=dict)
    due_at: Mapped[datetime]
    fallback_policy: Mapped[str] = mapped_column(String(20))
    fallback_channel_ids: Mapped[list[Any]] = mapped_column(default=list)
    # Failover timing (issue 6); None takes the workspace's default at dispatch time.
    hold_max_s: Mapped[int | None]
    reroute_grace_s: Mapped[int | None]
    max_age_s: Mapped[int | None]
    catch_up: Mapped[bool] = mapped_column(default=False)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime]


class Delivery(Base):
    """One post on one channel. The row is the job: workers claim it with a lease."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("post_id", "channel_id"),
        Index("ix_delivery_claim", "state", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    post_id: Mapped[int] = mapped_column(ForeignKey("post.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channel.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    attempt_count: Mapped[int] = mapped_column(default=0)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]
    external_id: Mapped[str | None] = mapped_column(String(200))
    external_url: Mapped[str | None] = mapped_column(String(2048))
    last_error: Mapped[str | None] = mapped_column(String(1000))
    updated_at: Mapped[datetime]
    # When it was last held (failover delays count from here); the delivery a fallback
    # delivery stands in for (None for a post's own targets).
    held_since: Mapped[datetime | None]
    origin_delivery_id: Mapped[int | None] = mapped_column(BigInteger)


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempt"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("delivery.id", ondelete="CASCADE"), index=True
    )
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    outcome: Mapped[str] = mapped_column(String(20))
    error_class: Mapped[str | None] = mapped_column(String(40))
    # Capped at 1,000 characters by the repository: platform error bodies can be huge.
    error_detail: Mapped[str | None] = mapped_column(String(1000))


class Observation(Base):
    """One probe result. Global, not per workspace: platforms are shared."""

    __tablename__ = "observation"
    __table_args__ = (Index("ix_observation_platform_time", "platform", "observed_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    platform: Mapped[str] = mapped_column(String(40))
    signal: Mapped[str] = mapped_column(String(20))
    vantage: Mapped[str] = mapped_column(String(100))
    feature: Mapped[str] = mapped_column(String(40), default="")
    target: Mapped[str] = mapped_column(String(300), default="")
    observed_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(20))
    latency_ms: Mapped[float | None]
    detail: Mapped[str | None] = mapped_column(String(500))


class PlatformState(Base):
    __tablename__ = "platform_state"
    platform: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    features: Mapped[list[Any]] = mapped_column(default=list)
    reason: Mapped[str] = mapped_column(String(500), default="")
    since: Mapped[datetime]
    updated_at: Mapped[datetime]


class Incident(Base):
    """A run of not-up states of one platform."""

    __tablename__ = "incident"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    platform: Mapped[str] = mapped_column(String(40), index=True)
    worst_status: Mapped[str] = mapped_column(String(16))
    features: Mapped[list[Any]] = mapped_column(default=list)
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    summary: Mapped[str] = mapped_column(Text, default="")


class Event(Base):
    """A state change, written in the same transaction as the change it reports."""

    __tablename__ = "event"
    __table_args__ = (Index("ix_event_workspace_id", "workspace_id", "id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    type: Mapped[str] = mapped_column(String(60))
    workspace_id: Mapped[int | None] = mapped_column(
        ForeignKey("workspace.id", ondelete="CASCADE")
    )
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
