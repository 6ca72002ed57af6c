"""The gate before every send: claim only what may go out now, settle the rest.

`claim_admitted` runs in one transaction: it picks due deliveries (unpaused), reads what the
gate needs in a few IN-queries, and for each picked delivery

    older than its maximum age              → failed, with the reason
    channel needs reconnecting              → held (released once it is reconnected)
    gate says hold                          → held (or rerouted at once under mirror_now)
    gate says probe, and wins the breaker   → sent as the breaker's one probe
    quota has no token                      → retry_wait until one frees (never failed)
    otherwise                               → sending, leased to this worker

so a platform that is down receives no attempt at all: its deliveries never reach `sending`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.dispatch import breaker as breakers
from sidestep.dispatch.policy import (
    BreakerView,
    DispatchSettings,
    FailoverStep,
    GateVerdict,
    MonitorView,
    PostTiming,
    Verdict,
    failover_step,
    gate,
    too_old,
)
from sidestep.dispatch.quotas import Candidate, QuotaBook, admit
from sidestep.domain.states import (
    BreakerState,
    ChannelStatus,
    DeliveryState,
    FallbackPolicy,
    PlatformStatus,
)
from sidestep.store.posts import StaleState, create_fallbacks, transition_delivery
from sidestep.store.queue import claim_ids, pick_due, take_write_lock
from sidestep.store.tables import Channel, Delivery, PlatformState, Post, Workspace

__all__ = ["Admitted", "Context", "claim_admitted", "hold", "load_context", "reroute", "settle"]


@dataclass(frozen=True, slots=True)
class Context:
    """What the gate and the failover policy need to know about one delivery."""

    delivery: Delivery
    post: Post
    channel: Channel
    settings: DispatchSettings
    monitor: MonitorView | None
    breaker: BreakerView | None

    @property
    def platform(self) -> str:
        return self.channel.platform

    @property
    def timing(self) -> PostTiming:
        return PostTiming(
            policy=FallbackPolicy(self.post.fallback_policy),
            has_fallbacks=bool(self.post.fallback_channel_ids),
            hold_max_s=self.post.hold_max_s, reroute_grace_s=self.post.reroute_grace_s,
            max_age_s=self.post.max_age_s)

    def verdict(self, now: datetime) -> GateVerdict:
        if self.channel.status == ChannelStatus.NEEDS_RECONNECT.value:
            return GateVerdict(Verdict.HOLD, "the channel needs reconnecting")
        return gate(platform=self.platform, monitor=self.monitor, breaker=self.breaker,
                    has_media=bool(self.post.media), now=now, settings=self.settings)


@dataclass(frozen=True, slots=True)
class Admitted:
    delivery: Delivery
    post: Post
    channel: Channel
    breaker: BreakerView | None
    breaker_threshold: int


async def load_context(session: AsyncSession,
                       deliveries: Sequence[Delivery]) -> dict[int, Context]:
    """The context of each delivery, keyed by its id, in five queries whatever their number."""
    if not deliveries:
        return {}
    posts = {p.id: p for p in (await session.scalars(select(Post).where(
        Post.id.in_({d.post_id for d in deliveries})))).all()}
    channels = {c.id: c for c in (await session.scalars(select(Channel).where(
        Channel.id.in_({d.channel_id for d in deliveries})))).all()}
    settings = {ws_id: DispatchSettings.from_workspace(raw) for ws_id, raw in (
        await session.execute(select(Workspace.id, Workspace.settings).where(
            Workspace.id.in_({d.workspace_id for d in deliveries})))).all()}
    monitor = {row.platform: MonitorView(PlatformStatus(row.status), list(row.features),
                                         row.updated_at)
               for row in (await session.scalars(select(PlatformState).where(
                   PlatformState.platform.in_({c.platform for c in channels.values()})))).all()}
    breaker = await breakers.breakers(session, channels.keys())
    return {d.id: Context(d, posts[d.post_id], channels[d.channel_id],
                          settings[d.workspace_id], monitor.get(channels[d.channel_id].platform),
                          breaker.get(d.channel_id))
            for d in deliveries}


async def claim_admitted(session: AsyncSession, *, worker: str, now: datetime, lease_s: float,
                         limit: int, book: QuotaBook) -> list[Admitted]:
    """Claim up to `limit` due deliveries that pass the gate and their quotas; settle the rest.

    Returns the claimed deliveries with what the send needs. Runs in the caller's
    transaction; see the module docstring for what happens to those not claimed.
    """
    await take_write_lock(session)
    picked = await pick_due(session, now=now, limit=limit)
    contexts = await load_context(session, picked)
    passing: list[Context] = []
    for delivery in picked:
        ctx = contexts[delivery.id]
        if reason := too_old(due_at=delivery.due_at, now=now, post=ctx.timing,
                             settings=ctx.settings):
            await settle(session, delivery, DeliveryState.FAILED, now, reason,
                          {"last_error": reason})
            continue
        verdict = ctx.verdict(now)
        if verdict.verdict is Verdict.PROBE and ctx.breaker is not None:
            won = await breakers.start_probe(session, ctx.channel.id, delivery.workspace_id,
                                             ctx.breaker, at=now)
            # Later deliveries of this channel in the batch see the breaker half-open.
            contexts.update({d: _with_probe(c, now) for d, c in contexts.items()
                             if c.channel.id == ctx.channel.id and d != delivery.id})
            if not won:
                verdict = GateVerdict(Verdict.HOLD, "another worker is probing")
        if verdict.verdict is Verdict.HOLD:
            await hold(session, ctx, now=now, reason=verdict.reason)
            continue
        passing.append(ctx)
    ids, postponed = await admit(
        session, [Candidate(c.delivery.id, c.channel.id, c.platform) for c in passing],
        book=book, now=now)
    for ctx in passing:
        if (free_at := postponed.get(ctx.delivery.id)) is not None:
            await settle(session, ctx.delivery, DeliveryState.RETRY_WAIT, now,
                          f"quota: no token left; waits until {free_at.isoformat()}",
                          {"next_attempt_at": free_at})
    claimed = await claim_ids(session, ids, worker=worker, now=now, lease_s=lease_s)
    return [Admitted(d, contexts[d.id].post, contexts[d.id].channel, contexts[d.id].breaker,
                     contexts[d.id].settings.breaker_threshold) for d in claimed]


def _with_probe(ctx: Context, now: datetime) -> Context:
    return Context(ctx.delivery, ctx.post, ctx.channel, ctx.settings, ctx.monitor,
                   BreakerView(BreakerState.HALF_OPEN, now, now))


async def hold(session: AsyncSession, ctx: Context, *, now: datetime, reason: str) -> None:
    """Hold a due delivery; under mirror_now (with fallbacks) reroute it at once instead."""
    step, why = failover_step(held_since=now, now=now, post=ctx.timing,
                              is_fallback=ctx.delivery.origin_delivery_id is not None,
                              settings=ctx.settings)
    if step is FailoverStep.REROUTE:
        await reroute(session, ctx, now=now, reason=f"{reason}; {why}")
        return
    await settle(session, ctx.delivery, DeliveryState.HELD, now, reason,
                  {"held_since": now, "last_error": reason})


async def reroute(session: AsyncSession, ctx: Context, *, now: datetime, reason: str) -> None:
    """Mark the delivery rerouted and create its fallback deliveries, in this transaction."""
    if not await settle(session, ctx.delivery, DeliveryState.REROUTED, now, reason,
                         {"last_error": reason}):
        return
    await create_fallbacks(session, ctx.delivery, [int(c) for c in ctx.post.fallback_channel_ids],
                           at=now, reason=f"fallback for delivery {ctx.delivery.id}: {reason}")


async def settle(session: AsyncSession, delivery: Delivery, new: DeliveryState, now: datetime,
                 reason: str, changes: dict[str, Any]) -> bool:
    """Move the delivery by compare-and-set; False when someone else moved it first."""
    try:
        await transition_delivery(session, delivery, new, at=now, reason=reason, changes=changes)
    except StaleState:
        return False
    return True
