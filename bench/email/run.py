"""Campaign throughput into Postfix's smtp-sink on loopback, against the two ceilings.

    .venv/bin/python -m bench.email.run [--messages 100000] [--connections 10]

One run measures, in order:

1. the transport ceiling: `smtp-source -s C -d -m N -l SIZE` into the same sink (C parallel
   sessions, each reused for many messages, the body size of our messages);
2. the signing ceiling: `openssl speed -seconds 3 rsa2048` sign/s times the signing
   processes used;
3. a full campaign unsigned: N subscribers in a fresh SQLite database, snapshot, claim,
   suppression check, render (Jinja2 sandbox), MIME, SMTP pool with C connections, results;
4. the same campaign signed with RSA-2048 in a pool of worker processes.

Writes `bench/email/RESULTS.md` and prints it. Peak memory is the main process's maximum
RSS (the signing workers' is reported apart).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import socket
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert

from sidestep.clock import SystemClock
from sidestep.email.campaign import CampaignSender, SendSettings
from sidestep.email.dkim import DkimAlgorithm, DkimKey, SigningPool, generate_key
from sidestep.email.smtp_pool import PoolPolicy, SmtpPool, SmtpServer
from sidestep.store.accounts import Accounts
from sidestep.store.campaigns import Campaigns, NewCampaign
from sidestep.store.db import Database
from sidestep.store.tables_email import ListMembership, MailingList, Subscriber

HERE = Path(__file__).parent
HTML = ("<html><body><h1>Hello {{ subscriber.name }}</h1>"
        + "<p>Our platform account is down; here is where to find us meanwhile.</p>" * 12
        + '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>')
TEXT = ("Hello {{ subscriber.name }}\n\n"
        + "Our platform account is down; here is where to find us meanwhile.\n" * 12
        + "\nUnsubscribe: {{ unsubscribe_url }}\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sink() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603 - fixed argv
        ["/usr/sbin/smtp-sink", "-u", "nobody", f"127.0.0.1:{port}", "1024"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("smtp-sink did not start")


def transport_ceiling(port: int, *, messages: int, sessions: int, size: int) -> float:
    started = time.perf_counter()
    subprocess.run([  # noqa: S603 - fixed argv
                    "/usr/sbin/smtp-source", "-s", str(sessions), "-d", "-m", str(messages),
                    "-l", str(size), "-f", "bench@brand.example", "-t", "to@example.org",
                    f"127.0.0.1:{port}"], check=True, stdout=subprocess.DEVNULL)
    return messages / (time.perf_counter() - started)


def openssl_rsa2048_sign_per_s() -> float:
    out = subprocess.run(  # noqa: S603 - fixed argv
        ["openssl", "speed", "-seconds", "3", "rsa2048"],  # noqa: S607
        check=True, capture_output=True, text=True).stdout
    match = re.search(r"^rsa 2048 bits\s+\S+s\s+\S+s\s+([\d.]+)", out, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"cannot read openssl speed output:\n{out}")
    return float(match.group(1))


async def fresh_campaign(url: str, count: int) -> tuple[Database, int, int]:
    db = Database(url)
    await db.migrate()
    now = datetime.now(UTC)
    async with db.session() as session:
        workspace = await Accounts(session).create_workspace(slug="bench", name="b", at=now)
        mailing_list = MailingList(workspace_id=workspace.id, name="all", double_opt_in=False,
                                   consent_text="", created_at=now)
        session.add(mailing_list)
        await session.flush()
        for start in range(0, count, 5000):
            rows = [{"workspace_id": workspace.id, "email": f"user{i}@example.org",
                     "name": f"Person {i}", "status": "subscribed", "fields": {}, "tags": [],
                     "soft_bounces": 0, "created_at": now, "updated_at": now}
                    for i in range(start, min(count, start + 5000))]
            ids = (await session.scalars(insert(Subscriber).returning(Subscriber.id),
                                         rows)).all()
            await session.execute(insert(ListMembership), [
                {"list_id": mailing_list.id, "subscriber_id": sid, "status": "subscribed",
                 "changed_at": now} for sid in ids])
        campaign = await Campaigns(session, workspace.id).create(NewCampaign(
            name="bench", subject_tpl="News for {{ subscriber.name }}", html_tpl=HTML,
            text_tpl=TEXT, from_name="Brand", from_email="news@brand.example",
            list_id=mailing_list.id, error_budget=1000), at=now)
        return db, workspace.id, campaign.id


async def campaign_run(url: str, port: int, *, count: int, connections: int,
                       signing: SigningPool | None, batch: int) -> tuple[float, dict[str, int]]:
    db, workspace_id, campaign_id = await fresh_campaign(url, count)
    mailer = SmtpPool([SmtpServer("127.0.0.1", port, tls="none")],
                      policy=PoolPolicy(connections=connections, timeout_s=30,
                                        messages_per_connection=100_000))
    sender = CampaignSender(
        db, workspace_id=workspace_id, mailer=mailer, clock=SystemClock(),
        signer=signing.sign_batch if signing else None,
        settings=SendSettings(base_url="https://brand.example", links_secret=b"k" * 32,
                              batch_size=batch, prefetch=True))
    started = time.perf_counter()
    progress = await sender.run(campaign_id)
    elapsed = time.perf_counter() - started
    await mailer.close()
    await db.close()
    return count / elapsed, progress.counts


def peak_rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--sign-processes", type=int, default=2)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    n, c = args.messages, args.connections
    sink, port = start_sink()
    try:
        transport = transport_ceiling(port, messages=n, sessions=c, size=2600)
        per_core = openssl_rsa2048_sign_per_s()
        signing_ceiling = per_core * args.sign_processes
        with tempfile.TemporaryDirectory() as tmp:
            unsigned, counts_u = await campaign_run(
                f"sqlite+aiosqlite:///{tmp}/u.db", port, count=n, connections=c, signing=None,
                batch=args.batch)
            rss_unsigned = peak_rss_mb(resource.RUSAGE_SELF)
            key = DkimKey("brand.example", "bench", DkimAlgorithm.RSA,
                          generate_key(DkimAlgorithm.RSA))
            pool = SigningPool([key], processes=args.sign_processes)
            try:
                signed, counts_s = await campaign_run(
                    f"sqlite+aiosqlite:///{tmp}/s.db", port, count=n, connections=c,
                    signing=pool, batch=args.batch)
            finally:
                pool.close()
    finally:
        sink.kill()
        sink.wait()
    lower = min(transport, signing_ceiling)
    report = f"""# bench/email results

Run: `.venv/bin/python -m bench.email.run --messages {n} --connections {c} \
--sign-processes {args.sign_processes} --batch {args.batch}` on {os.cpu_count()} cores \
(shared with other work), {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.

| measure | messages/s | ratio |
|---|---:|---:|
| transport ceiling: smtp-source, {c} sessions reused (`-d`), 2,600-byte bodies \
| {transport:,.0f} | |
| signing ceiling: openssl rsa2048 {per_core:,.0f} sign/s × {args.sign_processes} processes \
| {signing_ceiling:,.0f} | |
| campaign unsigned (to transport ceiling; aim ≥ 0.5) | {unsigned:,.0f} | \
{unsigned / transport:.2f} |
| campaign signed RSA-2048 (to the lower ceiling, {lower:,.0f}; aim ≥ 0.7) | {signed:,.0f} | \
{signed / lower:.2f} |

Outcomes: unsigned {counts_u}; signed {counts_s}.

Peak memory (max RSS): main process {rss_unsigned:.0f} MB after the unsigned run, \
{peak_rss_mb(resource.RUSAGE_SELF):.0f} MB after both; the largest child \
(signing worker or smtp-source) {peak_rss_mb(resource.RUSAGE_CHILDREN):.0f} MB.

The campaign figures include everything per recipient: claim in SQLite, suppression and
subscription re-check, Jinja2 sandbox rendering, MIME, signing, SMTP, and writing the result.
"""
    (HERE / "RESULTS.md").write_text(report)
    print(report)


if __name__ == "__main__":
    asyncio.run(main())
