"""The actions that only change the database, each run inside the transaction that records it.

So each is all or nothing: the posts' policies, the new post, the banner and the action's
record commit together, or (on `ActionFailed`, a broken template) none of them does and the
failure is recorded instead.

    hold / reroute   the affected channels' unsent posts get the `hold` or `mirror_now`
                     policy (reroute: with the `to` channels that are up and untouched by
                     the incident as fallbacks); the old values are kept in the record
    resume           puts those old values back on posts still unsent
    catch_up         rerouted posts also go out on their own platform once it is back
    post_message     a new post, due now, on the `to` channels that are up; channels that
                     are down or owned by the fallen company are skipped with the reason
    set_banner / clear_banner   the site's banner
    trigger_playbook            a `playbook.manual` event carrying the chain of runs
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sidestep.domain.states import DeliveryState, FallbackPolicy
from sidestep.playbooks.context import ActionFailed, Result, RunContext, channel_states
from sidestep.playbooks.model import Action
from sidestep.playbooks.templates import MessageTemplateError, render
from sidestep.store.events import record_event
from sidestep.store.playbooks import PlaybookRuns
from sidestep.store.posts import NewPost, Posts
from sidestep.store.site import SiteError, Sites
from sidestep.store.tables import Channel, Delivery, Post

__all__ = ["LOCAL_ACTIONS", "LocalAction"]

LocalAction = Callable[[AsyncSession, RunContext, Action], Awaitable[Result]]
_UNSENT = (DeliveryState.SCHEDULED.value, DeliveryState.DUE.value, DeliveryState.HELD.value,
           DeliveryState.RETRY_WAIT.value)


async def _affected_posts(session: AsyncSession, ctx: RunContext) -> list[Post]:
    """Posts with an unsent delivery of their own on a channel of an affected platform."""
    unsent = (select(Delivery.post_id).join(Channel, Channel.id == Delivery.channel_id)
              .where(Delivery.workspace_id == ctx.workspace_id,
                     Channel.platform.in_(list(ctx.platforms)),
                     Delivery.origin_delivery_id.is_(None), Delivery.state.in_(_UNSENT)))
    query = select(Post).where(Post.id.in_(unsent)).order_by(Post.id)
    return list((await session.scalars(query)).all())


async def _fallbacks(session: AsyncSession, ctx: RunContext, action: Action
                     ) -> tuple[list[int], list[dict[str, str]]]:
    """Channels to reroute to (up, untouched, on the `to` platforms), and those skipped."""
    chosen, skipped = [], []
    for channel, status in await channel_states(session, ctx.workspace_id):
        if action.to and channel.platform not in action.to:
            continue
        if ctx.touched(channel.platform):
            if action.to:
                skipped.append({"channel": channel.name,
                                "reason": f"{channel.platform} is affected by the incident"})
            continue
        if status not in (None, "up"):
            skipped.append({"channel": channel.name, "reason": f"{channel.platform} is {status}"})
            continue
        if status is None and not ctx.owned(channel.platform):
            continue  # a rented platform nobody monitors: unknown, not a safe fallback
        if channel.platform in ("email", "site", "feed"):
            continue  # the dispatcher does not post to these; the email action covers it
        chosen.append(channel.id)
    return chosen, skipped


async def _set_policy(session: AsyncSession, ctx: RunContext, action: Action) -> Result:
    posts = await _affected_posts(session, ctx)
    policy = FallbackPolicy.HOLD if action.do == "hold" else FallbackPolicy.MIRROR_NOW
    fallbacks, skipped = ([], []) if action.do == "hold" else await _fallbacks(
        session, ctx, action)
    if action.do == "reroute" and not fallbacks:
        raise ActionFailed("no channel to reroute to is up and untouched by the incident"
                           + (f" ({'; '.join(s['reason'] for s in skipped)})" if skipped else ""))
    before: dict[str, Any] = {}
    for post in posts:
        before[str(post.id)] = {"policy": post.fallback_policy,
                                "fallbacks": list(post.fallback_channel_ids)}
        post.fallback_policy = policy.value
        if fallbacks:
            post.fallback_channel_ids = sorted({*map(int, post.fallback_channel_ids),
                                                *fallbacks})
    await session.flush()
    what = "held" if action.do == "hold" else f"rerouted to {len(fallbacks)} channels"
    return Result("done" if posts else "skipped",
                  f"{len(posts)} posts {what}" if posts else "no unsent post on those channels",
                  {"posts": before, "fallbacks": fallbacks, "skipped": skipped})


async def _previous(session: AsyncSession, ctx: RunContext, kinds: set[str]
                    ) -> dict[str, dict[str, Any]]:
    """What the run's hold/reroute steps changed, earliest value first."""
    found: dict[str, dict[str, Any]] = {}
    for row in await PlaybookRuns(session, workspace_id=ctx.workspace_id).actions(ctx.run_id):
        if row.phase == "act" and row.kind in kinds and row.outcome == "done":
            for post_id, old in (row.data.get("posts") or {}).items():
                found.setdefault(post_id, old)
    return found


async def _resume(session: AsyncSession, ctx: RunContext, action: Action) -> Result:
    restored = 0
    for post_id, old in (await _previous(session, ctx, {"hold", "reroute"})).items():
        post = await session.get(Post, int(post_id))
        if post is None:
            continue
        post.fallback_policy = old["policy"]
        post.fallback_channel_ids = old["fallbacks"]
        restored += 1
    await session.flush()
    return Result("done" if restored else "skipped",
                  f"{restored} posts back to their own policy" if restored
                  else "no post was held or rerouted by this run", {"posts": restored})


async def _catch_up(session: AsyncSession, ctx: RunContext, action: Action) -> Result:
    marked = 0
    for post_id in await _previous(session, ctx, {"reroute"}):
        post = await session.get(Post, int(post_id))
        if post is not None and not post.catch_up:
            post.catch_up = True
            marked += 1
    await session.flush()
    return Result("done" if marked else "skipped",
                  f"{marked} rerouted posts will also go out on their own platform"
                  if marked else "nothing was rerouted by this run", {"posts": marked})


async def _message(session: AsyncSession, ctx: RunContext, action: Action) -> str:
    assert action.message is not None
    try:
        return render(ctx.playbook.text(action.message), await ctx.message_context(session))
    except MessageTemplateError as exc:
        raise ActionFailed(f"message {action.message!r}: {exc}") from exc


async def _post_message(session: AsyncSession, ctx: RunContext, action: Action) -> Result:
    text = await _message(session, ctx, action)
    targets, skipped = [], []
    for channel, status in await channel_states(session, ctx.workspace_id):
        if channel.platform not in action.to:
            continue
        if ctx.touched(channel.platform) or status not in (None, "up"):
            why = status if status not in (None, "up") else "affected by the incident"
            skipped.append({"channel": channel.name, "reason": f"{channel.platform} is {why}"})
        else:
            targets.append(channel)
    if not targets:
        return Result("skipped", "every channel to post on is down or affected: "
                      + ("; ".join(s["reason"] for s in skipped) or "no such channel"),
                      {"skipped": skipped})
    post = await Posts(session, workspace_id=ctx.workspace_id).create(
        NewPost(body=text, due_at=ctx.deps.clock.now(), channel_ids=[c.id for c in targets],
                fallback_policy=FallbackPolicy.HOLD),
        created_by=None, at=ctx.deps.clock.now())
    return Result("done", f"post {post.id} on {', '.join(c.name for c in targets)}"
                  + (f"; skipped {', '.join(s['channel'] for s in skipped)}" if skipped else ""),
                  {"post_id": post.id, "channels": [c.id for c in targets],
                   "skipped": skipped, "text": text})


async def _banner(session: AsyncSession, ctx: RunContext, action: Action) -> Result:
    text = "" if action.do == "clear_banner" else await _message(session, ctx, action)
    try:
        await Sites(session, workspace_id=ctx.workspace_id).set_banner(
            text, at=ctx.deps.clock.now())
    except SiteError as exc:
        raise ActionFailed(str(exc)) from exc
    return Result("done", "banner removed" if not text else "banner set", {"banner": text})


async def _trigger(session: AsyncSession, ctx: RunContext, action: Action) -> Result:
    await record_event(session, type="playbook.manual", workspace_id=ctx.workspace_id,
                       payload={"playbook": action.playbook,
                                "chain": [*ctx.chain, ctx.playbook.name],
                                "platforms": list(ctx.platforms), "by": f"run {ctx.run_id}"},
                       at=ctx.deps.clock.now())
    return Result("done", f"playbook {action.playbook} started", {"playbook": action.playbook})


LOCAL_ACTIONS: dict[str, LocalAction] = {
    "hold": _set_policy, "reroute": _set_policy, "resume": _resume, "catch_up": _catch_up,
    "post_message": _post_message, "set_banner": _banner, "clear_banner": _banner,
    "trigger_playbook": _trigger,
}
