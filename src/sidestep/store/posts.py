"""Posts and their deliveries. A delivery's state changes only by compare-and-set."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from sidestep.domain.states import DeliveryState, FallbackPolicy, check_delivery_transition
from sidestep.store.events import record_event
from sidestep.store.tables import Channel, Delivery, DeliveryAttempt, Post, Workspace

ERROR_DETAIL_CAP = 1000


class PostError(ValueError):
    """A post that cannot be created as asked, with the reason for a person."""


class StaleState(RuntimeError):
    """A compare-and-set found the delivery in another state than expected (someone moved it)."""


@dataclass(frozen=True, slots=True)
class NewPost:
    body: str
    due_at: datetime
    channel_ids: Sequence[int]
    link: str | None = None
    media: list[dict[str, Any]] = field(default_factory=list)
    variants: dict[str, Any] = field(default_factory=dict)
    # None: the workspace's default (workspace.settings["dispatch"]["fallback_policy"], else
    # hold). The timing fields left None take the workspace's defaults when dispatched.
    fallback_policy: FallbackPolicy | None = None
    fallback_channel_ids: Sequence[int] = ()
    hold_max_s: int | None = None
    reroute_grace_s: int | None = None
    max_age_s: int | None = None
    catch_up: bool = False


def new_idempotency_key(post_id: int, channel_id: int) -> str:
    """Our marker for one post on one channel; platforms that can be asked find it later."""
    return f"sst-{post_id}-{channel_id}-{secrets.token_hex(6)}"


def cap(text: str | None, limit: int = ERROR_DETAIL_CAP) -> str | None:
    """Cut stored error text to `limit` characters: platform bodies can be megabytes."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


class Posts:
    """Every query is scoped to one workspace."""

    def __init__(self, session: AsyncSession, *, workspace_id: int) -> None:
        self.session = session
        self.workspace_id = workspace_id

    async def create(self, new: NewPost, *, created_by: int | None, at: datetime) -> Post:
        """Create a post and one `scheduled` delivery per target channel."""
        if not new.body.strip() and not new.media:
            raise PostError("a post needs text or media")
        if not new.channel_ids:
            raise PostError("a post needs at least one channel")
        if len(set(new.channel_ids)) != len(new.channel_ids):
            raise PostError("a channel is named twice")
        wanted = set(new.channel_ids) | set(new.fallback_channel_ids)
        found = set(
            (await self.session.scalars(
                select(Channel.id).where(Channel.id.in_(wanted),
                                         Channel.workspace_id == self.workspace_id)
            )).all()
        )
        if missing := sorted(wanted - found):
            raise PostError(f"no such channel in this workspace: {', '.join(map(str, missing))}")
        if len(set(new.fallback_channel_ids)) != len(new.fallback_channel_ids):
            raise PostError("a fallback channel is named twice")
        for name in ("hold_max_s", "reroute_grace_s", "max_age_s"):
            value = getattr(new, name)
            if value is not None and value <= 0:
                raise PostError(f"{name} must be a positive number of seconds")
        policy = new.fallback_policy or await self._default_policy()
        post = Post(
            workspace_id=self.workspace_id, body=new.body, link=new.link, media=new.media,
            variants=new.variants, due_at=new.due_at, fallback_policy=policy.value,
            fallback_channel_ids=list(new.fallback_channel_ids), hold_max_s=new.hold_max_s,
            reroute_grace_s=new.reroute_grace_s, max_age_s=new.max_age_s,
            catch_up=new.catch_up, created_by=created_by, created_at=at,
        )
        self.session.add(post)
        await self.session.flush()
        for channel_id in new.channel_ids:
            self.session.add(
                Delivery(
                    workspace_id=self.workspace_id, post_id=post.id, channel_id=channel_id,
                    state=DeliveryState.SCHEDULED.value, due_at=new.due_at,
                    next_attempt_at=new.due_at, attempt_count=0,
                    idempotency_key=new_idempotency_key(post.id, channel_id),
                    updated_at=at,
                )
            )
        await self.session.flush()
        await record_event(
            self.session, type="post.created", workspace_id=self.workspace_id,
            payload={"post_id": post.id, "channel_ids": list(new.channel_ids)}, at=at,
        )
        return post

    async def _default_policy(self) -> FallbackPolicy:
        settings = await self.session.scalar(
            select(Workspace.settings).where(Workspace.id == self.workspace_id)) or {}
        chosen = (settings.get("dispatch") or {}).get("fallback_policy")
        return FallbackPolicy(chosen) if chosen in set(FallbackPolicy) else FallbackPolicy.HOLD

    async def get(self, post_id: int) -> Post | None:
        return await self.session.scalar(
            select(Post).where(Post.id == post_id, Post.workspace_id == self.workspace_id)
        )

    async def recent(self, *, limit: int = 100, offset: int = 0) -> list[Post]:
        query = (
            select(Post).where(Post.workspace_id == self.workspace_id)
            .order_by(Post.due_at.desc(), Post.id.desc()).limit(limit).offset(offset)
        )
        return list((await self.session.scalars(query)).all())

    async def deliveries(self, post_id: int) -> list[Delivery]:
        query = select(Delivery).where(
            Delivery.post_id == post_id, Delivery.workspace_id == self.workspace_id
        ).order_by(Delivery.id)
        return list((await self.session.scalars(query)).all())

    async def deliveries_for(self, post_ids: Sequence[int]) -> dict[int, list[Delivery]]:
        """Deliveries of several posts in one query, keyed by post id."""
        found: dict[int, list[Delivery]] = {post_id: [] for post_id in post_ids}
        if not post_ids:
            return found
        query = select(Delivery).where(
            Delivery.post_id.in_(post_ids), Delivery.workspace_id == self.workspace_id
        ).order_by(Delivery.id)
        for delivery in (await self.session.scalars(query)).all():
            found[delivery.post_id].append(delivery)
        return found

    async def delivery_counts(self) -> dict[str, int]:
        rows = await self.session.execute(
            select(Delivery.state, func.count()).where(
                Delivery.workspace_id == self.workspace_id
            ).group_by(Delivery.state)
        )
        return {state: count for state, count in rows.all()}

    async def attempts(self, delivery_id: int) -> list[DeliveryAttempt]:
        delivery = await self.session.scalar(
            select(Delivery.id).where(Delivery.id == delivery_id,
                                      Delivery.workspace_id == self.workspace_id)
        )
        if delivery is None:
            return []
        query = select(DeliveryAttempt).where(
            DeliveryAttempt.delivery_id == delivery_id
        ).order_by(DeliveryAttempt.id)
        return list((await self.session.scalars(query)).all())


async def transition_delivery(
    session: AsyncSession,
    delivery: Delivery,
    new: DeliveryState,
    *,
    at: datetime,
    reason: str = "",
    changes: dict[str, Any] | None = None,
) -> None:
    """Move a delivery to `new` if it is still in the state we read; record the event.

    Raises `IllegalTransition` for a move the lifecycle forbids and `StaleState` when another
    worker changed the row first (the UPDATE matched no row).
    """
    old = DeliveryState(delivery.state)
    check_delivery_transition(old, new)
    values: dict[str, Any] = {"state": new.value, "updated_at": at, **(changes or {})}
    if "last_error" in values:
        values["last_error"] = cap(values["last_error"])
    result = await session.execute(
        update(Delivery)
        .where(Delivery.id == delivery.id, Delivery.state == old.value)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise StaleState(f"delivery {delivery.id} is no longer {old}")
    # Mirror the change on the object without marking it dirty: the UPDATE above already
    # wrote it, and a dirty object would be written again (unconditionally) at the next flush.
    for key, value in values.items():
        set_committed_value(delivery, key, value)
    await record_event(
        session, type=f"delivery.{new.value}", workspace_id=delivery.workspace_id,
        payload={"delivery_id": delivery.id, "post_id": delivery.post_id,
                 "channel_id": delivery.channel_id, "old": old.value, "reason": reason},
        at=at,
    )


async def record_attempt(
    session: AsyncSession,
    *,
    delivery_id: int,
    started_at: datetime,
    finished_at: datetime | None,
    outcome: str,
    error_class: str | None = None,
    error_detail: str | None = None,
) -> DeliveryAttempt:
    attempt = DeliveryAttempt(
        delivery_id=delivery_id, started_at=started_at, finished_at=finished_at,
        outcome=outcome, error_class=error_class, error_detail=cap(error_detail),
    )
    session.add(attempt)
    await session.flush()
    return attempt


async def create_fallbacks(session: AsyncSession, origin: Delivery, channel_ids: Sequence[int],
                           *, at: datetime, reason: str) -> list[int]:
    """Deliveries of `origin`'s post on `channel_ids`, due now; returns the new ones' ids.

    Each is an ordinary delivery with its own idempotency key. Created once: the unique
    (post_id, channel_id) makes a second call (another worker, a retry) insert nothing, and a
    channel that already carries the post (a target as well as a fallback) is skipped.
    Channels no longer in the workspace are skipped too.
    """
    existing = set((await session.scalars(select(Channel.id).where(
        Channel.id.in_(list(channel_ids)), Channel.workspace_id == origin.workspace_id))).all())
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    created: list[int] = []
    for channel_id in channel_ids:
        if channel_id not in existing or channel_id == origin.channel_id:
            continue
        new_id = await session.scalar(
            insert(Delivery).values(
                workspace_id=origin.workspace_id, post_id=origin.post_id, channel_id=channel_id,
                state=DeliveryState.DUE.value, due_at=at, next_attempt_at=at, attempt_count=0,
                idempotency_key=new_idempotency_key(origin.post_id, channel_id),
                updated_at=at, origin_delivery_id=origin.id,
            ).on_conflict_do_nothing(index_elements=["post_id", "channel_id"])
            .returning(Delivery.id))
        if new_id is None:
            continue
        created.append(new_id)
        await record_event(
            session, type=f"delivery.{DeliveryState.DUE.value}",
            workspace_id=origin.workspace_id,
            payload={"delivery_id": new_id, "post_id": origin.post_id, "channel_id": channel_id,
                     "old": None, "origin_delivery_id": origin.id, "reason": reason},
            at=at)
    return created
