"""The engine against the store (SQLite and PostgreSQL), states written as the monitor would.

Durations on a FrozenClock, idempotent steps, approval, loops stopped, channels that are
down skipped, broken templates failing one step visibly with nothing half-done.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.fernet import Fernet
from sqlalchemy import select

from sidestep.catalogue import default_catalogue
from sidestep.clock import FrozenClock
from sidestep.domain.states import PlatformStatus
from sidestep.playbooks.context import Deps, MailSetup
from sidestep.playbooks.engine import PlaybookEngine
from sidestep.playbooks.model import Playbook, parse_playbook
from sidestep.store.accounts import Accounts
from sidestep.store.alerting import AlertTargets
from sidestep.store.channels import Channels
from sidestep.store.db import Database
from sidestep.store.health import Health
from sidestep.store.posts import NewPost, Posts
from sidestep.store.tables import Post
from sidestep.store.tables_playbooks import PlaybookAction, PlaybookRun
from sidestep.store.tables_site import SiteSettings
from sidestep.vault import Vault

DOWN, UP = PlatformStatus.DOWN, PlatformStatus.UP
BASE = """
name = "{name}"
title = "test"
recover_after = "00:01:00"

[[trigger]]
kind = "platform"
platforms = ["instagram"]
for = "00:05:00"

[approval]
mode = "{mode}"
within = "00:10:00"
on_timeout = "{timeout}"

[[action]]
do = "hold"

[[action]]
do = "post_message"
to = ["telegram", "bluesky"]
message = "m"

[[action]]
do = "set_banner"
message = "b"

[[action]]
do = "alert_team"

[[recover]]
do = "resume"

[[recover]]
do = "clear_banner"

[message.m]
en = "{message}"

[message.b]
en = "{{{{ platform }}}} is down"
"""


def playbook(*, name: str = "ig", mode: str = "auto", timeout: str = "abort",
             message: str = "{{ platform }} is down; find us on "
                            "{% for a in alternatives %}{{ a.platform }} {% endfor %}",
             extra: str = "") -> Playbook:
    return parse_playbook(BASE.format(name=name, mode=mode, timeout=timeout,
                                      message=message) + extra)


@dataclass
class Alerts:
    sent: list[tuple[str, str]] = field(default_factory=list)

    async def send(self, url: str, *, title: str, body: str) -> None:
        self.sent.append((url, body))


async def no_mail(workspace_id: int) -> MailSetup | None:
    return None


async def setup(db: Database, clock: FrozenClock) -> tuple[int, Deps, Alerts]:
    vault = Vault(Fernet.generate_key())
    now = clock.now()
    async with db.session() as s:
        ws = await Accounts(s).create_workspace(slug="acme", name="Acme", at=now)
        channels = Channels(s, workspace_id=ws.id, vault=vault)
        ids = {p: (await channels.add(platform=p, name=p, audience_size=1000, at=now)).id
               for p in ("instagram", "telegram", "bluesky")}
        await Posts(s, workspace_id=ws.id).create(NewPost(
            body="planned", due_at=now.replace(hour=now.hour + 1),
            channel_ids=[ids["instagram"]]), created_by=None, at=now)
        targets = AlertTargets(s, workspace_id=ws.id, vault=vault)
        await targets.add(label="ops", url="json://ops.example/hook", platform="webhook", at=now)
        await targets.add(label="wa", url="json://wa.example/hook", platform="whatsapp", at=now)
        health = Health(s)
        for p in ("telegram", "bluesky"):
            await health.set_state(platform=p, status=UP, features=[], reason="", at=now)
    alerts = Alerts()
    return ws.id, Deps(db=db, clock=clock, vault=vault, catalogue=default_catalogue(),
                       mail_for=no_mail, alert_sender=alerts), alerts


async def state(db: Database, platform: str, status: PlatformStatus, clock: FrozenClock) -> None:
    async with db.session() as s:
        await Health(s).set_state(platform=platform, status=status, features=[], reason="t",
                                  at=clock.now())


async def rows(db: Database) -> tuple[list[PlaybookRun], list[PlaybookAction]]:
    async with db.session() as s:
        runs = list((await s.scalars(select(PlaybookRun).order_by(PlaybookRun.id))).all())
        acts = list((await s.scalars(select(PlaybookAction).order_by(PlaybookAction.id))).all())
    return runs, acts


async def test_it_waits_for_the_duration_acts_once_and_recovers(
        db: Database, clock: FrozenClock) -> None:
    ws, deps, alerts = await setup(db, clock)
    engine = PlaybookEngine(deps, {ws: [playbook()]})
    await state(db, "instagram", DOWN, clock)
    clock.advance(seconds=299)
    await engine.tick()
    assert (await rows(db))[0] == []
    clock.advance(seconds=1)
    for _ in range(3):  # ticking again never repeats a step
        await engine.tick()
    runs, acts = await rows(db)
    assert [r.state for r in runs] == ["active"]
    assert [(a.kind, a.outcome) for a in acts] == [
        ("hold", "done"), ("post_message", "done"), ("set_banner", "done"),
        ("alert_team", "done")]
    assert "Telegram" in acts[1].data["text"] and "Bluesky" in acts[1].data["text"]
    # The WhatsApp target shares Meta with Instagram: skipped; the webhook one is told.
    assert [u for u, _ in alerts.sent] == ["json://ops.example/hook"]
    assert acts[3].data["targets"]["wa"].startswith("skipped")
    async with db.session() as s:
        posts = list((await s.scalars(select(Post).order_by(Post.id))).all())
        banner = (await s.scalars(select(SiteSettings))).one().banner
    assert posts[0].fallback_policy == "hold" and len(posts) == 2
    assert banner == "Instagram is down"
    await state(db, "instagram", UP, clock)
    clock.advance(seconds=60)
    await engine.tick()
    await engine.tick()
    runs, acts = await rows(db)
    assert runs[0].state == "done"
    assert [(a.phase, a.kind, a.outcome) for a in acts][-2:] == [
        ("recover", "resume", "done"), ("recover", "clear_banner", "done")]
    async with db.session() as s:
        assert (await s.get_one(Post, posts[0].id)).fallback_policy == posts[0].fallback_policy
        assert (await s.scalars(select(SiteSettings))).one().banner == ""


async def test_channels_that_are_down_are_skipped_with_the_reason(
        db: Database, clock: FrozenClock) -> None:
    ws, deps, _ = await setup(db, clock)
    await state(db, "telegram", DOWN, clock)
    await state(db, "bluesky", DOWN, clock)
    await state(db, "instagram", DOWN, clock)
    clock.advance(seconds=300)
    await PlaybookEngine(deps, {ws: [playbook()]}).tick()
    _, acts = await rows(db)
    post = next(a for a in acts if a.kind == "post_message")
    assert post.outcome == "skipped"
    assert "telegram is down" in post.detail and "bluesky is down" in post.detail
    async with db.session() as s:
        assert len((await s.scalars(select(Post))).all()) == 1  # nothing new was posted


async def test_a_broken_template_fails_its_step_visibly_and_leaves_nothing_half_done(
        db: Database, clock: FrozenClock) -> None:
    ws, deps, _ = await setup(db, clock)
    await state(db, "instagram", DOWN, clock)
    clock.advance(seconds=300)
    bad = playbook(message="{{ platfrom }} is down")
    await PlaybookEngine(deps, {ws: [bad]}).tick()
    runs, acts = await rows(db)
    post = next(a for a in acts if a.kind == "post_message")
    assert post.outcome == "failed" and "platfrom" in post.detail
    assert runs[0].state == "active" and "1 steps failed" in runs[0].detail
    assert [a.outcome for a in acts if a.kind != "post_message"] == ["done", "done", "done"]
    async with db.session() as s:
        assert len((await s.scalars(select(Post))).all()) == 1


async def test_a_sandboxed_template_cannot_reach_python_internals(
        db: Database, clock: FrozenClock) -> None:
    ws, deps, _ = await setup(db, clock)
    await state(db, "instagram", DOWN, clock)
    clock.advance(seconds=300)
    evil = playbook(message="{{ platform.__class__.__mro__[1].__subclasses__() }}")
    await PlaybookEngine(deps, {ws: [evil]}).tick()
    _, acts = await rows(db)
    post = next(a for a in acts if a.kind == "post_message")
    assert post.outcome == "failed" and "unsafe" in post.detail


async def test_approval_required_then_timeout_aborts_or_a_person_approves(
        db: Database, clock: FrozenClock) -> None:
    ws, deps, _ = await setup(db, clock)
    engine = PlaybookEngine(deps, {ws: [playbook(mode="required")]})
    await state(db, "instagram", DOWN, clock)
    clock.advance(seconds=300)
    await engine.tick()
    runs, acts = await rows(db)
    assert runs[0].state == "waiting_approval" and [a.kind for a in acts] == ["approval"]
    clock.advance(seconds=600)
    await engine.tick()
    runs, acts = await rows(db)
    assert runs[0].state == "aborted" and [a.outcome for a in acts] == ["refused"]
    go = PlaybookEngine(deps, {ws: [playbook(name="ig2", mode="required")]})
    await go.tick()
    runs, _ = await rows(db)
    assert await go.decide(ws, runs[1].id, approve=True, by="owner@acme")
    runs, acts = await rows(db)
    assert runs[1].state == "active"
    assert [a.kind for a in acts if a.run_id == runs[1].id] == [
        "approval", "hold", "post_message", "set_banner", "alert_team"]


async def test_a_playbook_that_triggers_itself_is_stopped(
        db: Database, clock: FrozenClock) -> None:
    ws, deps, _ = await setup(db, clock)
    looping = parse_playbook("""
name = "echo"
title = "starts itself"
[[trigger]]
kind = "manual"
[[action]]
do = "trigger_playbook"
playbook = "echo"
""")
    engine = PlaybookEngine(deps, {ws: [looping]})
    engine.attach(db.bus)
    async with db.session() as s:
        from sidestep.store.events import record_event
        await record_event(s, type="playbook.manual", workspace_id=ws,
                           payload={"playbook": "echo", "chain": []}, at=clock.now())
    await db.bus.drain()
    await engine.tick()
    await db.bus.drain()
    runs, acts = await rows(db)
    assert [r.state for r in runs] == ["active", "stopped"]
    assert "loop" in runs[1].detail and "echo -> echo" in runs[1].detail
    assert [a.run_id for a in acts] == [runs[0].id]  # the stopped run did nothing
