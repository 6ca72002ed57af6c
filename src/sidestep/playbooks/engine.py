"""The playbook engine: from platform states and events to runs, approvals and actions.

`tick()` is the whole job and is safe to call at any time, from any number of processes:

1. Triggers. For each workspace's playbooks, platform and owner triggers are matched against
   `platform_state` (status and `since`) with the injected clock, so "down for at least
   5 minutes" needs no in-memory timer and survives a restart; `deliverable.at_risk` and
   `playbook.manual` events are read from the event table after the engine's cursor (a
   monitor or dispatcher in another process wrote them). Conditions (hours, channels
   affected) are checked, then a run is started: one per trigger occurrence (the unique
   `trigger_key`, e.g. `platform:facebook@incident:7`), and none while an unfinished run
   of the same playbook covers the same subject.
2. Loops. A `playbook.manual` event carries the chain of playbooks that led to it; a
   playbook already in its chain, or started more than `max_runs_per_hour` times, gets a
   `stopped` run with the reason and acts on nothing.
3. Approval. `required`: the run waits (`approve`/`refuse`, or `on_timeout` after `within`).
4. Acting. Steps run in order; each is claimed by its action key (run, phase, step) so none
   runs twice. Database-only steps commit with their record; outside ones are claimed first
   (`outreach.py`). A failed step is recorded and the next one still runs.
5. Recovery. When every affected platform has been `up` for `recover_after`, the `recover`
   steps run and the run is `done`.

`attach(bus)` makes committed `platform.state_changed`, `deliverable.at_risk` and
`playbook.manual` events call `tick()` at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.playbooks.actions import LOCAL_ACTIONS
from sidestep.playbooks.context import ActionFailed, Deps, Result, RunContext
from sidestep.playbooks.model import Action, Playbook, Trigger
from sidestep.playbooks.outreach import REMOTE_ACTIONS
from sidestep.store.events import EventBus, EventNotice
from sidestep.store.playbooks import ActionOutcome, PlaybookRuns, RunState
from sidestep.store.tables import Channel, Delivery, Event, Incident, PlatformState
from sidestep.store.tables_playbooks import PlaybookRun

__all__ = ["PlaybookEngine"]

log = logging.getLogger(__name__)
INTERNET = "internet"
WATCHED = ("platform.state_changed", "deliverable.at_risk", "playbook.manual")


@dataclass(frozen=True, slots=True)
class Match:
    subject: str
    key: str
    platforms: list[str]
    status: str
    since: datetime
    incident_id: int | None = None
    event_id: int | None = None
    chain: tuple[str, ...] = ()


class PlaybookEngine:
    def __init__(self, deps: Deps, playbooks: Mapping[int, Sequence[Playbook]], *,
                 max_runs_per_hour: int = 5) -> None:
        """`playbooks`: each workspace's playbooks by workspace id."""
        self.deps, self.playbooks = deps, {k: list(v) for k, v in playbooks.items()}
        self.max_runs_per_hour = max_runs_per_hour
        self._cursor = 0
        self._lock = asyncio.Lock()

    def attach(self, bus: EventBus) -> None:
        for event_type in WATCHED:
            bus.subscribe(event_type, self.on_event)

    async def on_event(self, notice: EventNotice) -> None:
        await self.tick()

    async def tick(self) -> None:
        """Match triggers, start runs, move every unfinished run on (see the module doc)."""
        async with self._lock:
            events = await self._new_events()
            for workspace_id, playbooks in self.playbooks.items():
                for playbook in playbooks:
                    for match in await self._matches(workspace_id, playbook, events):
                        await self._start(workspace_id, playbook, match)
                await self._advance_all(workspace_id)

    # -- triggers ---------------------------------------------------------------------
    async def _new_events(self) -> list[Event]:
        async with self.deps.db.session() as session:
            rows = list((await session.scalars(
                select(Event).where(Event.id > self._cursor,
                                    Event.type.in_(["deliverable.at_risk", "playbook.manual"]))
                .order_by(Event.id).limit(1000))).all())
            if rows:
                self._cursor = rows[-1].id
        return rows

    async def _matches(self, workspace_id: int, playbook: Playbook,
                       events: list[Event]) -> list[Match]:
        now = self.deps.clock.now()
        found: list[Match] = []
        async with self.deps.db.session() as session:
            states = {r.platform: r for r in (await session.scalars(select(PlatformState)))}
            incidents = {r.platform: r.id for r in (await session.scalars(
                select(Incident).where(Incident.ended_at.is_(None))))}
            for trigger in playbook.trigger:
                if trigger.kind in ("platform", "owner", "local_outage"):
                    found += self._state_matches(trigger, states, incidents, now)
                for event in events:
                    if event.workspace_id != workspace_id:
                        continue
                    if trigger.kind == "manual" and event.type == "playbook.manual" and \
                            event.payload.get("playbook") == playbook.name:
                        found.append(Match(
                            f"manual:{event.id}", f"manual:{event.id}@event",
                            list(event.payload.get("platforms") or []), "manual",
                            event.created_at, event_id=event.id,
                            chain=tuple(event.payload.get("chain") or [])))
                    if trigger.kind == "deliverable_at_risk" and \
                            event.type == "deliverable.at_risk":
                        platforms = await _platforms_of_post(
                            session, event.payload.get("post_id"))
                        found.append(Match(
                            f"deliverable:{event.payload.get('deliverable_id')}",
                            f"deliverable:{event.payload.get('deliverable_id')}@event:{event.id}",
                            platforms, "at_risk", event.created_at, event_id=event.id))
            kept = []
            for match in found:
                if await self._conditions_hold(session, workspace_id, playbook, match, now):
                    kept.append(match)
        return kept

    def _state_matches(self, trigger: Trigger, states: Mapping[str, PlatformState],
                       incidents: Mapping[str, int], now: datetime) -> list[Match]:
        catalogue = self.deps.catalogue
        if trigger.kind == "local_outage":
            state = states.get(INTERNET)
            if state is None or state.status != "local_outage" or \
                    now - state.since < trigger.for_:
                return []
            return [Match(INTERNET, f"{INTERNET}@{state.since.isoformat()}", [INTERNET],
                          "local_outage", state.since)]
        hit = []
        for platform, state in states.items():
            if platform == INTERNET or not _state_fits(trigger, state, now):
                continue
            if trigger.kind == "platform":
                rented = platform in catalogue and catalogue.get(platform).kind != "owned"
                if (trigger.platforms and platform not in trigger.platforms) or (
                        not trigger.platforms and not rented) or (
                        platform in catalogue
                        and catalogue.get(platform).owner in trigger.exclude_owners):
                    continue
            elif platform not in catalogue or catalogue.get(platform).owner != trigger.owner:
                continue
            hit.append(state)
        if not hit:
            return []
        if trigger.kind == "owner":
            first = min(hit, key=lambda s: s.since)
            return [Match(f"owner:{trigger.owner}",
                          f"owner:{trigger.owner}@incident:{incidents.get(first.platform)}",
                          sorted(s.platform for s in hit), first.status, first.since,
                          incidents.get(first.platform))]
        return [Match(f"platform:{s.platform}",
                      f"platform:{s.platform}@incident:{incidents.get(s.platform)}",
                      [s.platform], s.status, s.since, incidents.get(s.platform)) for s in hit]

    async def _conditions_hold(self, session: AsyncSession, workspace_id: int, playbook: Playbook,
                               match: Match, now: datetime) -> bool:
        conditions = playbook.conditions
        if conditions.hours:
            local = now.astimezone(ZoneInfo(conditions.timezone)).time()
            start, end = (time.fromisoformat(part) for part in conditions.hours.split("-"))
            inside = start <= local < end if start <= end else (local >= start or local < end)
            if not inside:
                return False
        if conditions.channels_affected and match.subject != INTERNET \
                and not match.subject.startswith(("deliverable:", "manual:")):
            count = await session.scalar(select(func.count()).select_from(Channel).where(
                Channel.workspace_id == workspace_id, Channel.status == "active",
                Channel.platform.in_(match.platforms)))
            return bool(count)
        return True

    # -- runs -------------------------------------------------------------------------
    async def _start(self, workspace_id: int, playbook: Playbook, match: Match) -> None:
        now = self.deps.clock.now()
        async with self.deps.db.session() as session:
            runs = PlaybookRuns(session, workspace_id=workspace_id)
            if await runs.active_for(playbook=playbook.name, subject=match.subject):
                return
            state, detail = RunState.RUNNING, "started automatically"
            if playbook.name in match.chain:
                state = RunState.STOPPED
                detail = ("loop: this playbook started itself through "
                          f"{' -> '.join([*match.chain, playbook.name])}; stopped before acting")
            elif await runs.started_since(playbook=playbook.name,
                                          since=now - timedelta(hours=1)
                                          ) >= self.max_runs_per_hour:
                state = RunState.STOPPED
                detail = (f"runaway: started {self.max_runs_per_hour} times within an hour; "
                          "stopped before acting (its actions may re-trigger it)")
            elif playbook.approval.mode == "required":
                state, detail = RunState.WAITING_APPROVAL, "waiting for approval"
            run = await runs.start(
                playbook=playbook.name, sha256=playbook.sha256, trigger_key=match.key,
                platforms=match.platforms, incident_id=match.incident_id,
                event_id=match.event_id, chain=match.chain, state=state, detail=detail, at=now,
                approval_due_at=(now + playbook.approval.within
                                 if state is RunState.WAITING_APPROVAL else None))
            if run is not None and state is RunState.WAITING_APPROVAL:
                await runs.claim(run, phase="approval", step=0, kind="approval", at=now,
                                 outcome=ActionOutcome.WAITING,
                                 detail=f"approval needed by {run.approval_due_at:%H:%M UTC}")
            if run is not None:
                log.info("playbook %s: run %d %s (%s)", playbook.name, run.id, state, detail)

    async def decide(self, workspace_id: int, run_id: int, *, approve: bool, by: str) -> bool:
        """A person approves or refuses a waiting run; False when it was not waiting."""
        now = self.deps.clock.now()
        async with self.deps.db.session() as session:
            runs = PlaybookRuns(session, workspace_id=workspace_id)
            run = await runs.get(run_id)
            if run is None or run.state != RunState.WAITING_APPROVAL:
                return False
            new = RunState.RUNNING if approve else RunState.ABORTED
            if not await runs.move(run, new, detail=f"{'approved' if approve else 'refused'} "
                                   f"by {by}", at=now):
                return False
            await self._settle_approval(runs, run, approve, f"by {by}", now)
        await self.tick()
        return True

    async def _settle_approval(self, runs: PlaybookRuns, run: PlaybookRun, approve: bool,
                               why: str, now: datetime) -> None:
        row = await runs.action(run.id, phase="approval", step=0)
        if row is not None:
            await runs.finish(row, outcome=ActionOutcome.APPROVED if approve
                              else ActionOutcome.REFUSED, detail=why, data={}, at=now)

    async def _advance_all(self, workspace_id: int) -> None:
        async with self.deps.db.session() as session:
            runs = await PlaybookRuns(session, workspace_id=workspace_id).unfinished()
        by_name = {p.name: p for p in self.playbooks.get(workspace_id, [])}
        for run in runs:
            playbook = by_name.get(run.playbook)
            if playbook is not None:
                await self._advance(workspace_id, playbook, run)

    async def _advance(self, workspace_id: int, playbook: Playbook, run: PlaybookRun) -> None:
        now = self.deps.clock.now()
        if run.state == RunState.WAITING_APPROVAL:
            if run.approval_due_at is None or now < run.approval_due_at:
                return
            go = playbook.approval.on_timeout == "go"
            async with self.deps.db.session() as session:
                runs = PlaybookRuns(session, workspace_id=workspace_id)
                verdict = "went ahead" if go else "aborted"
                if not await runs.move(run, RunState.RUNNING if go else RunState.ABORTED,
                                       detail=f"no decision in time: {verdict}", at=now):
                    return
                await self._settle_approval(runs, run, go, "no decision in time", now)
        if run.state == RunState.RUNNING:
            await self._steps(workspace_id, playbook, run, "act", playbook.action)
            failed = await self._failed_steps(workspace_id, run.id, "act")
            await self._move(workspace_id, run, RunState.ACTIVE,
                             "acted" + (f"; {failed} steps failed" if failed else ""))
        if run.state == RunState.ACTIVE and await self._recovered(run, playbook, now):
            await self._move(workspace_id, run, RunState.RECOVERING, "the platforms are back")
        if run.state == RunState.RECOVERING:
            await self._steps(workspace_id, playbook, run, "recover", playbook.recover)
            failed = await self._failed_steps(workspace_id, run.id, "recover")
            await self._move(workspace_id, run, RunState.DONE,
                             "recovered" + (f"; {failed} steps failed" if failed else ""))

    async def _move(self, workspace_id: int, run: PlaybookRun, new: RunState,
                    detail: str) -> None:
        async with self.deps.db.session() as session:
            current = await session.get_one(PlaybookRun, run.id)
            await PlaybookRuns(session, workspace_id=workspace_id).move(
                current, new, detail=detail, at=self.deps.clock.now())
        run.state = current.state

    async def _failed_steps(self, workspace_id: int, run_id: int, phase: str) -> int:
        async with self.deps.db.session() as session:
            rows = await PlaybookRuns(session, workspace_id=workspace_id).actions(run_id)
        return sum(r.phase == phase and r.outcome == ActionOutcome.FAILED for r in rows)

    async def _recovered(self, run: PlaybookRun, playbook: Playbook, now: datetime) -> bool:
        platforms = [p for p in run.platforms if p]
        if not platforms:
            return False
        async with self.deps.db.session() as session:
            states = {r.platform: r for r in (await session.scalars(
                select(PlatformState).where(PlatformState.platform.in_(platforms))))}
        return all(p in states and states[p].status == "up"
                   and now - states[p].since >= playbook.recover_after for p in platforms)

    async def _steps(self, workspace_id: int, playbook: Playbook, run: PlaybookRun,
                     phase: str, steps: Sequence[Action]) -> None:
        for index, action in enumerate(steps):
            await self._step(workspace_id, playbook, run, phase, index, action)

    async def _step(self, workspace_id: int, playbook: Playbook, run: PlaybookRun,
                    phase: str, index: int, action: Action) -> None:
        ctx = RunContext(deps=self.deps, workspace_id=workspace_id, run_id=run.id,
                         playbook=playbook, platforms=list(run.platforms),
                         status=_status_word(run), since=run.started_at,
                         chain=list(run.chain))
        now = self.deps.clock.now()
        local = LOCAL_ACTIONS.get(action.do)
        if local is not None:
            try:
                async with self.deps.db.session() as session:
                    runs = PlaybookRuns(session, workspace_id=workspace_id)
                    row = await runs.claim(run, phase=phase, step=index, kind=action.do, at=now)
                    if row is None:
                        return
                    result = await local(session, ctx, action)
                    await runs.finish(row, outcome=ActionOutcome(result.outcome),
                                      detail=result.detail, data=result.data, at=now)
            except ActionFailed as exc:  # the effect rolled back; record the failure alone
                await self._record_failure(workspace_id, run, phase, index, action, str(exc))
            return
        async with self.deps.db.session() as session:
            row = await PlaybookRuns(session, workspace_id=workspace_id).claim(
                run, phase=phase, step=index, kind=action.do, at=now)
        if row is None:
            return
        try:
            result = await REMOTE_ACTIONS[action.do](ctx, action)
        except ActionFailed as exc:
            result = Result("failed", str(exc))
        except Exception as exc:  # noqa: BLE001 - recorded, never left `running` silently
            log.exception("playbook %s: step %s[%d] failed", playbook.name, phase, index)
            result = Result("failed", f"{type(exc).__name__}: {exc}"[:500])
        async with self.deps.db.session() as session:
            await PlaybookRuns(session, workspace_id=workspace_id).finish(
                row, outcome=ActionOutcome(result.outcome), detail=result.detail,
                data=result.data, at=self.deps.clock.now())

    async def _record_failure(self, workspace_id: int, run: PlaybookRun, phase: str,
                              index: int, action: Action, why: str) -> None:
        now = self.deps.clock.now()
        async with self.deps.db.session() as session:
            runs = PlaybookRuns(session, workspace_id=workspace_id)
            row = await runs.claim(run, phase=phase, step=index, kind=action.do, at=now)
            if row is not None:
                await runs.finish(row, outcome=ActionOutcome.FAILED, detail=why, data={}, at=now)


def _state_fits(trigger: Trigger, state: PlatformState, now: datetime) -> bool:
    if state.status not in trigger.status or now - state.since < trigger.for_:
        return False
    if state.status == "degraded" and trigger.features:
        return bool(set(trigger.features) & set(state.features))
    return True


def _status_word(run: PlaybookRun) -> str:
    key = run.trigger_key
    if key.startswith("manual"):
        return "manual"
    if key.startswith("deliverable:"):
        return "at_risk"
    if key.startswith(INTERNET):
        return "local_outage"
    return "down"


async def _platforms_of_post(session: AsyncSession, post_id: object) -> list[str]:
    if not isinstance(post_id, int):
        return []
    rows = await session.scalars(select(Channel.platform).join(
        Delivery, Delivery.channel_id == Channel.id).where(
        Delivery.post_id == post_id, Delivery.origin_delivery_id.is_(None),
        Delivery.state.in_(["held", "rerouted"])))
    return sorted(set(rows.all()))

