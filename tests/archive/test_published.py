"""Posts Sidestep sent are archived once, as one post with a source per channel."""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import update

from sidestep.archive.media import MediaStore
from sidestep.archive.published import archive_published
from sidestep.clock import FrozenClock
from sidestep.store.archive import Archive, Outcome
from sidestep.store.channels import Channels
from sidestep.store.db import Database
from sidestep.store.posts import NewPost, Posts
from sidestep.store.tables import Delivery
from sidestep.vault import Vault
from tests.archive.conftest import T0, post, workspace

IMAGE = b"\x89PNG\r\n\x1a\n" + b"published" * 10


async def test_sent_deliveries_are_archived_once(db: Database, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    ws = await workspace(db, "acme")
    ref = f"{hashlib.sha256(IMAGE).hexdigest()}.png"
    (data_dir / "media" / str(ws)).mkdir(parents=True)
    (data_dir / "media" / str(ws) / ref).write_bytes(IMAGE)
    vault = Vault.from_settings(secret_key=None, data_dir=data_dir)
    async with db.session() as s:
        channels = Channels(s, workspace_id=ws, vault=vault)
        x = await channels.add(platform="x", name="x main", at=T0)
        masto = await channels.add(platform="mastodon", name="toots", at=T0)
        sent = await Posts(s, workspace_id=ws).create(NewPost(
            body="We are live 🎉", due_at=T0, channel_ids=[x.id, masto.id],
            media=[{"kind": "image", "ref": ref, "mime_type": "image/png", "alt": "a banner"}],
        ), created_by=None, at=T0)
        await Posts(s, workspace_id=ws).create(NewPost(
            body="not sent yet", due_at=T0, channel_ids=[x.id]), created_by=None, at=T0)
        await s.execute(update(Delivery).where(Delivery.post_id == sent.id,
                                               Delivery.channel_id == x.id)
                        .values(state="sent", external_id="1800", external_url="https://x.com/i/status/1800"))
        await s.execute(update(Delivery).where(Delivery.post_id == sent.id,
                                               Delivery.channel_id == masto.id)
                        .values(state="sent", external_id="https://m.example/s/1"))
    clock = FrozenClock(T0)
    assert await archive_published(db, data_dir=data_dir, clock=clock) == 2
    assert await archive_published(db, data_dir=data_dir, clock=clock) == 0
    async with db.session() as s:
        archive = Archive(s, workspace_id=ws)
        [archived] = await archive.listing()
        assert archived.text == "We are live 🎉" and archived.origin_post_id == sent.id
        assert archived.kind == "image" and archived.media[0]["alt"] == "a banner"
        sources = (await archive.sources_of([archived.id]))[archived.id]
        assert {(src.platform, src.channel_id) for src in sources} == {
            ("x", x.id), ("mastodon", masto.id)}
        assert await archive.count(channel_id=x.id) == 1
        assert await archive.media(archived.media[0]["sha256"]) is not None
        # importing the X archive later finds the tweet already archived
        assert await archive.add_one(post("x", "1800", "We are live 🎉"), at=T0) \
            is Outcome.DUPLICATE
    with MediaStore.under(data_dir).open(archived.media[0]["sha256"]) as f:
        assert f.read() == IMAGE
