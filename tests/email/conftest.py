"""Shared fixtures for the email tests: a real SMTP server (aiosmtpd) in the test's loop.

`smtp_server` records every accepted message and can be told, per recipient, to answer RCPT
or DATA with a given reply (4xx, 5xx, 421) a number of times, or to stall.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP as SMTPProtocol


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


@dataclass
class MailRecorder:
    """An aiosmtpd handler: accepts mail, or answers what the test scripted."""

    messages: list[Received] = field(default_factory=list)
    rcpt_replies: dict[str, list[str]] = field(default_factory=dict)
    data_replies: dict[str, list[str]] = field(default_factory=dict)
    stall_rcpt_s: float = 0.0
    stall_data_s: float = 0.0
    sessions: int = 0

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        scripted = self.rcpt_replies.get(address)
        if scripted:
            return scripted.pop(0)
        if self.stall_rcpt_s:
            await asyncio.sleep(self.stall_rcpt_s)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for address in envelope.rcpt_tos:
            scripted = self.data_replies.get(address)
            if scripted:
                return scripted.pop(0)
        if self.stall_data_s:
            await asyncio.sleep(self.stall_data_s)
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      bytes(envelope.original_content)))
        return "250 2.0.0 Message accepted"

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.rcpt_tos]


@dataclass
class SmtpServerFixture:
    host: str
    port: int
    recorder: MailRecorder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def smtp_server() -> AsyncIterator[SmtpServerFixture]:
    recorder = MailRecorder()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTPProtocol(recorder, hostname="mx.test", decode_data=False,
                             data_size_limit=10 * 1024 * 1024),
        "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield SmtpServerFixture("127.0.0.1", port, recorder)
    server.close()


@dataclass(frozen=True)
class TwoWorkspaces:
    acme: int
    globex: int


@pytest.fixture
async def workspaces(db: Any, clock: Any) -> TwoWorkspaces:
    """Workspaces `acme` and `globex` in the `db` fixture's database, for isolation tests."""
    from sidestep.store.accounts import Accounts

    async with db.session() as s:
        accounts = Accounts(s)
        acme = await accounts.create_workspace(slug="acme", name="Acme Coffee", at=clock.now())
        globex = await accounts.create_workspace(slug="globex", name="Globex", at=clock.now())
    return TwoWorkspaces(acme=acme.id, globex=globex.id)
