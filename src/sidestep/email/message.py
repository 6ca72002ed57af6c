"""Outgoing email as bytes: multipart/alternative (text + HTML), UTF-8, ready to sign and send.

The MIME is written by hand rather than through `email.message.EmailMessage` because the
structure never varies and a campaign builds it once per recipient (the stdlib builder is
several times slower). Every header value passes `_checked`, which refuses CR, LF and the
other control characters, so a display name or subject can never add a header
(`HeaderInjection`). Non-ASCII display names and subjects are RFC 2047 encoded and folded;
non-ASCII domains are sent as IDNA A-labels; a non-ASCII local part would need SMTPUTF8,
which Sidestep does not send, so it is refused with `AddressError`.

Each message carries RFC 8058 one-click unsubscribe (`List-Unsubscribe` with the https URL
and `List-Unsubscribe-Post: List-Unsubscribe=One-Click`) and `X-Sidestep-Recipient`, an
HMAC-signed campaign/recipient reference that bounces and complaints are matched by
(`recipient_tag`, `read_recipient_tag`).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

__all__ = [
    "AddressError",
    "HeaderInjection",
    "MessageError",
    "OutgoingMessage",
    "RecipientRef",
    "build_message",
    "format_address",
    "normalize_address",
    "read_recipient_tag",
    "recipient_tag",
]

TAG_HEADER = "X-Sidestep-Recipient"
ONE_CLICK = "List-Unsubscribe=One-Click"
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_LOCAL_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")
_DOMAIN_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_SPECIALS = re.compile(r'[()<>\[\]:;@\\,."]')


class MessageError(ValueError):
    """The message cannot be built from what was given; the text says which field and why."""


class HeaderInjection(MessageError):
    """A header value held CR, LF or another control character."""


class AddressError(MessageError):
    """An email address is not one Sidestep can send to."""


def _checked(field: str, value: str) -> str:
    if _CONTROL.search(value):
        raise HeaderInjection(
            f"the {field} contains a line break or control character, which could add a "
            "header; remove it"
        )
    return value


def normalize_address(address: str) -> str:
    """Return `address` as sent: local part kept, domain lower-cased and IDNA-encoded.

    Raises `AddressError` for anything that is not a plain `local@domain`.
    """
    _checked("address", address)
    address = address.strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or len(address) > 320:
        raise AddressError(f"{address!r} is not an email address")
    if not local.isascii():
        raise AddressError(
            f"{address!r} has a non-ASCII local part, which needs SMTPUTF8; Sidestep does "
            "not send SMTPUTF8 mail"
        )
    if not _LOCAL_ATOM.match(local) or local.startswith(".") or local.endswith(".") \
            or ".." in local or len(local) > 64:
        raise AddressError(f"{address!r} has a local part Sidestep cannot send to")
    try:
        ascii_domain = (domain if domain.isascii() else domain.encode("idna").decode()).lower()
    except UnicodeError as exc:
        raise AddressError(f"{address!r} has a domain that is not a valid name") from exc
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL.match(label) for label in labels):
        raise AddressError(f"{address!r} has a domain that is not a valid name")
    return f"{local}@{ascii_domain}"


def _encode_words(value: str, *, header_name: str) -> str:
    """A header value as ASCII: kept (folded at spaces) if it is, else RFC 2047 B-words.

    Written here because `email.header.Header` is slow (quadratic in the value's length)
    and a campaign encodes a subject per recipient.
    """
    if value.isascii():
        return _fold_ascii(value, first=len(header_name) + 2)
    words = []
    chunk = ""
    for char in value:
        if len((chunk + char).encode()) > 42:  # 42 bytes -> 56 base64 chars -> 68 per word
            words.append(chunk)
            chunk = ""
        chunk += char
    words.append(chunk)
    return "\r\n ".join(
        f"=?utf-8?b?{base64.b64encode(w.encode()).decode()}?=" for w in words if w)


def _fold_ascii(value: str, *, first: int) -> str:
    lines: list[str] = []
    line = ""
    width = first
    for word in value.split(" "):
        if line and width + len(line) + 1 + len(word) > 76:
            lines.append(line)
            line, width = word, 1
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "\r\n ".join(lines)


@functools.lru_cache(maxsize=4096)
def format_address(name: str, address: str) -> str:
    """`Name <addr>` for a header, the name quoted or RFC 2047 encoded as needed."""
    name = _checked("display name", name).strip()
    address = normalize_address(address)
    if not name:
        return address
    if not name.isascii():
        return f"{_encode_words(name, header_name='To')} <{address}>"
    if _SPECIALS.search(name):
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}" <{address}>'
    return f"{name} <{address}>"


@dataclass(frozen=True, slots=True)
class RecipientRef:
    """Which campaign recipient row a message (and so its bounce) belongs to."""

    workspace_id: int
    campaign_id: int
    recipient_id: int


def recipient_tag(secret: bytes, ref: RecipientRef) -> str:
    """`w.c.r.mac`: the ids and 10 bytes of HMAC-SHA256, so a forged report cannot name rows."""
    body = f"{ref.workspace_id}.{ref.campaign_id}.{ref.recipient_id}"
    mac = hmac.new(secret, body.encode(), hashlib.sha256).digest()[:10]
    return f"{body}.{base64.b32encode(mac).decode().lower()}"


def read_recipient_tag(secret: bytes, tag: str) -> RecipientRef | None:
    """The reference in a tag made with `secret`, or None if it is malformed or forged."""
    parts = tag.strip().split(".")
    if len(parts) != 4 or not all(p.isdigit() for p in parts[:3]):
        return None
    ref = RecipientRef(int(parts[0]), int(parts[1]), int(parts[2]))
    return ref if hmac.compare_digest(recipient_tag(secret, ref), tag.strip()) else None


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One personalised message, headers and parts already chosen."""

    from_name: str
    from_address: str
    to_name: str
    to_address: str
    subject: str
    text: str
    html: str | None
    unsubscribe_url: str
    date: datetime
    reply_to: str | None = None
    tag: str | None = None
    message_id: str | None = None


def _qp(text: str) -> bytes:
    body = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
    if not body.endswith("\r\n"):
        body += "\r\n"
    return binascii.b2a_qp(body.encode("utf-8"), istext=True)


def new_message_id(domain: str) -> str:
    return f"<{secrets.token_hex(12)}@{domain}>"


def build_message(message: OutgoingMessage) -> tuple[bytes, str]:
    """Return the message as CRLF bytes and its Message-ID.

    Raises `HeaderInjection` for a control character in any header value, `AddressError`
    for an address that cannot be sent to, and `MessageError` for an unsubscribe URL that
    is not https (RFC 8058 requires https for one-click).
    """
    url = _checked("unsubscribe URL", message.unsubscribe_url)
    if not url.startswith("https://") or any(c in url for c in "<> "):
        raise MessageError("the unsubscribe URL must be an https:// URL without spaces or <>")
    subject = _checked("subject", message.subject)
    sender = format_address(message.from_name, message.from_address)
    domain = sender.rsplit("@", 1)[1].rstrip(">")
    message_id = _checked("Message-ID", message.message_id or new_message_id(domain))
    headers = [
        f"From: {sender}",
        f"To: {format_address(message.to_name, message.to_address)}",
        f"Subject: {_encode_words(subject, header_name='Subject')}",
        f"Date: {format_datetime(message.date)}",
        f"Message-ID: {message_id}",
        "MIME-Version: 1.0",
        f"List-Unsubscribe: <{url}>",
        f"List-Unsubscribe-Post: {ONE_CLICK}",
    ]
    if message.reply_to:
        headers.append(f"Reply-To: {normalize_address(message.reply_to)}")
    if message.tag:
        headers.append(f"{TAG_HEADER}: {_checked('recipient tag', message.tag)}")
    text_part = (b'Content-Type: text/plain; charset="utf-8"\r\n'
                 b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + _qp(message.text))
    if message.html is None:
        head = "\r\n".join(headers) + "\r\n"
        return head.encode("ascii") + text_part, message_id
    boundary = f"=_sidestep_{secrets.token_hex(12)}"
    headers.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
    marker = f"--{boundary}\r\n".encode()
    html_part = (b'Content-Type: text/html; charset="utf-8"\r\n'
                 b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + _qp(message.html))
    body = b"".join([
        marker, text_part, marker, html_part, f"--{boundary}--\r\n".encode(),
    ])
    head = "\r\n".join(headers) + "\r\n\r\n"
    return head.encode("ascii") + body, message_id
