"""Held deliveries: release them, reroute them, or fail them; catch-ups; deliverables at risk.

`tend_held` is one pass, run by every worker pass and whenever a `platform.state_changed`
event arrives (`on_platform_event`). Per held, unpaused delivery:

    older than its maximum age                  → failed, with the reason
    gate says send                              → due again ("released")
    gate says probe (breaker cool-down over)    → the oldest one of the channel → due; the
                                                  claim then makes it the breaker's probe
    gate says hold                              → the post's policy (`failover_step`):
                                                  reroute to fallback channels, fail past
                                                  the maximum delay, or keep waiting

Then rerouted deliveries whose post asked for a catch-up go out on their own platform once
it can take them again, unless stale (past the maximum age); and each deliverable whose
post is held or rerouted within `at_risk_margin_s` of its deadline raises
`deliverable.at_risk` once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.clock import Clock
from sidestep.dispatch.admission import Context, load_context, reroute, settle
from sidestep.dispatch.policy import (
    DispatchSettings,
    FailoverStep,
    Verdict,
    failover_step,
    too_old,
)
from sidestep.dispatch.quotas import QuotaBook, prune_slots
from sidestep.domain.states import DeliverableStatus, DeliveryState
from sidestep.store.db import Database
from sidestep.store.events import EventNotice, record_event
from sidestep.store.queue import not_paused, take_write_lock
from sidestep.store.tables import Delivery, Post, Workspace
from sidestep.store.tables_dispatch import Deliverable

__all__ = ["on_platform_event", "tend_held"]

log = logging.getLogger(__name__)


async def tend_held(db: Database, *, clock: Clock, limit: int = 200,
                    book: QuotaBook | None = None) -> int:
    """One pass over held and rerouted deliveries and deliverables. Returns how many
    deliveries changed state (released, rerouted, failed, caught up)."""
    now = clock.now()
    async with db.session() as session:
        await take_write_lock(session)
        changed = await _tend_held(session, now=now, limit=limit)
        changed += await _catch_up(session, now=now, limit=limit)
        await _flag_deliverables(session, now=now)
        await prune_slots(session, book=book or QuotaBook.default(), now=now)
    return changed


async def on_platform_event(db: Database, clock: Clock, notice: EventNotice) -> None:
    """Subscriber for `platform.state_changed`: release what the platform can take again."""
    if notice.payload.get("new") in ("up", "degraded"):
        released = await tend_held(db, clock=clock)
        log.info("platform %s is %s: %d held deliveries moved", notice.payload.get("platform"),
                 notice.payload.get("new"), released)


async def _tend_held(session: AsyncSession, *, now: datetime, limit: int) -> int:
    query = (select(Delivery).where(Delivery.state == DeliveryState.HELD.value, not_paused())
             .order_by(Delivery.held_since, Delivery.id).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Delivery)
    held = list((await session.scalars(query)).all())
    contexts = await load_context(session, held)
    probed: set[int] = set()
    changed = 0
    for delivery in held:
        ctx = contexts[delivery.id]
        changed += await _tend_one(session, ctx, now=now, probed=probed)
    return changed


async def _tend_one(session: AsyncSession, ctx: Context, *, now: datetime,
                    probed: set[int]) -> int:
    delivery = ctx.delivery
    if reason := too_old(due_at=delivery.due_at, now=now, post=ctx.timing,
                         settings=ctx.settings):
        return int(await settle(session, delivery, DeliveryState.FAILED, now, reason,
                                 {"last_error": reason}))
    verdict = ctx.verdict(now)
    if verdict.verdict is Verdict.SEND or (
            verdict.verdict is Verdict.PROBE and ctx.channel.id not in probed):
        probed.add(ctx.channel.id)
        why = ("released: the platform can take it again" if verdict.verdict is Verdict.SEND
               else "released as the breaker's probe")
        return int(await settle(session, delivery, DeliveryState.DUE, now, why,
                                 {"next_attempt_at": now, "held_since": None}))
    if verdict.verdict is Verdict.PROBE:
        return 0
    step, why = failover_step(held_since=delivery.held_since or delivery.due_at, now=now,
                              post=ctx.timing, is_fallback=delivery.origin_delivery_id is not None,
                              settings=ctx.settings)
    if step is FailoverStep.REROUTE:
        await reroute(session, ctx, now=now, reason=why)
        return 1
    if step is FailoverStep.FAIL:
        return int(await settle(session, delivery, DeliveryState.FAILED, now, why,
                                 {"last_error": why}))
    return 0


async def _catch_up(session: AsyncSession, *, now: datetime, limit: int) -> int:
    """Rerouted originals of catch-up posts go out on their own platform once it is back."""
    query = (select(Delivery).join(Post, Post.id == Delivery.post_id)
             .where(Delivery.state == DeliveryState.REROUTED.value,
                    Delivery.origin_delivery_id.is_(None), Post.catch_up.is_(True), not_paused())
             .order_by(Delivery.due_at, Delivery.id).limit(limit))
    rerouted = list((await session.scalars(query)).all())
    contexts = await load_context(session, rerouted)
    changed = 0
    for delivery in rerouted:
        ctx = contexts[delivery.id]
        if too_old(due_at=delivery.due_at, now=now, post=ctx.timing, settings=ctx.settings):
            continue  # stale: it stays rerouted
        if ctx.verdict(now).verdict is not Verdict.SEND:
            continue
        changed += int(await settle(
            session, delivery, DeliveryState.DUE, now,
            "catch-up: its platform is back and the post asked to go out there too",
            {"next_attempt_at": now, "held_since": None, "last_error": None}))
    return changed


async def _flag_deliverables(session: AsyncSession, *, now: datetime) -> None:
    """Raise `deliverable.at_risk` once per pending deliverable whose post is held or
    rerouted near (within the workspace's margin) or past its deadline."""
    margin_cap = timedelta(days=7)  # no workspace margin is wider; bounds the scan
    rows = (await session.execute(
        select(Deliverable, Workspace.settings)
        .join(Workspace, Workspace.id == Deliverable.workspace_id)
        .where(Deliverable.status == DeliverableStatus.PENDING.value,
               Deliverable.post_id.is_not(None), Deliverable.due_at <= now + margin_cap)
    )).all()
    for deliverable, settings in rows:
        margin = timedelta(seconds=DispatchSettings.from_workspace(settings).at_risk_margin_s)
        if deliverable.due_at - margin > now:
            continue
        troubled = (await session.scalars(select(Delivery.state).where(
            Delivery.post_id == deliverable.post_id,
            Delivery.origin_delivery_id.is_(None),
            Delivery.state.in_([DeliveryState.HELD.value, DeliveryState.REROUTED.value])))).all()
        if not troubled:
            continue
        result = await session.execute(
            update(Deliverable).where(Deliverable.id == deliverable.id,
                                      Deliverable.status == DeliverableStatus.PENDING.value)
            .values(status=DeliverableStatus.AT_RISK.value))
        if result.rowcount != 1:  # type: ignore[attr-defined]
            continue
        await record_event(
            session, type="deliverable.at_risk", workspace_id=deliverable.workspace_id,
            payload={"deliverable_id": deliverable.id, "post_id": deliverable.post_id,
                     "partner_name": deliverable.partner_name, "title": deliverable.title,
                     "due_at": deliverable.due_at.isoformat(),
                     "states": sorted(set(troubled)),
                     "reason": ("its deadline has passed" if deliverable.due_at <= now
                                else "its deadline is near")},
            at=now)
