"""The delivery queue: the named queries workers use to find, claim and recover work.

The delivery row is the job (no broker, no dual write). Each query says why it is written
the way it is; every state change goes through a compare-and-set on the expected state and
writes an event row in the same transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.domain.states import DeliveryState, check_delivery_transition
from sidestep.store.events import record_event
from sidestep.store.posts import StaleState, transition_delivery
from sidestep.store.tables import Channel, Delivery

__all__ = ["claim", "expired_leases", "promote_due", "unknown_outcomes"]

_PROMOTABLE = (DeliveryState.SCHEDULED.value, DeliveryState.RETRY_WAIT.value)


async def promote_due(session: AsyncSession, *, now: datetime, limit: int) -> int:
    """Move up to `limit` scheduled or retry_wait deliveries whose time has come to `due`.

    Returns how many moved. Why row by row and not one UPDATE: every change must leave an
    event row, and `transition_delivery` writes it with the compare-and-set; a delivery
    another worker promoted first is skipped (its `StaleState` is the expected race).
    Ordered by `next_attempt_at` so the longest-waiting go first; served by
    `ix_delivery_claim (state, next_attempt_at)`.
    """
    query = (
        select(Delivery)
        .where(Delivery.state.in_(_PROMOTABLE), Delivery.next_attempt_at <= now)
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit)
    )
    moved = 0
    for delivery in (await session.scalars(query)).all():
        try:
            await transition_delivery(session, delivery, DeliveryState.DUE, at=now,
                                      reason="its time has come")
        except StaleState:
            continue
        moved += 1
    return moved


async def claim(session: AsyncSession, *, worker: str, now: datetime, lease_s: float,
                limit: int) -> list[Delivery]:
    """Take up to `limit` due deliveries for `worker`: `sending`, leased, attempt counted.

    Returns the claimed rows (ordered by id), each with a `delivery.sending` event. No two
    callers ever get the same delivery:

    - PostgreSQL: `SELECT ... FOR UPDATE SKIP LOCKED` picks rows no other transaction holds
      (others skip them instead of waiting), then the UPDATE in the same transaction moves
      exactly those. Any number of workers on any number of machines share the queue.
    - SQLite: one `UPDATE ... WHERE id IN (SELECT ... LIMIT n) AND state='due' RETURNING`
      (SQLite >= 3.35). SQLite has one writer at a time, so a single statement is atomic;
      a second claimer waits on the write lock and then finds the rows no longer `due`.

    On both, the outer `state = 'due'` is the compare-and-set that makes a claim exclusive
    even if the row changed between the pick and the update.
    """
    check_delivery_transition(DeliveryState.DUE, DeliveryState.SENDING)
    pick = (
        select(Delivery.id)
        .where(Delivery.state == DeliveryState.DUE.value, Delivery.next_attempt_at <= now)
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        ids = list((await session.scalars(pick.with_for_update(skip_locked=True))).all())
        if not ids:
            return []
        chosen = Delivery.id.in_(ids)
    else:
        chosen = Delivery.id.in_(pick.scalar_subquery())
    statement = (
        update(Delivery)
        .where(chosen, Delivery.state == DeliveryState.DUE.value)
        .values(state=DeliveryState.SENDING.value, lease_owner=worker,
                lease_expires_at=now + timedelta(seconds=lease_s),
                attempt_count=Delivery.attempt_count + 1, updated_at=now)
        .returning(Delivery)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    claimed = sorted((await session.scalars(statement)).all(), key=lambda d: d.id)
    for delivery in claimed:
        await record_event(
            session, type=f"delivery.{DeliveryState.SENDING.value}",
            workspace_id=delivery.workspace_id,
            payload={"delivery_id": delivery.id, "post_id": delivery.post_id,
                     "channel_id": delivery.channel_id, "old": DeliveryState.DUE.value,
                     "reason": f"claimed by {worker}"},
            at=now,
        )
    return claimed


async def expired_leases(session: AsyncSession, *, now: datetime, limit: int) -> list[Delivery]:
    """Deliveries still `sending` whose lease ran out: their worker died or hung mid-send.

    Returns up to `limit`, oldest lease first. A plain read, no lock: whoever reconciles
    them moves each by compare-and-set, so two reconcilers cannot both settle one.
    """
    query = (
        select(Delivery)
        .where(Delivery.state == DeliveryState.SENDING.value,
               Delivery.lease_expires_at < now)
        .order_by(Delivery.lease_expires_at, Delivery.id)
        .limit(limit)
    )
    return list((await session.scalars(query)).all())


async def unknown_outcomes(session: AsyncSession, *, platforms: Collection[str],
                           limit: int) -> list[Delivery]:
    """`unknown` deliveries on channels of `platforms` (those whose adapter can find posts).

    Returns up to `limit`, oldest change first. Why the platform filter: an unknown outcome
    on a platform that cannot be asked waits for a person, and re-reading those rows on
    every pass would crowd out the ones a lookup can settle.
    """
    if not platforms:
        return []
    query = (
        select(Delivery)
        .join(Channel, Channel.id == Delivery.channel_id)
        .where(Delivery.state == DeliveryState.UNKNOWN.value,
               Channel.platform.in_(list(platforms)))
        .order_by(Delivery.updated_at, Delivery.id)
        .limit(limit)
    )
    return list((await session.scalars(query)).all())
