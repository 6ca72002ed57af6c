"""WhatsApp Business Cloud API: a post goes out as an approved template message to each
opted-in contact of the channel's list (outside the 24-hour service window only templates
may be sent; https://developers.facebook.com/docs/whatsapp/cloud-api/guides/send-message-templates).

Endpoints (Graph v23.0 on graph.facebook.com; spec `business-messaging-api_v23.0.yaml`):

- `POST /{phone-number-id}/media` — multipart `file`, `type`, `messaging_product`; the id of
  the post's one image, video or PDF, sent as the template's header parameter
  (https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media);
- `POST /{phone-number-id}/messages` — `type: template`, `template.name`, `template.language`
  `{policy: deterministic, code}`, and the post's text as the body's one variable `{{1}}`
  (whitespace runs become single spaces: template variables take no new lines, tabs or more
  than four spaces in a row); one request per recipient
  (https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages);
- `GET /{phone-number-id}?fields=id,display_phone_number,verified_name` checks credentials.
  Sent messages cannot be recalled: `delete` is Rejected.

Idempotency under retry. WhatsApp has no idempotency key, so exactly-once per recipient is
ours to keep. A publish is one pass over the recipients, in order, one attempt each:

- each message carries `biz_opaque_callback_data` = `<broadcast id>:<recipient key>`, both
  derived from the idempotency key (the recipient key also from the number), so the delivery
  status webhooks tie every message back to its broadcast and recipient;
- the outcome of each recipient is written to a `SendLedger` as soon as it is known: sent
  (with the wamid), maybe (the answer was lost) or refused (for that recipient alone: not on
  WhatsApp, opted out...). A retry with the same key skips every recipient the ledger has,
  so recipient 3 of 10 failing never resends 1 and 2, and a "maybe" is never sent again;
- the first error that is not about one recipient stops the pass and is raised as its class,
  with the count sent so far in its message; the rest go out on the retry;
- at the end: any "maybe" makes it Unknown(maybe_sent=True) (only a person can tell); nobody
  reached makes it Rejected; otherwise Published, whose external id is the broadcast id.

The default ledger lives in this process (`PROCESS_LEDGER`): retries in the same process
resume where they stopped. Across a crash or between machines a durable ledger must be
passed to the adapter (`ledger=`); `can_find` stays False because WhatsApp itself cannot say
which messages went out.

Errors (https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes): the
Graph table plus `ERRORS` below; 401 token errors (0, 190), 429 throttling (4, 80007, 130429,
131048, 131056), template errors (1320xx) Rejected, per-recipient refusals (131026, 131021,
131030, 131049, 131050, 130472, 130497) skip that recipient.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Protocol

import httpx
from pydantic import BaseModel

from sidestep.catalogue import Platform
from sidestep.channels.adapters._graph import (
    Action,
    GraphApi,
    RecipientRefused,
    Rule,
    need,
    node,
    refuse_invalid,
    table_with,
)
from sidestep.channels.base import AccountInfo, Adapter, Published
from sidestep.channels.errors import AuthExpired, PublishError, Rejected, Unknown, capped
from sidestep.clock import Clock
from sidestep.domain.content import Content, MediaItem, MediaKind, Problem
from sidestep.vault import Credentials

log = logging.getLogger(__name__)

_ACT = "a person must resolve it in WhatsApp Manager"
_TEMPLATE = "the template cannot carry this post"
ERRORS = table_with({
    (0, None): Rule(Action.AUTH, "the access token is no longer valid; reconnect the channel"),
    (33, None): Rule(Action.AUTH, "the business phone number has been deleted"),
    (131005, None): Rule(Action.AUTH, "access denied; reconnect the channel"),
    (131037, None): Rule(Action.AUTH, f"the display name needs approval; {_ACT}"),
    (131042, None): Rule(Action.AUTH, f"the account has a payment issue; {_ACT}"),
    (133010, None): Rule(Action.AUTH, "the business phone number is not registered"),
    (80007, None): Rule(Action.RATE_LIMITED, "the WhatsApp Business Account hit its rate limit"),
    (130429, None): Rule(Action.RATE_LIMITED, "the phone number's message throughput is used"),
    (131048, None): Rule(Action.RATE_LIMITED, "WhatsApp limits this number after spam reports",
                         wait_s=3600.0),
    (131056, None): Rule(Action.RATE_LIMITED, "too many messages to one recipient"),
    (133016, None): Rule(Action.RATE_LIMITED, "too many registration attempts"),
    (131000, None): Rule(Action.TRANSIENT, "WhatsApp had an unknown error"),
    (131052, None): Rule(Action.TRANSIENT, "WhatsApp could not download the media"),
    (131053, None): Rule(Action.TRANSIENT, "WhatsApp could not process the uploaded media"),
    (131016, None): Rule(Action.OUTAGE, "the WhatsApp service is unavailable"),
    (131057, None): Rule(Action.OUTAGE, "the business account is in maintenance mode"),
    (133004, None): Rule(Action.OUTAGE, "the WhatsApp server is temporarily unavailable"),
    (131031, None): Rule(Action.REJECTED, f"the business account is locked; {_ACT}"),
    (131008, None): Rule(Action.REJECTED, f"{_TEMPLATE}: a required value is missing"),
    (131051, None): Rule(Action.REJECTED, "WhatsApp does not take this kind of message"),
    (132000, None): Rule(Action.REJECTED, "the template expects a different number of"
                         " variables; Sidestep fills one body variable with the post's text"),
    (132001, None): Rule(Action.REJECTED, "the template does not exist in that language or is"
                         " not approved; check the channel's template settings"),
    (132005, None): Rule(Action.REJECTED, f"{_TEMPLATE}: the filled-in text is too long"),
    (132007, None): Rule(Action.REJECTED, f"{_TEMPLATE}: its text breaks the format policy"),
    (132012, None): Rule(Action.REJECTED, f"{_TEMPLATE}: a variable has the wrong format"),
    (132015, None): Rule(Action.REJECTED, "the template is paused for low quality"),
    (132016, None): Rule(Action.REJECTED, "the template is disabled"),
    (132018, None): Rule(Action.REJECTED, f"{_TEMPLATE}: its text has characters a variable"
                         " may not hold"),
    **{(code, None): Rule(Action.RECIPIENT, why) for code, why in (
        (130472, "the recipient is part of a WhatsApp experiment"),
        (130497, "the business may not message users in the recipient's country"),
        (131021, "the recipient is the sending number itself"),
        (131026, "the message cannot be delivered to this recipient"),
        (131030, "the recipient is not on the test number's allowed list"),
        (131049, "WhatsApp chose not to deliver it to keep engagement healthy"),
        (131050, "the recipient stopped marketing messages"))},
})
E164 = re.compile(r"^\+[1-9]\d{7,14}$")
VARIABLE_MAX_CHARS = 1024
HEADER_TYPES = {MediaKind.IMAGE: frozenset({"image/jpeg", "image/png"}),
                MediaKind.VIDEO: frozenset({"video/mp4", "video/3gpp"}),
                MediaKind.DOCUMENT: frozenset({"application/pdf"})}


class Outcome(StrEnum):
    SENT = "sent"
    MAYBE = "maybe"  # the answer was lost: it may have gone out; never sent again
    REFUSED = "refused"  # refused for this recipient alone


@dataclass(frozen=True, slots=True)
class RecipientResult:
    outcome: Outcome
    detail: str  # the wamid, or why


class SendLedger(Protocol):
    """Where per-recipient outcomes of broadcasts are kept between attempts."""

    def results(self, broadcast_id: str) -> Mapping[str, RecipientResult]:
        """Outcomes so far by recipient key ({} for a broadcast never attempted)."""
        ...

    def record(self, broadcast_id: str, recipient_key: str, result: RecipientResult) -> None:
        ...


class MemorySendLedger:
    """A `SendLedger` in this process's memory, keeping the latest `max_broadcasts`."""

    def __init__(self, max_broadcasts: int = 10_000) -> None:
        self._max = max_broadcasts
        self._broadcasts: OrderedDict[str, dict[str, RecipientResult]] = OrderedDict()

    def results(self, broadcast_id: str) -> Mapping[str, RecipientResult]:
        return dict(self._broadcasts.get(broadcast_id, {}))

    def record(self, broadcast_id: str, recipient_key: str, result: RecipientResult) -> None:
        self._broadcasts.setdefault(broadcast_id, {})[recipient_key] = result
        self._broadcasts.move_to_end(broadcast_id)
        while len(self._broadcasts) > self._max:
            self._broadcasts.popitem(last=False)


PROCESS_LEDGER = MemorySendLedger()


class _Sent(BaseModel):
    class _Message(BaseModel):
        id: str

    messages: list[_Message]


class _Created(BaseModel):
    id: str


class _PhoneNumber(BaseModel):
    id: str
    display_phone_number: str = ""
    verified_name: str = ""


class WhatsAppAdapter(Adapter):
    """Broadcasts a post as an approved template to the channel's opted-in contacts."""

    platform: ClassVar[str] = "whatsapp"
    credential_fields: ClassVar[tuple[str, ...]] = (
        "access_token", "phone_number_id", "template_name", "template_language", "recipients")
    default_timeout_s: ClassVar[float] = 30.0
    can_find: ClassVar[bool] = False

    def __init__(self, *, client: httpx.AsyncClient, clock: Clock | None = None,
                 entry: Platform | None = None, timeout_s: float | None = None,
                 poll_interval_s: float | None = None, ledger: SendLedger | None = None) -> None:
        super().__init__(client=client, clock=clock, entry=entry, timeout_s=timeout_s,
                         poll_interval_s=poll_interval_s)
        self.ledger: SendLedger = ledger if ledger is not None else PROCESS_LEDGER

    @property
    def api(self) -> GraphApi:
        return GraphApi(self.http, name=self.entry.name, base_url=self.entry.api_base_urls[0],
                        clock=self.clock, table=ERRORS)

    def platform_problems(self, content: Content) -> list[Problem]:
        problems: list[Problem] = []
        variable = _variable(content)
        if VARIABLE_MAX_CHARS < len(variable) <= self.entry.limits.text_max_chars:
            problems.append(Problem("too_long", f"WhatsApp template variables take at most"
                                    f" {VARIABLE_MAX_CHARS:,} characters; this text has"
                                    f" {len(variable):,}."))
        for item in content.media:
            allowed = HEADER_TYPES.get(item.kind)
            if allowed is None:
                problems.append(Problem("media_kind", f"WhatsApp templates take an image, a"
                                        f" video or a PDF, not {item.kind.value}"
                                        f" ({item.filename})."))
            elif item.mime_type.lower() not in allowed:
                problems.append(Problem("media_kind", f"WhatsApp does not take"
                                        f" {item.mime_type} files ({item.filename}) in a"
                                        " template."))
        if content.reply_to:
            problems.append(Problem("no_replies", "A WhatsApp broadcast cannot reply to an"
                                    " earlier post; send it on its own."))
        return problems

    async def publish(self, content: Content, credentials: Credentials, *,
                      idempotency_key: str) -> Published:
        """Send the template to every recipient not yet reached under this idempotency key.

        Returns Published with the broadcast id. Raises AuthExpired (settings, token, no
        valid number), Rejected (invalid content, template problems, nobody reachable),
        RateLimited, Transient, PlatformOutage, or Unknown(maybe_sent=True) when any
        recipient's answer was lost (now or on an earlier attempt). See the module docstring.
        """
        creds = need(credentials, self.credential_fields, self.entry.name)
        refuse_invalid(self, content)
        numbers = _recipients(creds["recipients"])
        broadcast = _digest(f"{creds['phone_number_id']}\n{idempotency_key}", "wa-", 24)
        keys = {number: _digest(f"{broadcast}\n{number}", "", 16) for number in numbers}
        done = {k: r for k, r in self.ledger.results(broadcast).items() if k in keys.values()}
        header: dict[str, Any] | None = None
        for number, key in keys.items():
            if key in done:
                continue
            if content.media and header is None:
                header = await self._header(content.media[0], creds)
            try:
                result = await self._send(creds, number, content, header, f"{broadcast}:{key}")
            except RecipientRefused as exc:
                result = RecipientResult(Outcome.REFUSED, exc.platform_code or "refused")
            except PublishError as exc:
                if isinstance(exc, Unknown) and exc.maybe_sent:
                    done[key] = RecipientResult(Outcome.MAYBE, str(exc))
                    self.ledger.record(broadcast, key, done[key])
                _add_progress(exc, done, len(numbers))
                raise
            self.ledger.record(broadcast, key, result)
            done[key] = result
        return self._outcome(broadcast, done, len(numbers))

    async def delete(self, external_id: str, credentials: Credentials) -> None:
        """Always Rejected: a WhatsApp message cannot be recalled through the API."""
        raise Rejected("WhatsApp messages cannot be recalled once sent.")

    async def check_credentials(self, credentials: Credentials) -> AccountInfo:
        """The business phone number the token sends from; AuthExpired if it fails."""
        creds = need(credentials, ("access_token", "phone_number_id"), self.entry.name)
        body = await self.api.call(
            "GET", node(creds["phone_number_id"]), token=creds["access_token"], changes=False,
            params={"fields": "id,display_phone_number,verified_name"})
        phone = self.api.parse(_PhoneNumber, body, changes=False)
        name = " ".join(p for p in (phone.verified_name, f"({phone.display_phone_number})"
                                    if phone.display_phone_number else "") if p)
        return AccountInfo(account_id=phone.id, name=name or phone.id)

    async def _header(self, item: MediaItem, creds: Mapping[str, str]) -> dict[str, Any]:
        """Upload the post's media once for every recipient; the template header for it."""
        # An uploaded file is invisible: a lost answer loses nothing but the upload.
        body = await self.api.call(
            "POST", f"{node(creds['phone_number_id'])}/media", token=creds["access_token"],
            changes=False, data={"messaging_product": "whatsapp", "type": item.mime_type},
            files={"file": (item.filename, item.data, item.mime_type)})
        media_id = self.api.parse(_Created, body, changes=False).id
        kind = item.kind.value
        media: dict[str, str] = {"id": media_id}
        if item.kind is MediaKind.DOCUMENT:
            media["filename"] = item.filename
        return {"type": "header", "parameters": [{"type": kind, kind: media}]}

    async def _send(self, creds: Mapping[str, str], number: str, content: Content,
                    header: dict[str, Any] | None, callback: str) -> RecipientResult:
        components: list[dict[str, Any]] = [header] if header else []
        variable = _variable(content)
        if variable:
            components.append({"type": "body",
                               "parameters": [{"type": "text", "text": variable}]})
        template: dict[str, Any] = {
            "name": creds["template_name"],
            "language": {"policy": "deterministic", "code": creds["template_language"]}}
        if components:
            template["components"] = components
        payload = {"messaging_product": "whatsapp", "recipient_type": "individual",
                   "to": number, "type": "template", "template": template,
                   "biz_opaque_callback_data": callback}
        body = await self.api.call("POST", f"{node(creds['phone_number_id'])}/messages",
                                   token=creds["access_token"], changes=True, json=payload)
        sent = self.api.parse(_Sent, body, changes=True)
        if not sent.messages:
            raise Unknown(f"{self.entry.name} accepted a message without its id",
                          maybe_sent=True)
        return RecipientResult(Outcome.SENT, sent.messages[0].id)

    def _outcome(self, broadcast: str, done: Mapping[str, RecipientResult],
                 total: int) -> Published:
        counts = {o: sum(r.outcome is o for r in done.values()) for o in Outcome}
        if counts[Outcome.REFUSED]:
            log.warning("whatsapp broadcast %s: %d of %d recipients refused", broadcast,
                        counts[Outcome.REFUSED], total)
        if counts[Outcome.MAYBE]:
            raise Unknown(f"{self.entry.name}: {_progress(done, total)}; Sidestep will not"
                          " send again to a recipient whose answer was lost", maybe_sent=True)
        if not counts[Outcome.SENT]:
            codes = ", ".join(sorted({r.detail for r in done.values()}))
            raise Rejected(capped(f"{self.entry.name}: none of the {total} recipients could"
                                  f" receive the message (WhatsApp codes {codes})"))
        return Published(external_id=broadcast)


def _recipients(raw: str) -> list[str]:
    """The distinct E.164 numbers of the list, in order; AuthExpired if none is valid."""
    numbers: list[str] = []
    for entry in raw.split(","):
        number = re.sub(r"[\s\-().]", "", entry)
        if number and E164.match(number) and number not in numbers:
            numbers.append(number)
    dropped = len([e for e in raw.split(",") if e.strip()]) - len(numbers)
    if dropped:
        log.warning("whatsapp recipient list: %d entries are not E.164 numbers or repeat one"
                    " (left out)", dropped)
    if not numbers:
        raise AuthExpired("the WhatsApp channel's recipient list holds no phone number in"
                          " E.164 form (+ and 8 to 15 digits); fix the channel's settings")
    return numbers


def _variable(content: Content) -> str:
    """The body variable: the text (and the link, unless the text holds it), on one line."""
    text = content.text
    if content.link and content.link not in text:
        text = f"{text} {content.link}"
    return " ".join(text.split())


def _digest(text: str, prefix: str, length: int) -> str:
    return prefix + hashlib.sha256(text.encode()).hexdigest()[:length]


def _progress(done: Mapping[str, RecipientResult], total: int) -> str:
    counts = {o: sum(r.outcome is o for r in done.values()) for o in Outcome}
    return (f"sent to {counts[Outcome.SENT]} of {total} recipients, {counts[Outcome.MAYBE]}"
            f" uncertain, {counts[Outcome.REFUSED]} refused")


def _add_progress(error: PublishError, done: Mapping[str, RecipientResult],
                  total: int) -> None:
    """Add the broadcast's progress to `error` (a retry resumes after the sent ones)."""
    error.args = (capped(f"{error} ({_progress(done, total)}; a retry sends only to the"
                         " rest)"),)
