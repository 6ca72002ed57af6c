"""Instagram fetches images from a public URL: the worker gives each file a signed address
on this installation, and only that exact address serves it."""

from __future__ import annotations

import io
import random
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from PIL import Image

from sidestep.channels.uploads import MediaHost, MediaStore
from sidestep.clock import FrozenClock
from sidestep.config import Settings
from sidestep.dispatch.worker import run_once
from sidestep.runtime import Runtime
from sidestep.store.db import Database
from sidestep.store.posts import NewPost, Posts
from sidestep.web.app import create_app
from tests.channels import test_instagram
from tests.channels.conftest import PNG_1PX
from tests.dispatch import test_worker
from tests.dispatch.test_worker import VAULT, rig


async def test_an_instagram_image_gets_a_signed_public_url_that_serves_it(
        db: Database, clock: FrozenClock, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(test_worker.PREPARE, "instagram", test_instagram.prepare)
    host = MediaHost(tmp_path, base_url="https://brand.example", secret=b"k" * 32)
    async with rig(db, clock, "instagram") as r:
        stored = await MediaStore(tmp_path, workspace_id=r.workspace_id).keep_upload(
            PNG_1PX, filename="pic.png")
        async with r.db.session() as s:
            posts = Posts(s, workspace_id=r.workspace_id)
            post = await posts.create(NewPost(body="Look", due_at=clock.now(),
                                              media=[stored.as_post_media()],
                                              channel_ids=[r.channels["instagram"]]),
                                      created_by=None, at=clock.now())
            [delivery] = await posts.deliveries(post.id)
        await run_once(r.db, vault=VAULT, adapters=r.adapters, worker="w1", clock=clock,
                       rng=random.Random(1), media_host=host)
        assert (await r.delivery(delivery.id)).state == "sent"
        [container] = [obj for obj in r.sim.world.record.all("instagram")]
        urls = [str(v) for v in _values(container.payload) if "brand.example" in str(v)]
        assert urls, container.payload
        url = urlsplit(urls[0])
        assert url.scheme == "https" and url.path.startswith(f"/media/{r.workspace_id}/")
        assert url.path.endswith(".jpg")  # Instagram takes JPEG only: re-encoded and hosted

    settings = Settings(data_dir=tmp_path, secret_key="0" * 43 + "=")
    runtime = Runtime.from_settings(settings)
    app = create_app(runtime)
    app.state.media_host = host
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="https://brand.example") as client:
        answer = await client.get(f"{url.path}?{url.query}")
        assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(answer.content)).format == "JPEG"
        assert (await client.get(f"{url.path}?sig=0000")).status_code == 404
        assert (await client.get(url.path)).status_code == 404
        other = url.path.replace(f"/media/{r.workspace_id}/", f"/media/{r.workspace_id + 1}/")
        assert (await client.get(f"{other}?{url.query}")).status_code == 404


def _values(payload: object) -> list[object]:
    if isinstance(payload, dict):
        return [v for value in payload.values() for v in _values(value)]
    if isinstance(payload, list):
        return [v for value in payload for v in _values(value)]
    return [payload]
