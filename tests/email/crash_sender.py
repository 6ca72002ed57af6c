"""Run as a separate process by test_campaign_crash.py, which kills it with SIGKILL mid-send."""

from __future__ import annotations

import asyncio
import sys

from sidestep.clock import SystemClock
from sidestep.email.campaign import CampaignSender, SendSettings
from sidestep.email.smtp_pool import PoolPolicy, SmtpPool, SmtpServer
from sidestep.store.db import Database


async def main(url: str, port: int, workspace_id: int, campaign_id: int) -> None:
    db = Database(url)
    mailer = SmtpPool([SmtpServer("127.0.0.1", port, tls="none")],
                      policy=PoolPolicy(connections=3, timeout_s=60))
    sender = CampaignSender(db, workspace_id=workspace_id, mailer=mailer, clock=SystemClock(),
                            owner="doomed", settings=SendSettings(
                                base_url="https://brand.example", links_secret=b"s" * 32,
                                batch_size=6, lease_s=30))
    await sender.run(campaign_id)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
