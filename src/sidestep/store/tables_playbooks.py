"""Tables for playbook runs (issue 10). Changes need a migration.

    playbook_run     one run of one playbook for one trigger occurrence (a platform's or an
                     owner's incident, a deliverable, a manual start); `trigger_key` makes a
                     second start for the same occurrence impossible
    playbook_action  one step of a run (or an approval): claimed before it acts, settled
                     after; (run_id, phase, step) is the action key, so re-running a run
                     never does a step twice
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from sidestep.store.tables import Base, BigId


class PlaybookRun(Base):
    __tablename__ = "playbook_run"
    __table_args__ = (UniqueConstraint("workspace_id", "playbook", "trigger_key"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(
        ForeignKey("workspace.id", ondelete="CASCADE"), index=True)
    playbook: Mapped[str] = mapped_column(String(100))
    playbook_sha256: Mapped[str] = mapped_column(String(64))
    trigger_key: Mapped[str] = mapped_column(String(200))
    # The platforms the trigger matched (the run's affected platforms).
    platforms: Mapped[list[Any]] = mapped_column(default=list)
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incident.id", ondelete="SET NULL"), index=True)
    event_id: Mapped[int | None]
    # waiting_approval, running, active, recovering, done, aborted, stopped, failed
    state: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(Text, default="")
    # Runs of playbooks that started this one through `trigger_playbook` (loop detection).
    chain: Mapped[list[Any]] = mapped_column(default=list)
    approval_due_at: Mapped[datetime | None]
    started_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class PlaybookAction(Base):
    __tablename__ = "playbook_action"
    __table_args__ = (UniqueConstraint("run_id", "phase", "step"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("playbook_run.id", ondelete="CASCADE"), index=True)
    phase: Mapped[str] = mapped_column(String(16))  # approval, act, recover
    step: Mapped[int]
    kind: Mapped[str] = mapped_column(String(40))
    # running, done, skipped, failed (running left behind by a crash: never redone)
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(String(1000), default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
