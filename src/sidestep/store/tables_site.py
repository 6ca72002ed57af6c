"""The owned site's settings, one row per workspace (see sidestep.site). Changes need a migration.

    site_settings   whether the public site is on, the brand's name and description as the
                    site shows them, the banner text an owner (or a playbook) set, and which
                    channels the link page lists, in order, with the public URL of each
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from sidestep.store.tables import Base, BigId


class SiteSettings(Base):
    __tablename__ = "site_settings"
    workspace_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("workspace.id", ondelete="CASCADE"), primary_key=True
    )
    # Off until an owner or editor turns it on: nothing is public by default.
    published: Mapped[bool] = mapped_column(default=False)
    title: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    banner: Mapped[str] = mapped_column(String(500), default="")
    banner_set_at: Mapped[datetime | None]
    # [{"channel_id": int, "url": str}] in the order the link page lists them.
    channels: Mapped[list[Any]] = mapped_column(default=list)
    updated_at: Mapped[datetime]
