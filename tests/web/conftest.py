"""Fixtures for the web layer: a seeded workspace world, the app, and clients for it.

Tests talk to the real app over httpx's ASGI transport against a migrated SQLite database
(the `runtime` fixture of tests/conftest.py). Most tests sign in by opening a session through
the `Accounts` repository, as the login form would; the login form itself is exercised in
test_auth.py and test_browser.py.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from sidestep.clock import FrozenClock
from sidestep.domain.states import Role
from sidestep.runtime import Runtime
from sidestep.security import hash_password
from sidestep.store.accounts import Accounts
from sidestep.store.channels import Channels
from sidestep.store.posts import NewPost, Posts
from sidestep.store.tables import User
from sidestep.web.app import create_app
from sidestep.web.deps import SESSION_COOKIE

PASSWORD = "correct horse battery staple"
SECRET = "EAAB-secret-value"


@dataclass(frozen=True)
class FakePlatform:
    key: str
    name: str
    owner: str
    kind: str


class FakeCatalogue:
    def __init__(self, platforms: list[FakePlatform]) -> None:
        self._platforms = platforms

    def all(self) -> list[FakePlatform]:
        return list(self._platforms)


CATALOGUE = FakeCatalogue([
    FakePlatform("instagram", "Instagram", "Meta", "rented"),
    FakePlatform("facebook", "Facebook", "Meta", "rented"),
    FakePlatform("x", "X", "X Corp", "rented"),
    FakePlatform("email", "Email list", "self", "owned"),
])


@dataclass(frozen=True)
class World:
    owner: User
    editor: User
    viewer: User
    outsider: User
    instagram_id: int
    newsletter_id: int
    other_channel_id: int
    post_id: int


_hash_once = functools.lru_cache(maxsize=4)(hash_password)


@pytest.fixture(autouse=True)
def _hash_each_password_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 takes ~0.2 s a hash and every user here has the same password, so hash it once
    per test run. Logins still run real argon2 verification against a real hash."""
    monkeypatch.setattr("sidestep.store.accounts.hash_password", _hash_once)


@pytest.fixture
async def world(runtime: Runtime, clock: FrozenClock) -> World:
    """Workspaces `acme` (owner, editor, viewer; two channels, one post) and `globex`
    (owner only), and an outsider who belongs to neither."""
    now = clock.now()
    async with runtime.db.session() as s:
        accounts = Accounts(s)
        acme = await accounts.create_workspace(slug="acme", name="Acme Coffee", at=now)
        globex = await accounts.create_workspace(slug="globex", name="Globex", at=now)
        users = {}
        for name in ("owner", "editor", "viewer", "outsider"):
            users[name] = await accounts.create_user(
                email=f"{name}@example.org", password=PASSWORD, display_name=name.title(), at=now
            )
        for name, role in (("owner", Role.OWNER), ("editor", Role.EDITOR),
                           ("viewer", Role.VIEWER)):
            await accounts.add_member(workspace_id=acme.id, user_id=users[name].id, role=role,
                                      at=now)
        await accounts.add_member(workspace_id=globex.id, user_id=users["owner"].id,
                                  role=Role.OWNER, at=now)
        channels = Channels(s, workspace_id=acme.id, vault=runtime.vault)
        instagram = await channels.add(
            platform="instagram", name="Instagram main", handle="@acme",
            credentials={"access_token": SECRET}, audience_size=12500, at=now,
        )
        newsletter = await channels.add(platform="email", name="Newsletter", audience_size=800,
                                        at=now)
        other = await Channels(s, workspace_id=globex.id, vault=runtime.vault).add(
            platform="x", name="Globex on X", at=now
        )
        post = await Posts(s, workspace_id=acme.id).create(
            NewPost(body="Opening hours change on Monday", due_at=now + timedelta(hours=2),
                    channel_ids=[instagram.id, newsletter.id]),
            created_by=users["editor"].id, at=now,
        )
    return World(
        owner=users["owner"], editor=users["editor"], viewer=users["viewer"],
        outsider=users["outsider"], instagram_id=instagram.id, newsletter_id=newsletter.id,
        other_channel_id=other.id, post_id=post.id,
    )


@pytest.fixture
def app(runtime: Runtime) -> FastAPI:
    return create_app(runtime, catalogue=CATALOGUE)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        yield c


async def sign_in(client: httpx.AsyncClient, runtime: Runtime, user: User) -> str:
    """Open a session for `user` as a successful login would; return its CSRF token."""
    async with runtime.db.session() as s:
        token, row = await Accounts(s).start_session(
            user_id=user.id, at=runtime.clock.now(),
            max_age_s=runtime.settings.session_max_age_s,
        )
    # http.cookiejar files cookies of a dotless host under "<host>.local"; use the same key so
    # that a Set-Cookie from the app replaces this one instead of sitting beside it.
    client.cookies.set(SESSION_COOKIE, token, domain=f"{client.base_url.host}.local")
    return row.csrf_token


async def api_token(runtime: Runtime, user: User) -> str:
    async with runtime.db.session() as s:
        return await Accounts(s).issue_api_token(user_id=user.id, name="test",
                                                 at=runtime.clock.now())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


_CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = _CSRF_INPUT.search(html)
    assert match, "no csrf_token field on the page"
    return match.group(1)
