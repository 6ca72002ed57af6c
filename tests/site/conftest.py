"""Fixtures for the owned site: two workspaces with published sites and archived posts.

`acme` (from tests/web/conftest.py's world, plus a Mastodon channel) publishes a link page
listing its newsletter, Instagram and Mastodon, and has 45 public posts over three
platforms: one with a PNG, one with an MP3 (a podcast episode), one whose text is hostile
markup with control characters; plus a followers-only post with its own image that must
never appear. `globex` publishes posts of its own, with an image of its own. The app uses
the real platform catalogue.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from PIL import Image

from sidestep.archive.media import MediaStore
from sidestep.archive.model import ImportedPost, MediaRef, SourceRef, Visibility
from sidestep.clock import FrozenClock
from sidestep.domain.states import PlatformStatus
from sidestep.runtime import Runtime
from sidestep.store.accounts import Accounts
from sidestep.store.archive import Archive, MediaRow
from sidestep.store.channels import Channels
from sidestep.store.health import Health
from sidestep.store.site import ShownChannel, Sites
from sidestep.web.app import create_app
from tests.web.conftest import (  # noqa: F401  (fixtures used by the site tests)
    World,
    _hash_each_password_once,
    world,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
HOSTILE = "<script>alert('x')</script> & <b>bold</b>\x00\x07\x1b\x0c done"
SECRET_TEXT = "FOLLOWERS-ONLY recipe for the winter blend"
GLOBEX_TEXT = "GLOBEX-ONLY quarterly widget news"
PUBLIC_POSTS = 45  # acme's public posts: three archive pages of 20


@dataclass(frozen=True)
class Seeded:
    world: World
    acme_id: int
    globex_id: int
    image_sha: str
    audio_sha: str
    secret_sha: str
    globex_sha: str
    hostile_post_id: int
    secret_post_id: int
    globex_post_id: int


def png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buffer, "PNG")
    return buffer.getvalue()


def mp3() -> bytes:
    # An ID3v2 header then MPEG frame headers: enough for the type check and a player.
    return b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + b"\x00" * 4000


def imported(platform: str, number: int, text: str, *, media: tuple[MediaRef, ...] = (),
             visibility: Visibility = Visibility.PUBLIC, link: str | None = None
             ) -> ImportedPost:
    return ImportedPost(
        sources=(SourceRef(platform, f"{platform}-{number}",
                           f"https://{platform}.example/p/{number}"),),
        text=text, created_at=T0 + timedelta(hours=number), media=media,
        visibility=visibility, link=link)


async def seed(runtime: Runtime, people: World, clock: FrozenClock) -> Seeded:
    store = MediaStore.under(runtime.settings.data_dir)
    image = store.put_bytes(png((200, 120, 40)))
    audio = store.put_bytes(mp3())
    secret = store.put_bytes(png((10, 200, 10)))
    other = store.put_bytes(png((10, 10, 200)))
    now = clock.now()
    async with runtime.db.session() as s:
        accounts = Accounts(s)
        acme = await accounts.workspace_by_slug("acme")
        globex = await accounts.workspace_by_slug("globex")
        assert acme is not None and globex is not None
        mastodon = await Channels(s, workspace_id=acme.id, vault=runtime.vault).add(
            platform="mastodon", name="Mastodon", handle="@acme@mastodon.social", at=now)
        platforms = ("x", "mastodon", "instagram")
        posts = [imported(platforms[n % 3], n, f"Post number {n}: fresh beans from lot {n}.")
                 for n in range(PUBLIC_POSTS - 3)]
        posts.append(imported("mastodon", 100, "Our new roast, pictured.", media=(
            MediaRef(kind="image", mime_type="image/png", alt="A bag of beans",
                     sha256=image.sha256),)))
        posts.append(imported("x", 101, "Episode 1: how we roast", media=(
            MediaRef(kind="audio", mime_type="audio/mpeg", sha256=audio.sha256),)))
        posts.append(imported("x", 102, HOSTILE, link="javascript:alert(1)"))
        posts.append(imported("instagram", 103, SECRET_TEXT, visibility=Visibility.FOLLOWERS,
                              media=(MediaRef(kind="image", mime_type="image/png",
                                              sha256=secret.sha256),)))
        await Archive(s, workspace_id=acme.id).add_many(posts, media=[
            MediaRow(image.sha256, "image/png", image.size_bytes),
            MediaRow(audio.sha256, "audio/mpeg", audio.size_bytes),
            MediaRow(secret.sha256, "image/png", secret.size_bytes)], at=now)
        await Archive(s, workspace_id=globex.id).add_many([imported(
            "x", 200, GLOBEX_TEXT, media=(MediaRef(kind="image", mime_type="image/png",
                                                   sha256=other.sha256),))],
            media=[MediaRow(other.sha256, "image/png", other.size_bytes)], at=now)
        await Sites(s, workspace_id=acme.id).save(
            published=True, title="Acme Coffee Roasters",
            description="Small-batch coffee from Leipzig. Find us wherever you are.",
            banner="", at=now, channels=[
                ShownChannel(people.newsletter_id, "https://acme.example/newsletter"),
                ShownChannel(people.instagram_id, "https://www.instagram.com/acme"),
                ShownChannel(mastodon.id, "https://mastodon.social/@acme")])
        await Sites(s, workspace_id=globex.id).save(
            published=True, title="Globex", description="", banner="", channels=[], at=now)
        health = Health(s)
        for platform in ("instagram", "mastodon", "x"):
            await health.set_state(platform=platform, status=PlatformStatus.UP, features=[],
                                   reason="", at=now - timedelta(hours=3))
        ids = {}
        for source_id in ("x-102", "instagram-103"):
            found = await Archive(s, workspace_id=acme.id).by_source(source_id.split("-")[0],
                                                                     source_id)
            assert found is not None
            ids[source_id] = found.id
        globex_post = await Archive(s, workspace_id=globex.id).by_source("x", "x-200")
        assert globex_post is not None
    return Seeded(world=people, acme_id=acme.id, globex_id=globex.id, image_sha=image.sha256,
                  audio_sha=audio.sha256, secret_sha=secret.sha256, globex_sha=other.sha256,
                  hostile_post_id=ids["x-102"], secret_post_id=ids["instagram-103"],
                  globex_post_id=globex_post.id)


@pytest.fixture
async def seeded(runtime: Runtime, world: World, clock: FrozenClock) -> Seeded:  # noqa: F811
    return await seed(runtime, world, clock)


async def instagram_goes_down(runtime: Runtime, clock: FrozenClock) -> None:
    async with runtime.db.session() as s:
        await Health(s).set_state(platform="instagram", status=PlatformStatus.DOWN,
                                  features=[], reason="DNS: SERVFAIL from every resolver",
                                  at=clock.now() - timedelta(minutes=42))


@pytest.fixture
def site_app(runtime: Runtime) -> FastAPI:
    return create_app(runtime)


@pytest.fixture
async def site_client(site_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=site_app),
                                 base_url="http://testserver") as client:
        yield client
