"""Fixtures for the audience's web tests: the real app on a migrated SQLite database, the
SMTP settings pointing at the suite's aiosmtpd server, and a workspace with two lists."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sidestep.clock import FrozenClock
from sidestep.config import Settings
from sidestep.email import links
from sidestep.runtime import Runtime
from sidestep.store.accounts import Accounts
from sidestep.store.subscribers import MailingLists
from sidestep.web.app import create_app

BASE_URL = "https://news.example"


@dataclass(frozen=True)
class Audience:
    acme: int
    globex: int
    news: int  # acme's double opt-in list
    deals: int  # acme's single opt-in list
    globex_list: int


@pytest.fixture
def settings(tmp_path: Path, smtp_server) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(data_dir=tmp_path / "data", base_url=BASE_URL, smtp_host=smtp_server.host,
                    smtp_port=smtp_server.port, mail_from="Acme <news@acme.example>")


@pytest.fixture
async def audience(runtime: Runtime, clock: FrozenClock) -> Audience:
    now = clock.now()
    async with runtime.db.session() as s:
        accounts = Accounts(s)
        acme = await accounts.create_workspace(slug="acme", name="Acme Coffee", at=now)
        globex = await accounts.create_workspace(slug="globex", name="Globex", at=now)
        news = await MailingLists(s, acme.id).add(
            "News", double_opt_in=True, consent_text="Yes, send me Acme's news.", at=now)
        deals = await MailingLists(s, acme.id).add("Deals", double_opt_in=False, at=now)
        other = await MailingLists(s, globex.id).add("News", at=now)
    return Audience(acme.id, globex.id, news.id, deals.id, other.id)


@pytest.fixture
async def client(runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime, catalogue=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=BASE_URL) as c:
        yield c


def secret_of(runtime: Runtime) -> bytes:
    return links.links_secret(runtime.settings)
