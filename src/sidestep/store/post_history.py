"""What the calendar and a post's timeline read: posts in a time window, and each delivery's
history merged from its `delivery_attempt` rows and the `event` rows naming the post.

`timeline(session, post, workspace_id=...)` returns one `DeliveryHistory` per delivery, its
`entries` in time order: every attempt (outcome, error class and detail) and every state
change (held, released, rerouted, failed, ...) with its reason. Events that name the post but
no delivery (`post.created`, and whatever later capabilities record with a `post_id`) are the
post's own entries. Both the web timeline and `sidestep post show` print these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.domain.states import DeliveryState
from sidestep.store.tables import Channel, Delivery, DeliveryAttempt, Event, Post

__all__ = ["DeliveryHistory", "Entry", "PostHistory", "posts_due_between", "timeline"]

# "delivery.sending" is one per attempt and the attempt row says more; it is not repeated.
_QUIET_EVENTS = frozenset({"delivery.sending"})
_STATES = frozenset(state.value for state in DeliveryState)
_OUTCOMES = frozenset({"sent", "retry_wait", "failed", "unknown"})


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of a timeline. `kind`: "attempt" or "event"; `label` a few words
    ("attempt 2: transient", "held"), `detail` the error text or the reason."""

    at: datetime
    kind: str
    label: str
    detail: str = ""
    state: str = ""  # the delivery state this entry is about, for its colour


@dataclass(frozen=True, slots=True)
class DeliveryHistory:
    delivery: Delivery
    channel_name: str
    platform: str
    entries: list[Entry] = field(default_factory=list)
    stands_in_for: str = ""  # for a fallback delivery: the channel it was rerouted from


@dataclass(frozen=True, slots=True)
class PostHistory:
    post: Post
    deliveries: list[DeliveryHistory]
    post_entries: list[Entry]


async def posts_due_between(session: AsyncSession, *, workspace_id: int, start: datetime,
                            end: datetime, limit: int = 2000) -> list[Post]:
    """Posts of one workspace due in `[start, end)`, earliest first (at most `limit`)."""
    query = (
        select(Post).where(Post.workspace_id == workspace_id, Post.due_at >= start,
                           Post.due_at < end)
        .order_by(Post.due_at, Post.id).limit(limit)
    )
    return list((await session.scalars(query)).all())


async def timeline(session: AsyncSession, post: Post, *, workspace_id: int) -> PostHistory:
    """The history of `post`, which the caller has already found in `workspace_id`."""
    if post.workspace_id != workspace_id:
        raise ValueError("the post belongs to another workspace")
    deliveries = list((await session.scalars(
        select(Delivery).where(Delivery.post_id == post.id,
                               Delivery.workspace_id == workspace_id).order_by(Delivery.id)
    )).all())
    channels = {c.id: c for c in (await session.scalars(
        select(Channel).where(Channel.id.in_([d.channel_id for d in deliveries]),
                              Channel.workspace_id == workspace_id)
    )).all()}
    attempts = await _attempts([d.id for d in deliveries], session)
    events = list((await session.scalars(
        select(Event).where(
            Event.workspace_id == workspace_id,
            # Some events (delivery.lease_lost) name only their delivery.
            or_(Event.payload["post_id"].as_integer() == post.id,
                Event.payload["delivery_id"].as_integer().in_([d.id for d in deliveries])))
        .order_by(Event.id)
    )).all())
    by_delivery: dict[int, list[Entry]] = {d.id: [] for d in deliveries}
    post_entries: list[Entry] = []
    for row in events:
        if row.type in _QUIET_EVENTS:
            continue
        delivery_id = row.payload.get("delivery_id")
        target = by_delivery.get(delivery_id) if isinstance(delivery_id, int) else None
        (target if target is not None else post_entries).append(_event_entry(row))
    for delivery_id, rows in attempts.items():
        by_delivery[delivery_id].extend(_attempt_entry(n, a) for n, a in enumerate(rows, 1))
    def name(channel_id: int) -> str:
        channel = channels.get(channel_id)
        return channel.name if channel else f"channel {channel_id}"

    by_id = {d.id: d for d in deliveries}
    histories = []
    for d in deliveries:
        channel = channels.get(d.channel_id)
        origin = by_id.get(d.origin_delivery_id) if d.origin_delivery_id else None
        histories.append(DeliveryHistory(
            delivery=d, channel_name=name(d.channel_id),
            platform=channel.platform if channel else "",
            entries=sorted(by_delivery[d.id], key=_order),
            stands_in_for=name(origin.channel_id) if origin else ""))
    return PostHistory(post=post, deliveries=histories, post_entries=post_entries)


def _order(entry: Entry) -> tuple[datetime, int]:
    """Time order; at one instant the release before the attempt, the attempt before its
    outcome (a fast attempt and its outcome share a timestamp)."""
    if entry.kind == "attempt":
        return entry.at, 1
    return entry.at, 2 if entry.state in _OUTCOMES else 0


async def _attempts(delivery_ids: Sequence[int],
                    session: AsyncSession) -> dict[int, list[DeliveryAttempt]]:
    found: dict[int, list[DeliveryAttempt]] = {i: [] for i in delivery_ids}
    if not delivery_ids:
        return found
    rows = await session.scalars(
        select(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(delivery_ids))
        .order_by(DeliveryAttempt.id))
    for attempt in rows.all():
        found[attempt.delivery_id].append(attempt)
    return found


def _attempt_entry(number: int, attempt: DeliveryAttempt) -> Entry:
    label = f"attempt {number}: {attempt.outcome}"
    if attempt.error_class:
        label += f" ({attempt.error_class})"
    return Entry(at=attempt.started_at, kind="attempt", label=label,
                 detail=attempt.error_detail or "", state=_attempt_state(attempt.outcome))


def _attempt_state(outcome: str) -> str:
    return {"sent": "sent", "published": "sent", "failed": "failed",
            "unknown": "unknown"}.get(outcome, "retry_wait")


def _event_entry(row: Event) -> Entry:
    payload: dict[str, Any] = row.payload
    reason = str(payload.get("reason") or "")
    state = row.type.removeprefix("delivery.")
    if row.type.startswith("delivery.") and state in _STATES:
        return Entry(at=row.created_at, kind="event", label=_state_label(state, payload),
                     detail=reason, state=state)
    if row.type == "delivery.lease_lost":
        detail = (f"worker {payload.get('worker')} finished after its claim ran out; the "
                  f"delivery was {payload.get('state')}")
        if payload.get("external_id"):
            detail += f" and the platform took the post as {payload['external_id']}: check " \
                      "for a duplicate"
        return Entry(at=row.created_at, kind="event", label="claim lost", detail=detail,
                     state="unknown")
    if row.type == "post.created":
        return Entry(at=row.created_at, kind="event", label="created",
                     detail=f"for {len(payload.get('channel_ids', []))} channel(s)")
    extra = {k: v for k, v in payload.items() if k not in ("post_id", "reason")}
    detail = reason or ", ".join(f"{k}: {v}" for k, v in sorted(extra.items()))
    return Entry(at=row.created_at, kind="event", label=row.type, detail=detail)


def _state_label(state: str, payload: dict[str, Any]) -> str:
    old = payload.get("old")
    if state == "due" and payload.get("origin_delivery_id"):
        return "fallback started"
    if state == "due":
        return {"held": "released", "retry_wait": "due again", "unknown": "due again (checked)",
                }.get(str(old), "due")
    if state == "retry_wait":
        return "waiting to retry"
    return state.replace("_", " ")
