"""What the worker publishes is the post adapted to each platform, files included, as the
composer's preview showed it: images from the media store, long text as a thread."""

from __future__ import annotations

import random
from pathlib import Path

from sidestep.channels.uploads import MediaStore
from sidestep.clock import FrozenClock
from sidestep.dispatch.worker import run_once
from sidestep.store.db import Database
from sidestep.store.posts import NewPost, Posts
from tests.channels.conftest import PNG_1PX
from tests.dispatch.test_worker import VAULT, Rig, rig


async def _post(r: Rig, platform: str, body: str, media: list[dict[str, object]]) -> int:
    async with r.db.session() as s:
        posts = Posts(s, workspace_id=r.workspace_id)
        post = await posts.create(NewPost(body=body, due_at=r.clock.now(), media=media,
                                          channel_ids=[r.channels[platform]]),
                                  created_by=None, at=r.clock.now())
        [delivery] = await posts.deliveries(post.id)
        return delivery.id


async def _run(r: Rig, media_dir: Path | None) -> int:
    return await run_once(r.db, vault=VAULT, adapters=r.adapters, worker="w1", clock=r.clock,
                          rng=random.Random(1), media_dir=media_dir)


async def test_an_uploaded_image_goes_out_with_the_post(
        db: Database, clock: FrozenClock, tmp_path: Path) -> None:
    async with rig(db, clock, "telegram") as r:
        stored = await MediaStore(tmp_path, workspace_id=r.workspace_id).keep_upload(
            PNG_1PX, filename="pic.png", alt="a pixel")
        delivery_id = await _post(r, "telegram", "With a picture", [stored.as_post_media()])
        assert await _run(r, tmp_path) == 1
        delivery = await r.delivery(delivery_id)
        assert delivery.state == "sent"
        [recorded] = r.sim.world.record.all("telegram")
        assert recorded.kind == "photo"
        assert recorded.payload["caption"] == "With a picture"


async def test_a_post_with_files_fails_visibly_when_the_worker_has_no_media_store(
        db: Database, clock: FrozenClock, tmp_path: Path) -> None:
    async with rig(db, clock, "telegram") as r:
        stored = await MediaStore(tmp_path, workspace_id=r.workspace_id).keep_upload(
            PNG_1PX, filename="pic.png")
        delivery_id = await _post(r, "telegram", "With a picture", [stored.as_post_media()])
        await _run(r, None)
        delivery = await r.delivery(delivery_id)
        assert delivery.state == "failed"
        assert "no media directory" in (delivery.last_error or "")
        assert r.recorded("telegram") == 0


async def test_text_over_the_limit_goes_out_as_a_thread_once(
        db: Database, clock: FrozenClock) -> None:
    async with rig(db, clock, "mastodon") as r:
        body = " ".join(f"Sentence number {i} of a long update." for i in range(40))
        assert len(body) > 500  # Mastodon's limit
        delivery_id = await _post(r, "mastodon", body, [])
        assert await _run(r, None) == 1
        assert await _run(r, None) == 0
        delivery = await r.delivery(delivery_id)
        assert delivery.state == "sent" and delivery.last_error is None
        parts = r.sim.world.record.all("mastodon")
        assert len(parts) >= 2
        texts = [str(p.payload.get("status", "")) for p in parts]
        assert all(len(t) <= 500 for t in texts)
        assert "Sentence number 0 " in texts[0] and "Sentence number 39 " in texts[-1]
        # each part after the first replies to the one before it
        for before, after in zip(parts, parts[1:], strict=False):
            assert after.payload.get("in_reply_to_id") == before.external_id
