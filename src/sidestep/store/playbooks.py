"""Playbook runs and their actions: the named queries the engine uses (issue 10).

Both kinds of row are claimed with INSERT ... ON CONFLICT DO NOTHING, so two engine processes
hearing the same event start one run, and a step already recorded is never done again.
Every change writes an event row (`playbook.run`, `playbook.action`) with the workspace, so
the incident's timeline shows it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.store.events import record_event
from sidestep.store.tables_playbooks import PlaybookAction, PlaybookRun

__all__ = ["ActionOutcome", "FINISHED", "PlaybookRuns", "RunState"]


class RunState(StrEnum):
    WAITING_APPROVAL = "waiting_approval"
    RUNNING = "running"        # acting: the actions are being carried out
    ACTIVE = "active"          # acted; waiting for the platforms to recover
    RECOVERING = "recovering"  # carrying out the recovery actions
    DONE = "done"
    ABORTED = "aborted"        # refused, or no approval in time
    STOPPED = "stopped"        # a loop or a runaway playbook, stopped before acting


FINISHED = frozenset({RunState.DONE, RunState.ABORTED, RunState.STOPPED})


class ActionOutcome(StrEnum):
    RUNNING = "running"  # claimed; left so by a crash, it is never redone (see `detail`)
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"
    WAITING = "waiting"  # an approval not given yet
    APPROVED = "approved"
    REFUSED = "refused"


class PlaybookRuns:
    """One workspace's playbook runs."""

    def __init__(self, session: AsyncSession, *, workspace_id: int) -> None:
        self.session, self.workspace_id = session, workspace_id

    def _insert(self) -> Any:
        dialect = self.session.get_bind().dialect.name
        return pg_insert if dialect == "postgresql" else sqlite_insert

    async def start(self, *, playbook: str, sha256: str, trigger_key: str,
                    platforms: Sequence[str], incident_id: int | None, event_id: int | None,
                    chain: Sequence[str], state: RunState, detail: str, at: datetime,
                    approval_due_at: datetime | None = None) -> PlaybookRun | None:
        """The new run, or None when this playbook already has a run for `trigger_key`."""
        statement = self._insert()(PlaybookRun).values(
            workspace_id=self.workspace_id, playbook=playbook, playbook_sha256=sha256,
            trigger_key=trigger_key[:200], platforms=list(platforms), incident_id=incident_id,
            event_id=event_id, state=state.value, detail=detail, chain=list(chain),
            approval_due_at=approval_due_at, started_at=at, updated_at=at, finished_at=None,
        ).on_conflict_do_nothing(
            index_elements=["workspace_id", "playbook", "trigger_key"]).returning(PlaybookRun.id)
        run_id = (await self.session.execute(statement)).scalar()
        if run_id is None:
            return None
        await record_event(self.session, type="playbook.run", workspace_id=self.workspace_id,
                           payload={"run_id": run_id, "playbook": playbook, "state": state.value,
                                    "platforms": list(platforms), "incident_id": incident_id,
                                    "detail": detail}, at=at)
        return await self.session.get_one(PlaybookRun, run_id)

    async def move(self, run: PlaybookRun, new: RunState, *, detail: str, at: datetime) -> bool:
        """Compare-and-set the run's state; False when another process moved it first."""
        values: dict[str, Any] = {"state": new.value, "detail": detail, "updated_at": at}
        if new in FINISHED:
            values["finished_at"] = at
        result = await self.session.execute(
            update(PlaybookRun).where(PlaybookRun.id == run.id, PlaybookRun.state == run.state)
            .values(**values))
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return False
        await record_event(self.session, type="playbook.run", workspace_id=self.workspace_id,
                           payload={"run_id": run.id, "playbook": run.playbook,
                                    "old": run.state, "state": new.value, "detail": detail},
                           at=at)
        # `run` may come from another session: carry the values over, no refresh.
        run.state, run.detail, run.updated_at = new.value, detail, at
        if new in FINISHED:
            run.finished_at = at
        return True

    async def get(self, run_id: int) -> PlaybookRun | None:
        run = await self.session.get(PlaybookRun, run_id)
        return run if run is not None and run.workspace_id == self.workspace_id else None

    async def unfinished(self) -> list[PlaybookRun]:
        query = (select(PlaybookRun).where(
            PlaybookRun.workspace_id == self.workspace_id,
            PlaybookRun.state.not_in([s.value for s in FINISHED])).order_by(PlaybookRun.id))
        return list((await self.session.scalars(query)).all())

    async def active_for(self, *, playbook: str, subject: str) -> PlaybookRun | None:
        """An unfinished run of `playbook` whose trigger key is about `subject`."""
        query = (select(PlaybookRun).where(
            PlaybookRun.workspace_id == self.workspace_id, PlaybookRun.playbook == playbook,
            PlaybookRun.trigger_key.startswith(f"{subject}@", autoescape=True),
            PlaybookRun.state.not_in([s.value for s in FINISHED])).limit(1))
        found: PlaybookRun | None = await self.session.scalar(query)
        return found

    async def started_since(self, *, playbook: str, since: datetime) -> int:
        return int(await self.session.scalar(
            select(func.count()).select_from(PlaybookRun).where(
                PlaybookRun.workspace_id == self.workspace_id, PlaybookRun.playbook == playbook,
                PlaybookRun.started_at >= since)) or 0)

    async def all(self, *, limit: int = 100) -> list[PlaybookRun]:
        query = (select(PlaybookRun).where(PlaybookRun.workspace_id == self.workspace_id)
                 .order_by(PlaybookRun.id.desc()).limit(limit))
        return list((await self.session.scalars(query)).all())

    async def claim(self, run: PlaybookRun, *, phase: str, step: int, kind: str,
                    at: datetime, outcome: ActionOutcome = ActionOutcome.RUNNING,
                    detail: str = "", data: dict[str, Any] | None = None
                    ) -> PlaybookAction | None:
        """Record step `step` of `phase` as begun; None when it was recorded before."""
        statement = self._insert()(PlaybookAction).values(
            run_id=run.id, phase=phase, step=step, kind=kind, outcome=outcome.value,
            detail=detail[:1000], data=data or {}, started_at=at,
            finished_at=None if outcome is ActionOutcome.RUNNING else at,
        ).on_conflict_do_nothing(index_elements=["run_id", "phase", "step"]
                                 ).returning(PlaybookAction.id)
        action_id = (await self.session.execute(statement)).scalar()
        if action_id is None:
            return None
        return await self.session.get_one(PlaybookAction, action_id)

    async def finish(self, action: PlaybookAction, *, outcome: ActionOutcome, detail: str,
                     data: dict[str, Any], at: datetime) -> None:
        """Settle a claimed step and put it on the timeline."""
        await self.session.execute(
            update(PlaybookAction).where(PlaybookAction.id == action.id).values(
                outcome=outcome.value, detail=detail[:1000], data=data, finished_at=at))
        await record_event(self.session, type="playbook.action", workspace_id=self.workspace_id,
                           payload={"run_id": action.run_id, "phase": action.phase,
                                    "step": action.step, "kind": action.kind,
                                    "outcome": outcome.value, "detail": detail[:300]}, at=at)

    async def actions(self, run_id: int) -> list[PlaybookAction]:
        query = (select(PlaybookAction).where(PlaybookAction.run_id == run_id)
                 .order_by(PlaybookAction.started_at, PlaybookAction.id))
        return list((await self.session.scalars(query)).all())

    async def action(self, run_id: int, *, phase: str, step: int) -> PlaybookAction | None:
        found: PlaybookAction | None = await self.session.scalar(select(PlaybookAction).where(
            PlaybookAction.run_id == run_id, PlaybookAction.phase == phase,
            PlaybookAction.step == step))
        return found
