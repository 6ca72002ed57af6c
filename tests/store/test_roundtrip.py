"""Every noun goes into the database and comes back the same, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sidestep.clock import FrozenClock
from sidestep.domain.states import (
    DeliveryState,
    FallbackPolicy,
    IllegalTransition,
    PlatformStatus,
    Role,
)
from sidestep.store.accounts import AccountError, Accounts
from sidestep.store.channels import ChannelError, Channels
from sidestep.store.db import Database
from sidestep.store.health import Health, NewObservation
from sidestep.store.posts import (
    NewPost,
    PostError,
    Posts,
    StaleState,
    record_attempt,
    transition_delivery,
)
from sidestep.vault import Vault

VAULT = Vault(b"0" * 43 + b"=")


async def make_workspace(db: Database, clock: FrozenClock, slug: str = "acme") -> tuple[int, int]:
    async with db.session() as s:
        accounts = Accounts(s)
        ws = await accounts.create_workspace(slug=slug, name=slug.title(), at=clock.now())
        user = await accounts.create_user(
            email=f"owner@{slug}.example", password="correct horse", display_name="", at=clock.now()
        )
        await accounts.add_member(workspace_id=ws.id, user_id=user.id, role=Role.OWNER, at=clock.now())
        return ws.id, user.id


async def test_workspace_user_and_member_round_trip(db: Database, clock: FrozenClock) -> None:
    ws_id, user_id = await make_workspace(db, clock)
    async with db.session() as s:
        accounts = Accounts(s)
        assert (await accounts.workspace(ws_id)).slug == "acme"  # type: ignore[union-attr]
        assert await accounts.role_of(user_id=user_id, workspace_id=ws_id) is Role.OWNER
        assert (await accounts.authenticate(email="OWNER@acme.example", password="correct horse"))
        assert await accounts.authenticate(email="owner@acme.example", password="wrong") is None
        [membership] = await accounts.memberships(user_id)
        assert membership.workspace.id == ws_id and membership.role is Role.OWNER
        assert (await accounts.workspace(ws_id)).created_at == clock.now()  # type: ignore[union-attr]


async def test_it_refuses_duplicate_slugs_and_bad_addresses(db: Database, clock: FrozenClock) -> None:
    await make_workspace(db, clock)
    async with db.session() as s:
        with pytest.raises(AccountError, match="exists already"):
            await Accounts(s).create_workspace(slug="acme", name="Again", at=clock.now())
        with pytest.raises(AccountError, match="lowercase"):
            await Accounts(s).create_workspace(slug="Bad Slug", name="x", at=clock.now())
        with pytest.raises(AccountError, match="not an email"):
            await Accounts(s).create_user(email="nope", password="longenough", display_name="",
                                          at=clock.now())


async def test_api_tokens_and_web_sessions_round_trip(db: Database, clock: FrozenClock) -> None:
    _, user_id = await make_workspace(db, clock)
    async with db.session() as s:
        accounts = Accounts(s)
        token = await accounts.issue_api_token(user_id=user_id, name="ci", at=clock.now())
        cookie, row = await accounts.start_session(user_id=user_id, at=clock.now(), max_age_s=60)
    async with db.session() as s:
        accounts = Accounts(s)
        assert (await accounts.user_for_api_token(token, at=clock.now())).id == user_id  # type: ignore[union-attr]
        assert (await accounts.web_session(cookie, at=clock.now())).csrf_token == row.csrf_token  # type: ignore[union-attr]
        assert await accounts.web_session(cookie, at=clock.now() + timedelta(seconds=61)) is None
        assert await accounts.revoke_api_token(user_id=user_id, prefix=token[:8], at=clock.now())
    async with db.session() as s:
        assert await Accounts(s).user_for_api_token(token, at=clock.now()) is None
        stored = [t.token_hash for t in await Accounts(s).api_tokens(user_id)]
        assert token not in stored and len(stored[0]) == 64


async def test_channel_round_trip_keeps_credentials_encrypted(db: Database, clock: FrozenClock) -> None:
    ws_id, _ = await make_workspace(db, clock)
    async with db.session() as s:
        channels = Channels(s, workspace_id=ws_id, vault=VAULT)
        channel = await channels.add(platform="telegram", name="News", handle="@news",
                                     credentials={"bot_token": "123:ABC-secret"},
                                     audience_size=1200, at=clock.now())
    async with db.session() as s:
        channels = Channels(s, workspace_id=ws_id, vault=VAULT)
        back = await channels.get(channel.id)
        assert back is not None and back.audience_size == 1200 and back.handle == "@news"
        assert b"123:ABC-secret" not in (back.credentials_encrypted or b"")
        assert channels.credentials(back)["bot_token"] == "123:ABC-secret"
        assert "123:ABC-secret" not in repr(channels.credentials(back))
        with pytest.raises(ChannelError, match="already"):
            await channels.add(platform="x", name="News", at=clock.now())


async def test_one_workspace_never_sees_another_workspaces_rows(db: Database, clock: FrozenClock) -> None:
    ws_a, _ = await make_workspace(db, clock, "alpha")
    ws_b, _ = await make_workspace(db, clock, "beta")
    async with db.session() as s:
        ch_a = await Channels(s, workspace_id=ws_a, vault=VAULT).add(
            platform="x", name="A", at=clock.now())
        post_a = await Posts(s, workspace_id=ws_a).create(
            NewPost(body="hello", due_at=clock.now(), channel_ids=[ch_a.id]),
            created_by=None, at=clock.now())
    async with db.session() as s:
        assert await Channels(s, workspace_id=ws_b, vault=VAULT).get(ch_a.id) is None
        assert await Channels(s, workspace_id=ws_b, vault=VAULT).all() == []
        assert await Posts(s, workspace_id=ws_b).get(post_a.id) is None
        assert await Posts(s, workspace_id=ws_b).deliveries(post_a.id) == []
        with pytest.raises(PostError, match="no such channel"):
            await Posts(s, workspace_id=ws_b).create(
                NewPost(body="steal", due_at=clock.now(), channel_ids=[ch_a.id]),
                created_by=None, at=clock.now())


async def test_post_delivery_and_attempt_round_trip(db: Database, clock: FrozenClock) -> None:
    ws_id, user_id = await make_workspace(db, clock)
    async with db.session() as s:
        channels = Channels(s, workspace_id=ws_id, vault=VAULT)
        ig = await channels.add(platform="instagram", name="IG", at=clock.now())
        tg = await channels.add(platform="telegram", name="TG", at=clock.now())
        post = await Posts(s, workspace_id=ws_id).create(
            NewPost(body="Sale ✨ שלום", due_at=clock.now() + timedelta(hours=1),
                    channel_ids=[ig.id], link="https://shop.example/sale",
                    media=[{"kind": "image", "sha256": "ab" * 32}],
                    variants={"instagram": {"body": "Sale!"}},
                    fallback_policy=FallbackPolicy.REROUTE, fallback_channel_ids=[tg.id]),
            created_by=user_id, at=clock.now())
    async with db.session() as s:
        posts = Posts(s, workspace_id=ws_id)
        back = await posts.get(post.id)
        assert back is not None
        assert (back.body, back.link, back.fallback_policy) == ("Sale ✨ שלום", "https://shop.example/sale", "reroute")
        assert back.media == [{"kind": "image", "sha256": "ab" * 32}]
        assert back.variants == {"instagram": {"body": "Sale!"}} and back.fallback_channel_ids == [tg.id]
        assert back.due_at == clock.now() + timedelta(hours=1)
        [delivery] = await posts.deliveries(post.id)
        assert delivery.state == DeliveryState.SCHEDULED and delivery.idempotency_key.startswith("sst-")
        await transition_delivery(s, delivery, DeliveryState.DUE, at=clock.now())
        await transition_delivery(s, delivery, DeliveryState.SENDING, at=clock.now())
        await record_attempt(s, delivery_id=delivery.id, started_at=clock.now(),
                             finished_at=clock.now(), outcome="error", error_class="transient",
                             error_detail="x" * 5000)
        await transition_delivery(s, delivery, DeliveryState.RETRY_WAIT, at=clock.now(),
                                  changes={"last_error": "y" * 5000})
    async with db.session() as s:
        posts = Posts(s, workspace_id=ws_id)
        [delivery] = await posts.deliveries(post.id)
        assert delivery.state == "retry_wait" and len(delivery.last_error or "") == 1000
        [attempt] = await posts.attempts(delivery.id)
        assert attempt.error_class == "transient" and len(attempt.error_detail or "") == 1000
        assert await posts.delivery_counts() == {"retry_wait": 1}


async def test_a_delivery_moves_only_by_compare_and_set(db: Database, clock: FrozenClock) -> None:
    ws_id, _ = await make_workspace(db, clock)
    async with db.session() as s:
        ch = await Channels(s, workspace_id=ws_id, vault=VAULT).add(platform="x", name="X", at=clock.now())
        post = await Posts(s, workspace_id=ws_id).create(
            NewPost(body="hi", due_at=clock.now(), channel_ids=[ch.id]), created_by=None, at=clock.now())
    async with db.session() as s:
        [seen_by_a] = await Posts(s, workspace_id=ws_id).deliveries(post.id)
    async with db.session() as s:
        [seen_by_b] = await Posts(s, workspace_id=ws_id).deliveries(post.id)
        await transition_delivery(s, seen_by_b, DeliveryState.DUE, at=clock.now())
    with pytest.raises(StaleState):
        async with db.session() as s:
            await transition_delivery(s, seen_by_a, DeliveryState.DUE, at=clock.now())
    with pytest.raises(IllegalTransition):
        async with db.session() as s:
            await transition_delivery(s, seen_by_b, DeliveryState.SENT, at=clock.now())


async def test_observations_states_and_incidents_round_trip(db: Database, clock: FrozenClock) -> None:
    async with db.session() as s:
        health = Health(s)
        await health.add_observations([
            NewObservation(platform="facebook", signal="dns", vantage="local", outcome="servfail",
                           observed_at=clock.now(), latency_ms=12.5, target="facebook.com"),
        ])
        assert await health.set_state(platform="facebook", status=PlatformStatus.DOWN, features=[],
                                      reason="DNS SERVFAIL", at=clock.now())
        assert not await health.set_state(platform="facebook", status=PlatformStatus.DOWN,
                                          features=[], reason="still", at=clock.now())
    clock.advance(seconds=3600)
    async with db.session() as s:
        health = Health(s)
        [obs] = await health.observations(platform="facebook", since=clock.now() - timedelta(hours=2))
        assert (obs.outcome, obs.latency_ms, obs.target) == ("servfail", 12.5, "facebook.com")
        assert (await health.states())["facebook"].status == "down"
        await health.set_state(platform="facebook", status=PlatformStatus.UP, features=[],
                               reason="", at=clock.now())
    async with db.session() as s:
        [incident] = await Health(s).incidents()
        assert incident.worst_status == "down"
        assert incident.ended_at - incident.started_at == timedelta(hours=1)  # type: ignore[operator]
        assert await Health(s).prune_observations(before=clock.now()) == 1
