"""The queries behind the timeline and the calendar, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sidestep.clock import FrozenClock
from sidestep.domain.states import DeliveryState
from sidestep.store.accounts import Accounts
from sidestep.store.channels import Channels
from sidestep.store.db import Database
from sidestep.store.events import record_event
from sidestep.store.post_history import posts_due_between, timeline
from sidestep.store.posts import (
    NewPost,
    Posts,
    create_fallbacks,
    record_attempt,
    transition_delivery,
)
from sidestep.vault import Vault

VAULT = Vault(b"0" * 43 + b"=")


async def test_a_posts_history_holds_its_own_attempts_and_events_only(
        db: Database, clock: FrozenClock) -> None:
    now = clock.now()
    async with db.session() as s:
        accounts = Accounts(s)
        acme = await accounts.create_workspace(slug="acme", name="Acme", at=now)
        other = await accounts.create_workspace(slug="other", name="Other", at=now)
        mine = await Channels(s, workspace_id=acme.id, vault=VAULT).add(
            platform="telegram", name="News", at=now)
        theirs = await Channels(s, workspace_id=other.id, vault=VAULT).add(
            platform="telegram", name="Theirs", at=now)
        posts = Posts(s, workspace_id=acme.id)
        post = await posts.create(NewPost(body="a", due_at=now, channel_ids=[mine.id]),
                                  created_by=None, at=now)
        later = await posts.create(NewPost(body="b", due_at=now + timedelta(days=1),
                                           channel_ids=[mine.id]), created_by=None, at=now)
        foreign = await Posts(s, workspace_id=other.id).create(
            NewPost(body="c", due_at=now, channel_ids=[theirs.id]), created_by=None, at=now)
        [delivery] = await posts.deliveries(post.id)
        await transition_delivery(s, delivery, DeliveryState.HELD, at=now, reason="down")
        await record_event(s, type="delivery.lease_lost", workspace_id=acme.id,
                           payload={"delivery_id": delivery.id, "worker": "w9", "state": "held",
                                    "external_id": None}, at=now)
        await record_event(s, type="deliverable.at_risk", workspace_id=acme.id,
                           payload={"post_id": post.id, "deadline": "tomorrow"}, at=now)
        fallback = await Channels(s, workspace_id=acme.id, vault=VAULT).add(
            platform="email", name="Letter", at=now)
        later_on = now + timedelta(minutes=15)
        await transition_delivery(s, delivery, DeliveryState.REROUTED, at=later_on,
                                  reason="telegram down past the grace period")
        await create_fallbacks(s, delivery, [fallback.id], at=later_on,
                               reason="rerouted from News")
        [their_delivery] = await Posts(s, workspace_id=other.id).deliveries(foreign.id)
        await record_attempt(s, delivery_id=their_delivery.id, started_at=now,
                             finished_at=now, outcome="sent")

    async with db.session() as s:
        history = await timeline(s, post, workspace_id=acme.id)
        own, stand_in = history.deliveries
        assert own.channel_name == "News" and own.stands_in_for == ""
        assert [(e.label, e.detail) for e in own.entries] == [
            ("held", "down"),
            ("claim lost", "worker w9 finished after its claim ran out; the delivery was held"),
            ("rerouted", "telegram down past the grace period")]
        assert stand_in.channel_name == "Letter" and stand_in.stands_in_for == "News"
        assert [(e.label, e.detail) for e in stand_in.entries] == [
            ("fallback started", "rerouted from News")]
        assert [(e.label, e.detail) for e in history.post_entries] == [
            ("created", "for 1 channel(s)"), ("deliverable.at_risk", "deadline: tomorrow")]
        due = await posts_due_between(s, workspace_id=acme.id, start=now,
                                      end=now + timedelta(hours=1))
        assert [p.id for p in due] == [post.id]
        assert later.id not in [p.id for p in due]
