"""The dispatch worker: claim due deliveries, publish each once, record what happened.

A pass (`run_once`) promotes deliveries whose time has come, claims a batch with a lease,
and for each calls the adapter *outside* any database transaction (a platform call can take
seconds; no row lock or SQLite write lock is held across it). The attempt and the outcome
are then written in one transaction:

    published                  → sent, with the platform's id and URL
    error with a delay         → retry_wait until now + delay (see `backoff`)
    AuthExpired / Rejected     → failed, with the reason
    Unknown(maybe_sent=True)   → unknown: the post may exist and is never sent again blindly

A crash between the publish and that transaction leaves the delivery `sending` with a lease
that runs out; `reconcile` then asks the platform (when its adapter can find a post by our
idempotency marker) or hands the delivery to a person as `unknown`.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.channels.base import Adapter, Published
from sidestep.channels.errors import PublishError, Unknown
from sidestep.clock import Clock
from sidestep.dispatch.backoff import next_delay_s
from sidestep.domain.content import Content
from sidestep.domain.states import DeliveryState
from sidestep.store.channels import Channels
from sidestep.store.db import Database
from sidestep.store.events import record_event
from sidestep.store.posts import StaleState, record_attempt, transition_delivery
from sidestep.store.queue import claim, expired_leases, promote_due, unknown_outcomes
from sidestep.store.tables import Channel, Delivery, Post
from sidestep.vault import Credentials, Vault, VaultError

__all__ = ["CANNOT_ASK", "reconcile", "run_once"]

log = logging.getLogger(__name__)

CANNOT_ASK = "the platform cannot be asked whether the post exists; a person must check"
_RELEASE_LEASE: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None}


@dataclass(frozen=True, slots=True)
class _Job:
    """What one send needs, read before the call so no session stays open across it."""

    delivery_id: int
    platform: str
    idempotency_key: str
    attempt: int
    content: Content | None = None
    credentials: Credentials | None = None
    problem: str | None = None  # set when the job cannot be sent at all


async def run_once(db: Database, *, vault: Vault, adapters: Mapping[str, Adapter], worker: str,
                   clock: Clock, rng: random.Random, lease_s: float = 120,
                   batch: int = 20) -> int:
    """One pass of the worker. Returns how many deliveries it claimed (and settled).

    Adapter errors are settled on the delivery; anything else (a bug, the database gone)
    propagates, leaving the delivery `sending` until its lease runs out and `reconcile`
    takes it.
    """
    now = clock.now()
    async with db.session() as session:
        await promote_due(session, now=now, limit=batch)
    async with db.session() as session:
        claimed = await claim(session, worker=worker, now=now, lease_s=lease_s, limit=batch)
        jobs = [await _load_job(session, delivery, vault=vault, adapters=adapters)
                for delivery in claimed]
    for job in jobs:
        await _send(db, job, adapters=adapters, worker=worker, clock=clock, rng=rng)
    return len(jobs)


async def _load_job(session: AsyncSession, delivery: Delivery, *, vault: Vault,
                    adapters: Mapping[str, Adapter]) -> _Job:
    post = await session.get_one(Post, delivery.post_id)
    channel = await session.get_one(Channel, delivery.channel_id)
    job = _Job(delivery_id=delivery.id, platform=channel.platform,
               idempotency_key=delivery.idempotency_key, attempt=delivery.attempt_count)
    if channel.platform not in adapters:
        return replace(job, problem=f"no adapter for {channel.platform} in this worker")
    try:
        credentials = Channels(session, workspace_id=delivery.workspace_id,
                               vault=vault).credentials(channel)
    except VaultError as exc:
        return replace(job, problem=str(exc))
    return replace(job, content=Content(text=post.body, link=post.link),
                    credentials=credentials)


async def _send(db: Database, job: _Job, *, adapters: Mapping[str, Adapter], worker: str,
                clock: Clock, rng: random.Random) -> None:
    started = clock.now()
    published: Published | None = None
    error: PublishError | None = None
    if job.problem is None:
        assert job.content is not None and job.credentials is not None
        try:
            published = await adapters[job.platform].publish(
                job.content, job.credentials, idempotency_key=job.idempotency_key)
        except PublishError as exc:
            error = exc
    finished = clock.now()
    async with db.session() as session:
        # Locked on PostgreSQL (SQLite has one writer anyway) so the lease check below and
        # the compare-and-set see the same row.
        delivery = await session.scalar(
            select(Delivery).where(Delivery.id == job.delivery_id).with_for_update())
        if delivery is None:  # the post was deleted while we sent
            return
        await record_attempt(
            session, delivery_id=delivery.id, started_at=started, finished_at=finished,
            outcome=_outcome(published, error),
            error_class=error.error_class if error else ("setup" if job.problem else None),
            error_detail=str(error) if error else job.problem)
        if delivery.state != DeliveryState.SENDING or delivery.lease_owner != worker:
            await _lease_lost(session, delivery, published=published, worker=worker,
                              at=finished)
            return
        new, reason, changes = _decide(published, error, job, rng=rng, at=finished)
        await transition_delivery(session, delivery, new, at=finished, reason=reason,
                                  changes=_RELEASE_LEASE | changes)


def _outcome(published: Published | None, error: PublishError | None) -> str:
    if published is not None:
        return "sent"
    if isinstance(error, Unknown) and error.maybe_sent:
        return "unknown"
    return "error"


def _decide(published: Published | None, error: PublishError | None, job: _Job, *,
            rng: random.Random, at: datetime) -> tuple[DeliveryState, str, dict[str, Any]]:
    """The delivery's next state, the event's reason and the columns to set."""
    if published is not None:
        return DeliveryState.SENT, "published", {
            "external_id": published.external_id, "external_url": published.url,
            "last_error": None}
    if error is None:
        problem = job.problem or "nothing was sent"
        return DeliveryState.FAILED, problem, {"last_error": problem}
    detail = f"{error.error_class}: {error}"
    if isinstance(error, Unknown) and error.maybe_sent:
        reason = f"{detail}; the post may exist, so it is not sent again blindly"
        return DeliveryState.UNKNOWN, reason, {"last_error": reason}
    delay_s = next_delay_s(error, job.attempt, rng=rng)
    if delay_s is None:
        return DeliveryState.FAILED, detail, {"last_error": detail}
    return DeliveryState.RETRY_WAIT, f"{detail}; retry in {delay_s:.0f} s", {
        "last_error": detail, "next_attempt_at": at + timedelta(seconds=delay_s)}


async def _lease_lost(session: AsyncSession, delivery: Delivery, *,
                      published: Published | None, worker: str, at: datetime) -> None:
    """Someone (reconciliation) took the delivery while we sent: say so, never hide it.

    A post we did publish settles an `unknown` delivery as sent; in any other state the
    event carries the platform's id so a person can see a possible duplicate.
    """
    if published is not None and delivery.state == DeliveryState.UNKNOWN:
        await transition_delivery(
            session, delivery, DeliveryState.SENT, at=at, reason="published by a late worker",
            changes={"external_id": published.external_id, "external_url": published.url})
        return
    await record_event(
        session, type="delivery.lease_lost", workspace_id=delivery.workspace_id,
        payload={"delivery_id": delivery.id, "worker": worker, "state": delivery.state,
                 "external_id": published.external_id if published else None}, at=at)


async def reconcile(db: Database, *, adapters: Mapping[str, Adapter], vault: Vault,
                    clock: Clock, limit: int = 50) -> int:
    """Settle deliveries whose outcome is not known. Returns how many changed state.

    Two kinds: `sending` with an expired lease (a worker died mid-send) and `unknown` on a
    platform whose adapter can find a post by our idempotency marker. When the adapter can
    look: found → sent; not found → retry_wait due now (safe: the platform says it has no
    such post). When it cannot: expired leases → unknown, for a person. A lookup that fails
    leaves the delivery as it is, for the next pass.
    """
    now = clock.now()
    findable = [platform for platform, adapter in adapters.items() if adapter.can_find]
    async with db.session() as session:
        stuck = await expired_leases(session, now=now, limit=limit)
        stuck += await unknown_outcomes(session, platforms=findable, limit=limit)
        jobs = [await _load_job(session, delivery, vault=vault, adapters=adapters)
                for delivery in stuck]
        states = {delivery.id: delivery for delivery in stuck}
    settled = 0
    for job in jobs:
        adapter = adapters.get(job.platform)
        found: Published | None = None
        if adapter is not None and adapter.can_find and job.credentials is not None:
            try:
                found = await adapter.find(job.idempotency_key, job.credentials)
            except PublishError as exc:
                log.warning("lookup of delivery %s failed: %s", job.delivery_id, exc)
                continue
            new, reason, changes = _after_lookup(found, states[job.delivery_id], now)
        elif states[job.delivery_id].state == DeliveryState.UNKNOWN:
            continue  # already waiting for a person; nothing more to learn here
        else:
            reason = job.problem or CANNOT_ASK
            new, changes = DeliveryState.UNKNOWN, {"last_error": reason}
        async with db.session() as session:
            try:
                await transition_delivery(session, states[job.delivery_id], new, at=now,
                                          reason=reason, changes=_RELEASE_LEASE | changes)
            except StaleState:
                continue  # another reconciler or a late worker settled it first
        settled += 1
    return settled


def _after_lookup(found: Published | None, delivery: Delivery,
                  now: datetime) -> tuple[DeliveryState, str, dict[str, Any]]:
    if found is not None:
        return DeliveryState.SENT, "found on the platform by its idempotency marker", {
            "external_id": found.external_id, "external_url": found.url, "last_error": None}
    # sending cannot go straight back to due; retry_wait due now is promoted on the next pass.
    new = (DeliveryState.DUE if delivery.state == DeliveryState.UNKNOWN
           else DeliveryState.RETRY_WAIT)
    return new, "the platform has no post with our marker; sending again is safe", {
        "next_attempt_at": now}
