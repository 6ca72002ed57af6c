"""The delivery queue: the named queries workers use to find, claim and recover work.

The delivery row is the job (no broker, no dual write). Each query says why it is written
the way it is; every state change goes through a compare-and-set on the expected state and
writes an event row in the same transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, exists, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.domain.states import ChannelStatus, DeliveryState, check_delivery_transition
from sidestep.store.events import record_event
from sidestep.store.posts import StaleState, transition_delivery
from sidestep.store.tables import Channel, Delivery
from sidestep.store.tables_dispatch import DispatchPause

__all__ = ["claim", "claim_ids", "expired_leases", "not_paused", "pick_due", "promote_due",
           "take_write_lock", "unknown_outcomes"]


def not_paused() -> ColumnElement[bool]:
    """True for deliveries whose workspace and channel are not paused (see dispatch.pause)."""
    return ~exists().where(
        DispatchPause.workspace_id == Delivery.workspace_id,
        or_(DispatchPause.channel_id.is_(None), DispatchPause.channel_id == Delivery.channel_id),
    )


async def take_write_lock(session: AsyncSession) -> None:
    """On SQLite, start the transaction as a writer before it reads.

    Why: pysqlite begins a transaction only at the first write, so reads before it see no
    common snapshot. A write that matches nothing takes SQLite's single write lock at once,
    making read-decide-write sequences (gating, quota counting) exclusive across processes.
    PostgreSQL needs nothing: those paths lock their rows.
    """
    if session.get_bind().dialect.name == "sqlite":
        await session.execute(text("UPDATE quota_lock SET key = key WHERE 1 = 0"))

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


async def pick_due(session: AsyncSession, *, now: datetime, limit: int) -> list[Delivery]:
    """Up to `limit` due deliveries that no pause and no paused channel stops, oldest first.

    On PostgreSQL the rows are locked `FOR UPDATE OF delivery SKIP LOCKED`: other workers
    skip them (instead of waiting), and the channel rows the filter reads are not locked, so
    two workers can take deliveries of one channel at once. On SQLite call
    `take_write_lock` first: the caller's later writes then act on exactly what it read.
    """
    query = (
        select(Delivery)
        .join(Channel, Channel.id == Delivery.channel_id)
        .where(Delivery.state == DeliveryState.DUE.value, Delivery.next_attempt_at <= now,
               Channel.status != ChannelStatus.PAUSED.value, not_paused())
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Delivery)
    return list((await session.scalars(query)).all())


async def claim_ids(session: AsyncSession, ids: Collection[int], *, worker: str, now: datetime,
                    lease_s: float) -> list[Delivery]:
    """Move the deliveries `ids` from due to `sending` for `worker`, leased, attempt counted.

    Returns the rows it moved (ordered by id), each with a `delivery.sending` event. The
    `state = 'due'` condition is the compare-and-set: a row that changed since it was picked
    is left alone.
    """
    check_delivery_transition(DeliveryState.DUE, DeliveryState.SENDING)
    if not ids:
        return []
    statement = (
        update(Delivery)
        .where(Delivery.id.in_(list(ids)), Delivery.state == DeliveryState.DUE.value)
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


async def claim(session: AsyncSession, *, worker: str, now: datetime, lease_s: float,
                limit: int) -> list[Delivery]:
    """Take up to `limit` due, unpaused deliveries for `worker`, without any gate.

    Returns the claimed rows (ordered by id). No two callers ever get the same delivery:
    PostgreSQL picks with `FOR UPDATE SKIP LOCKED`, SQLite takes its single write lock
    before picking (`take_write_lock`), and the update's `state = 'due'` is the
    compare-and-set on both. The worker uses `pick_due` and `claim_ids` with its gate
    between them (see `sidestep.dispatch.admission`).
    """
    await take_write_lock(session)
    picked = await pick_due(session, now=now, limit=limit)
    return await claim_ids(session, [d.id for d in picked], worker=worker, now=now,
                           lease_s=lease_s)


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
