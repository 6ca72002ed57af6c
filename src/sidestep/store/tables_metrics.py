"""Tables for the metrics capability (see docs/ARCHITECTURE.md). Changes need a migration.

    metric_point  one value of one metric of one channel at one time (the start of the hour
                  or day it covers), with where it came from. The unique key makes imports
                  idempotent: importing the same point again replaces its value and source.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from sidestep.store.tables import Base, BigId


class MetricPoint(Base):
    __tablename__ = "metric_point"
    __table_args__ = (
        UniqueConstraint("workspace_id", "channel_id", "metric", "at"),
        Index("ix_metric_point_workspace_metric_at", "workspace_id", "metric", "at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspace.id", ondelete="CASCADE"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channel.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime]
    value: Mapped[float]
    # The import format ("meta", "long", "deliveries", ...) that wrote the value last.
    source: Mapped[str] = mapped_column(String(40))
    imported_at: Mapped[datetime]
