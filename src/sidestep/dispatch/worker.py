"""The dispatch worker: claim due deliveries, publish each once, record what happened.

A pass (`run_once`) tends held deliveries (`failover.tend_held`: release, reroute, fail),
promotes deliveries whose time has come, and claims a batch through the gate
(`admission.claim_admitted`: platform state, breaker, quotas, maximum age). It calls the
adapters for the claimed batch concurrently (at most `concurrency` at once) and *outside*
any database transaction (a platform call can take seconds; no row lock or SQLite write lock
is held across it). Each attempt and its outcome are then written in one transaction that
checks the lease:

    published                  → sent, with the platform's id and URL; breaker closed
    PlatformOutage             → counted on the breaker; held if that opened it, else
                                 retry_wait
    error with a delay         → retry_wait until now + delay (see `backoff`)
    AuthExpired                → held, and the channel flagged needs_reconnect (no breaker);
                                 released when the channel is reconnected
    Rejected                   → failed, with the reason
    Unknown(maybe_sent=True)   → unknown: the post may exist and is never sent again blindly

A crash between the publish and that transaction leaves the delivery `sending` with a lease
that runs out; `reconcile` then asks the platform (when its adapter can find a post by our
idempotency marker) or hands the delivery to a person as `unknown`.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.channels.adapt import adapt
from sidestep.channels.base import Adapter, Published
from sidestep.channels.errors import (
    AuthExpired,
    PlatformOutage,
    PublishError,
    Rejected,
    Unknown,
)
from sidestep.channels.uploads import MediaHost, MediaStore
from sidestep.clock import Clock
from sidestep.dispatch import breaker as breakers
from sidestep.dispatch.admission import Admitted, claim_admitted
from sidestep.dispatch.backoff import next_delay_s
from sidestep.dispatch.failover import tend_held
from sidestep.dispatch.policy import BreakerView
from sidestep.dispatch.quotas import QuotaBook
from sidestep.domain.content import Content, MediaItem
from sidestep.domain.states import ChannelStatus, DeliveryState
from sidestep.store.channels import Channels
from sidestep.store.db import Database
from sidestep.store.events import record_event
from sidestep.store.posts import StaleState, record_attempt, transition_delivery
from sidestep.store.queue import expired_leases, promote_due, unknown_outcomes
from sidestep.store.tables import Channel, Delivery, Post
from sidestep.vault import Credentials, Vault, VaultError

__all__ = ["CANNOT_ASK", "DEFAULT_CONCURRENCY", "reconcile", "run_once", "tend_held"]

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 32
CANNOT_ASK = "the platform cannot be asked whether the post exists; a person must check"
_RELEASE_LEASE: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None}


@dataclass(frozen=True, slots=True)
class _Job:
    """What one send needs, read before the call so no session stays open across it."""

    delivery_id: int
    platform: str
    idempotency_key: str
    attempt: int
    channel_id: int = 0
    workspace_id: int = 0
    breaker: BreakerView | None = None
    breaker_threshold: int = 3
    content: Content | None = None
    credentials: Credentials | None = None
    problem: str | None = None  # set when the job cannot be sent at all
    media: tuple[dict[str, Any], ...] = ()  # the post's stored files, loaded before the call
    variant: dict[str, Any] = field(default_factory=dict)


async def run_once(db: Database, *, vault: Vault, adapters: Mapping[str, Adapter], worker: str,
                   clock: Clock, rng: random.Random, lease_s: float = 120,
                   batch: int = 20, concurrency: int = DEFAULT_CONCURRENCY,
                   quotas: QuotaBook | None = None, tend: bool = True,
                   media_dir: Path | None = None, media_host: MediaHost | None = None) -> int:
    """One pass of the worker. Returns how many deliveries it claimed (and settled).

    `tend` runs `tend_held` first (release, reroute, fail held deliveries); a process that
    runs it on its own schedule or on `platform.state_changed` events may pass False.
    Adapter errors are settled on the delivery; anything else (a bug, the database gone)
    propagates, leaving the delivery `sending` until its lease runs out and `reconcile`
    takes it. `media_dir` is the data directory holding the composer's uploads (a post with
    files fails visibly without it); `media_host` gives files signed public URLs for the
    platforms that fetch media themselves (its data directory serves as `media_dir`).
    """
    if media_host is not None and media_dir is None:
        media_dir = media_host.data_dir
    book = quotas or QuotaBook.default()
    if tend:
        await tend_held(db, clock=clock, book=book)
    now = clock.now()
    async with db.session() as session:
        await promote_due(session, now=now, limit=batch)
    async with db.session() as session:
        admitted = await claim_admitted(session, worker=worker, now=now, lease_s=lease_s,
                                        limit=batch, book=book)
        jobs = [_job_for(session, item, vault=vault, adapters=adapters) for item in admitted]
    gate = asyncio.Semaphore(max(1, concurrency))
    recorder = _Recorder(db, worker=worker, rng=rng)

    async def send(job: _Job) -> None:
        async with gate:
            outcome = await _publish(job, adapters=adapters, clock=clock, media_dir=media_dir,
                                     media_host=media_host)
        await recorder.record(outcome)

    results = await asyncio.gather(*(send(job) for job in jobs), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return len(jobs)


def _job_for(session: AsyncSession, item: Admitted, *, vault: Vault,
             adapters: Mapping[str, Adapter]) -> _Job:
    delivery, channel = item.delivery, item.channel
    job = _Job(delivery_id=delivery.id, platform=channel.platform,
               idempotency_key=delivery.idempotency_key, attempt=delivery.attempt_count,
               channel_id=channel.id, workspace_id=delivery.workspace_id, breaker=item.breaker,
               breaker_threshold=item.breaker_threshold)
    if channel.platform not in adapters:
        return replace(job, problem=f"no adapter for {channel.platform} in this worker")
    try:
        credentials = Channels(session, workspace_id=delivery.workspace_id,
                               vault=vault).credentials(channel)
    except VaultError as exc:
        return replace(job, problem=str(exc))
    variant = (item.post.variants or {}).get(str(channel.id)) or {}
    return replace(job, content=Content(text=item.post.body, link=item.post.link),
                   credentials=credentials,
                   media=tuple(m for m in item.post.media or [] if isinstance(m, dict)),
                   variant=variant if isinstance(variant, dict) else {})


async def _load_job(session: AsyncSession, delivery: Delivery, *, vault: Vault,
                    adapters: Mapping[str, Adapter]) -> _Job:
    post = await session.get_one(Post, delivery.post_id)
    channel = await session.get_one(Channel, delivery.channel_id)
    return _job_for(session, Admitted(delivery, post, channel, None, 0), vault=vault,
                    adapters=adapters)


@dataclass(frozen=True, slots=True)
class _Outcome:
    job: _Job
    started: datetime
    finished: datetime
    published: Published | None
    error: PublishError | None


async def _publish(job: _Job, *, adapters: Mapping[str, Adapter], clock: Clock,
                   media_dir: Path | None = None,
                   media_host: MediaHost | None = None) -> _Outcome:
    """The one publish call (one per thread part), outside any transaction."""
    started = clock.now()
    published: Published | None = None
    error: PublishError | None = None
    if job.problem is None:
        assert job.content is not None and job.credentials is not None
        try:
            published = await _publish_adapted(job, adapters[job.platform], media_dir,
                                               media_host)
        except PublishError as exc:
            error = exc
    return _Outcome(job, started, clock.now(), published, error)


async def _publish_adapted(job: _Job, adapter: Adapter, media_dir: Path | None,
                           media_host: MediaHost | None = None) -> Published:
    """Adapt the post to the platform's limits (as the composer's preview showed) and send it.

    A thread goes out part by part, each replying to the one before; only the first carries
    the delivery's own idempotency key, so a lookup after a crash finds the thread's start.
    A part after the first that fails does not un-send the start: the delivery is sent and
    its `last_error` names what is missing.
    """
    assert job.content is not None and job.credentials is not None
    media = await _load_media(job, media_dir)
    host = None
    if media_host is not None:
        def host(item: MediaItem) -> str:
            return media_host.url_for(job.workspace_id, item)
    content = replace(job.content, media=media)
    if media:  # resizing and re-encoding images is CPU work: off the loop, so sends go on
        adaptation = await asyncio.to_thread(adapt, content, adapter, variant=job.variant,
                                             host_media=host)
    else:
        adaptation = adapt(content, adapter, variant=job.variant)
    if not adaptation.ok:
        raise Rejected("; ".join(problem.message for problem in adaptation.problems))
    first = await adapter.publish(adaptation.parts[0], job.credentials,
                                  idempotency_key=job.idempotency_key)
    previous = first
    for index, part in enumerate(adaptation.parts[1:], start=2):
        try:
            previous = await adapter.publish(
                replace(part, reply_to=previous.external_id), job.credentials,
                idempotency_key=f"{job.idempotency_key}.{index}")
        except PublishError as exc:
            log.warning("delivery %s: thread part %d of %d not published: %s",
                        job.delivery_id, index, len(adaptation.parts), exc)
            return replace(first, note=f"thread incomplete: part {index} of "
                           f"{len(adaptation.parts)} failed ({exc.error_class}: {exc})")
    return first


async def _load_media(job: _Job, media_dir: Path | None) -> tuple[MediaItem, ...]:
    if not job.media:
        return ()
    if media_dir is None:
        raise Rejected("the post has files but this worker was given no media directory")
    store = MediaStore(media_dir, workspace_id=job.workspace_id)
    items = []
    for entry in job.media:
        item = await store.load(entry)
        if item is None:
            raise Rejected(f"the file {entry.get('filename', '?')} is gone from the media store")
        items.append(item)
    return tuple(items)


class _Recorder:
    """Writes finished sends, whatever has finished meanwhile in one transaction.

    Why group: on SQLite, dozens of concurrent one-row transactions contend for the single
    write lock and spend their time in its busy-wait; one writer at a time that takes every
    outcome waiting is as durable (each outcome is committed before `record` returns) and
    far faster. Each delivery's attempt and state still change together, with its lease
    checked, in the transaction that holds them.
    """

    def __init__(self, db: Database, *, worker: str, rng: random.Random) -> None:
        self.db, self.worker, self.rng = db, worker, rng
        self._lock = asyncio.Lock()
        self._waiting: list[tuple[_Outcome, asyncio.Future[None]]] = []

    async def record(self, outcome: _Outcome) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((outcome, done))
        async with self._lock:
            if not done.done():
                group, self._waiting = self._waiting, []
                try:
                    async with self.db.session() as session:
                        for item, _ in group:
                            await _record(session, item, worker=self.worker, rng=self.rng)
                except BaseException as exc:
                    for _, waiter in group:
                        if waiter is not done:
                            waiter.set_exception(exc)
                    raise
                for _, waiter in group:
                    waiter.set_result(None)
        await done


async def _record(session: AsyncSession, outcome: _Outcome, *, worker: str,
                  rng: random.Random) -> None:
    job, published, error, finished = outcome.job, outcome.published, outcome.error, \
        outcome.finished
    # Locked on PostgreSQL (SQLite has one writer anyway) so the lease check below and
    # the compare-and-set see the same row.
    delivery = await session.scalar(
        select(Delivery).where(Delivery.id == job.delivery_id).with_for_update())
    if delivery is None:  # the post was deleted while we sent
        return
    await record_attempt(
        session, delivery_id=delivery.id, started_at=outcome.started, finished_at=finished,
        outcome=_outcome(published, error),
        error_class=error.error_class if error else ("setup" if job.problem else None),
        error_detail=str(error) if error else job.problem)
    if delivery.state != DeliveryState.SENDING or delivery.lease_owner != worker:
        await _lease_lost(session, delivery, published=published, worker=worker, at=finished)
        return
    breaker_open = await _note_on_breaker(session, job, published, error, at=finished)
    if isinstance(error, AuthExpired):
        await _flag_reconnect(session, job, str(error), at=finished)
    new, reason, changes = _decide(published, error, job, rng=rng, at=finished,
                                   breaker_open=breaker_open)
    await transition_delivery(session, delivery, new, at=finished, reason=reason,
                              changes=_RELEASE_LEASE | changes)


async def _note_on_breaker(session: AsyncSession, job: _Job, published: Published | None,
                           error: PublishError | None, *, at: datetime) -> bool:
    """Tell the channel's breaker how the call went; True when it is open now."""
    if isinstance(error, PlatformOutage):
        return await breakers.note_failure(session, job.channel_id, job.workspace_id, at=at,
                                           threshold=job.breaker_threshold, detail=str(error))
    if published is not None or (error is not None and not isinstance(error, AuthExpired)):
        await breakers.note_success(session, job.channel_id, job.workspace_id, at=at,
                                    known=job.breaker)
    return False


async def _flag_reconnect(session: AsyncSession, job: _Job, detail: str, *,
                          at: datetime) -> None:
    """Mark the channel needs_reconnect (once, with an event); opens no breaker."""
    result = await session.execute(
        update(Channel).where(Channel.id == job.channel_id,
                              Channel.status != ChannelStatus.NEEDS_RECONNECT.value)
        .values(status=ChannelStatus.NEEDS_RECONNECT.value))
    if result.rowcount == 1:  # type: ignore[attr-defined]
        await record_event(session, type="channel.needs_reconnect",
                           workspace_id=job.workspace_id,
                           payload={"channel_id": job.channel_id, "reason": detail}, at=at)


def _outcome(published: Published | None, error: PublishError | None) -> str:
    if published is not None:
        return "sent"
    if isinstance(error, Unknown) and error.maybe_sent:
        return "unknown"
    return "error"


def _decide(published: Published | None, error: PublishError | None, job: _Job, *,
            rng: random.Random, at: datetime,
            breaker_open: bool = False) -> tuple[DeliveryState, str, dict[str, Any]]:
    """The delivery's next state, the event's reason and the columns to set."""
    if published is not None:
        return DeliveryState.SENT, published.note or "published", {
            "external_id": published.external_id, "external_url": published.url,
            "last_error": published.note}
    if error is None:
        problem = job.problem or "nothing was sent"
        return DeliveryState.FAILED, problem, {"last_error": problem}
    detail = f"{error.error_class}: {error}"
    if isinstance(error, Unknown) and error.maybe_sent:
        reason = f"{detail}; the post may exist, so it is not sent again blindly"
        return DeliveryState.UNKNOWN, reason, {"last_error": reason}
    if isinstance(error, AuthExpired):
        reason = f"{detail}; held until the channel is reconnected"
        return DeliveryState.HELD, reason, {"last_error": reason, "held_since": at}
    if breaker_open:
        reason = f"{detail}; the channel's breaker is open, so it is held"
        return DeliveryState.HELD, reason, {"last_error": reason, "held_since": at}
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
