"""Tables for the monitor capability (see docs/ARCHITECTURE.md). Changes need a migration."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from sidestep.store.tables import Base, BigId


class ObservationMinute(Base):
    """Raw observations older than the raw retention, summed per minute.

    One row per (platform, signal, vantage, feature, minute): how many checks, how many
    failed, and their latency (sum over the checks that had one, and the slowest).
    """

    __tablename__ = "observation_minute"
    __table_args__ = (
        Index("ix_observation_minute_key", "platform", "minute", "signal", "vantage", "feature",
              unique=True),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    platform: Mapped[str] = mapped_column(String(40))
    signal: Mapped[str] = mapped_column(String(20))
    vantage: Mapped[str] = mapped_column(String(100))
    feature: Mapped[str] = mapped_column(String(40), default="")
    minute: Mapped[datetime]
    checks: Mapped[int]
    failures: Mapped[int]
    timed: Mapped[int]  # checks with a latency
    latency_sum_ms: Mapped[float]
    latency_max_ms: Mapped[float | None]
