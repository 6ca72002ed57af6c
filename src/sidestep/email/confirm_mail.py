"""The double opt-in confirmation mail: one transactional message, sent straight through the
SMTP server in the settings with aiosmtplib (campaigns go through the sending pool instead).

`send_confirmation` raises `MailNotSent` with a reason a person can read when the server
cannot be reached or refuses the message; nothing else escapes.
"""

from __future__ import annotations

from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import aiosmtplib

from sidestep.config import Settings
from sidestep.email.consent import PendingConfirmation
from sidestep.email.templates import one_line


class MailNotSent(RuntimeError):
    """The confirmation mail could not be handed to the SMTP server."""


def from_address(settings: Settings) -> str:
    if settings.mail_from:
        return settings.mail_from
    host = settings.public_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return f"no-reply@{host or 'localhost'}"


def build_confirmation(
    pending: PendingConfirmation, *, sender: str, workspace_name: str, now_date: str = ""
) -> EmailMessage:
    """The message; names and list titles pass through `one_line`, so no CR/LF reaches a
    header, and addresses go through `Address` objects, never string concatenation."""
    message = EmailMessage()
    local, _, domain = pending.to.rpartition("@")
    message["From"] = sender
    message["To"] = Address(display_name=one_line(pending.name), username=local, domain=domain)
    message["Subject"] = one_line(f"Please confirm: {pending.list_name} ({workspace_name})")
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2].strip("> ") or None)
    message["Auto-Submitted"] = "auto-generated"
    if now_date:
        message["Date"] = now_date
    message.set_content(
        f"Someone, hopefully you, asked to receive {one_line(pending.list_name)} from "
        f"{one_line(workspace_name)} at this address.\n\n"
        f"To confirm, open this link and press the button:\n\n{pending.url}\n\n"
        "If you did not ask for this, ignore this mail: you will not hear from us again.\n"
    )
    return message


async def send_confirmation(
    settings: Settings, pending: PendingConfirmation, *, workspace_name: str,
    now: datetime | None = None,
) -> None:
    """Send the confirmation for `pending`; raise `MailNotSent` on any SMTP failure."""
    date = format_datetime(now) if now is not None else ""
    message = build_confirmation(pending, sender=from_address(settings),
                                 workspace_name=workspace_name, now_date=date)
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    try:
        await aiosmtplib.send(
            message, hostname=settings.smtp_host, port=settings.smtp_port,
            username=settings.smtp_username or None, password=password,
            start_tls=settings.smtp_starttls, timeout=settings.smtp_timeout_s,
        )
    except aiosmtplib.SMTPException as exc:
        raise MailNotSent(f"the mail server refused or failed: {exc}") from exc
    except OSError as exc:
        raise MailNotSent(f"the mail server at {settings.smtp_host}:{settings.smtp_port} "
                          f"cannot be reached: {exc}") from exc
