from __future__ import annotations

import email
import email.policy

from cryptography.fernet import Fernet

from sidestep.clock import FrozenClock
from sidestep.domain.states import PlatformStatus
from sidestep.email.crisis import channels_up, crisis_campaign
from sidestep.store.campaigns import Campaigns
from sidestep.store.channels import Channels
from sidestep.store.db import Database
from sidestep.store.health import Health
from sidestep.vault import Vault

from .campaign_helpers import audience, pool, sender
from .conftest import SmtpServerFixture


async def setup(db: Database, clock: FrozenClock) -> tuple[int, int]:
    ws, list_id = await audience(db, clock, ["fan@example.org"])
    now = clock.now()
    vault = Vault(Fernet.generate_key())
    async with db.session() as session:
        channels = Channels(session, workspace_id=ws, vault=vault)
        await channels.add(platform="instagram", name="IG", handle="@brand", at=now)
        await channels.add(platform="telegram", name="TG", handle="t.me/<b>brand</b>", at=now)
        await channels.add(platform="bluesky", name="BS", handle="@brand.bsky", at=now)
        await channels.add(platform="site", name="Our site", handle="brand.example", at=now)
        paused = await channels.add(platform="mastodon", name="M", handle="@b", at=now)
        paused.status = "paused"
        health = Health(session)
        await health.set_state(platform="instagram", status=PlatformStatus.DOWN, features=[],
                               reason="outage", at=now)
        await health.set_state(platform="telegram", status=PlatformStatus.UP, features=[],
                               reason="", at=now)
        await health.set_state(platform="bluesky", status=PlatformStatus.DEGRADED, features=[],
                               reason="slow", at=now)
    return ws, list_id


async def test_it_lists_only_channels_that_are_up(db: Database, clock: FrozenClock) -> None:
    ws, _ = await setup(db, clock)
    async with db.session() as session:
        up = await channels_up(session, ws)
    assert [(c.name, c.monitored) for c in up] == [("Our site", False), ("TG", True)]


async def test_the_crisis_email_goes_out_with_the_channels_escaped(
        db: Database, clock: FrozenClock, smtp_server: SmtpServerFixture) -> None:
    ws, list_id = await setup(db, clock)
    async with db.session() as session:
        new = await crisis_campaign(session, ws, down_platform="instagram", from_name="Brand",
                                    from_email="news@brand.example", list_id=list_id,
                                    note="{{ 7*7 }} since noon")
        cid = (await Campaigns(session, ws).create(new, at=clock.now())).id
    mailer = pool(smtp_server.port)
    progress = await sender(db, clock, ws, mailer).run(cid)
    await mailer.close()
    assert progress.counts == {"sent": 1}
    msg = email.message_from_bytes(smtp_server.recorder.messages[0].data,
                                   policy=email.policy.default)
    assert "Instagram" in msg["Subject"] and "is down" in msg["Subject"]
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "t.me/<b>brand</b>" in text and "t.me/&lt;b&gt;brand&lt;/b&gt;" in html
    assert "{{ 7*7 }} since noon" in text  # user text is data, never template source
    assert "@brand.bsky" not in text and "@brand\n" not in text
    assert "brand.example" in text
